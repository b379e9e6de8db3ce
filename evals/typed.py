"""Questions as users type them: each eval question also asked in lower case, with the hyphen of letter-digit
names dropped ("GPT-4" → "GPT4", "CIFAR-10" → "CIFAR10"), and inside a chat wrapper ("Hi! … Thanks so much.", "I'm
preparing a reading group talk. …": 120 written by a helper for this, evals/chat_wrappers.json, one picked per item
by its id), answered beside the question as written.

Eval questions are written carefully; users in a terminal type without capitals and run names together. Names are
what the chain reads case by case (anchors, short names, the name check), so this measures what a user's typing
costs. Only the items a variant changes are answered for it.

    .venv/bin/python evals/typed.py evals/qa.jsonl evals/answerable_train.jsonl --split dev \
        [--json evals/reports/extractive-typed.json] [--markdown evals/reports/extractive-typed.md]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import zlib
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rag  # noqa: E402,F401

_LETTER_DIGIT_HYPHEN = re.compile(r"\b([A-Za-z]{2,})-(\d+[A-Za-z]?)\b")
WRAPPERS = json.loads((ROOT / "evals" / "chat_wrappers.json").read_text())["wrappers"]


def _wrapped(text: str, turn: bool) -> str:
    """The question inside the wrapper its text picks (earlier turns are left as they were)."""
    return text if turn else WRAPPERS[zlib.crc32(text.encode()) % len(WRAPPERS)].replace("{q}", text)


VARIANTS = {  # how each variant types the question and, with turn=True, an earlier turn
    "lower case": lambda text, turn: text.lower(),
    "digits run on": lambda text, turn: _LETTER_DIGIT_HYPHEN.sub(r"\1\2", text),
    "in a chat wrapper": _wrapped,
}
METRICS = ("citation_precision", "fact_hit", "abstention_rate", "false_abstention_rate")


def typed(item, how):
    """The item asked as `how` types it (its earlier turns too), or None when that changes nothing."""
    history = tuple({**turn, "content": how(turn["content"], True)} for turn in item.history)
    question = how(item.question, False)
    if question == item.question and history == tuple(item.history):
        return None
    return replace(item, question=question, history=history)


def main() -> None:
    from rag.assistant import Assistant
    from rag.config import load_settings
    from rag.eval import load_eval_file, run_eval

    parser = argparse.ArgumentParser()
    parser.add_argument("eval", nargs="+")
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    report, lines = {}, ["| set | variant | n | " + " | ".join(f"{m} (as written → typed)" for m in METRICS) + " |",
                         "|---|---|---|" + "---|" * len(METRICS)]
    with Assistant(load_settings(), build_if_missing=False) as assistant:
        for path in args.eval:
            items = [i for i in load_eval_file(Path(path)) if args.split == "all" or (i.split or "dev") == args.split]
            for name, how in VARIANTS.items():
                pairs = [(i, t) for i in items if (t := typed(i, how)) is not None]
                if not pairs:
                    continue
                written = run_eval(assistant, [i for i, _ in pairs])["overall"]
                asked = run_eval(assistant, [t for _, t in pairs])["overall"]
                report.setdefault(Path(path).name, {})[name] = {"n": len(pairs), "as written": written, "typed": asked}
                cells = [f"{_fmt(written.get(m))} → {_fmt(asked.get(m))}" for m in METRICS]
                lines.append(f"| {Path(path).name} | {name} | {len(pairs)} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(f"Questions as typed (`evals/typed.py`, split {args.split})\n\n{table}\n")


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
