"""Does the corpus answer the question, and from which papers? Three learned decisions:

- `answers`: P(this retrieved paper states the answer) for fact, definition, follow-up and compare questions;
  the chain abstains when no paper reaches the threshold chosen on the dev split.
- `on_topic`: P(this paper belongs in a complete list) for "which papers…" questions, over a candidate pool
  well beyond top-k;
- `topic`: P(the corpus holds any paper on a list question's topic), one per question, from a signal that does
  not depend on how many papers were pooled (a user's 16-paper corpus or a 2-paper filtered pool reads like the
  bundled one).

All are linear models (rag.learned) trained by evals/train.py on dev-side data only (dev; `topic` also on the
written lists of evals/lists_train.jsonl).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .evidence import PaperEvidence
from .learned import load_model
from .text import numbers_in, states_quantity, terms
from .types import AnswerType, Intent, Query

if TYPE_CHECKING:
    from .config import AnswerSettings

PAPER_FEATURES = (
    "support", "support_margin", "best_similarity", "coverage", "title_coverage", "rank_inverse", "dense_score",
    "bm25_rank_inverse", "title_match", "anchors_missing", "anchors_missing_share", "question_anchors",
    "unseen_anchor", "unknown_title", "number_missing", "focus", "aspect_coverage", "aspect_number",
    "named_paper_mismatch", "asked_found", "unseen_share", "dense_z", "top3_similarity_z", "coverage_z",
)
LIST_FEATURES = (
    "support", "best_similarity", "coverage", "title_coverage", "all_terms", "rank_inverse", "dense_score",
    "bm25_rank_inverse", "similarity_gap", "coverage_gap", "title_match", "rare_terms", "top3_similarity",
    "covering_share", "similarity_z", "coverage_z", "alternative_coverage",
)

# Per question, not per paper: the IDF-weighted share of the question the best pooled paper holds. Pool-relative
# signals (the on_topic model's z-scores, its best probability) rate a small or filtered pool's papers lower, so they
# cannot decide whether a topic is there. The share of the question's terms no abstract uses separated the written
# empty topics better (10 of 17 out of fold against 7) but declined covered topics asked with one word the corpus
# does not use ("machine unlearning for chatbots", "reward hacking in RLHF pipelines nowadays").
TOPIC_FEATURES = ("best_coverage",)


@dataclass(frozen=True)
class QuestionSignals:
    """What is true of the question whatever paper answers it."""

    anchors: int           # names the question hangs on
    unseen_anchor: bool    # one of them is used by no indexed paper
    unknown_title: bool    # the question names a paper title the index does not hold
    named_paper: frozenset[str] = frozenset()  # terms of "the X paper" when the question says so
    rare_terms: frozenset[str] = frozenset()   # the question's two rarest content terms
    unseen_share: float = 0.0  # share of its content terms no indexed abstract uses (off-corpus topics)
    # the alternatives a question lists ("noisy or wrong labels", "A, B and C"): IDF-weighted terms of each part
    alternatives: tuple[dict[str, float], ...] = ()


_NAMED_PAPER = re.compile(r"\b(?:the|in|from)\s+((?:[\w\-']+\s+){0,4}?[\w\-']+)\s+(?:paper|report|article)\b",
                          re.IGNORECASE)
_NOT_A_NAME = {"original", "famous", "first", "same", "seminal", "well-known", "classic", "above", "this", "that",
               "their", "its", "his", "her"}


def named_paper_terms(question: str) -> frozenset[str]:
    """Terms of the paper a question names as such ("the deep residual learning paper", "in the MAE paper")."""
    found: set[str] = set()
    for match in _NAMED_PAPER.finditer(question):
        found |= set(terms(" ".join(w for w in match.group(1).split() if w.casefold() not in _NOT_A_NAME)))
    return frozenset(found)


def paper_rows(query: Query, evidence: list[PaperEvidence], signals: QuestionSignals) -> np.ndarray:
    supports = [pe.support for pe in evidence]
    dense_z = _z([pe.hit.dense_score or 0.0 for pe in evidence])
    sim_z = _z([pe.top3_similarity for pe in evidence])
    cov_z = _z([pe.coverage for pe in evidence])
    rows = []
    for i, pe in enumerate(evidence):
        others = [s for j, s in enumerate(supports) if j != i]
        top3 = pe.sentences[:3]
        number_missing = query.answer_type is AnswerType.NUMBER and not any(numbers_in(e.text) for e in top3)
        mismatch = bool(signals.named_paper) and not pe.hit.title_match and \
            not signals.named_paper <= set(terms(pe.hit.paper.title))
        rows.append([
            pe.support, pe.support - max(others, default=pe.support - 5.0), pe.best_similarity, pe.coverage,
            pe.title_coverage, 1.0 / pe.hit.rank, pe.hit.dense_score or 0.0,
            1.0 / pe.hit.bm25_rank if pe.hit.bm25_rank else 0.0, pe.hit.title_match, pe.anchors_missing,
            pe.anchors_missing / max(signals.anchors, 1), signals.anchors, signals.unseen_anchor,
            signals.unknown_title, number_missing, pe.paper_id in query.focus, pe.aspect_coverage,
            pe.aspect_number if query.answer_type is AnswerType.NUMBER else pe.aspect_coverage, mismatch,
            pe.asked_found, signals.unseen_share, dense_z[i], sim_z[i], cov_z[i],
        ])
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(PAPER_FEATURES))


def _z(values: list[float]) -> np.ndarray:
    """Each value against the candidate pool's spread: what stands out from the papers retrieved with it."""
    v = np.array(values, dtype=np.float64)
    return (v - v.mean()) / (v.std() + 1e-6) if len(v) else v


