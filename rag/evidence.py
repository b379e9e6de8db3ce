"""Evidence: how well a stored sentence bears on a probe (a question, or a generated claim to verify).

`relevance` is the one scoring function: meaning (MiniLM cosine between the probe's vector and the sentence's
stored vector) mixed with the IDF-weighted share of the probe's terms the sentence (with its paper's title)
contains, abbreviations counted as their long forms and back. Evidence selection ranks sentences with it, plus
what the question asks for (a number, a name, a definition), through a small learned ranker; verification accepts
a citation with it. Per question only the question is embedded; sentence vectors and terms were stored at ingest.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from .text import coined, digits_apart, fold, genres_named, name_tokens, short_names, terms, words
from .types import AnswerType, Evidence, Hit, Intent, Query, Sentence

W_SIMILARITY = 0.5  # the rest is lexical coverage


@dataclass(frozen=True)
class Probe:
    """What sentences are scored against: a vector, IDF-weighted terms, and abbreviation equivalences
    ((terms the probe states, terms that stand for them in a text): "rlhf" ↔ "reinforc learn human feedback")."""

    vector: np.ndarray
    terms: tuple[str, ...]
    weights: dict[str, float]
    equivalents: tuple[tuple[frozenset[str], frozenset[str]], ...] = ()
    # the same for other words of one kind of writing ("review" ↔ "survey"): coverage only, no definition or name
    synonyms: tuple[tuple[frozenset[str], frozenset[str]], ...] = ()

    def covered(self, text_terms: frozenset[str] | set[str]) -> set[str]:
        """The probe's terms a text holds, written or spelled the other way (an abbreviation for its long form, a
        survey for a review); an equivalence counts only for the probe's own terms (a probe narrowed to what a
        question asks for is not covered by a sentence spelling out another of the question's abbreviations)."""
        found = {t for t in self.terms if t in text_terms}
        for stated, standing_for in self.equivalents + self.synonyms:
            if standing_for <= text_terms:
                found |= stated & self._term_set
        return found

    @cached_property
    def _term_set(self) -> frozenset[str]:
        return frozenset(self.terms)

    def coverage(self, text_terms: frozenset[str] | set[str]) -> float:
        """IDF-weighted share of the probe's terms found in `text_terms`."""
        return self.share(self.covered(text_terms))

    def share(self, probe_terms: set[str]) -> float:
        """IDF-weighted share of the probe's terms that these (some of its own terms) make up."""
        if self._total <= 0:
            return 0.0
        return sum(self.weights.get(t, 0.0) for t in probe_terms) / self._total

    @cached_property
    def _total(self) -> float:
        """The weight of all its terms: summed once, not for each of the hundreds of sentences scored."""
        return sum(self.weights.get(t, 0.0) for t in self.terms)


def abbreviation_equivalents(names, text: str) -> tuple[tuple[frozenset[str], frozenset[str]], ...]:
    """Pairs of term sets the corpus defines as the same thing, for the abbreviations and long forms in `text`."""
    shorts = sorted(short_names(text) | {w for w in words(text) if len(w) <= 8})
    pairs = []
    for short, longs in names.expansions(shorts).items():
        for long in longs[:3]:
            pairs.append((frozenset(terms(short)), frozenset(terms(long))))
    tokens = fold(text).split()
    phrases = sorted({" ".join(tokens[i:i + n]) for n in range(2, 7) for i in range(len(tokens) - n + 1)})
    for long, shorts_of in names.abbreviations_of(phrases).items():
        for short in shorts_of[:3]:
            pairs.append((frozenset(terms(long)), frozenset(terms(short))))
    return tuple((a, b) for a, b in pairs if a and b and a != b)


def genre_equivalents(text: str) -> tuple[tuple[frozenset[str], frozenset[str]], ...]:
    """Pairs (the terms of a kind of writing the question asks for, the terms of another phrase for that kind): a
    survey covers a question's "review" as an abstract's long form covers its abbreviation."""
    pairs = [(frozenset(terms(phrase, question=True)), frozenset(terms(other)))
             for phrase, kind in genres_named(text) for other in kind if other != phrase]
    return tuple((a, b) for a, b in pairs if a and b and a != b)


def make_probe(store, vector: np.ndarray, text: str, *, question: bool) -> Probe:
    probe_terms = tuple(dict.fromkeys(terms(text, question=question)))
    equivalents = abbreviation_equivalents(store.names, text) if question else ()
    # a name the corpus defines is one of the question's terms even when the word it spells is a question word
    # ("What does FIND stand for?", "GET")
    stated = {a for a, _ in equivalents}
    probe_terms += tuple(dict.fromkeys(t for token in name_tokens(text) if frozenset(terms(token)) in stated
                                       for t in terms(token) if t not in probe_terms))
    extra = {t for _, b in equivalents for t in b}
    return Probe(vector=vector, terms=probe_terms, weights=store.idf(set(probe_terms) | extra),
                 equivalents=equivalents, synonyms=genre_equivalents(text) if question else ())


