"""`rag serve` as a real process on 127.0.0.1, driven by the real `openai` client (and httpx for raw bodies)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from llm_server import FakeOpenAIServer, Reply

from rag.local_llm import free_port
from rag.prompts import REFUSAL

from conftest import words

MULTIGRID = "A Multigrid Method for Efficiently Training Video Models"
QUESTION = "By how much does the multigrid schedule speed up SlowFast training?"


class Served:
    def __init__(self, index_dir, env_extra: dict | None = None, args: tuple[str, ...] = ()):
        self.port = free_port("127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RAG_SERVE__MAX_BODY_BYTES": "8192", **(env_extra or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "--index-dir", str(index_dir), "serve", "--port", str(self.port), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"rag serve exited: {self.proc.stderr.read()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("rag serve did not become healthy")

    def client(self, key: str = "unused") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base}/v1", api_key=key, max_retries=0, timeout=60)

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture(scope="module")
def served(small_assistant):
    server = Served(small_assistant.settings.index.dir)
    yield server
    server.log = server.stop()


def _assert_quotes_verbatim(citations, papers_by_title):
    assert citations
    for c in citations:
        assert words(c["quote"]) in words(papers_by_title[c["title"]].abstract)


def test_answer_carries_citations_as_data(served, papers_by_title):
    resp = served.client().chat.completions.create(model="rag-papers", messages=[{"role": "user", "content": QUESTION}])
    text = resp.choices[0].message.content
    assert "4.5x" in text and "[1]" in text and resp.choices[0].finish_reason == "stop"
    extra = resp.model_extra
    assert extra["citations"][0]["title"] == MULTIGRID and extra["citations"][0]["number"] == 1
    _assert_quotes_verbatim(extra["citations"], papers_by_title)
    assert extra["sources"][0]["title"] == MULTIGRID and extra["rag"]["abstained"] is False


def test_stream_ends_with_citations_in_its_final_chunk(served, papers_by_title):
    client = served.client()
    plain = client.chat.completions.create(model="rag-papers", messages=[{"role": "user", "content": QUESTION}])
    chunks = list(client.chat.completions.create(model="rag-papers", stream=True,
                                                 messages=[{"role": "user", "content": QUESTION}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["citations"] == plain.model_extra["citations"]
    _assert_quotes_verbatim(final.model_extra["citations"], papers_by_title)
    assert all("citations" not in (c.model_extra or {}) for c in chunks[:-1])


def test_follow_up_through_messages(served):
    client = served.client()
    first = "Is there work on training video models faster with variable mini-batch shapes?"
    opening = client.chat.completions.create(model="rag-papers", messages=[{"role": "user", "content": first}])
    assert opening.model_extra["citations"][0]["title"] == MULTIGRID
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": first},
                {"role": "assistant", "content": opening.choices[0].message.content},
                {"role": "user", "content": [{"type": "text", "text": "What speedup did it report?"}]}]
    follow = client.chat.completions.create(model="rag-papers", messages=messages)
    assert follow.model_extra["citations"][0]["title"] == MULTIGRID
    assert "4.5x" in follow.choices[0].message.content
    alone = client.chat.completions.create(model="rag-papers",
                                           messages=[{"role": "user", "content": "What speedup did it report?"}])
    assert alone.model_extra["rag"]["warnings"]  # no earlier turn to refer to: said so


def test_abstention_is_a_normal_reply(served):
    for stream in (False, True):
        resp = served.client().chat.completions.create(
            model="rag-papers", stream=stream,
            messages=[{"role": "user", "content": "What is the boiling point of ethanol at sea level?"}])
        if stream:
            chunks = list(resp)
            text, extra = "".join(c.choices[0].delta.content or "" for c in chunks), chunks[-1].model_extra
        else:
            text, extra = resp.choices[0].message.content, resp.model_extra
        assert text.startswith(REFUSAL) and extra["citations"] == [] and extra["rag"]["abstained"] is True


def test_bad_requests_are_openai_errors_and_the_server_keeps_serving(served):
    client = served.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="rag-papers", messages=[])
    assert err.value.body["param"] == "messages" and err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": QUESTION}])
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="rag-papers", messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):  # the question-length bound
        client.chat.completions.create(model="rag-papers", messages=[{"role": "user", "content": "x " * 2500}])
    too_big = httpx.post(f"{served.base}/v1/chat/completions", content=b"{" + b" " * 9000 + b"}",
                         headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "body_too_large"
    garbled = httpx.post(f"{served.base}/v1/chat/completions", content=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert garbled.status_code == 400 and "not valid JSON" in garbled.json()["error"]["message"]
    chunked = httpx.post(f"{served.base}/v1/chat/completions", content=(b"{" + b" " * 1000 + b"}" for _ in range(10)),
                         headers={"Content-Type": "application/json"})  # no Content-Length: counted while read
    assert chunked.status_code == 413
    nested = httpx.post(f"{served.base}/v1/chat/completions", content=b"[" * 3000 + b"]" * 3000)
    assert nested.status_code == 400 and nested.json()["error"]["type"] == "invalid_request_error"
    bad_date = httpx.post(f"{served.base}/v1/search", json={"query": "DEUP", "filters": {"since": "last year"}})
    assert bad_date.status_code == 400 and "not a date like 2023" in bad_date.json()["error"]["message"]
    nothing = httpx.post(f"{served.base}/v1/search", json={"query": "DEUP", "filters": {"since": "2031"}})
    assert nothing.status_code == 404 and nothing.json()["error"]["code"] == "no_matching_papers"
    unknown = httpx.get(f"{served.base}/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{served.base}/health").json() == {"status": "ok"}
    again = client.chat.completions.create(model="rag-papers", messages=[{"role": "user", "content": QUESTION}])
    assert "4.5x" in again.choices[0].message.content


def test_tool_traffic_in_the_history_is_skipped(served):
    messages = [{"role": "user", "content": "look something up"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function",
                                                                       "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "tool output"},
                {"role": "user", "content": QUESTION}]
    reply = served.client().chat.completions.create(model="rag-papers", messages=messages)
    assert "4.5x" in reply.choices[0].message.content


def test_search_papers_and_models_routes(served, papers_by_title):
    hits = httpx.post(f"{served.base}/v1/search", json={"query": "What is DEUP?", "k": 3}).json()
    assert len(hits) == 3 and set(hits[0]) == {"paper_id", "title", "score", "snippet"}
    assert hits[0]["title"] == "DEUP: Direct Epistemic Uncertainty Prediction"
    paper = httpx.get(f"{served.base}/v1/papers/{hits[0]['paper_id']}").json()
    assert paper["abstract"] == papers_by_title[hits[0]["title"]].abstract
    missing = httpx.get(f"{served.base}/v1/papers/no-such-paper")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "paper_not_found"
    bad_k = httpx.post(f"{served.base}/v1/search", json={"query": "DEUP", "k": 0})
    assert bad_k.status_code == 400 and bad_k.json()["error"]["param"] == "k"
    assert [m.id for m in served.client().models.list()] == ["rag-papers"]


def test_concurrent_requests_all_answer(served):
    client = served.client()
    questions = [QUESTION, "What is DEUP?", "What does Grokfast amplify?", "What is Q-Diffusion?"] * 2

    def ask(q):
        return client.chat.completions.create(model="rag-papers", messages=[{"role": "user", "content": q}])

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(ask, questions))
    assert all(r.model_extra["citations"] for r in replies)
    assert replies[0].choices[0].message.content == replies[4].choices[0].message.content


def test_bearer_token_guards_every_route_but_health(small_assistant):
    server = Served(small_assistant.settings.index.dir,
                    {"RAG_SERVE__API_KEY_ENV": "RAG_TEST_TOKEN", "RAG_TEST_TOKEN": "s3cret-token"})
    try:
        assert httpx.get(f"{server.base}/health").status_code == 200
        with pytest.raises(openai.AuthenticationError) as err:
            server.client("wrong-token").chat.completions.create(model="rag-papers",
                                                                 messages=[{"role": "user", "content": QUESTION}])
        assert err.value.body["type"] == "authentication_error"
        missing = httpx.post(f"{server.base}/v1/chat/completions",
                             json={"model": "rag-papers", "messages": [{"role": "user", "content": QUESTION}]})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        assert httpx.post(f"{server.base}/v1/search", json={"query": "DEUP"}).status_code == 401
        assert httpx.get(f"{server.base}/v1/papers/x").status_code == 401
        ok = server.client("s3cret-token").chat.completions.create(
            model="rag-papers", messages=[{"role": "user", "content": QUESTION}])
        assert "4.5x" in ok.choices[0].message.content
    finally:
        log = server.stop()
    assert "s3cret-token" not in log
    assert "POST /v1/chat/completions 401" in log and "POST /v1/chat/completions 200" in log


def test_serve_refuses_to_start_when_its_token_variable_is_unset(small_assistant):
    env = {k: v for k, v in os.environ.items() if k != "RAG_TEST_TOKEN"}
    env["RAG_SERVE__API_KEY_ENV"] = "RAG_TEST_TOKEN"
    result = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", str(small_assistant.settings.index.dir),
                             "serve", "--port", str(free_port("127.0.0.1"))], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "RAG_TEST_TOKEN" in result.stderr and "not set" in result.stderr


def _scripted_answer(body):
    """A capable model's answer: two sentences from the multigrid abstract, cited to the number the prompt gave it."""
    prompt = body["messages"][-1]["content"]
    found = re.search(r"^\[(\d+)\] A Multigrid Method", prompt, re.MULTILINE)
    n = found.group(1) if found else "1"
    return Reply(f"The multigrid method trains a ResNet-50 SlowFast network 4.5x faster [{n}]. It also improves "
                 f"accuracy by 0.8% absolute on Kinetics-400 [{n}].", chunk=6)


