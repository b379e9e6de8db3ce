"""A synthetic corpus of abstract-like records for scale runs: each record recombines real sentences of the
bundled abstracts (an opening sentence, then two to four sentences from other papers; about 60% of a real abstract's
length, so that 100k records embed in well under an hour on 2 cores) under a unique title made
from real title words. Deterministic for a given size and seed.

    .venv/bin/python bench/synth_corpus.py 100000 /tmp/synth-100k.jsonl
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path


def generate(n: int, seed: int = 0):
    import rag  # noqa: F401
    from rag.config import load_settings
    from rag.corpus import read_corpus
    from rag.text import split_sentences

    papers = read_corpus(list(load_settings().corpus.default_paths)).papers
    openings, bodies = [], []
    for paper in papers:
        spans = [paper.abstract[s:e] for s, e in split_sentences(paper.abstract)]
        spans = [t for t in spans if 40 <= len(t) <= 400]
        if spans:
            openings.append(spans[0])
            bodies.extend(spans[1:])
    heads = [p.title.split(":")[0] for p in papers]
    words = [w for p in papers for w in p.title.replace(":", " ").split() if len(w) > 3]
    rng = random.Random(seed)
    for i in range(n):
        sentences = [rng.choice(openings)] + rng.sample(bodies, rng.randint(2, 4))
        title = f"{rng.choice(heads)}: {' '.join(rng.sample(words, 4))} (synthetic {i:06d})"
        yield {"id": f"synth-{i:06d}", "title": title, "abstract": " ".join(sentences)}


def write(n: int, path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for record in generate(n, seed):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


if __name__ == "__main__":
    write(int(sys.argv[1]), Path(sys.argv[2]))
