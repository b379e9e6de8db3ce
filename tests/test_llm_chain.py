"""The OpenAI-compatible path end to end: real `openai` client, real HTTP server on 127.0.0.1, real index."""
import re
import socket

import pytest

from llm_server import FakeOpenAIServer, Reply
from rag.assistant import Assistant
from rag.prompts import REFUSAL

MULTIGRID = "A Multigrid Method for Efficiently Training Video Models"
QUESTION = "By how much does the multigrid schedule speed up SlowFast training?"


@pytest.fixture()
def server():
    with FakeOpenAIServer() as s:
        yield s


def _assistant(small_assistant, url, **llm):
    settings = small_assistant.settings.with_overrides(llm={"base_url": url, "model": "test-model", "timeout_s": 5,
                                                             "max_retries": 1, **llm})
    return Assistant(settings, build_if_missing=False)


def test_invented_citations_and_uncited_claims_are_cleaned(small_assistant, server, papers_by_title):
    def reply(body):
        return Reply(f"The multigrid method trains a ResNet-50 SlowFast network 4.5x faster [{_n(body)}]. "
                     "It was first invented at Bell Labs in 1850 [9]. "
                     "Training is accelerated by scaling up the mini-batch size and learning rate. "
                     "Transformers will replace every network next year.")
    server.replies.append(reply)
    shown = []
    with _assistant(small_assistant, server.url) as assistant:
        answer = assistant.ask(QUESTION, on_token=shown.append)
    assert not answer.abstained
    assert answer.text == ("The multigrid method trains a ResNet-50 SlowFast network 4.5x faster [1]. "
                           "Training is accelerated by scaling up the mini-batch size and learning rate [1].")
    assert "".join(shown) == answer.text  # only verified text was ever shown
    [citation] = answer.citations
    paper = papers_by_title[MULTIGRID]
    assert citation.paper_id == paper.id and citation.quote in paper.abstract
    assert answer.verification.dropped_citations == 1 and answer.verification.removed_sentences == 2
    assert answer.usage.backend == "llm" and answer.usage.prompt_tokens == 321 and answer.usage.completion_tokens == 45
    request = server.requests[-1]
    assert request["stream"] is True and request["model"] == "test-model"
    assert REFUSAL in request["messages"][0]["content"]
    assert {h.paper_id for h in answer.sources} >= {c.paper_id for c in answer.citations}


def test_model_refusal_abstains_when_configured(small_assistant, server):
    server.replies.append(Reply(f"{REFUSAL}"))
    with _assistant(small_assistant, server.url, on_refusal="abstain") as assistant:
        answer = assistant.ask(QUESTION)
    assert answer.abstained and not answer.citations and answer.text == REFUSAL
    assert answer.sources  # what was retrieved is still reported


def test_model_refusal_is_honoured_by_default_with_the_closest_sources(small_assistant, server):
    server.replies.append(Reply(f"{REFUSAL}"))
    with _assistant(small_assistant, server.url) as assistant:
        answer = assistant.ask(QUESTION)
    assert answer.abstained and answer.text == REFUSAL and not answer.citations
    assert answer.verification.model_refused and answer.verification.abstain_reason.name == "MODEL_REFUSED"
    assert answer.sources[0].paper.title == MULTIGRID  # what the model read is still listed


def test_model_refusal_can_show_the_extractive_answer_instead(small_assistant, server):
    server.replies.append(Reply(f"{REFUSAL}"))
    with _assistant(small_assistant, server.url, on_refusal="extractive") as assistant:
        answer = assistant.ask(QUESTION)
    assert not answer.abstained and "4.5x" in answer.text and answer.citations[0].title == MULTIGRID
    assert answer.verification.fell_back and answer.verification.model_refused
    assert answer.verification.raw_text == REFUSAL


