"""A bounded load run against `rag serve` on 127.0.0.1: N concurrent clients (the real `openai` client) each ask
M questions from the eval set, half of them streamed; the run stops by itself.

Reports per-request latency p50/p95 (time to the last byte; for streams also to the first text), errors, answers
carrying citations, throughput, and the server's resident memory after warm-up and after the run.

    .venv/bin/python bench/serve.py [--clients 8] [--per-client 25] [--index-dir index_store]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import QA, ROOT, cpu_count, pct, rss_mb  # noqa: E402

from rag.local_llm import free_port  # noqa: E402


def _start(index_dir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "--index-dir", str(index_dir), "serve", "--port",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rag serve exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("rag serve did not become healthy in 180 s")


def _one(client: openai.OpenAI, question: str, stream: bool) -> dict:
    started = time.perf_counter()
    messages = [{"role": "user", "content": question}]
    try:
        if stream:
            first = None
            final = None
            for chunk in client.chat.completions.create(model="rag-papers", messages=messages, stream=True):
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - started
                final = chunk
            extra = final.model_extra or {}
        else:
            first = None
            extra = client.chat.completions.create(model="rag-papers", messages=messages).model_extra or {}
        return {"seconds": time.perf_counter() - started, "first": first, "stream": stream, "error": None,
                "cited": bool(extra.get("citations")), "abstained": bool(extra.get("rag", {}).get("abstained"))}
    except openai.OpenAIError as exc:
        return {"seconds": time.perf_counter() - started, "first": None, "stream": stream, "error": repr(exc),
                "cited": False, "abstained": False}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=25)
    parser.add_argument("--index-dir", type=Path, default=ROOT / "index_store")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in QA.read_text().splitlines()
                 if line.strip() and not json.loads(line).get("history")]
    port = free_port("127.0.0.1")
    proc = _start(args.index_dir, port)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)
        _one(client, questions[0], False)  # first answer pays for lazy loads; not timed
        rss_before = rss_mb(proc.pid)

        def run_client(c: int) -> list[dict]:
            mine = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)
            return [_one(mine, questions[(c * args.per_client + i) % len(questions)], stream=(i % 2 == 1))
                    for i in range(args.per_client)]

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            rows = [r for batch in pool.map(run_client, range(args.clients)) for r in batch]
        wall = time.perf_counter() - started
        rss_after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = [r for r in rows if r["error"] is None]
    seconds = [r["seconds"] for r in ok]
    firsts = [r["first"] for r in ok if r["first"] is not None]
    result = {
        "clients": args.clients, "per_client": args.per_client, "requests": len(rows), "cpus": cpu_count(),
        "errors": len(rows) - len(ok), "error_samples": [r["error"] for r in rows if r["error"]][:3],
        "cited": sum(r["cited"] for r in ok), "abstained": sum(r["abstained"] for r in ok),
        "p50_ms": round(1000 * pct(seconds, 50), 1), "p95_ms": round(1000 * pct(seconds, 95), 1),
        "mean_ms": round(1000 * statistics.mean(seconds), 1) if seconds else None,
        "stream_first_text_p50_ms": round(1000 * pct(firsts, 50), 1) if firsts else None,
        "throughput_rps": round(len(rows) / wall, 2), "wall_s": round(wall, 1),
        "server_rss_mb_before": round(rss_before, 1), "server_rss_mb_after": round(rss_after, 1),
    }
    out = ROOT / "bench" / "results" / "serve.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if result["errors"]:
        raise SystemExit(f"{result['errors']} requests failed")


if __name__ == "__main__":
    main()
