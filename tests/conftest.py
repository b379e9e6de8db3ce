"""Shared fixtures: real listing pages cut from the bundled corpus, a real Chroma index in a temp dir,
the real bundled MiniLM. The full-corpus index is built once per session (about 1.5 minutes on 2 cores)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import rag  # noqa: F401  (sets the offline environment first)
from rag.assistant import Assistant
from rag.config import load_settings
from rag.resources import checkout_root
from rag.corpus import read_corpus

CORPUS = checkout_root() / "data" / "corpus"
ALT_PAGE = CORPUS / "000_644eb7bf80ec2426.txt"
BLOCK_PAGE = CORPUS / "004_d57eefe2a75100c4.txt"

# Papers the small index must hold for the retrieval and answer tests.
SMALL_TITLES = [
    "A Multigrid Method for Efficiently Training Video Models",
    "DEUP: Direct Epistemic Uncertainty Prediction",
    "Energy-based Out-of-distribution Detection",
    "Memorizing Transformers",
    "Grokfast: Accelerated Grokking by Amplifying Slow Gradients",
    "Grokking at the Edge of Numerical Stability",
    "Explaining grokking through circuit efficiency",
    "Searching for Activation Functions",
    "Dropout Reduces Underfitting",
    "Deep Learning is Robust to Massive Label Noise",
    "Scaling Laws for Neural Language Models",
    "Giraffe: Using Deep Reinforcement Learning to Play Chess",
    "D4RL: Datasets for Deep Data-Driven Reinforcement Learning",
    "Meta-World: A Benchmark and Evaluation for Multi-Task and Meta Reinforcement Learning",
    "Video PreTraining (VPT): Learning to Act by Watching Unlabeled Online Videos",
    "Q-Diffusion: Quantizing Diffusion Models",
]


def bundled_papers():
    return {p.title: p for p in read_corpus([CORPUS]).papers}


def write_alternating_page(path: Path, papers) -> Path:
    """The layout of four bundled pages: chrome lines, then title/abstract lines, the first title glued to 'Subscribe'."""
    lines = ["Get trending papers in your email inbox once a day!", "Get trending papers in your email inbox!"]
    for i, p in enumerate(papers):
        lines.append(("Subscribe" if i == 0 else "") + p.title)
        lines.append(p.abstract)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_block_page(path: Path, papers) -> Path:
    """The layout of the fifth bundled page: blank-line-separated blocks with chrome and a date line."""
    blocks = ["new", "Get trending papers in your email inbox!", "Subscribe", "byAK and the research community", "Mar 11"]
    for p in papers:
        blocks += [p.title, p.abstract]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def papers_by_title():
    return bundled_papers()


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory, papers_by_title):
    """Two real-layout pages; 'Memorizing Transformers' is on both (one paper, two sources)."""
    d = tmp_path_factory.mktemp("small_corpus")
    chosen = [papers_by_title[t] for t in SMALL_TITLES]
    write_alternating_page(d / "page_a.txt", chosen[:10])
    write_block_page(d / "page_b.txt", chosen[10:] + [papers_by_title["Memorizing Transformers"]])
    return d


def make_settings(index_dir: Path, **groups):
    return load_settings(index={"dir": str(index_dir), **groups.pop("index", {})}, **groups)


@pytest.fixture(scope="session")
def small_assistant(tmp_path_factory, small_corpus):
    settings = make_settings(tmp_path_factory.mktemp("small_index"), retrieval={"top_k": 5})
    assistant = Assistant(settings, build_if_missing=False)
    report = assistant.ingest([small_corpus])
    assert report.papers_total == len(SMALL_TITLES)
    yield assistant
    assistant.close()


@pytest.fixture(scope="session")
def full_assistant(tmp_path_factory):
    """The whole bundled corpus, indexed with the default settings."""
    settings = make_settings(tmp_path_factory.mktemp("full_index"))
    assistant = Assistant(settings, build_if_missing=False)
    report = assistant.ingest()
    assert report.papers_total == 875
    yield assistant
    assistant.close()


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def pytest_terminal_summary(terminalreporter):
    """Name the tests that ran against real servers, so a CI log shows they ran (and passed) at all."""
    for module, what in (("test_local_llm.py", "real llama.cpp server + bundled Qwen 0.5B"),
                         ("test_chroma_server.py", "real `chroma run` server")):
        for outcome in ("passed", "failed", "skipped"):
            reports = [r for r in terminalreporter.stats.get(outcome, [])
                       if getattr(r, "nodeid", "").startswith(f"tests/{module}") and r.when in ("call", "setup")]
            names = sorted({r.nodeid.split("::")[-1] for r in reports if outcome != "passed" or r.when == "call"})
            if names:
                terminalreporter.write_line(f"{module} ({what}): {len(names)} {outcome}: {', '.join(names)}")
