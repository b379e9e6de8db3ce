"""Ask "What does X stand for?" of every abbreviation exactly one indexed paper defines (as the abstract writes
it), and report how often the answer cites that paper first and spells the long form out — apart for the names
that are also English words (FIND, LOOK, STUNT: the embedding model's vocabulary holds them whole), which a
search by the name alone finds everywhere. Generated from the index, not from any eval set.

    .venv/bin/python evals/acronym_probe.py [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from rag.assistant import Assistant
    from rag.config import load_settings
    from rag.embeddings import ordinary_words
    from rag.text import fold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every probe's outcome here")
    args = parser.parse_args()
    with Assistant(load_settings(), build_if_missing=False) as assistant:
        names = assistant.index.store.names
        words = ordinary_words(assistant.settings.embedding.model)
        defined = defaultdict(set)
        for short, long, pid in names.db.execute("SELECT short, long, paper_id FROM aliases"):
            defined[short].add((long, pid))
        papers = {p.id: p for p in assistant.index.store.iter_papers()}
        rows = []
        for short, forms in sorted(defined.items()):
            if len({pid for _, pid in forms}) != 1 or len(short) < 3 or " " in short:
                continue
            (long, pid), *_ = sorted(forms)
            text = f"{papers[pid].title} {papers[pid].abstract}"
            written = next((m.group(0) for m in re.finditer(rf"(?<![\w-]){re.escape(short)}(?![\w-])", text, re.I)
                            if sum(c.isupper() for c in m.group(0)) >= 2), None)
            if written is None:
                continue
            answer = assistant.ask(f"What does {written} stand for?")
            first = answer.citations[0].paper_id if answer.citations else None
            right = not answer.abstained and first == pid and all(
                w in fold(answer.text) for w in long.split() if len(w) > 3)
            rows.append({"name": written, "word": short in words, "right": right, "abstained": answer.abstained,
                         "paper_first": first == pid})
    for word in (True, False):
        chosen = [r for r in rows if r["word"] is word]
        share = lambda key: sum(r[key] for r in chosen) / max(len(chosen), 1)  # noqa: E731
        print(f"{'names that are words' if word else 'other names'}: {len(chosen)}, answered right {share('right'):.3f}, "
              f"abstained {share('abstained'):.3f}, defining paper first {share('paper_first'):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
