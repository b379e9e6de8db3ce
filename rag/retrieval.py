"""Hybrid retrieval per paper: dense chunks (Chroma) + BM25 (bm25s) + exact title/name matches, fused by RRF.

Dense search misses acronyms ("What is DEUP?") that BM25 and a title match find; BM25 misses paraphrases
that dense search finds. Reciprocal rank fusion combines the rankings without comparing their score scales.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import RetrievalSettings
from .embeddings import ordinary_words
from .errors import NoMatchingPapersError
from .text import genre_synonyms, short_names
from .types import Filters, Hit


@dataclass
class _Candidate:
    dense_rank: int | None = None
    dense_score: float | None = None
    bm25_rank: int | None = None
    bm25_score: float | None = None
    title_match: bool = False
    chunk_id: str = ""


def fuse(
    dense: list[tuple[str, float, str]],
    bm25: list[tuple[str, float]],
    titles: list[str],
    settings: RetrievalSettings,
) -> list[tuple[str, float, _Candidate]]:
    """Weighted RRF over per-paper rankings. `dense` holds (paper_id, score, best chunk id), best first."""
    cands: dict[str, _Candidate] = {}
    for rank, (pid, score, chunk_id) in enumerate(dense, 1):
        c = cands.setdefault(pid, _Candidate())
        c.dense_rank, c.dense_score, c.chunk_id = rank, score, chunk_id
    for rank, (pid, score) in enumerate(bm25, 1):
        c = cands.setdefault(pid, _Candidate())
        c.bm25_rank, c.bm25_score = rank, score
    for pid in titles:
        cands.setdefault(pid, _Candidate()).title_match = True
    k = settings.rrf_k
    scored = []
    for pid, c in cands.items():
        score = 0.0
        if c.dense_rank is not None:
            score += settings.dense_weight / (k + c.dense_rank)
        if c.bm25_rank is not None:
            score += settings.bm25_weight / (k + c.bm25_rank)
        if c.title_match:
            score += settings.title_weight / (k + 1)
        scored.append((pid, score, c))
    scored.sort(key=lambda item: (-item[1], item[0]))
    return scored


class Retriever:
    """Search over an open index. Thread-safe for reads: it holds no per-query state."""

    def __init__(self, index, embedder, settings: RetrievalSettings):
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self._digest_checked = False

    def _allowed(self, filters: Filters) -> set[str] | None:
        if not filters:
            return None
        allowed = self.index.store.matching(filters)
        if not allowed:
            raise NoMatchingPapersError(f"no paper in the index passes the filters ({filters.describe()}); "
                                        "nothing was searched")
        return allowed

    @property
    def names(self):
        return self.index.store.names

    def embed(self, text: str) -> np.ndarray:
        """The question's vector (the one embedding a question costs), checked once against the index's weights."""
        vector = self.embedder.encode_one(text)
        if not self._digest_checked:
            self.index.manifest.check_digest(self.embedder.model_digest())
            self._digest_checked = True
        return vector

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[str, float, str]]:
        """Best chunk per paper: (paper_id, cosine, chunk id), best first."""
        best: dict[str, tuple[str, float, str]] = {}
        for chunk_id, score in self.index.dense(vector, n):
            pid = chunk_id.rsplit("#", 1)[0]
            if pid not in best or score > best[pid][1]:
                best[pid] = (pid, score, chunk_id)
        return sorted(best.values(), key=lambda item: -item[1])

    def _spelled_out(self, text: str) -> str:
        """The long forms the corpus defines for names in the text that are also English words (FIND, LOOK,
        STUNT), to search with it: as a search term such a name is the word, which hundreds of abstracts use
        ("find"), so its paper ranked low even for "What does FIND stand for?". Two-letter names (ML, AI) and
        names that are no word keep the search as it was: their long forms are everywhere or not needed."""
        words = ordinary_words(self.embedder.settings.model)
        shorts = sorted(s for s in short_names(text) if len(s) >= 3 and s in words)
        return "".join(f" {longs[0]}" for longs in self.names.expansions(shorts).values()) if shorts else ""

    def search(self, text: str, k: int | None = None, focus: tuple[str, ...] = (),
               vector: np.ndarray | None = None, filters: Filters = Filters()) -> list[Hit]:
        """Top-k papers. `focus` ids (papers the conversation is about) count as named by the question;
        `vector` is the text's embedding when the caller already has it; `filters` restrict by metadata, and a
        filter no paper passes is an error, never a silent search of everything."""
        k = k or self.settings.top_k
        allowed = self._allowed(filters)
        vector = self.embed(text) if vector is None else vector
        n_dense = max(self.settings.dense_candidates, k * 3)
        if allowed is not None:  # the nearest chunks may all be filtered out: look further
            n_dense = min(max(n_dense, n_dense * self.index.chunk_count // max(len(allowed), 1)), 2000)
        dense = [d for d in self.dense(vector, n_dense) if allowed is None or d[0] in allowed]
        lexical = self.index.bm25.search(text + genre_synonyms(text) + self._spelled_out(text),
                                         max(self.settings.bm25_candidates, k), allowed)
        titles = [pid for pid in self.names.match(text) + list(focus) if allowed is None or pid in allowed]
        top = fuse(dense, lexical, titles, self.settings)[:k]
        papers = self.index.store.get(pid for pid, _, _ in top)
        spans = self.index.store.chunk_spans([c.chunk_id for _, _, c in top if c.chunk_id])
        hits = []
        for pid, score, c in top:
            paper = papers.get(pid)
            if paper is None:  # a focus id from another index
                continue
            start, end = spans.get(c.chunk_id, (0, min(len(paper.abstract), 400)))
            hits.append(Hit(paper=paper, score=score, rank=len(hits) + 1, dense_score=c.dense_score,
                            bm25_score=c.bm25_score, bm25_rank=c.bm25_rank, title_match=c.title_match,
                            snippet=paper.abstract[start:end]))
        return hits
