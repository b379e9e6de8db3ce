"""The peer a user would pick instead — LlamaIndex's standard recipe (VectorStoreIndex over Chroma with
HuggingFaceEmbedding on the same bundled MiniLM, default splitter) — against `rag`, on the same corpus, the
same machine and in the same run: ingest time, warm retrieval p50/p95, paper-level recall on evals/qa.jsonl.

Each side runs in its own process so neither pays the other's imports or caches.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/llamaindex_recipe.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import QA, ROOT, Timer, ms, pct, retrieval_quality  # noqa: E402


def run_llamaindex() -> dict:
    import rag  # noqa: F401  (offline environment; no hub access)
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from rag.config import load_settings
    from rag.corpus import read_corpus
    from rag.embeddings import resolve_model_path
    from rag.eval import load_eval_file

    settings = load_settings()
    papers = read_corpus(list(settings.corpus.default_paths)).papers
    tmp = tempfile.mkdtemp(prefix="bench-llamaindex-")
    with Timer() as total:
        client = chromadb.PersistentClient(path=tmp, settings=ChromaSettings(anonymized_telemetry=False))
        store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("papers"))
        embed = HuggingFaceEmbedding(model_name=resolve_model_path(settings.embedding.model), device="cpu")
        docs = [Document(text=f"{p.title}\n{p.abstract}", metadata={"title": p.title},
                         excluded_embed_metadata_keys=["title"], excluded_llm_metadata_keys=["title"]) for p in papers]
        index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store),
                                                embed_model=embed)
    retriever = index.as_retriever(similarity_top_k=10)

    def search(question: str, k: int) -> list[str]:
        seen: list[str] = []
        for node in retriever.retrieve(question):
            title = node.node.metadata["title"]
            if title not in seen:
                seen.append(title)
        return seen[:k]

    items = load_eval_file(QA)
    quality = retrieval_quality(search, items)
    times = []
    for item in items:
        started = time.perf_counter()
        retriever.retrieve(item.question)
        times.append(time.perf_counter() - started)
    return {"system": "LlamaIndex recipe (VectorStoreIndex + Chroma + HuggingFaceEmbedding, fp32 torch)",
            "chunks": len(index.docstore.docs) or store._collection.count(), "ingest_s": total.seconds,
            "p50_s": pct(times, 50), "p95_s": pct(times, 95), "quality": quality}


def run_rag() -> dict:
    import rag  # noqa: F401
    from rag.assistant import Assistant
    from rag.config import load_settings
    from rag.eval import load_eval_file

    tmp = tempfile.mkdtemp(prefix="bench-rag-")
    settings = load_settings(index={"dir": tmp})
    with Timer() as total:
        assistant = Assistant(settings, build_if_missing=False)
        report = assistant.ingest()
    retriever = assistant.retriever
    items = load_eval_file(QA)
    quality = retrieval_quality(lambda q, k: [h.paper.title for h in retriever.search(q, k)], items)
    times = []
    for item in items:
        started = time.perf_counter()
        retriever.search(item.question, 10)
        times.append(time.perf_counter() - started)
    return {"system": f"rag (hybrid dense+BM25+titles, {settings.embedding.backend})", "chunks": report.chunks_total,
            "ingest_s": total.seconds, "p50_s": pct(times, 50), "p95_s": pct(times, 95), "quality": quality}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--llamaindex", "--rag"):
        print(json.dumps(run_llamaindex() if sys.argv[1] == "--llamaindex" else run_rag()))
        return
    results = []
    for side in ("--llamaindex", "--rag"):
        done = subprocess.run([sys.executable, __file__, side], check=True, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    li, ours = results
    print("| system | chunks | ingest (incl. model load) | retrieval p50 / p95 (k=10) | recall@1 | recall@5 | recall@10 | MRR |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        q = r["quality"]
        print(f"| {r['system']} | {r['chunks']} | {r['ingest_s']:.1f} s | {ms(r['p50_s'])} / {ms(r['p95_s'])} | "
              f"{q['recall@1']:.3f} | {q['recall@5']:.3f} | {q['recall@10']:.3f} | {q['mrr']:.3f} |")
    print(f"\nrag vs LlamaIndex recipe (same run): ingest {li['ingest_s'] / ours['ingest_s']:.2f}× faster, "
          f"retrieval p50 {ours['p50_s'] / li['p50_s']:.2f}× the recipe's, recall@1 "
          f"{ours['quality']['recall@1'] - li['quality']['recall@1']:+.3f}, MRR {ours['quality']['mrr'] - li['quality']['mrr']:+.3f} "
          f"(n={ours['quality']['n']} answerable single-turn questions)")
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "llamaindex_recipe.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
