"""Property-based tests (hypothesis, fixed seed, bounded examples): whatever bytes a user's files hold, the corpus
readers and the eval loader never crash, and a valid record is never dropped because of its neighbours."""
import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from rag.corpus import read_corpus
from rag.errors import EvalFileError
from rag.eval import load_eval_file

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])
words = st.text(alphabet=string.ascii_letters + " éüß—", min_size=3, max_size=40).map(str.strip).filter(bool)
abstracts = st.lists(words, min_size=8, max_size=20).map(" ".join).map(lambda t: (t + " ") * (1 + 200 // len(t)))
records = st.fixed_dictionaries({"title": words, "abstract": abstracts})
garbage = st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" "))


@seed(20261123)
@SETTINGS
@given(data=st.binary(max_size=4000), suffix=st.sampled_from([".txt", ".jsonl", ".json", ".csv"]))
def test_arbitrary_bytes_never_crash_the_readers(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"f{suffix}"
    path.write_bytes(data)
    read = read_corpus([path])
    assert all(p.title and p.abstract for p in read.papers)
    assert all(str(path) in str(issue) for issue in read.issues)


@seed(20261123)
@SETTINGS
@given(good=st.lists(records, min_size=1, max_size=6, unique_by=lambda r: r["title"].casefold()),
       bad=st.lists(garbage, max_size=6), order=st.randoms(use_true_random=False))
def test_valid_jsonl_records_survive_malformed_neighbours(tmp_path_factory, good, bad, order):
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in good] + bad
    order.shuffle(lines)
    path = tmp_path_factory.mktemp("jsonl") / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    titles = {" ".join(p.title.split()) for p in read_corpus([path]).papers}
    assert {" ".join(r["title"].split()) for r in good} <= titles


@seed(20261123)
@SETTINGS
@given(good=st.lists(records, min_size=1, max_size=5, unique_by=lambda r: r["title"].casefold()),
       broken=st.lists(st.sampled_from(['"unterminated', 'x"y",', '"a\x00b"', "", '"only title"']), max_size=4))
def test_valid_csv_rows_survive_malformed_rows(tmp_path_factory, good, broken):
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["title", "abstract"])
    for r in good:
        writer.writerow([r["title"], r["abstract"]])
    text = out.getvalue() + "".join(f"{b}\n" for b in broken)
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    path.write_text(text, encoding="utf-8")
    titles = {p.title for p in read_corpus([path]).papers}
    assert {" ".join(r["title"].split()) for r in good} <= titles


@seed(20261123)
@SETTINGS
@given(data=st.binary(max_size=3000))
def test_eval_loader_fails_only_with_a_named_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("eval") / "e.jsonl"
    path.write_bytes(data)
    try:
        items = load_eval_file(Path(path))
    except EvalFileError as exc:
        assert str(path) in str(exc)
    else:
        assert items and all(i.question.strip() for i in items)


@seed(20261123)
@SETTINGS
@given(item=st.fixed_dictionaries({
    "id": st.text(min_size=1, max_size=8), "question": words, "expected_papers": st.lists(words, max_size=2),
    "must_include": st.lists(words, max_size=2), "answerable": st.booleans(), "kind": words}))
def test_eval_loader_accepts_exactly_the_consistent_items(tmp_path_factory, item):
    path = tmp_path_factory.mktemp("eval") / "one.jsonl"
    path.write_text(json.dumps(item) + "\n", encoding="utf-8")
    consistent = item["answerable"] == bool(item["expected_papers"])
    if consistent:
        assert load_eval_file(Path(path))[0].question == item["question"]
    else:
        with pytest.raises(EvalFileError, match="one.jsonl:1"):
            load_eval_file(Path(path))