def test_echoed_source_headings_are_removed(small_assistant, server):
    server.replies.append(lambda body: Reply(f"[{_n(body)}] {MULTIGRID} [{_n(body)}].\n"
                                             f"It trains SlowFast 4.5x faster [{_n(body)}]."))
    with _assistant(small_assistant, server.url) as assistant:
        answer = assistant.ask(QUESTION)
    assert answer.text == "It trains SlowFast 4.5x faster [1]."
    assert answer.verification.removed_sentences == 1 and answer.verification.kept_sentences == 1


def test_nothing_supported_falls_back_to_extractive(small_assistant, server):
    server.replies.append(Reply("The answer is 42 [1]. Everyone agrees [2]."))
    with _assistant(small_assistant, server.url) as assistant:
        answer = assistant.ask(QUESTION)
    assert answer.verification.fell_back and answer.verification.removed_sentences == 2
    assert "4.5x" in answer.text and answer.citations[0].title == MULTIGRID


def test_server_error_is_retried_then_reported_with_sources(small_assistant, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-key-that-must-not-leak-123")
    server.replies += [Reply(status=500, error="boom"), Reply(status=500, error="boom again")]
    with _assistant(small_assistant, server.url) as assistant:
        answer = assistant.ask(QUESTION)
    assert len(server.requests) == 2  # one try + one retry
    assert any("HTTP 500" in w for w in answer.warnings)
    assert "4.5x" in answer.text and answer.sources
    assert server.headers[0]["authorization"] == "Bearer sk-secret-key-that-must-not-leak-123"


def test_key_echoed_by_the_server_is_redacted(small_assistant, server, monkeypatch):
    key = "sk-secret-key-that-must-not-leak-123"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    server.replies.append(Reply(status=401, error=f"Incorrect API key provided: {key}"))
    with _assistant(small_assistant, server.url, max_retries=0) as assistant:
        answer = assistant.ask(QUESTION)
    assert any("HTTP 401" in w for w in answer.warnings)
    assert all(key not in w for w in answer.warnings) and key not in answer.text


def test_rate_limit_with_retry_after_then_success(small_assistant, server):
    server.replies += [Reply(status=429, error="slow down", retry_after="0"),
                       lambda body: Reply(f"The multigrid method trains SlowFast 4.5x faster [{_n(body)}].")]
    with _assistant(small_assistant, server.url) as assistant:
        answer = assistant.ask(QUESTION)
    assert len(server.requests) == 2 and answer.usage.backend == "llm" and not answer.warnings
    assert answer.citations[0].title == MULTIGRID


def _n(body):
    """The number the prompt gave the multigrid paper (the test server answers like a model that read it)."""
    return int(re.search(rf"\[(\d+)\] {re.escape(MULTIGRID)}", body["messages"][-1]["content"]).group(1))


def test_truncated_stream_and_timeout_fall_back(small_assistant, server):
    server.replies.append(Reply("The multigrid method trains a ResNet-50 SlowFast network 4.5x faster [1]. " * 3,
                                truncate=True))
    with _assistant(small_assistant, server.url, max_retries=0) as assistant:
        answer = assistant.ask(QUESTION)
        assert any("ended before" in w for w in answer.warnings) and answer.citations
        server.replies.append(Reply("late", delay=3))
        slow = _assistant(small_assistant, server.url, max_retries=0, timeout_s=0.5)
        answer = slow.ask(QUESTION)
        slow.close()
    assert any("timed out" in w for w in answer.warnings) and "4.5x" in answer.text


def test_unreachable_endpoint(small_assistant):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with _assistant(small_assistant, f"http://127.0.0.1:{port}/v1", max_retries=0) as assistant:
        answer = assistant.ask(QUESTION)
    assert any("cannot reach" in w for w in answer.warnings)
    assert answer.sources and "4.5x" in answer.text


def test_chat_condenses_follow_ups_with_the_llm(small_assistant, server):
    def reply(body):
        content = body["messages"][-1]["content"]
        if "Standalone question:" in content:
            assert "multigrid" in content.lower()
            return Reply("What speedup did the multigrid method for training video models report?")
        return Reply(f"The multigrid method trains SlowFast 4.5x faster [{_n(body)}].")
    server.default = None
    server.replies += [lambda body: Reply(f"The multigrid method varies mini-batch shapes [{_n(body)}]."), reply]
    with _assistant(small_assistant, server.url) as assistant:
        chat = assistant.chat()
        chat.ask("Is there work on training video models faster with variable mini-batch shapes?")
        answer = chat.ask("What speedup did it report?")
    assert answer.standalone_question.startswith("What speedup did the multigrid method")
    assert "4.5x" in answer.text and answer.citations[0].title == MULTIGRID


def test_offline_condense_makes_no_rewrite_call_and_keeps_the_conversation_paper(small_assistant, server):
    """`llm.condense = "offline"` (the bundled tiny models' default): the follow-up is resolved as without an LLM,
    so a loose rewrite cannot steer which paper is chosen, and one call per follow-up is saved."""
    def reply(body):
        assert "Standalone question:" not in body["messages"][-1]["content"]
        return Reply(f"The multigrid method trains SlowFast 4.5x faster [{_n(body)}].")
    server.default = None
    for condense, model in (("offline", "test-model"), ("auto", "qwen2.5-coder-0.5b")):  # auto: bundled → offline
        server.requests.clear()
        server.replies += [lambda body: Reply(f"The multigrid method varies mini-batch shapes [{_n(body)}]."), reply]
        with _assistant(small_assistant, server.url, condense=condense, model=model) as assistant:
            chat = assistant.chat()
            chat.ask("Is there work on training video models faster with variable mini-batch shapes?")
            answer = chat.ask("What speedup did it report?")
        assert len(server.requests) == 2, condense  # two answers, no rewrite
    assert answer.standalone_question.startswith("What speedup did it report? (") and MULTIGRID in \
        answer.standalone_question
    assert "4.5x" in answer.text and answer.citations[0].title == MULTIGRID


def test_eval_report_never_contains_the_key(small_assistant, server, monkeypatch, tmp_path):
    import json

    from rag.eval import load_eval_file, run_eval

    key = "sk-secret-key-that-must-not-leak-123"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    server.default = Reply(status=401, error=f"Incorrect API key provided: {key}")
    item = {"id": "f", "question": QUESTION, "expected_papers": [MULTIGRID], "must_include": ["4.5"],
            "answerable": True, "kind": "fact"}
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(item) + "\n")
    with _assistant(small_assistant, server.url, max_retries=0) as assistant:
        report = run_eval(assistant, load_eval_file(path))
    dumped = json.dumps(report)
    assert key not in dumped and report["overall"]["fact_hit"] == 1.0


