import json

import pytest

from conftest import CORPUS, write_alternating_page, write_block_page
from rag.corpus import paper_id_for_title, read_corpus
from rag.errors import CorpusError


def test_bundled_corpus_is_989_listings_of_875_papers():
    read = read_corpus([CORPUS])
    assert read.listings == 989
    assert len(read.papers) == 875
    assert not read.issues
    multi = [p for p in read.papers if len(p.sources) > 1]
    assert len(multi) == 102
    # page chrome never becomes a paper, and 'Subscribe' is cut from the glued first title
    titles = {p.title for p in read.papers}
    assert not any(t.startswith(("Subscribe", "Get trending")) or t in {"new", "Mar 11"} for t in titles)
    assert "Is Imitation All You Need? Generalized Decision-Making with Dual-Phase Training" in titles


def test_both_layouts_and_dedup_across_pages(tmp_path, papers_by_title):
    a, b, c = (papers_by_title[t] for t in (
        "Memorizing Transformers", "Dropout Reduces Underfitting", "Giraffe: Using Deep Reinforcement Learning to Play Chess"))
    write_alternating_page(tmp_path / "one.txt", [a, b])
    write_block_page(tmp_path / "two.txt", [c, a])
    read = read_corpus([tmp_path])
    assert read.listings == 4
    by_title = {p.title: p for p in read.papers}
    assert set(by_title) == {a.title, b.title, c.title}
    assert by_title[a.title].abstract == a.abstract
    sources = by_title[a.title].sources
    assert len(sources) == 2 and sources[0].endswith("one.txt:3") and "two.txt" in sources[1]


def test_ids_are_stable_and_title_based(tmp_path, papers_by_title):
    p = papers_by_title["Memorizing Transformers"]
    assert p.id == paper_id_for_title("Memorizing Transformers") == paper_id_for_title("  memorizing   TRANSFORMERS ")
    write_block_page(tmp_path / "x.txt", [p])
    assert read_corpus([tmp_path]).papers[0].id == p.id


def test_title_without_abstract_is_skipped_with_file_and_line(tmp_path, papers_by_title):
    a, b = papers_by_title["Memorizing Transformers"], papers_by_title["Dropout Reduces Underfitting"]
    text = "\n".join([a.title, "A Title Whose Abstract Is Missing", b.title, b.abstract, "Dangling Title At End"])
    (tmp_path / "bad.txt").write_text(text)
    read = read_corpus([tmp_path])
    assert [p.title for p in read.papers] == [b.title]
    messages = [str(i) for i in read.issues]
    assert any("bad.txt:1:" in m and "no abstract" in m for m in messages)
    assert any("bad.txt:2:" in m for m in messages)
    assert any("bad.txt:5:" in m for m in messages)


def test_jsonl_csv_and_arxiv_formats(tmp_path):
    abstract = "We study a thing in depth. " * 10
    (tmp_path / "mine.jsonl").write_text("\n".join([
        json.dumps({"title": "Paper One", "abstract": abstract, "id": "u-1", "url": "https://x/1", "authors": ["A", "B"]}),
        "{not json",
        json.dumps({"title": "No Abstract Here"}),
        json.dumps({"title": "Paper Two", "abstract": abstract, "published": "2024-01-02"}),
    ]) + "\n")
    (tmp_path / "mine.csv").write_text(
        'title,abstract,authors\n"Paper Three","' + abstract + '","C, D"\n"",missing title\n', encoding="utf-8")
    (tmp_path / "arxiv.json").write_text(json.dumps({
        "id": "0704.0001", "title": "Calculation of  prompt\n diphoton production", "abstract": "  A fully differential\n calculation. " * 5,
        "authors": "C. Balazs, E. L. Berger", "categories": "hep-ph cs.LG", "update_date": "2008-11-13"}) + "\n")
    read = read_corpus([tmp_path])
    by_title = {p.title: p for p in read.papers}
    assert set(by_title) == {"Paper One", "Paper Two", "Paper Three", "Calculation of prompt diphoton production"}
    assert by_title["Paper One"].id == "u-1" and by_title["Paper One"].authors == ("A", "B")
    assert by_title["Paper Two"].id == paper_id_for_title("Paper Two") and by_title["Paper Two"].published == "2024-01-02"
    assert by_title["Paper Three"].authors == ("C", "D")
    arxiv = by_title["Calculation of prompt diphoton production"]
    assert arxiv.id == "0704.0001" and arxiv.categories == ("hep-ph", "cs.LG")
    assert arxiv.url == "https://arxiv.org/abs/0704.0001" and arxiv.published == "2008-11-13"
    assert "\n" not in arxiv.abstract
    messages = [str(i) for i in read.issues]
    assert any("mine.jsonl:2:" in m and "invalid JSON" in m for m in messages)
    assert any("mine.jsonl:3:" in m and "abstract" in m for m in messages)
    assert any("mine.csv:3:" in m and "title" in m for m in messages)


def test_csv_without_required_columns_is_named(tmp_path):
    (tmp_path / "cols.csv").write_text("name,summary\nx,y\n")
    read = read_corpus([tmp_path])
    assert not read.papers
    assert "cols.csv:1: CSV header lacks column(s) title, abstract" in str(read.issues[0])


def test_damaged_utf8_line_and_binary_file(tmp_path, papers_by_title):
    """A UTF-8 file with one damaged line loses that record only; a binary file is skipped whole."""
    a, b = papers_by_title["Memorizing Transformers"], papers_by_title["Dropout Reduces Underfitting"]
    data = "\n".join([a.title + " \u2014 k\u00fcnstlich", a.abstract, b.title]).encode() + b"\n" + \
        b.abstract.encode()[:50] + b"\xff\xfe" + b"\n"
    (tmp_path / "damaged.txt").write_bytes(data)
    (tmp_path / "blob.csv").write_bytes(b"\x00\x01\x02binary")
    read = read_corpus([tmp_path])
    assert [p.title for p in read.papers] == [a.title + " \u2014 k\u00fcnstlich"]
    messages = [str(i) for i in read.issues]
    assert any("damaged.txt:4:" in m and "UTF-8" in m for m in messages)
    assert any("blob.csv" in m and "binary" in m for m in messages)


def test_files_in_other_encodings_are_decoded_with_one_warning(tmp_path, papers_by_title):
    a, b = papers_by_title["Memorizing Transformers"], papers_by_title["Dropout Reduces Underfitting"]
    accented = "Caf\u00e9 m\u00e9moire \u00e0 la carte: " + a.title
    (tmp_path / "latin.txt").write_bytes("\n".join([accented, a.abstract, b.title, b.abstract]).encode("cp1252"))
    records = [{"title": "\u00dcber " + b.title, "abstract": b.abstract + " \u00e9t\u00e9"}]
    (tmp_path / "wide.jsonl").write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
                                          .encode("utf-16"))
    read = read_corpus([tmp_path])
    assert {p.title for p in read.papers} == {accented, b.title, "\u00dcber " + b.title}
    warnings = [str(i) for i in read.issues]
    assert len(warnings) == 2 and not any(i.skipped for i in read.issues)
    assert any("latin.txt: not UTF-8; read as cp1252" in w for w in warnings)
    assert any("wide.jsonl: not UTF-8; read as utf_16" in w for w in warnings)


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus([tmp_path / "nope"])