def list_rows(evidence: list[PaperEvidence], signals: QuestionSignals) -> np.ndarray:
    best_sim = max((pe.best_similarity for pe in evidence), default=0.0)
    best_cov = max((pe.coverage for pe in evidence), default=0.0)
    sim_z = _z([pe.top3_similarity for pe in evidence])
    cov_z = _z([pe.coverage for pe in evidence])
    rows = [[pe.support, pe.best_similarity, pe.coverage, pe.title_coverage, pe.coverage >= 0.999,
             1.0 / pe.hit.rank, pe.hit.dense_score or 0.0, 1.0 / pe.hit.bm25_rank if pe.hit.bm25_rank else 0.0,
             pe.best_similarity - best_sim, pe.coverage - best_cov, pe.hit.title_match,
             len(signals.rare_terms & pe.paper_terms) / max(len(signals.rare_terms), 1), pe.top3_similarity,
             pe.covering_share, sim_z[i], cov_z[i], _alternative_coverage(pe, signals)] for i, pe in enumerate(evidence)]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(LIST_FEATURES))


_ALTERNATIVE_BREAK = re.compile(r",|;|/|\bor\b|\band\b", re.IGNORECASE)


def alternatives(question: str, idf) -> tuple[dict[str, float], ...]:
    """The parts a question joins with "or", "and" or commas, each as its terms' IDF weights (one part: none)."""
    parts = [p for p in (set(terms(p, question=True)) for p in _ALTERNATIVE_BREAK.split(question)) if p]
    if len(parts) < 2:
        return ()
    weights = idf(set().union(*parts))
    return tuple({t: weights[t] for t in part} for part in parts)


def _alternative_coverage(pe: PaperEvidence, signals: QuestionSignals) -> float:
    """The best share of one listed alternative the paper holds: a paper on one of "noisy or wrong labels" or
    "spurious correlations, shortcut learning and worst-group robustness" belongs, though it holds only that one."""
    if not signals.alternatives:
        return pe.coverage
    return max(sum(w for t, w in part.items() if t in pe.paper_terms) / (sum(part.values()) or 1.0)
               for part in signals.alternatives)


@dataclass(frozen=True)
class Judged:
    """A paper with the probability that it answers (or, for lists, belongs)."""

    evidence: PaperEvidence
    probability: float