def _prompt_titles(body) -> list[str]:
    return [t for _, t in re.findall(r"^\[(\d+)\] (.+)$", body["messages"][-1]["content"], re.MULTILINE)]


def test_sources_policy_chosen_shows_only_the_choosers_papers_and_gated_shows_more(small_assistant, server):
    """A tiny model answers from whatever it reads, citing plausible off-question sentences of other papers;
    `sources = "chosen"` (the default for the bundled models) shows it only what the offline chooser picked."""
    question = "What is grokking?"
    chooser = {c.title for c in small_assistant.ask(question).citations}
    assert len(chooser) == 1
    shown = {}
    for policy, model in (("chosen", "test-model"), ("gated", "test-model"), ("auto", "qwen2.5-coder-0.5b"),
                          ("auto", "test-model")):
        server.replies.append(Reply(REFUSAL))
        with _assistant(small_assistant, server.url, sources=policy, model=model) as assistant:
            assistant.ask(question)
        shown[policy, model] = set(_prompt_titles(server.requests[-1]))
    chosen, gated = shown["chosen", "test-model"], shown["gated", "test-model"]
    assert chosen == chooser == shown["auto", "qwen2.5-coder-0.5b"]  # auto with a bundled model: chosen
    assert shown["auto", "test-model"] == gated  # auto with any other model: gated
    assert chooser < gated and all("rokking" in t for t in gated)


