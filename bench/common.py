"""Helpers shared by the benchmarks: timing, percentiles, resident memory, eval-set retrieval metrics."""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QA = ROOT / "evals" / "qa.jsonl"


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Timer:
    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def retrieval_quality(search, items) -> dict:
    """Paper-level recall@1/5/10 and MRR over answerable single-turn items, from `search(question, 10)` titles."""
    from rag.eval import recall_at, reciprocal_rank

    rows = [i for i in items if i.answerable and not i.history]
    got = [(list(i.expected_papers), search(i.question, 10)) for i in rows]
    return {
        "n": len(rows),
        "recall@1": statistics.mean(recall_at(e, r, 1) for e, r in got),
        "recall@5": statistics.mean(recall_at(e, r, 5) for e, r in got),
        "recall@10": statistics.mean(recall_at(e, r, 10) for e, r in got),
        "mrr": statistics.mean(reciprocal_rank(e, r) for e, r in got),
    }


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def retrieval_latency(retriever, queries: list[str]) -> dict:
    """Warm p50/p95 of dense (top 50 chunks), BM25 (top 50) and the fused search (top 5) over the same queries."""
    timings: dict[str, list[float]] = {"dense": [], "bm25": [], "fused": []}
    for q in queries:
        for name, call in (("dense", lambda: retriever.dense(retriever.embed(q), 50)),
                           ("bm25", lambda: retriever.index.bm25.search(q, 50)),
                           ("fused", lambda: retriever.search(q, 5))):
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    out = {}
    for name, values in timings.items():
        out[f"{name}_p50_s"], out[f"{name}_p95_s"] = pct(values, 50), pct(values, 95)
    return out
