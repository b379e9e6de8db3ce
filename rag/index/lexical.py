"""bm25/: the BM25 index over the papers (title counted twice), a derived file of the index.

Built from the paper table after each ingest that changed anything, into a temporary directory that replaces the
old one; a kill part-way leaves the manifest "ingesting", so the next ingest rebuilds it.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterable

from .._faults import checkpoint
from ..text import terms
from ..types import Paper

BM25_DIR = "bm25"


def bm25_terms(paper: Paper) -> list[str]:
    """The title counts twice: a word in the title says more about the paper than one in the abstract."""
    title = terms(paper.title)
    return title + title + terms(paper.abstract)


def build_bm25(directory: Path, papers: Iterable[Paper]) -> None:
    import bm25s

    ids: list[str] = []
    corpus: list[list[str]] = []
    for paper in papers:
        ids.append(paper.id)
        corpus.append(bm25_terms(paper) or [paper.id])
    tmp = directory.with_name(f".{BM25_DIR}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if corpus:
        retriever = bm25s.BM25()
        retriever.index(corpus, show_progress=False)
        retriever.save(str(tmp), show_progress=False)
    (tmp / "paper_ids.json").write_text(json.dumps(ids))
    checkpoint("bm25-written")
    if directory.exists():
        old = directory.with_name(f".{BM25_DIR}.old.{os.getpid()}")
        os.replace(directory, old)
        checkpoint("bm25-swap")
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, directory)


class BM25Index:
    def __init__(self, directory: Path):
        import bm25s

        self.ids: list[str] = json.loads((directory / "paper_ids.json").read_text())
        self.retriever = bm25s.BM25.load(str(directory), mmap=False, show_progress=False) if self.ids else None

    def search(self, query: str, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """(paper id, BM25 score) of the best k papers with a positive score, among `allowed` ids if given."""
        if self.retriever is None:
            return []
        vocab = self.retriever.vocab_dict
        tokens = [t for t in terms(query) if t in vocab]
        if not tokens:
            return []
        mask = None
        if allowed is not None:
            import numpy as np

            mask = np.array([pid in allowed for pid in self.ids], dtype=np.float32)
        docs, scores = self.retriever.retrieve([tokens], k=min(k, len(self.ids)), show_progress=False, n_threads=1,
                                               weight_mask=mask)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