def test_sources_policy_chosen_makes_no_call_when_the_chooser_declines(small_assistant, server):
    """An unreachable bar for the chooser: the gated policy still asks the model, the chosen one abstains
    without a call (the chooser's abstention, no tokens spent)."""
    for policy, calls in (("chosen", 0), ("gated", 1)):
        server.requests.clear()
        server.replies.append(Reply(REFUSAL))
        settings = small_assistant.settings.with_overrides(
            answer={"abstain_below": 0.999},
            llm={"base_url": server.url, "model": "test-model", "timeout_s": 5, "sources": policy})
        with Assistant(settings, build_if_missing=False) as assistant:
            answer = assistant.ask(QUESTION)
        assert answer.abstained and not answer.citations
        assert len(server.requests) == calls, policy
        assert (answer.usage.prompt_tokens == 0) == (calls == 0)


def test_a_capable_model_reads_gated_papers_beyond_the_decision_pool(small_assistant, server):
    """The offline decisions weigh top-k papers (their learned features are relative to that pool); a capable
    model reads up to `llm.max_sources` papers, each above the gate, and the chooser's decision is unchanged."""
    question = "What is grokking?"
    offline = Assistant(small_assistant.settings.with_overrides(retrieval={"top_k": 1}), build_if_missing=False)
    with offline:
        expected = offline.ask(question)
    shown = {}
    for max_sources in (1, 5):
        server.replies.append(Reply(REFUSAL))
        settings = small_assistant.settings.with_overrides(
            retrieval={"top_k": 1}, llm={"base_url": server.url, "model": "test-model", "timeout_s": 5,
                                         "sources": "gated", "max_sources": max_sources})
        with Assistant(settings, build_if_missing=False) as assistant:
            answer = assistant.ask(question)
        shown[max_sources] = _prompt_titles(server.requests[-1])
        assert answer.confidence == pytest.approx(expected.confidence)
        if max_sources == 5:  # an explicit k is how many papers to retrieve: the model reads no further
            server.replies.append(Reply(REFUSAL))
            with Assistant(settings, build_if_missing=False) as assistant:
                assistant.ask(question, k=1)
            shown["k=1"] = _prompt_titles(server.requests[-1])
    assert shown[1] == shown["k=1"] == [expected.citations[0].title]
    assert shown[5][0] == expected.citations[0].title and len(shown[5]) > 1
    assert all("rokking" in t for t in shown[5])  # the off-topic papers retrieved with them stay below the gate


def test_reading_many_sources_leaves_the_offline_decision_pool_as_it_was(full_assistant, server):
    """A deeper search fuses more candidates and can reorder the top papers; the papers a capable model reads
    beyond the pool must not move the pool the chooser decides on (what an offline answer would pick)."""
    questions = ["What is DEUP?", "What is the training paradigm for crowdsourcing large-network training across "
                 "volunteers' poorly connected PCs called?"]
    offline = {q: full_assistant.ask(q) for q in questions}
    settings = full_assistant.settings.with_overrides(llm={
        "base_url": server.url, "model": "test-model", "timeout_s": 5, "sources": "gated", "max_sources": 20})
    with Assistant(settings, build_if_missing=False) as assistant:
        for question in questions:
            server.replies.append(Reply(REFUSAL))
            answer = assistant.ask(question)
            assert (answer.candidate, answer.confidence) == (offline[question].candidate,
                                                             pytest.approx(offline[question].confidence))
            assert [h.paper_id for h in answer.sources[:5]] == [h.paper_id for h in offline[question].sources]
            assert len(answer.sources) > 5  # the model read beyond the pool