def relevance(similarity: float | np.ndarray, coverage: float | np.ndarray):
    """The one scoring function (see the module docstring)."""
    return W_SIMILARITY * similarity + (1 - W_SIMILARITY) * coverage


@dataclass(frozen=True)
class PaperSentences:
    """A paper's stored evidence sentences and their vectors, loaded once per question."""

    title: str
    title_terms: frozenset[str]
    sentences: list[Sentence]
    vectors: np.ndarray

    @property
    def all_terms(self) -> frozenset[str]:
        return self.title_terms.union(*(s.terms for s in self.sentences))

    def similarities(self, probe: Probe) -> np.ndarray:
        return self.vectors @ probe.vector if self.sentences else np.zeros(0)

    def scores(self, probe: Probe) -> np.ndarray:
        """relevance() of every sentence to the probe; the title's terms count as each sentence's own."""
        lexical = np.array([probe.coverage(s.terms | self.title_terms) for s in self.sentences])
        return relevance(self.similarities(probe), lexical)


def load_sentences(store, papers) -> dict[str, PaperSentences]:
    """Stored sentences of these papers (`Paper` objects), by paper id."""
    papers = list(papers)
    stored = store.sentences([p.id for p in papers])
    out = {}
    for paper in papers:
        sentences, vectors = stored.get(paper.id, ([], np.zeros((0, 1), dtype=np.float32)))
        out[paper.id] = PaperSentences(paper.title, frozenset(terms(paper.title)), sentences, vectors)
    return out


# ---- what the question names ---------------------------------------------------------------------------------
_DEFINES = re.compile(r"\b(we (propose|introduce|present|develop|call|name|dub|term)|(is|are) an? |called|named|dubbed|"
                      r"termed|refers? to|stands? for)\b|\([\w\-]+\)", re.IGNORECASE)
_BOILERPLATE = re.compile(r"https?://|github|\bcode (is|and \w+ are) (publicly |freely )?(available|released)|"
                          r"\bavailable at\b|\bopen[- ]source[sd]?\b.{0,30}\b(code|implementation)", re.IGNORECASE)
_NUMBER = re.compile(r"\d")
# A number that measures a change or a share (4.5x, 30%, 3-fold, 2 times), not a count or a name (128 GPUs, GPT-4).
_RATIO = re.compile(r"\d(?:\.\d+)?\s*(?:x\b|×|%|\\%|-?fold\b|times\b|points?\b|pp\b)", re.IGNORECASE)


# what a sentence's first word follows: its capital says nothing ("Thanks so much.", "Sorry if this is obvious.")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s*|\n\s*)[\"'(\[]*\s*$")


def anchors(question: str, store) -> list[str]:
    """Names the question hangs on (DEUP, GPT-3, WMT14, Hinton): coined tokens, and capitalised words no indexed
    paper uses. An answer that holds none of them answers some other question."""
    found = list(dict.fromkeys(name_tokens(question)))
    capitalised = [m.group(0) for m in re.finditer(r"[A-Za-z][\w\-']*", question)
                   if not _SENTENCE_START.search(question[:m.start()]) and m.group(0)[:1].isupper()
                   and not coined(m.group(0)) and len(m.group(0)) > 2 and terms(m.group(0))]
    df = store.doc_freq(t for w in capitalised for t in terms(w))
    found += [w for w in capitalised if w not in found and all(df.get(t, 0) == 0 for t in terms(w))]
    return found


def anchor_found(anchor: str, text_folded: str, equivalents) -> bool:
    """The anchor occurs in the text as a word sequence, or its corpus-defined long form / abbreviation does.
    Letters and the digits after them match apart or together, as users write them: GPT4 is GPT-4, CIFAR10
    CIFAR-10, LLaMA65B LLaMA-65B (but GPT4 is not GPT-4o)."""
    name = digits_apart(fold(anchor))
    text = digits_apart(text_folded)
    if name and (f" {name} " in f" {text} " or f" {name}s " in f" {text} "):  # MoE, MoEs
        return True
    # plain words hyphened to a name: "ViT-based", "IQ-style", "conditional-MoE" name ViT, IQ, MoE
    core = re.sub(r"^(?:[a-z]+-)+|(?:-[a-z]+)+$", "", anchor)
    if core != anchor and len(core) > 1:
        return anchor_found(core, text_folded, equivalents)
    name_terms = frozenset(terms(anchor))
    text_terms = set(terms(text_folded))
    return any(a == name_terms and b <= text_terms for a, b in equivalents)


