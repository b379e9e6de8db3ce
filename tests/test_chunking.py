from rag.chunking import chunk_paper
from rag.config import BUNDLED_MODEL, ChunkSettings
from rag.embeddings import load_tokenizer


def test_chunks_fit_the_window_and_point_into_the_abstract(papers_by_title):
    tokenizer = load_tokenizer(BUNDLED_MODEL)
    settings = ChunkSettings()
    longest = max(papers_by_title.values(), key=lambda p: len(p.abstract))
    for paper in [longest, papers_by_title["Memorizing Transformers"]]:
        chunks = chunk_paper(paper, settings, BUNDLED_MODEL)
        assert chunks, paper.title
        for n, chunk in enumerate(chunks):
            assert chunk.id == f"{paper.id}#{n}"
            assert paper.abstract[chunk.start:chunk.end] == chunk.text
            assert len(tokenizer.encode(chunk.embed_text).ids) <= settings.chunk_tokens
            assert chunk.embed_text.startswith(paper.title)
        covered = set()
        for c in chunks:
            covered.update(range(c.start, c.end))
        assert len(covered) >= len(paper.abstract.rstrip()) - 2  # every part of the abstract is embedded
    assert len(chunk_paper(longest, settings, BUNDLED_MODEL)) > 1


def test_chunking_is_deterministic_and_follows_settings(papers_by_title):
    paper = papers_by_title["A Multigrid Method for Efficiently Training Video Models"]
    one = chunk_paper(paper, ChunkSettings(), BUNDLED_MODEL)
    assert one == chunk_paper(paper, ChunkSettings(), BUNDLED_MODEL)
    small = chunk_paper(paper, ChunkSettings(chunk_tokens=96, overlap_tokens=16), BUNDLED_MODEL)
    assert len(small) > len(one)
