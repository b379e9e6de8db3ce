import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from conftest import make_settings, write_alternating_page
from rag.assistant import Assistant
from rag.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError
from rag.index import Index, iter_chunks


def _chunk_ids(settings):
    with Index.open(settings) as index:
        return sorted(cid for cid, _ in iter_chunks(index))


def test_reingest_is_idempotent_and_embeds_nothing(tmp_path, small_corpus):
    settings = make_settings(tmp_path / "idx")
    assistant = Assistant(settings, build_if_missing=False)
    first = assistant.ingest([small_corpus])
    assert (first.new, first.unchanged, first.listings) == (16, 0, 17)
    ids = _chunk_ids(settings)
    assert len(ids) == first.chunks_total == len(set(ids))
    second = assistant.ingest([small_corpus])
    assert (second.new, second.changed, second.unchanged, second.chunks_embedded) == (0, 0, 16, 0)
    assert _chunk_ids(settings) == ids


def test_changed_abstract_replaces_its_chunks(tmp_path, papers_by_title):
    settings = make_settings(tmp_path / "idx")
    assistant = Assistant(settings, build_if_missing=False)
    paper = papers_by_title["Memorizing Transformers"]
    other = papers_by_title["Dropout Reduces Underfitting"]
    corpus = tmp_path / "c"
    corpus.mkdir()
    write_alternating_page(corpus / "p.txt", [paper, other])
    assistant.ingest([corpus])
    edited = replace(paper, abstract=paper.abstract.replace("262K tokens", "999K tokens"))
    write_alternating_page(corpus / "p.txt", [edited, other])
    report = assistant.ingest([corpus])
    assert (report.changed, report.unchanged, report.new) == (1, 1, 0)
    with Index.open(settings) as index:
        docs = index.collection.get(where={"paper_id": paper.id}, include=["documents"])["documents"]
        stored = {p.id: p for p in index.papers()}
    assert any("999K tokens" in d for d in docs) and not any("262K tokens" in d for d in docs)
    assert "999K tokens" in stored[paper.id].abstract
    hits = assistant.search("memory of 999K tokens", 1)
    assert hits[0].paper_id == paper.id


def test_other_settings_are_refused_with_both_named(small_assistant):
    built = small_assistant.settings
    other = built.with_overrides(chunking={"chunk_tokens": 128})
    with pytest.raises(IndexMismatchError) as err:
        Index.open(other)
    message = str(err.value)
    assert "chunks of 256 tokens" in message and "chunks of 128 tokens" in message and "rag ingest --rebuild" in message
    with pytest.raises(IndexMismatchError, match="embedding model '/some/other/model'"):
        Index.open(built.with_overrides(embedding={"model": "/some/other/model"}))


def test_missing_and_corrupt_index_say_how_to_rebuild(tmp_path, small_corpus):
    settings = make_settings(tmp_path / "idx")
    with pytest.raises(IndexMissingError, match="rag ingest"):
        Index.open(settings)
    Assistant(settings, build_if_missing=False).ingest([small_corpus])
    (tmp_path / "idx" / "manifest.json").write_text("{truncated")
    with pytest.raises(IndexCorruptError, match="rebuild"):
        Index.open(settings)
    report = Assistant(settings, build_if_missing=False).ingest([small_corpus], rebuild=True)
    assert report.new == 16
    assert any(small_corpus.iterdir())  # rebuilding never touches the sources


def test_second_writer_gets_a_clear_error_fast(tmp_path, small_corpus):
    settings = make_settings(tmp_path / "idx")
    Assistant(settings, build_if_missing=False).ingest([small_corpus])
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from rag.config import load_settings; from rag.index import Index;"
         f"i = Index.open_for_write(load_settings(index={{'dir': {str(tmp_path / 'idx')!r}}}));"
         "print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(IndexLockedError, match=f"PID {holder.pid}"):
            Index.open(settings)
        assert time.monotonic() - started < 3
    finally:
        holder.kill()
        holder.wait()
    Index.open(settings).close()  # the lock dies with its holder


def test_killed_ingest_completes_to_the_same_index(tmp_path, small_corpus):
    clean = make_settings(tmp_path / "clean")
    Assistant(clean, build_if_missing=False).ingest([small_corpus])
    expected = _chunk_ids(clean)

    broken_dir = tmp_path / "broken"
    env = {**os.environ, "RAG_INDEX_DIR": str(broken_dir), "RAG_INDEX__INGEST_BATCH": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", str(small_corpus)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = broken_dir / "papers.sqlite"
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                committed = sqlite3.connect(db).execute("SELECT COUNT(*) FROM papers").fetchone()[0]
            except sqlite3.Error:
                committed = 0
            if 0 < committed < 16:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < committed < 16

    resumed = make_settings(broken_dir)
    report = Assistant(resumed, build_if_missing=False).ingest([small_corpus])
    assert report.unchanged >= committed and report.new == 16 - report.unchanged
    assert _chunk_ids(resumed) == expected
