"""Cold `rag ask` with the index present: a fresh process per run, timed to the first byte of the answer (which
names and cites the first source) and to exit. The default backend (onnx-int8) is compared in the same run with
the torch backend on its own index (built here unless --torch-index names one).

    .venv/bin/python bench/cold_start.py [--runs 5] [--torch-index DIR]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, pct  # noqa: E402

QUESTION = "By how much does the multigrid schedule speed up SlowFast training?"


def timed_ask(index_dir: Path, backend: str) -> tuple[float, float]:
    env = {**os.environ, "RAG_EMBEDDING__BACKEND": backend}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--index-dir", str(index_dir), "ask", QUESTION],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    first = proc.stdout.read(1)
    first_at = time.perf_counter() - started
    rest = proc.stdout.read()
    proc.wait()
    if proc.returncode != 0 or b"4.5x" not in first + rest:
        raise RuntimeError(f"rag ask failed ({backend}): {(first + rest).decode(errors='replace')[:300]}")
    return first_at, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--index", default=str(ROOT / "index_store"), help="index built with the default settings")
    parser.add_argument("--torch-index", default=None)
    args = parser.parse_args()
    torch_index = args.torch_index
    if not torch_index:
        torch_index = str(Path(tempfile.mkdtemp(prefix="cold-torch-")) / "index")
        subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", torch_index, "ingest"], check=True,
                       capture_output=True, env={**os.environ, "RAG_EMBEDDING__BACKEND": "torch"})
    rows = {}
    for backend, index in (("onnx-int8", args.index), ("torch", torch_index)):
        timed_ask(Path(index), backend)  # the first run after a build also pays for cold page cache
        runs = [timed_ask(Path(index), backend) for _ in range(args.runs)]
        rows[backend] = ([r[0] for r in runs], [r[1] for r in runs])
    print("| backend | to first answer byte p50 (max) | to exit p50 (max) | runs |\n|---|---|---|---|")
    for backend, (first, total) in rows.items():
        print(f"| {backend} | {pct(first, 50):.2f} s ({max(first):.2f} s) | {pct(total, 50):.2f} s ({max(total):.2f} s) "
              f"| {len(first)} |")
    a, b = rows["onnx-int8"], rows["torch"]
    print(f"\nonnx-int8 cold ask reaches its first source {pct(b[0], 50) / pct(a[0], 50):.1f}× sooner than torch")


if __name__ == "__main__":
    main()
