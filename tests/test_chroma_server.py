"""Client/server mode: a real Chroma server (`chroma run`) on 127.0.0.1, `rag` pointed at it by settings."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import make_settings
from rag.assistant import Assistant
from rag.local_llm import free_port


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("chroma_server_data")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--path", str(data),
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("chroma server did not start")
            time.sleep(0.2)
    yield port, data
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_ingest_and_answer_through_a_chroma_server(chroma_server, small_corpus, tmp_path, papers_by_title):
    port, data = chroma_server
    settings = make_settings(tmp_path / "index", index={"chroma_host": "127.0.0.1", "chroma_port": port,
                                                        "collection": "server-test"})
    with Assistant(settings, build_if_missing=False) as assistant:
        report = assistant.ingest([small_corpus])
        answer = assistant.ask("By how much does the multigrid schedule speed up SlowFast training?")
        count = assistant.index.vectors.count()
    assert count == report.chunks_total > 0
    assert not (tmp_path / "index" / "chroma").exists()  # vectors live on the server, not in the index dir
    assert any(data.iterdir())
    assert "4.5x" in answer.text
    [first, *_] = answer.citations
    assert first.title == "A Multigrid Method for Efficiently Training Video Models"
    assert first.quote in papers_by_title[first.title].abstract

    # A second process (the command) sees the same server-side index; nothing is re-embedded.
    env = {**os.environ, "RAG_INDEX__CHROMA_HOST": "127.0.0.1", "RAG_INDEX__CHROMA_PORT": str(port),
           "RAG_INDEX__COLLECTION": "server-test"}
    again = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", str(tmp_path / "index"), "ingest",
                            str(small_corpus)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "0 chunks embedded" in again.stdout and f"{report.papers_total} unchanged" in again.stdout
