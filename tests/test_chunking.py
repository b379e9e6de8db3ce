from rag.chunking import chunk_paper, sentences_of, windows
from rag.config import BUNDLED_MODEL, ChunkSettings
from rag.embeddings import load_tokenizer


def _chunks(paper, settings=ChunkSettings()):
    return chunk_paper(paper, sentences_of(paper), settings, BUNDLED_MODEL)


def test_chunks_are_sentence_windows_that_fit_and_point_into_the_abstract(papers_by_title):
    tokenizer = load_tokenizer(BUNDLED_MODEL)
    settings = ChunkSettings()
    longest = max(papers_by_title.values(), key=lambda p: len(p.abstract))
    for paper in [longest, papers_by_title["Memorizing Transformers"]]:
        sentences = sentences_of(paper)
        starts, ends = {s.start for s in sentences}, {s.end for s in sentences}
        chunks = _chunks(paper)
        assert chunks, paper.title
        for n, chunk in enumerate(chunks):
            assert chunk.id == f"{paper.id}#{n}"
            assert paper.abstract[chunk.start:chunk.end] == chunk.text
            assert chunk.start in starts and chunk.end in ends  # whole sentences, exact offsets
            assert len(tokenizer.encode(chunk.embed_text).ids) <= settings.chunk_tokens
            assert chunk.embed_text.startswith(paper.title)
        covered = set()
        for c in chunks:
            covered.update(range(c.start, c.end))
        assert all(i in covered for s in sentences for i in range(s.start, s.end))  # every sentence is embedded
    assert len(_chunks(longest)) > 1


def test_sentences_carry_exact_spans_and_terms(papers_by_title):
    paper = papers_by_title["A Multigrid Method for Efficiently Training Video Models"]
    sentences = sentences_of(paper)
    assert [s.index for s in sentences] == list(range(len(sentences)))
    assert all(paper.abstract[s.start:s.end] == s.text for s in sentences)
    speedup = next(s for s in sentences if "4.5x" in s.text)
    assert {"multigrid", "slowfast", "faster"} <= speedup.terms


def test_windows_overlap_by_whole_sentences():
    assert windows([10, 10, 10, 10], budget=25, overlap=12) == [(0, 2), (1, 3), (2, 4)]
    assert windows([10, 10, 10, 10], budget=25, overlap=0) == [(0, 2), (2, 4)]
    assert windows([40, 5], budget=25, overlap=10) == [(0, 1), (1, 2)]  # a long sentence stands alone
    assert windows([5], budget=25, overlap=10) == [(0, 1)]


def test_chunking_is_deterministic_and_follows_settings(papers_by_title):
    paper = papers_by_title["A Multigrid Method for Efficiently Training Video Models"]
    one = _chunks(paper)
    assert one == _chunks(paper)
    small = _chunks(paper, ChunkSettings(chunk_tokens=96, overlap_tokens=16))
    assert len(small) > len(one)
