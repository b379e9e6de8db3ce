"""Scale runs on a real Chroma server (`chroma run`, started here on 127.0.0.1) with `rag` pointed at it by
settings: synthetic corpora of 1k / 10k / 100k abstract-like records (bench/synth_corpus.py), each ingested with
the `rag ingest` command, then searched warm in-process. Reports ingest throughput, disk, retrieval latency and
BM25 memory per size, and how each grows per 10× more records.

    .venv/bin/python bench/scale.py [--sizes 1000,10000,100000] [--work /tmp/rag-scale]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Timer, dir_mb, ms, pct, retrieval_latency, rss_mb  # noqa: E402
from synth_corpus import write  # noqa: E402


def start_chroma(path: Path, port: int) -> subprocess.Popen:
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("chroma server did not start")


def bm25_memory(index_dir: Path) -> dict:
    """BM25 index memory, in a fresh process: RSS growth on load, and the bytes of its score arrays."""
    code = ("import json, sys; sys.path.insert(0, %r); from common import rss_mb; import rag, numpy; "
            "from rag.index.lexical import BM25Index; from pathlib import Path; before = rss_mb(); "
            "b = BM25Index(Path(%r)); "
            "print(json.dumps({'bm25_rss_mb': rss_mb() - before, 'bm25_arrays_mb': b.nbytes / 1e6, "
            "'bm25_vocab': len(b.vocab)}))") % (str(Path(__file__).parent), str(index_dir / "bm25"))
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def search_and_ask(n: int, work: Path, port: int, server_pid: int) -> dict:
    """Warm retrieval and answer latency over 100 queries drawn from the records, on an ingested index."""
    import rag  # noqa: F401
    from rag.assistant import Assistant
    from rag.config import load_settings

    settings = load_settings(index={"dir": str(work / f"index-{n}"), "chroma_host": "127.0.0.1", "chroma_port": port,
                                    "collection": f"synth-{n}"})
    assistant = Assistant(settings, build_if_missing=False)
    out: dict = {}
    assistant.embedder.encode(["load the model first: open_s is the index's own cost"])
    with Timer() as t:
        assistant.ask("warm up: which papers study grokking in language models?")
    out["open_s"] = t.seconds  # open the index, load BM25 and names, answer one question
    retriever = assistant.retriever
    rng = random.Random(1)
    # Only the sampled records are parsed: holding all 100k in this process would count in the client's RSS.
    wanted = set(rng.sample(range(n), 120))
    with (work / f"synth-{n}.jsonl").open(encoding="utf-8") as lines:
        records = [json.loads(line) for i, line in enumerate(lines) if i in wanted]
    rng.shuffle(records)
    queries = []
    for record in records:
        words = rng.choice(re.split(r"(?<=\.)\s+", record["abstract"])).split()
        queries.append(" ".join(words[:12]))
    for q in queries[100:]:  # the server's first queries after start are slow at every size
        retriever.search(q, 5)
    # Each kind on fresh queries: repeating a query right away would be served from the server's warm pages.
    out.update({k: v for k, v in retrieval_latency(retriever, queries[:34]).items() if k.startswith("dense")})
    out.update({k: v for k, v in retrieval_latency(retriever, queries[34:67]).items() if k.startswith("bm25")})
    out.update({k: v for k, v in retrieval_latency(retriever, queries[67:]).items() if k.startswith("fused")})
    asks = []
    for q in queries[:20]:
        started = time.perf_counter()
        assistant.ask(q + " (answer)")
        asks.append(time.perf_counter() - started)
    out["ask_p50_s"] = pct(asks, 50)
    out["client_rss_mb"] = rss_mb()
    out["server_rss_mb"] = rss_mb(server_pid)
    assistant.close()
    return out


def measure(n: int, work: Path, port: int) -> dict:
    import rag  # noqa: F401

    data = write(n, work / f"synth-{n}.jsonl")
    chroma_dir, index_dir = work / f"chroma-{n}", work / f"index-{n}"
    for d in (chroma_dir, index_dir):
        shutil.rmtree(d, ignore_errors=True)
    server = start_chroma(chroma_dir, port)
    try:
        env = {**os.environ, "RAG_INDEX__CHROMA_HOST": "127.0.0.1", "RAG_INDEX__CHROMA_PORT": str(port),
               "RAG_INDEX__COLLECTION": f"synth-{n}"}
        with Timer() as t:
            done = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", str(index_dir), "ingest", str(data)],
                                  env=env, check=True, capture_output=True, text=True)
        chunks = int(re.search(r"(\d+) chunks embedded", done.stdout).group(1))
        words = sum(len(json.loads(line)["abstract"].split()) for line in data.read_text().splitlines())
        out = {"records": n, "chunks": chunks, "words_per_record": words / n, "ingest_s": t.seconds, "records_per_s": n / t.seconds,
               "chunks_per_s": chunks / t.seconds, "chroma_disk_mb": dir_mb(chroma_dir),
               "index_disk_mb": dir_mb(index_dir), "bm25_disk_mb": dir_mb(index_dir / "bm25")}

        out.update(bm25_memory(index_dir))

        out.update(search_and_ask(n, work, port, server.pid))
        return out
    finally:
        os.killpg(server.pid, 9)
        server.wait()


def table(results: list[dict]) -> str:
    cols = [("records", "{records}"), ("chunks", "{chunks}"), ("ingest", "{ingest_s:.0f} s"),
            ("records/s", "{records_per_s:.0f}"), ("chroma disk", "{chroma_disk_mb:.0f} MB"),
            ("index disk (SQLite+BM25)", "{index_disk_mb:.0f} MB"), ("BM25 RSS (arrays)", "{bm25_rss_mb:.0f} MB ({bm25_arrays_mb:.0f} MB)"),
            ("open + 1st answer", "{open_s:.1f} s"), ("dense p50/p95", "{dense}"), ("BM25 p50/p95", "{bm25}"),
            ("fused p50/p95", "{fused}"), ("ask p50", "{ask}"), ("client RSS", "{client_rss_mb:.0f} MB"),
            ("server RSS", "{server_rss_mb:.0f} MB")]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|---" * len(cols) + "|"]
    for r in results:
        extra = {k: f"{ms(r[f'{k}_p50_s'])} / {ms(r[f'{k}_p95_s'])}" for k in ("dense", "bm25", "fused")}
        extra["ask"] = ms(r["ask_p50_s"])
        lines.append("| " + " | ".join(f.format(**r, **extra) for _, f in cols) + " |")
    lines.append("")
    for a, b in zip(results, results[1:]):
        g = b["records"] / a["records"]
        lines.append(f"{a['records']} → {b['records']} ({g:.0f}× records): ingest time ×{b['ingest_s'] / a['ingest_s']:.1f}, "
                     f"chroma disk ×{b['chroma_disk_mb'] / a['chroma_disk_mb']:.1f}, BM25 arrays "
                     f"×{b['bm25_arrays_mb'] / a['bm25_arrays_mb']:.1f}, dense p50 ×{b['dense_p50_s'] / a['dense_p50_s']:.2f}, "
                     f"BM25 p50 ×{b['bm25_p50_s'] / a['bm25_p50_s']:.2f}, fused p50 ×{b['fused_p50_s'] / a['fused_p50_s']:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--work", default="/tmp/rag-scale")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--requery", action="store_true",
                        help="keep the ingest numbers in the JSON, re-measure search on the indexes in --work")
    parser.add_argument("--table-only", action="store_true",
                        help="re-measure BM25 memory on the indexes in --work and print the table from the JSON")
    args = parser.parse_args()
    work = Path(args.work)
    if args.requery:
        results = json.loads((ROOT / "bench" / "results" / "scale.json").read_text())
        for r in results:
            server = start_chroma(work / f"chroma-{r['records']}", args.port)
            try:
                r.update(search_and_ask(r["records"], work, args.port, server.pid))
            finally:
                os.killpg(server.pid, 9)
                server.wait()
        (ROOT / "bench" / "results" / "scale.json").write_text(json.dumps(results, indent=2))
        args.table_only = True
    if args.table_only:
        results = json.loads((ROOT / "bench" / "results" / "scale.json").read_text())
        for r in results:
            r.update(bm25_memory(work / f"index-{r['records']}"))
        (ROOT / "bench" / "results" / "scale.json").write_text(json.dumps(results, indent=2))
        print(table(results))
        return
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in map(int, args.sizes.split(",")):
        results.append(measure(n, work, args.port))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(table(results))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "scale.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
