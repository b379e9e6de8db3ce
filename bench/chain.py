"""The answer chain before and after a change, in one run: warm extractive answer latency over the eval questions
(in-process, index open, model loaded) and cold `rag ask` (a fresh process per run, index present).

The "before" side is another commit of this repository, checked out as a git worktree and run with the same
virtualenv on its own index (built here with that commit's code when missing).

    .venv/bin/python bench/chain.py --before-ref e8a5cc1 [--before-index DIR] [--after-ref REF] [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import QA, ROOT, pct  # noqa: E402

QUESTION = "By how much does the multigrid schedule speed up SlowFast training?"
WARM = """
import json, sys, time
import rag
from rag.assistant import Assistant
from rag.config import load_settings
questions = json.loads(sys.argv[2])
with Assistant(load_settings(index={"dir": sys.argv[1]}), build_if_missing=False) as assistant:
    for q in questions[:5]:
        assistant.ask(q)
    times = []
    for q in questions:
        started = time.perf_counter()
        assistant.ask(q)
        times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def checkout(ref: str) -> Path:
    tree = Path(tempfile.mkdtemp(prefix="rag-ref-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref], check=True,
                   capture_output=True)
    return tree


def _env(tree: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(tree)}


def warm(tree: Path, index: Path, questions: list[str]) -> list[float]:
    done = subprocess.run([sys.executable, "-c", WARM, str(index), json.dumps(questions)], env=_env(tree), cwd=tree,
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cold(tree: Path, index: Path, runs: int) -> list[float]:
    times = []
    for n in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", str(index), "ask", QUESTION],
                              env=_env(tree), cwd=tempfile.gettempdir(), capture_output=True, text=True)
        if done.returncode != 0 or "4.5x" not in done.stdout:
            raise RuntimeError(f"rag ask failed in {tree}: {done.stdout[-300:]} {done.stderr[-300:]}")
        if n:  # the first run after a build also pays for a cold page cache
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before-ref", required=True)
    parser.add_argument("--before-index", default=None)
    parser.add_argument("--after-ref", default=None, help="a commit instead of the working tree")
    parser.add_argument("--index", default=str(ROOT / "index_store"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    before_tree = checkout(args.before_ref)
    after_tree = checkout(args.after_ref) if args.after_ref else ROOT
    try:
        before_index = Path(args.before_index or before_tree.parent / "index")
        if not (before_index / "manifest.json").exists():
            subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", str(before_index), "ingest"],
                           env=_env(before_tree), cwd=before_tree, check=True, capture_output=True)
        questions = [json.loads(line)["question"] for line in QA.read_text().splitlines()
                     if line.strip() and not json.loads(line).get("history")]
        rows = {}
        for name, tree, index in (("before", before_tree, before_index), ("after", after_tree, Path(args.index))):
            rows[name] = {"warm": warm(tree, index, questions), "cold": cold(tree, index, args.runs)}
    finally:
        for tree in {before_tree, after_tree} - {ROOT}:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    print(f"| {args.before_ref} → {args.after_ref or 'working tree'} | warm answer p50 | warm p95 | cold `rag ask` median of {args.runs} (min–max) |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {pct(r['warm'], 50) * 1000:.1f} ms | {pct(r['warm'], 95) * 1000:.1f} ms | "
              f"{pct(r['cold'], 50):.2f} s ({min(r['cold']):.2f}–{max(r['cold']):.2f} s) |")
    b, a = rows["before"], rows["after"]
    print(f"\nwarm answer p50: {pct(b['warm'], 50) / pct(a['warm'], 50):.1f}× faster; cold ask median: "
          f"{pct(b['cold'], 50) / pct(a['cold'], 50):.2f}× faster ({len(questions)} questions, one run)")
    out = ROOT / "bench" / "results" / "chain.json"
    out.write_text(json.dumps({"before_ref": args.before_ref, "after_ref": args.after_ref, **rows}, indent=2))


if __name__ == "__main__":
    main()