def test_llm_answers_stream_verified_sentences_and_end_with_citations(small_assistant, papers_by_title):
    with FakeOpenAIServer() as llm:
        llm.default = _scripted_answer
        server = Served(small_assistant.settings.index.dir, args=("--llm", llm.url, "--model", "test-model"))
        try:
            client = server.client()
            chunks = list(client.chat.completions.create(model="rag-papers", stream=True,
                                                         messages=[{"role": "user", "content": QUESTION}]))
            pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
            final = chunks[-1].model_extra
            assert len(pieces) >= 2  # verified sentences arrive one by one, before the final chunk
            assert "".join(pieces) == final["rag"]["text"] and "4.5x" in final["rag"]["text"]
            assert final["rag"]["backend"] != "extractive" and final["citations"][0]["title"] == MULTIGRID
            _assert_quotes_verbatim(final["citations"], papers_by_title)
            # the model's stream breaks off after its first half: what was sent stays, and the final answer follows
            llm.replies.append(lambda body: Reply(_scripted_answer(body).text, chunk=6, truncate=True))
            chunks = list(client.chat.completions.create(model="rag-papers", stream=True,
                                                         messages=[{"role": "user", "content": QUESTION}]))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            final = chunks[-1].model_extra
            assert text.endswith(final["rag"]["text"]) and final["citations"]
            assert final["rag"]["warnings"]  # the failed model call is said, not hidden
        finally:
            server.stop()
