import json
import os
import subprocess
import sys

from click.testing import CliRunner

from rag.cli import cli


def _run(small_assistant, *args, env=None):
    runner = CliRunner()
    return runner.invoke(cli, ["--index-dir", str(small_assistant.settings.index.dir), *args], env=env,
                         catch_exceptions=False)


def test_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "search", "ask", "chat", "eval", "--index-dir"):
        assert command in result.output


def test_search_json(small_assistant):
    result = _run(small_assistant, "search", "What is DEUP?", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert len(hits) == 3 and set(hits[0]) == {"paper_id", "title", "score", "snippet"}
    assert hits[0]["title"] == "DEUP: Direct Epistemic Uncertainty Prediction"
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]


def test_ask_json_and_text(small_assistant):
    result = _run(small_assistant, "ask", "By how much does the multigrid schedule speed up SlowFast training?", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert {"question", "text", "abstained", "citations", "sources", "usage"} <= set(answer)
    assert set(answer["citations"][0]) >= {"paper_id", "title", "quote"}
    assert set(answer["sources"][0]) == {"paper_id", "title", "score"}
    assert "4.5x" in answer["text"] and answer["intent"] == "fact" and answer["abstain_reason"] is None
    assert answer["citations"][0]["title"] == "A Multigrid Method for Efficiently Training Video Models"
    text = _run(small_assistant, "ask", "By how much does the multigrid schedule speed up SlowFast training?")
    assert "References" in text.output and "[1] A Multigrid Method" in text.output
    assert "why:" not in text.output
    declined = _run(small_assistant, "ask", "How should I prune my apple tree in winter?")
    assert declined.output.splitlines()[:2] == ["The corpus does not answer this question.",
                                                "why: the question is not about machine-learning research"]


def test_errors_are_one_clear_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["--index-dir", str(tmp_path / "none"), "search", "x"])
    assert result.exit_code == 1
    assert result.output == f"error: no index at {tmp_path / 'none'}; build one with `rag ingest`\n"
    result = runner.invoke(cli, ["--index-dir", str(tmp_path / "none"), "ingest", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1 and result.output.startswith("error: ") and "missing.jsonl" in result.output
    bad = tmp_path / "rag.toml"
    bad.write_text("[retrieval]\ntop_kk = 3\n")
    result = runner.invoke(cli, ["--config", str(bad), "search", "x"])
    assert result.exit_code == 1 and "retrieval.top_kk" in result.output


def test_ingest_reports_and_warns_in_a_real_process(tmp_path, small_corpus):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text((small_corpus / "page_b.txt").read_text())
    (corpus / "bad.jsonl").write_text('{"title": "only a title"}\n')
    env = {**os.environ, "RAG_INDEX_DIR": str(tmp_path / "idx")}
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(corpus)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "7 papers in index: 7 new" in out.stdout and "1 skipped" in out.stdout
    assert "bad.jsonl:1: record has no abstract, skipped" in out.stderr
    again = subprocess.run([sys.executable, "-m", "rag.cli", "ingest", str(corpus)], env=env, capture_output=True,
                           text=True, timeout=300)
    assert "0 new, 0 changed, 7 unchanged" in again.stdout and "0 chunks embedded" in again.stdout
