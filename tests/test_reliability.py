"""Reliability guarantees that have no other home: concurrent readers, damaged stores, bounded queries."""
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import make_settings
from rag.assistant import Assistant
from rag.errors import IndexCorruptError

QUESTIONS = ["What is DEUP?", "By how much does the multigrid schedule speed up SlowFast training?",
             "Which papers study grokking?", "What does the corpus say about blockchain consensus?",
             "Up to what memory size did kNN-augmented language models keep improving?"]


def test_one_assistant_answers_from_several_threads(small_assistant):
    expected = {q: small_assistant.ask(q) for q in QUESTIONS}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(small_assistant.ask, QUESTIONS * 4))
    for question, answer in zip(QUESTIONS * 4, results):
        want = expected[question]
        assert (answer.text, answer.citations, answer.abstained) == (want.text, want.citations, want.abstained)
        assert [h.paper_id for h in answer.sources] == [h.paper_id for h in want.sources]


def test_damaged_vector_store_is_detected(tmp_path, small_corpus):
    settings = make_settings(tmp_path / "idx")
    Assistant(settings, build_if_missing=False).ingest([small_corpus])
    shutil.rmtree(tmp_path / "idx" / "chroma")
    (tmp_path / "idx" / "chroma").mkdir()
    # Opening reads only the manifest and the paper table; the first search touches the vectors and says so.
    with Assistant(settings, build_if_missing=False) as assistant, \
            pytest.raises(IndexCorruptError, match="rag ingest --rebuild"):
        assistant.search("multigrid training", 3)
    # An ingest that finds the vectors gone does not pretend the papers are indexed.
    with pytest.raises(IndexCorruptError, match="rag ingest --rebuild"):
        Assistant(settings, build_if_missing=False).ingest([small_corpus])
    report = Assistant(settings, build_if_missing=False).ingest([small_corpus], rebuild=True)
    assert report.papers_total == 16 and report.chunks_total > 16


def test_long_query_is_clipped_and_retrieval_stays_bounded(small_assistant):
    words = ("multigrid schedule video training speedup SlowFast mini-batch shapes resolution grid " * 12).split()[:100]
    hits = small_assistant.search(" ".join(words), 5)
    assert hits[0].paper.title == "A Multigrid Method for Efficiently Training Video Models"
    answer = small_assistant.ask(" ".join(words * 50))  # 5,000 words
    assert any("clipped to its first 512 tokens" in w for w in answer.warnings)
    assert len(answer.sources) <= 15