def judge_answers(query: Query, evidence: list[PaperEvidence], signals: QuestionSignals) -> list[Judged]:
    """Papers by P(states the answer), best first."""
    if not evidence:
        return []
    model = load_model("answers", PAPER_FEATURES)
    probs = model.proba(paper_rows(query, evidence, signals))[:, 0]
    return sorted((Judged(pe, float(p)) for pe, p in zip(evidence, probs)), key=lambda j: -j.probability)


def judge_list(evidence: list[PaperEvidence], signals: QuestionSignals) -> list[Judged]:
    """Candidates by P(belongs in the list), best first."""
    if not evidence:
        return []
    model = load_model("on_topic", LIST_FEATURES)
    probs = model.proba(list_rows(evidence, signals))[:, 0]
    return sorted((Judged(pe, float(p)) for pe, p in zip(evidence, probs)), key=lambda j: -j.probability)


def topic_row(evidence: list[PaperEvidence]) -> np.ndarray:
    best = max((pe.coverage for pe in evidence), default=0.0)
    return np.array([[best]], dtype=np.float64)


def topic_absent(evidence: list[PaperEvidence], corpus_papers: int) -> bool:
    """A list question on a topic no paper covers ("any tips for winning Kaggle competitions with tabular data?"
    listed a few-shot tabular learning paper): nothing is listed, however high a related paper's on_topic
    probability.
    Decided only in a corpus at least half the size of the one it was learned on: in a user's 16 papers, words
    as plain as "explain" or "speed" are in no abstract, and a question's unseen words say nothing of its topic."""
    model = load_model("topic", TOPIC_FEATURES)
    if corpus_papers < (model.info or {}).get("corpus_papers", 0) / 2:
        return False
    return float(model.proba(topic_row(evidence))[0, 0]) < float(model.threshold or 0.0)


def passes_number_guard(query: Query, pe: PaperEvidence, shown: int) -> bool:
    """A question that asks for a number ("how many", "what accuracy") is not answered by a paper whose shown
    sentences hold none, however on topic. Comparisons are exempt (each side is quoted on its own)."""
    if query.answer_type is not AnswerType.NUMBER or query.intent is Intent.COMPARE:
        return True
    return any(states_quantity(e.text) for e in pe.shown[:shown])


def holds_every_name(query: Query, pe: PaperEvidence) -> bool:
    """A one-paper answer comes from a paper that holds every name the question hangs on ("What FActScore does
    FLAME reach?" is not answered by FLAME's abstract if it never writes FActScore; "How do I seed TensorFlow
    runs?" not by a paper on run-to-run variance). Not for comparisons (each paper holds its own names) or
    follow-ups (the conversation's titles are part of the question)."""
    return query.intent is Intent.COMPARE or bool(query.focus) or not pe.anchors_missing


def answer_threshold(answer_settings: AnswerSettings | None = None) -> float:
    """The user's `answer.abstain_below` when set, else the threshold learned on dev."""
    if answer_settings is not None and answer_settings.abstain_below is not None:
        return answer_settings.abstain_below
    return float(load_model("answers", PAPER_FEATURES).threshold or 0.5)


def gate_threshold() -> float:
    """With an LLM: the lower bar below which the question is clearly off-corpus (no false abstention on dev)."""
    model = load_model("answers", PAPER_FEATURES)
    return float((model.info or {}).get("gate_threshold", (model.threshold or 0.5) / 2))


def list_threshold(answer_settings: AnswerSettings | None = None) -> float:
    """The user's `answer.list_min_probability` when set, else the threshold learned on dev."""
    if answer_settings is not None and answer_settings.list_min_probability is not None:
        return answer_settings.list_min_probability
    return float(load_model("on_topic", LIST_FEATURES).threshold or 0.5)


def list_gate_threshold() -> float:
    """With an LLM: the lower bar for a list's sources (high recall of true members on dev)."""
    model = load_model("on_topic", LIST_FEATURES)
    return float((model.info or {}).get("gate_threshold", (model.threshold or 0.5) / 2))
