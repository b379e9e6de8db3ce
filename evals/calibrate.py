"""Tune the abstention threshold and the list cut-off on an eval set, instead of guessing them.

    .venv/bin/python evals/calibrate.py evals/qa.jsonl

For every item it records the best evidence support (and whether another abstention rule fires), then sweeps
`answer.abstain_below` and `answer.list_max_gap` and prints what each value would score. It also reports the
threshold chosen by leave-one-out, so the number quoted is not just the best fit to the same questions.
"""
from __future__ import annotations

import sys
from pathlib import Path

from rag import Assistant, load_settings
from rag.answer import is_list_question
from rag.corpus import title_key
from rag.eval import load_eval_file


def collect(assistant, items):
    chain = assistant.chain
    rows = []
    for item in items:
        conversation = assistant.chat(history=list(item.history))
        standalone, query, focus, _ = conversation._resolve(item.question, chain)
        _, evidence = chain.gather(item.question, retrieval_query=query, standalone=standalone, focus=focus)
        support = evidence[0].support if evidence else 0.0
        rule = chain.abstain_reason(item.question, evidence) if support >= chain.settings.answer.abstain_below else None
        expected = {title_key(t) for t in item.expected_papers}
        ranked = [(pe.support, title_key(pe.hit.paper.title) in expected) for pe in evidence]
        rows.append({"item": item, "support": support, "other_rule": rule is not None and "supports" not in rule,
                     "list": is_list_question(standalone or item.question), "ranked": ranked, "n_expected": len(expected)})
    return rows


def abstention_scores(rows, threshold):
    ans = [r for r in rows if r["item"].answerable]
    una = [r for r in rows if not r["item"].answerable]
    abstains = lambda r: r["support"] < threshold or r["other_rule"]  # noqa: E731
    return sum(map(abstains, una)) / len(una), sum(map(abstains, ans)) / len(ans)


def list_f1(rows, gap, floor):
    scores = []
    for r in rows:
        if not (r["list"] and r["item"].answerable):
            continue
        best = r["ranked"][0][0]
        chosen = [hit for support, hit in r["ranked"] if support >= max(floor, best - gap)]
        tp = sum(chosen)
        p = tp / len(chosen) if chosen else 0.0
        rec = tp / r["n_expected"]
        scores.append(0.0 if tp == 0 else 2 * p * rec / (p + rec))
    return sum(scores) / len(scores)


def best_threshold(rows, grid):
    return max(grid, key=lambda t: (lambda a, f: a - 2 * f)(*abstention_scores(rows, t)))


def main(path: str) -> None:
    items = load_eval_file(Path(path))
    settings = load_settings(answer={"abstain_below": -1.0})
    with Assistant(settings) as assistant:
        rows = collect(assistant, items)
    grid = [round(0.30 + 0.01 * i, 2) for i in range(36)]
    print("abstain_below  abstention_rate  false_abstention_rate")
    for t in grid[::2]:
        a, f = abstention_scores(rows, t)
        print(f"{t:13.2f}  {a:15.3f}  {f:21.3f}")
    chosen = best_threshold(rows, grid)
    print(f"chosen (max abstention - 2 x false abstention): {chosen}")
    held_out = []
    for i, row in enumerate(rows):
        t = best_threshold(rows[:i] + rows[i + 1:], grid)
        abstains = row["support"] < t or row["other_rule"]
        held_out.append(abstains == (not row["item"].answerable))
    print(f"leave-one-out accuracy of the abstain decision: {sum(held_out) / len(held_out):.3f}")
    print("\nlist_max_gap  mean F1 of list answers (floor = chosen threshold)")
    for gap in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
        print(f"{gap:12.2f}  {list_f1(rows, gap, chosen):.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "evals/qa.jsonl")
