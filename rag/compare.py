"""Comparisons of two papers: which second paper the question is about, and a comparison sentence only when the
two quoted facts are the same kind of number.

The second paper is the one the question names (title or short name), else the best answer to the question with
the first paper's title words taken out (asked again: retrieval and judging see only the other half of the
comparison), else the pooled paper that best holds what the first paper lacks while likely stating an answer.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Sequence

from .citations import measures
from .evidence import Probe
from .support import Judged
from .text import CONNECTORS, fold, terms
from .types import Query

RESIDUAL_MIN_SHARE = 0.2  # the question must say this much (IDF-weighted) that the first paper does not
# A question read as one paper's fact is a comparison when its terms split this far between the best paper and
# another likely one (split_share); one read as a comparison is one paper's when no other pooled paper holds this
# much of it among what the best paper lacks (about_one_paper). Both chosen on dev-side questions with intents
# read out of fold, as new questions are read.
SPLIT_SHARE = 0.25
ONE_PAPER_SHARE = 0.05
# A question read as one paper's fact is also a comparison at a smaller split when the other paper is as likely to
# answer as a one-paper answer must be ("what do the gradient-coherence explanation of the generalization mystery and
# the universality lens each claim?" splits 0.21 between two papers both over the threshold). Chosen on dev with
# intents out of fold: compare 0.750 -> 0.792 at 0.10 and 0.15 alike; one-paper answers citing a second paper
# 0 -> 1 of 54 dev paraphrases and 0 -> 3 of 338 written questions; 0.10 also answered one more written negative.
LIKELY_SPLIT_SHARE = 0.15
# A candidate's score is the share of that residual its abstract holds plus this times P(states the answer): the
# words alone pick a paper that merely uses them ("baselines"). Chosen on dev compare items over 0-5 (second paper
# right in 42/47 with words first, 44 by P alone, 45 at 1.5-2).
PROBABILITY_WEIGHT = 2.0


def residual_question(question: str, first_title: str, first_names: Sequence[str] = ()) -> str:
    """The question without the words that name the first paper (its title's words, written joined or hyphenated,
    and the short names it goes by: "the LOOK pretraining paper"): what it asks about the other paper.

    A title word is dropped only as often as the title writes it, from the run of naming words holding the most
    terms first: in "function vectors vs task vectors" one "vectors" names the first paper and the other is asked
    of the second (dropping both re-asked "vs task", which found "LoRA vs Full Fine-tuning"). A run holding a short
    name is where the question names the paper: it goes first, and the title words left elsewhere stay ("FV vs
    task vectors"). Short names themselves go wherever they are written. "vs" and "versus" go too."""
    budget = Counter(terms(first_title))
    named = set().union(*(terms(n) for n in first_names))
    names = {fold(n).replace(" ", "") for n in first_names}
    joined = {fold(w).replace(" ", "") for w in first_title.split() if " " in fold(w)}  # "Pre-training"
    found = [(word, terms(word), fold(word).replace(" ", "")) for word in re.findall(r"\S+", question)]

    is_name = [compact in names or (bool(word_terms) and set(word_terms) <= named) for _, word_terms, compact in found]
    runs: list[list[int]] = []  # runs of naming words; words without terms ("in", "of") neither join nor break
    previous = -1  # the last word with terms
    for i, (_, word_terms, compact) in enumerate(found):
        if not word_terms:
            continue
        if is_name[i] or set(word_terms) <= budget.keys() or compact in joined:
            if runs and runs[-1][-1] == previous:
                runs[-1].append(i)
            else:
                runs.append([i])
        previous = i
    dropped = {i for i, (_, word_terms, _) in enumerate(found) if word_terms and set(word_terms) <= CONNECTORS}
    for run in sorted(runs, key=lambda r: (any(is_name[i] for i in r), sum(len(found[i][1]) for i in r)),
                      reverse=True):
        for i in run:
            title_terms = [t for t in found[i][1] if t not in named]
            if is_name[i] or found[i][2] in joined or all(budget[t] > 0 for t in title_terms):
                budget.subtract(title_terms)
                dropped.add(i)
        if any(is_name[i] for i in run):
            budget.clear()  # the paper is named here: its title words elsewhere are asked of the other paper
    return " ".join(word for i, (word, _, _) in enumerate(found) if i not in dropped)


def _question_probe(query: Query, store) -> Probe:
    """The question's terms and IDF weights (no vector, no abbreviation pairs): Probe.share says how much of the
    question a set of its terms is."""
    asked = tuple(dict.fromkeys(terms(query.judged, question=True)))
    return Probe(vector=None, terms=asked, weights=store.idf(set(asked)))


def split_share(query: Query, judged: list[Judged], store, floor: float) -> float:
    """How far the question splits between the best paper and another likely one (P(answers) at least `floor`):
    the IDF-weighted share of its terms that only the other paper holds, or that only the best one holds,
    whichever is smaller, at the candidate where that is largest. A question about one paper leaves little that
    a second paper alone holds; one about two papers splits ("the dataset sizes behind Recon and Mixed-R1", "the
    paper tracing multilingual knowledge acquisition, and the one on derivational morphology"), whatever its
    wording, which the intent reading from the question alone cannot see."""
    return max((share for p, share in _splits(query, judged, store) if p >= floor), default=0.0)


def _splits(query: Query, judged: list[Judged], store) -> list[tuple[float, float]]:
    """(P(answers), split share) of each candidate after the best (split_share's measure, every floor at once)."""
    if len(judged) < 2:
        return []
    q = _question_probe(query, store)
    first = set(q.terms) & judged[0].evidence.paper_terms
    residual = set(q.terms) - first
    return [(j.probability, min(q.share(residual & j.evidence.paper_terms), q.share(first - j.evidence.paper_terms)))
            for j in judged[1:]]


def reads_as_two(query: Query, judged: list[Judged], store, threshold: float, names_apart: bool) -> bool:
    """Whether a question read as one paper's fact is about two papers: its terms split SPLIT_SHARE between the
    best paper and another at least half as likely as an answer must be, or LIKELY_SPLIT_SHARE with one as likely.
    When it names things no one paper holds together, the other must be as likely and the split as large."""
    splits = _splits(query, judged, store)
    if names_apart:
        return any(p >= threshold and share >= SPLIT_SHARE for p, share in splits)
    return any((p >= threshold / 2 and share >= SPLIT_SHARE) or (p >= threshold and share >= LIKELY_SPLIT_SHARE)
               for p, share in splits)


def about_one_paper(query: Query, judged: list[Judged], store) -> bool:
    """Whether a question read as a comparison is about the best paper alone ("what does OOD stand for in
    Unified Out-Of-Distribution Detection, and what is detected?"): no other pooled paper is named, and none,
    however unlikely, holds ONE_PAPER_SHARE of the question among what the best paper lacks."""
    first, rest = judged[0], judged[1:]
    if not rest or any(j.evidence.hit.title_match for j in rest):
        return False
    q = _question_probe(query, store)
    residual = set(q.terms) - first.evidence.paper_terms
    return max(q.share(residual & j.evidence.paper_terms) for j in rest) < ONE_PAPER_SHARE


def second_paper(query: Query, judged: list[Judged], store, threshold: float,
                 reask: Callable[[str], list[Judged]] | None = None) -> Judged | None:
    """`reask(text)` judges the papers for another wording of the question (the chain's retrieval and answers
    model). On dev compare items the re-asked residual found the second paper for 2 questions where the pooled
    candidates held no second paper, and lost none."""
    first, rest = judged[0], judged[1:]
    named = [j for j in rest if j.evidence.hit.title_match]
    if named:
        return named[0]
    q = _question_probe(query, store)
    residual = set(q.terms) - first.evidence.paper_terms
    share = q.share(residual)
    if reask is not None and share >= RESIDUAL_MIN_SHARE:  # the question asks about something the first paper lacks
        paper = first.evidence.hit.paper
        again = [j for j in reask(residual_question(query.judged, paper.title, store.names.names_of(paper.id)))
                 if j.evidence.paper_id != first.evidence.paper_id]
        # among the re-asked papers likely enough, the one either wording judges likeliest: the residual of "X
        # versus its follow-up on Y" has lost the title words the follow-up shares with X, which the whole question
        # had (the whole question's probability only ranks; the re-asked one must clear the bar)
        before = {j.evidence.paper_id: j.probability for j in rest}
        likely = [j for j in again if j.probability >= threshold / 2]
        if likely:
            return max(likely, key=lambda j: max(j.probability, before.get(j.evidence.paper_id, 0.0)))

    def residual_coverage(j: Judged) -> float:
        if share < RESIDUAL_MIN_SHARE:
            return 0.0
        return q.share(residual & j.evidence.paper_terms) / share

    best = max(rest, key=lambda j: residual_coverage(j) + PROBABILITY_WEIGHT * j.probability, default=None)
    # the best candidate neither holding most of the rest of the question nor likely answering would be a guess (a
    # fallback to the next candidates added wrong papers on dev)
    if best is not None and (residual_coverage(best) >= 0.5 or best.probability >= threshold / 2):
        return best
    return None


def _short(title: str) -> str:
    head = title.split(":", 1)[0]
    return head if ":" in title and len(head.split()) <= 4 else title


def _figure(text: str) -> tuple[float, str] | None:
    """The quote's one percentage or factor (the same reading of figures the verifier uses), or None."""
    found = [(value, unit) for value, unit in measures(text) if unit in ("%", "x")]
    return found[0] if len(found) == 1 else None


def compare_sentence(query: Query, quotes: list[tuple[str, str]]) -> str | None:
    """'Of the two figures, 4.5x [1] and 3x [2], the larger is Multigrid's.' when each quote states exactly one
    figure of the same unit; otherwise nothing (a wrong comparison is worse than none)."""
    figures = [_figure(text) for _, text in quotes]
    if len(quotes) != 2 or None in figures or figures[0][1] != figures[1][1]:
        return None
    (a, unit), (b, _) = figures
    show = {"%": "{:g}%", "x": "{:g}x"}[unit]
    if a == b:
        return f"Both report the same figure, {show.format(a)} [1][2]."
    larger = _short(quotes[0][0] if a > b else quotes[1][0])
    return (f"Of the two figures, {show.format(a)} [1] and {show.format(b)} [2], the larger is reported by "
            f"\u201c{larger}\u201d.")
