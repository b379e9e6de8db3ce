"""Embedding backends side by side on the bundled corpus, each measured in one run (its own process):

- bare encode floor: the chunk texts of the whole corpus through the loaded model, nothing else;
- full ingest into a fresh index (in-process, and `rag ingest` as a command) and the ratio to that floor;
- unchanged re-ingest (`rag ingest` command, wall);
- retrieval quality on evals/qa.jsonl (answerable single-turn items) and warm latency (dense, BM25, fused);
- resident memory with the index open and the model loaded.

    .venv/bin/python bench/embeddings.py [--backends torch,onnx,onnx-int8] [--eval]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import QA, ROOT, Timer, ms, retrieval_latency, retrieval_quality, rss_mb  # noqa: E402


def one(backend: str, run_eval: bool) -> dict:
    import rag  # noqa: F401
    from rag.assistant import Assistant
    from rag.chunking import chunk_paper, sentences_of
    from rag.config import load_settings
    from rag.corpus import read_corpus
    from rag.embeddings import count_wordpieces
    from rag.eval import load_eval_file, run_eval as eval_run

    out: dict = {"backend": backend}
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{backend}-"))
    settings = load_settings(index={"dir": str(tmp / "index")}, embedding={"backend": backend})
    assistant = Assistant(settings, build_if_missing=False)
    with Timer() as t:
        assistant.embedder.encode(["warm up"])
    out["model_load_s"] = t.seconds

    papers = read_corpus(list(settings.corpus.default_paths)).papers
    # What an ingest embeds: every chunk (title + sentence window) and every sentence.
    texts = []
    for paper in papers:
        sentences = sentences_of(paper)
        texts += [c.embed_text for c in chunk_paper(paper, sentences, settings.chunking, settings.embedding.model)]
        texts += [s.text for s in sentences]
    tokens = sum(count_wordpieces(settings.embedding.model, t) for t in texts)
    with Timer() as t:
        assistant.embedder.encode(texts)
    out.update(texts=len(texts), tokens=tokens, floor_s=t.seconds, floor_texts_per_s=len(texts) / t.seconds,
               floor_tokens_per_s=tokens / t.seconds)

    with Timer() as t:
        report = assistant.ingest()
    out.update(ingest_s=t.seconds, ingest_papers_per_s=report.papers_total / t.seconds,
               ingest_tokens_per_s=tokens / t.seconds, ingest_over_floor=t.seconds / out["floor_s"])

    env = {**os.environ, "RAG_EMBEDDING__BACKEND": backend}
    cli_dir = tmp / "cli-index"
    rag_cmd = [sys.executable, "-m", "rag.cli", "--index-dir", str(cli_dir), "ingest"]
    with Timer() as t:
        subprocess.run(rag_cmd, env=env, check=True, capture_output=True)
    out.update(cli_ingest_s=t.seconds, cli_ingest_over_floor=t.seconds / out["floor_s"])
    with Timer() as t:
        subprocess.run(rag_cmd, env=env, check=True, capture_output=True)
    out["cli_reingest_unchanged_s"] = t.seconds

    items = load_eval_file(QA)
    retriever = assistant.retriever
    out["quality"] = retrieval_quality(lambda q, k: [h.paper.title for h in retriever.search(q, k)], items)
    questions = [i.question for i in items]
    for q in questions[:5]:
        retriever.search(q, 5)
    out.update(retrieval_latency(retriever, questions))
    out["rss_mb"] = rss_mb()
    if run_eval:
        report = eval_run(assistant, items)
        out["eval"] = {k: report["overall"][k] for k in ("citation_precision", "citation_recall", "fact_hit",
                                                         "abstention_rate", "false_abstention_rate", "latency_p50_s")}
    assistant.close()
    return out


def table(results: list[dict]) -> str:
    rows = [
        ("bare encode floor (all chunks + sentences)", lambda r: f"{r['floor_s']:.1f} s ({r['floor_texts_per_s']:.0f} texts/s, "
                                                     f"{r['floor_tokens_per_s'] / 1000:.1f}k tok/s)"),
        ("full ingest, in-process", lambda r: f"{r['ingest_s']:.1f} s = {r['ingest_over_floor']:.2f}× floor "
                                              f"({r['ingest_papers_per_s']:.1f} papers/s)"),
        ("full `rag ingest` command", lambda r: f"{r['cli_ingest_s']:.1f} s = {r['cli_ingest_over_floor']:.2f}× floor"),
        ("unchanged re-ingest (command)", lambda r: f"{r['cli_reingest_unchanged_s']:.2f} s"),
        ("dense search p50 / p95", lambda r: f"{ms(r['dense_p50_s'])} / {ms(r['dense_p95_s'])}"),
        ("BM25 search p50 / p95", lambda r: f"{ms(r['bm25_p50_s'])} / {ms(r['bm25_p95_s'])}"),
        ("fused search p50 / p95", lambda r: f"{ms(r['fused_p50_s'])} / {ms(r['fused_p95_s'])}"),
        ("recall@1 / @5 / @10, MRR", lambda r: " / ".join(f"{r['quality'][k]:.3f}" for k in
                                                          ("recall@1", "recall@5", "recall@10", "mrr"))),
        ("RSS, index open + model", lambda r: f"{r['rss_mb']:.0f} MB"),
    ]
    if all("eval" in r for r in results):
        rows.append(("eval: cite P / R, fact hit, abstention", lambda r: " / ".join(
            f"{r['eval'][k]:.3f}" for k in ("citation_precision", "citation_recall", "fact_hit", "abstention_rate"))))
    head = "| | " + " | ".join(r["backend"] for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(fmt(r) for r in results) + " |" for name, fmt in rows]
    base = results[0]
    for r in results[1:]:
        lines.append(f"\n{r['backend']} vs {base['backend']}: encode floor {base['floor_s'] / r['floor_s']:.2f}× faster, "
                     f"full ingest {base['ingest_s'] / r['ingest_s']:.2f}× faster, "
                     f"dense search p50 {base['dense_p50_s'] / r['dense_p50_s']:.2f}× faster")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    parser.add_argument("--eval", action="store_true", help="also run the full eval per backend")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.eval)))
        return
    results = []
    for backend in args.backends.split(","):
        cmd = [sys.executable, __file__, "--one", backend] + (["--eval"] if args.eval else [])
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{backend}: done", file=sys.stderr)
    print(table(results))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "embeddings.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
