"""Evidence: how well a stored sentence bears on a probe (a question, or a generated claim to verify).

`relevance` is the one scoring function: meaning (MiniLM cosine between the probe's vector and the sentence's
stored vector) mixed with the IDF-weighted share of the probe's terms the sentence (with its paper's title)
contains. Evidence selection ranks sentences with it; verification accepts a citation with it. Per question only
the question is embedded; sentence vectors and terms were stored at ingest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .text import terms
from .types import AnswerType, Evidence, Hit, Query, Sentence

W_SIMILARITY = 0.5  # the rest is lexical coverage


@dataclass(frozen=True)
class Probe:
    """What sentences are scored against: a vector and IDF-weighted terms."""

    vector: np.ndarray
    terms: tuple[str, ...]
    weights: dict[str, float]

    def coverage(self, text_terms: frozenset[str] | set[str]) -> float:
        """IDF-weighted share of the probe's terms found in `text_terms`."""
        total = sum(self.weights.get(t, 0.0) for t in self.terms)
        if total <= 0:
            return 0.0
        return sum(self.weights.get(t, 0.0) for t in self.terms if t in text_terms) / total


def make_probe(store, vector: np.ndarray, text: str, *, question: bool) -> Probe:
    probe_terms = tuple(dict.fromkeys(terms(text, question=question)))
    return Probe(vector=vector, terms=probe_terms, weights=store.idf(probe_terms))


def relevance(similarity: float | np.ndarray, coverage: float | np.ndarray):
    """The one scoring function (see the module docstring)."""
    return W_SIMILARITY * similarity + (1 - W_SIMILARITY) * coverage


@dataclass(frozen=True)
class PaperSentences:
    """A paper's stored evidence sentences and their vectors, loaded once per question."""

    title_terms: frozenset[str]
    sentences: list[Sentence]
    vectors: np.ndarray

    @property
    def all_terms(self) -> frozenset[str]:
        return self.title_terms.union(*(s.terms for s in self.sentences))

    def scores(self, probe: Probe, *, paper_coverage: bool = False) -> np.ndarray:
        """relevance() of every sentence to the probe; the lexical part counts the title's terms as the
        sentence's own, and with `paper_coverage` averages in how much of the probe the whole paper covers."""
        sims = self.vectors @ probe.vector if len(self.sentences) else np.zeros(0)
        lexical = np.array([probe.coverage(s.terms | self.title_terms) for s in self.sentences])
        if paper_coverage:
            lexical = (lexical + probe.coverage(self.all_terms)) / 2
        return relevance(sims, lexical)


def load_sentences(store, papers) -> dict[str, PaperSentences]:
    """Stored sentences of these papers (`Paper` objects), by paper id."""
    papers = list(papers)
    stored = store.sentences([p.id for p in papers])
    out = {}
    for paper in papers:
        sentences, vectors = stored.get(paper.id, ([], np.zeros((0, 1), dtype=np.float32)))
        out[paper.id] = PaperSentences(frozenset(terms(paper.title)), sentences, vectors)
    return out


@dataclass(frozen=True)
class PaperEvidence:
    """A retrieved paper's best sentences, best first, and how well the paper supports the question."""

    hit: Hit
    sentences: tuple[Evidence, ...]
    support: float


# Bonuses on top of relevance when ranking sentences for an answer (chosen on evals/qa.jsonl in session 1).
TITLE_MATCH_BONUS = 0.2
ANSWER_TYPE_BONUS = 0.12


def fits_answer_type(kind: AnswerType, sentence: str, question: str) -> bool:
    import re

    if kind is AnswerType.NUMBER:
        return bool(re.search(r"\d", sentence))
    if kind is AnswerType.NAME:
        asked = set(terms(question))
        names = re.findall(r"\b([A-Z][A-Za-z0-9@+\-]*[A-Z0-9@+][A-Za-z0-9@+\-]*|[A-Z][a-z]+(?:-[A-Z][a-z]+)+)\b", sentence)
        return any(not set(terms(n)) <= asked for n in names)
    return False


class EvidenceSelector:
    """Ranks the stored sentences of retrieved papers for a query."""

    def __init__(self, store):
        self.store = store

    def select(self, query: Query, vector: np.ndarray, hits: list[Hit], per_paper: int) -> list[PaperEvidence]:
        """Papers ordered by support, each with its best `per_paper` sentences."""
        if not hits:
            return []
        probe = make_probe(self.store, vector, query.asked, question=True)
        loaded = load_sentences(self.store, [h.paper for h in hits])
        out = []
        for hit in hits:
            paper = loaded[hit.paper_id]
            scores = paper.scores(probe, paper_coverage=True)
            scored = []
            for sentence, score in zip(paper.sentences, scores):
                score = float(score) + (TITLE_MATCH_BONUS if hit.title_match else 0.0)
                if fits_answer_type(query.answer_type, sentence.text, query.asked):
                    score += ANSWER_TYPE_BONUS
                scored.append(Evidence(sentence=sentence, score=score))
            scored.sort(key=lambda e: -e.score)
            best = tuple(scored[:per_paper])
            out.append(PaperEvidence(hit=hit, sentences=best, support=best[0].score if best else 0.0))
        out.sort(key=lambda pe: (-pe.support, pe.hit.rank))
        return out
