"""Dev answered as unseen questions are read: each dev question's intent comes from a model that never saw it.

The shipped intent model is trained on dev (beside 1,436 written intent questions and the written answerable and
comparison sets), so on dev it reads nearly every intent right, while on questions it never saw it reads fewer: a
comparison taken for a one-paper fact is answered from one paper. Dev figures measured with it overstate how the chain holds on new
questions, most for comparisons. Here every dev question is read by the intent model trained without its fold
(the 5 folds evals/train.py prints its out-of-fold intent accuracy over), and dev is answered with those readings;
the answer-type and follow-up readings and everything after the reading are the shipped chain.

    .venv/bin/python evals/unseen_intents.py [--json evals/reports/extractive-dev-unseen-intents.json]
                                             [--markdown evals/reports/extractive-dev-unseen-intents.md]

Reads no test item: dev and the written training questions only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "evals"))

import rag  # noqa: E402,F401
from train import WRITTEN, intent_out_of_fold, question_rows  # noqa: E402


def main() -> None:
    from rag.assistant import Assistant
    from rag.config import load_settings
    from rag.eval import load_eval_file, markdown_report, run_eval
    from rag.query import QuestionReader
    from rag.types import Intent

    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", default=str(ROOT / "evals" / "qa.jsonl"))
    parser.add_argument("--intents", default=str(ROOT / "evals" / "intent_train.jsonl"))
    parser.add_argument("--written", nargs="*", default=[str(p) for p in WRITTEN])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    dev = [i for i in load_eval_file(Path(args.eval)) if i.split == "dev"]
    written = [i for f in args.written for i in load_eval_file(Path(f)) if i.split != "test"]
    with Assistant(load_settings(), build_if_missing=False) as assistant:
        rows, n_written = question_rows(dev, Path(args.intents), written)
        vectors = assistant.embedder.encode([r["question"] for r in rows])
        readings = intent_out_of_fold(rows, vectors, n_written, [item.kind for item in dev])
        unseen = {item.question: Intent(reading) for item, reading in zip(dev, readings)}
        shipped = QuestionReader.classify

        def classify(reader, text, vector):
            intent, answer_type, follow_up = shipped(reader, text, vector)
            return unseen.get(text, intent), answer_type, follow_up

        QuestionReader.classify = classify  # this process only answers dev
        report = run_eval(assistant, dev)
    report["intents"] = "dev questions read by intent models trained without their fold (evals/unseen_intents.py)"
    table = markdown_report(report, title="qa.jsonl (dev, intents read out of fold) \u2014 " + report["backend"])
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    if args.markdown:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
