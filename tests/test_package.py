"""The package as users get it from a wheel: built here, installed non-editable into a fresh virtualenv (reusing the
dependencies already installed, so nothing is downloaded), and run from a directory outside the checkout."""
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from rag.resources import checkout_root

QUESTION = "By how much does the multigrid schedule speed up SlowFast training?"


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(checkout_root()), "--no-deps",
                           "--no-build-isolation", "-w", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    [path] = out.glob("rag_papers-*.whl")
    return path


def test_wheel_carries_prompts_corpus_and_models(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {"rag/_prompts/answer_system.txt", "rag/_prompts/condense.txt"} <= set(names)
    assert sum(n.startswith("rag/_data/corpus/") and n.endswith(".txt") for n in names) == 5
    assert "rag/models/sentence_ranker.json" in names and "rag/index/store.py" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Python: <3.14,>=3.11" in metadata or "Requires-Python: >=3.11,<3.14" in metadata


def test_installed_wheel_ingests_and_answers_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # this environment's dependencies
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    before = _files(site)
    home, work = tmp_path / "home", tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "XDG_"))}
    env.update(HOME=str(home))  # a first run: the embedding model is exported into the per-user cache, quietly
    rag = str(venv / "bin" / "rag")
    ingest = subprocess.run([rag, "ingest"], cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert ingest.returncode == 0, ingest.stderr
    index = home / ".local" / "share" / "rag-papers" / "index"
    assert f"index: {index}" in ingest.stdout and "875 papers in index" in ingest.stdout
    assert "Warning" not in ingest.stderr + ingest.stdout and "DEBUG" not in ingest.stderr + ingest.stdout
    assert "one-time ONNX export" in ingest.stderr and any((home / ".cache" / "rag-papers").rglob("*.onnx"))
    ask = subprocess.run([rag, "ask", QUESTION], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert ask.returncode == 0, ask.stderr
    assert "4.5x" in ask.stdout and "[1] A Multigrid Method for Efficiently Training Video Models" in ask.stdout
    info = subprocess.run([rag, "info"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert str(index) in info.stdout and "a wheel" in info.stdout
    assert _files(site) == before  # nothing written into site-packages
    assert not any(work.iterdir())  # nor into the directory it was run from
    elsewhere = tmp_path / "explicit"
    again = subprocess.run([rag, "--index-dir", str(elsewhere), "search", "DEUP", "-k", "1"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and f"no index at {elsewhere}" in again.stderr  # --index-dir wins