def aspect_probe(probe: Probe, paper: PaperSentences) -> Probe:
    """The probe without the words that name this paper: what the question asks *about* it."""
    return replace(probe, terms=tuple(t for t in probe.terms if t not in paper.title_terms))


_WH_PHRASE = re.compile(r"\b(?:what|which|how many|how much|how large|how long|how big|how fast)\s+"
                        r"((?:(?!(?:did|does|do|was|were|is|are|has|have|had|can|could|would|will|should|the|a|an|its|their|"
                        r"this|that|in|of|for|on|to|by|with|at)\b)[\w\-]+\s*){1,4})", re.IGNORECASE)


def asked_terms(question: str) -> frozenset[str]:
    """The thing the question asks for, read from its wh-phrase ("what epsilon was used" → epsilon, "how many
    hours of gameplay" → hours): an answer must state it, not just the paper's topic."""
    found: set[str] = set()
    for match in _WH_PHRASE.finditer(question):
        found |= set(terms(match.group(1), question=True))
    return frozenset(found)


# ---- sentence features and the ranker -------------------------------------------------------------------------
SENTENCE_FEATURES = (
    "similarity", "coverage", "coverage_sentence_only", "novelty", "has_number", "number_wanted",
    "has_name", "name_wanted", "defines", "definition_wanted", "first", "last", "position", "boilerplate", "length",
    "anchors_in_sentence", "aspect_coverage", "has_ratio", "ratio_wanted",
)


def sentence_features(query: Query, probe: Probe, paper: PaperSentences, question_anchors: list[str],
                      equivalents) -> np.ndarray:
    """One row per sentence of the paper, columns as SENTENCE_FEATURES."""
    n = len(paper.sentences)
    if not n:
        return np.zeros((0, len(SENTENCE_FEATURES)))
    sims = paper.similarities(probe)
    q_terms = set(probe.terms)
    aspect = aspect_probe(probe, paper)
    asked_names = {fold(a) for a in name_tokens(query.judged)}
    wants_number = query.answer_type is AnswerType.NUMBER
    wants_name = query.answer_type is AnswerType.NAME
    wants_definition = query.intent is Intent.DEFINITION
    rows = []
    for i, (sentence, sim) in enumerate(zip(paper.sentences, sims)):
        text = sentence.text
        folded = fold(text)
        has_number = bool(_NUMBER.search(text))
        has_name = any(fold(t) not in asked_names for t in name_tokens(text))
        # a defining phrase about an asked name, or the sentence spelling out an asked abbreviation (both forms)
        defines = (bool(_DEFINES.search(text)) and (not asked_names or any(
            f" {a} " in f" {folded} " for a in asked_names))) or any(
            a <= sentence.terms and b <= sentence.terms for a, b in equivalents)
        anchored = sum(anchor_found(a, folded, equivalents) for a in question_anchors)
        rows.append([
            sim, probe.coverage(sentence.terms | paper.title_terms), probe.coverage(sentence.terms),
            len(sentence.terms - q_terms) / max(len(sentence.terms), 1), has_number, has_number and wants_number,
            has_name, has_name and wants_name, defines, defines and wants_definition, i == 0, i == n - 1,
            i / max(n - 1, 1), bool(_BOILERPLATE.search(text)), min(len(text.split()), 60) / 60,
            anchored / max(len(question_anchors), 1), aspect.coverage(sentence.terms), bool(_RATIO.search(text)),
            bool(_RATIO.search(text)) and wants_number,
        ])
    return np.array(rows, dtype=np.float64)


@dataclass(frozen=True)
class PaperEvidence:
    """A retrieved paper's sentences ranked for the question, best first, and the paper-level signals the
    answer decisions use; `shown` is the order answers quote them in (the same best sentence first)."""

    hit: Hit
    sentences: tuple[Evidence, ...]  # by the ranker's score: what the learned decisions were trained on
    shown: tuple[Evidence, ...]      # after the best, each next for what it adds to the question (covering_order)
    support: float          # the best sentence's ranker score (a logit)
    coverage: float         # share of the question's terms the whole paper holds
    title_coverage: float
    best_similarity: float
    anchors_missing: int    # question anchors found nowhere in the paper
    aspect_coverage: float  # best share of what the question asks about the paper that one sentence holds
    aspect_number: float    # the same over sentences holding a number (what a "how many" answer needs)
    top3_similarity: float  # mean cosine of the three closest sentences: is the topic the paper's subject?
    asked_found: float      # share of the asked-for thing (its wh-phrase) one sentence states (with a number if wanted)
    covering_share: float   # share of sentences holding at least half of the question (IDF-weighted)
    paper_terms: frozenset[str] = frozenset()
    anchors_held: frozenset[str] = frozenset()  # the question's anchors this paper's title or abstract holds

    @property
    def paper_id(self) -> str:
        return self.hit.paper_id


