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

import numpy as np

from .._faults import checkpoint
from ..text import CONNECTORS, terms
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
    """Searches the score matrix bm25s wrote (each term's precomputed per-paper BM25 scores, stored as CSC arrays).

    bm25s builds the index; a query only sums its terms' columns and takes the top k, which numpy does directly,
    so answering never imports bm25s and scipy (~0.35 s of a cold start). tests/test_retrieval.py checks that
    the results equal bm25s's own retrieval (a query's "vs" and "versus" are not counted: CONNECTORS).
    """

    def __init__(self, directory: Path):
        self.ids: list[str] = json.loads((directory / "paper_ids.json").read_text())
        self.vocab: dict[str, int] = {}
        if self.ids:
            params = json.loads((directory / "params.index.json").read_text())
            if params.get("method") != "lucene":
                raise ValueError(f"{directory}: BM25 method {params.get('method')!r}, expected 'lucene'")
            self.vocab = json.loads((directory / "vocab.index.json").read_text())
            # Memory-mapped: a query reads only its terms' columns, so a large index costs RAM for what is read.
            self.data = np.load(directory / "data.csc.index.npy", mmap_mode="r")
            self.indices = np.load(directory / "indices.csc.index.npy", mmap_mode="r")
            self.indptr = np.load(directory / "indptr.csc.index.npy", mmap_mode="r")

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.data, self.indices, self.indptr)) if self.ids else 0

    def scores(self, tokens: list[str]):
        """Every paper's BM25 score for these (already tokenized) query terms; a repeated term counts again."""
        total = np.zeros(len(self.ids), dtype=np.float32)
        for t in tokens:
            column = self.vocab.get(t)
            if column is not None:
                start, end = self.indptr[column], self.indptr[column + 1]
                total[self.indices[start:end]] += self.data[start:end]  # a paper appears once per column
        return total

    def search(self, query: str, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        """(paper id, BM25 score) of the best k papers with a positive score, among `allowed` ids if given."""
        tokens = [t for t in terms(query) if t in self.vocab and t not in CONNECTORS]
        if not tokens:
            return []
        scores = self.scores(tokens)
        if allowed is not None:
            scores *= np.array([pid in allowed for pid in self.ids], dtype=np.float32)
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by position: the same order every run
        return [(self.ids[int(d)], float(scores[d])) for d in top if scores[d] > 0]
