"""The bundled local LLMs against the extractive default, on the held-out test split: citation precision and
recall, fact hit, abstention, false abstention and p50 latency per configuration (text answers with [n] markers,
and `llm.structured` JSON answers), all through the normal chain and its verifier.

The LLM configurations are slow here (~100 prompt tokens/s on 2 cores), so by default they run on a stratified
subset of the test split (the first N items of every kind); `--per-kind 0` runs the whole split.

    .venv/bin/python bench/llm_models.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--per-kind 4]
    .venv/bin/python bench/llm_models.py --models qwen2.5-coder-1.5b --per-kind 0 --modes text \
        --out bench/results/llm_1.5b_test_split.json     # the whole test split, default (text) answers only
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import QA, ROOT  # noqa: E402

METRICS = ("citation_precision", "citation_recall", "fact_hit", "abstention_rate", "false_abstention_rate",
           "latency_p50_s")


def subset(items, per_kind: int):
    if per_kind <= 0:
        return items
    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for item in items:
        if taken[item.kind] < per_kind:
            taken[item.kind] += 1
            chosen.append(item)
    return chosen


def run(settings, items, rows_out: Path | None = None) -> dict:
    """One configuration's overall and per-kind metrics; every answer to `rows_out` when given (to see, after an
    hour-long run, which answers moved)."""
    from rag.assistant import Assistant
    from rag.eval import run_eval

    with Assistant(settings, build_if_missing=False) as assistant:
        if rows_out is None:
            report = run_eval(assistant, items)
        else:
            with rows_out.open("w") as sink:  # one JSON line per answer as it comes: a stopped run keeps its rows
                report = run_eval(assistant, items,
                                  progress=lambda row: (sink.write(json.dumps(row) + "\n"), sink.flush()))
    by_kind = {kind: {m: row.get(m) for m in METRICS} for kind, row in report["by_kind"].items()}
    return {m: report["overall"].get(m) for m in METRICS} | {"n": report["overall"]["n"],
                                                              "backend": report["backend"],
                                                              "verification": report["verification"],
                                                              "by_kind": by_kind}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--per-kind", type=int, default=4)
    parser.add_argument("--index-dir", type=Path, default=ROOT / "index_store")
    parser.add_argument("--context", type=int, default=4096, help="llama.cpp context size for the local server")
    parser.add_argument("--modes", default="text,structured", help="answer formats to run: text, structured or both")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llm_models.json")
    parser.add_argument("--split", choices=("dev", "test"), default="test",
                        help="eval split; dev is where a cause is looked for, test where the result is reported")
    parser.add_argument("--rows", type=Path, default=None,
                        help="directory for every answer of every configuration (<label>.jsonl, written as each answer comes), "
                             "for per-item diffs")
    args = parser.parse_args()

    import rag  # noqa: F401
    from rag.config import load_settings
    from rag.eval import load_eval_file
    from rag.local_llm import LocalServer

    items = subset([i for i in load_eval_file(QA) if i.split == args.split], args.per_kind)
    base = {"index": {"dir": str(args.index_dir)}}

    def rows_file(label: str) -> Path | None:
        if args.rows is None:
            return None
        args.rows.mkdir(parents=True, exist_ok=True)
        return args.rows / f"{label.replace(' ', '-')}.jsonl"

    rows = {"extractive": run(load_settings(**base), items, rows_file("extractive"))}
    print("extractive", rows["extractive"], flush=True)
    for name in args.models:
        server = LocalServer(name, context_tokens=args.context)
        for structured in [mode == "structured" for mode in args.modes.split(",")]:
            label = f"{name}{' structured' if structured else ''}"
            settings = load_settings(**base, llm={"base_url": server.base_url, "model": name,
                                                  "structured": structured, "context_tokens": args.context})
            rows[label] = run(settings, items, rows_file(label))
            print(label, rows[label], flush=True)
    out = args.out
    out.write_text(json.dumps({"split": args.split, "per_kind": args.per_kind, "items": len(items), "rows": rows},
                              indent=2) + "\n")
    print("\n| configuration | n | cite P | cite R | fact hit | abstention | false abst. | p50 s |\n|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        cells = [f"{r[m]:.3f}" if isinstance(r[m], float) else "—" for m in METRICS]
        print(f"| {label} | {r['n']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