# What a sentence adds to those ranked above it weighs this much against the ranker's logit: the IDF-weighted share
# of the question's terms it covers that neither they nor the title (shown with every answer) cover. The ranker
# scores each sentence alone, so its top 3 can all restate one part of a two-part question ("what is X and how did
# it do?"). Chosen on dev over 0-30 (dev-side sets: fact hit on dev / written answerable): 0 -> 0.806 / 0.719,
# 5 -> 0.806 / 0.725, 10 -> 0.810 / 0.737, 15 -> 0.802 / 0.737, 30 -> 0.798 / 0.731.
COVERAGE_WEIGHT = 10.0


def covering_order(ranked: list[Evidence], probe: Probe, title_terms: frozenset[str], slots: int) -> list[Evidence]:
    """The ranked sentences with the first `slots` picked greedily: the best one first, then each next for its
    score plus what it covers of the question that the picked sentences and the title do not (the rest by score)."""
    if len(ranked) <= 2:
        return ranked
    found = {id(e): probe.covered(e.sentence.terms) for e in ranked}
    picked, rest = [ranked[0]], list(ranked[1:])
    covered = found[id(ranked[0])] | probe.covered(title_terms)
    while rest and len(picked) < slots:
        best = max(rest, key=lambda e: e.score + COVERAGE_WEIGHT * probe.share(found[id(e)] - covered))
        rest.remove(best)
        picked.append(best)
        covered |= found[id(best)]
    return picked + rest


class EvidenceSelector:
    """Ranks the stored sentences of retrieved papers for a query with the learned sentence ranker, and orders
    the first `slots` an answer may quote (as many as it quotes from one paper) also for what each adds."""

    def __init__(self, store, slots: int = 4):
        self.store = store
        self.slots = slots

    def select(self, query: Query, vector: np.ndarray, hits: list[Hit]) -> list[PaperEvidence]:
        """Every retrieved paper with its sentences ranked; papers ordered by support."""
        from .learned import load_model

        if not hits:
            return []
        ranker = load_model("sentence_ranker", SENTENCE_FEATURES)
        probe = make_probe(self.store, vector, query.judged, question=True)
        question_anchors = anchors(query.judged, self.store)
        asked = asked_terms(query.judged)
        asked_probe = replace(probe, terms=tuple(t for t in probe.terms if t in asked))
        loaded = load_sentences(self.store, [h.paper for h in hits])
        out = []
        for hit in hits:
            paper = loaded[hit.paper_id]
            features = sentence_features(query, probe, paper, question_anchors, probe.equivalents)
            scores = ranker.logits(features)[:, 0] if len(features) else np.zeros(0)
            ranked = sorted((Evidence(sentence=s, score=float(v)) for s, v in zip(paper.sentences, scores)),
                            key=lambda e: -e.score)
            folded = fold(f"{paper.title} " + " ".join(s.text for s in paper.sentences))
            held = frozenset(a for a in question_anchors if anchor_found(a, folded, probe.equivalents))
            aspect = aspect_probe(probe, paper)
            aspects = [(aspect.coverage(s.terms), bool(_NUMBER.search(s.text))) for s in paper.sentences]
            sims = np.sort(paper.similarities(probe))[::-1]
            covering = [probe.coverage(s.terms | paper.title_terms) >= 0.5 for s in paper.sentences]
            wants_number = query.answer_type is AnswerType.NUMBER
            stating = [asked_probe.coverage(s.terms) for s in paper.sentences
                       if not wants_number or _NUMBER.search(s.text)]
            shown = ranked if query.intent is Intent.LIST else (  # a list quotes one sentence a paper
                covering_order(ranked, probe, paper.title_terms, self.slots))
            out.append(PaperEvidence(
                hit=hit, sentences=tuple(ranked), shown=tuple(shown), support=ranked[0].score if ranked else -10.0,
                coverage=probe.coverage(paper.all_terms), title_coverage=probe.coverage(paper.title_terms),
                best_similarity=float(sims[0]) if len(sims) else 0.0,
                anchors_missing=len(question_anchors) - len(held),
                aspect_coverage=max((c for c, _ in aspects), default=0.0),
                aspect_number=max((c for c, has in aspects if has), default=0.0),
                top3_similarity=float(sims[:3].mean()) if len(sims) else 0.0,
                covering_share=float(np.mean(covering)) if covering else 0.0,
                asked_found=max(stating, default=0.0) if asked_probe.terms else 1.0,
                paper_terms=paper.all_terms, anchors_held=held))
        out.sort(key=lambda pe: (-pe.support, pe.hit.rank))
        return out
