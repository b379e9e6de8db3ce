"""Evidence selection: the sentences of retrieved abstracts that bear on the question, scored and located.

A sentence's score mixes meaning (MiniLM cosine to the question), the share of the question's rare words it
contains (IDF-weighted, stemmed), and how much of the question its whole paper covers. The best score is
also the signal for abstaining.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .types import Evidence, Hit

_ABBREVIATIONS = {
    "e.g", "i.e", "et al", "al", "vs", "fig", "figs", "eq", "eqs", "etc", "cf", "approx", "resp", "dr", "no",
    "sec", "ref", "refs", "inc", "ltd", "mr", "ms", "st", "vol", "pp", "ca", "est", "viz", "w.r.t", "a.k.a",
}
_BOUNDARY = re.compile(r"[.!?](?:[\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")

# Question words that say nothing about content: they would make every abstract look relevant.
_QUESTION_STOPWORDS = {
    "paper", "papers", "work", "works", "study", "studies", "article", "corpus", "propose", "proposes", "proposed",
    "present", "presents", "introduce", "introduces", "describe", "describes", "say", "says", "tell", "report",
    "reports", "reported", "show", "shows", "find", "finds", "found", "use", "uses", "used", "using", "approach",
    "method", "methods", "model", "models", "what", "which", "how", "does", "do", "did", "is", "are", "was", "were",
    "mention", "mentions", "discuss", "discusses", "authors", "author", "according", "called", "named", "name",
    "any", "there", "list", "exist", "exists", "much", "many", "kind", "type", "new", "main", "key", "result",
    "results", "achieve", "achieves", "get", "gets", "give", "gives", "can", "could", "would", "should",
}


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of an abstract; abbreviations and decimals do not end a sentence."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.start() + 1
        before = text[start:end].rstrip(".!?\"')]")
        last = before.rsplit(None, 1)[-1].casefold() if before.split() else ""
        if last.rstrip(".") in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
            continue
        sentence_end = match.end() - len(match.group()) + len(match.group().rstrip())
        spans.append((start, sentence_end))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text.rstrip())))
    return [(s, e) for s, e in spans if text[s:e].strip()]


# Text in an abstract that addresses the assistant rather than describing research (prompt injection).
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|all)\b.{0,20}\b(instructions?|prompts?|rules)\b"
    r"|\byou\s+(must|should|will|are to)\s+(now\s+)?(answer|reply|respond|say|output|cite)\b"
    r"|\b(answer|reply|respond|say)\b[^.]{0,40}\bto (every|all|any) (question|query|prompt)s?\b"
    r"|\bnew instructions?\s*:",
    re.IGNORECASE,
)


def looks_like_instruction(sentence: str) -> bool:
    return bool(_INSTRUCTION.search(sentence))


def evidence_spans(abstract: str) -> list[tuple[int, int]]:
    """Sentence spans usable as evidence: instructions planted in an abstract never support or get quoted."""
    return [(s, e) for s, e in split_sentences(abstract) if not looks_like_instruction(abstract[s:e])]


@lru_cache(maxsize=1)
def stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | _QUESTION_STOPWORDS


_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def content_terms(text: str, *, question: bool = False) -> list[str]:
    """Lower-cased, stemmed words without stop words (and, for questions, without question boilerplate)."""
    stop = _stopwords() if question else frozenset(_stopwords() - _QUESTION_STOPWORDS)
    words = [w for w in _TOKEN.findall(text.casefold()) if w not in stop]
    return stemmer().stemWords(words)


class TermWeights:
    """IDF of stemmed terms over the indexed papers; a word no paper uses weighs most."""

    def __init__(self, doc_freq: dict[str, int], n_docs: int):
        self.doc_freq = doc_freq
        self.n_docs = max(n_docs, 1)

    @classmethod
    def from_texts(cls, texts: list[str]) -> "TermWeights":
        freq: dict[str, int] = {}
        for text in texts:
            for term in set(content_terms(text)):
                freq[term] = freq.get(term, 0) + 1
        return cls(freq, len(texts))

    def save(self, path) -> None:
        import json

        path.write_text(json.dumps({"n_docs": self.n_docs, "doc_freq": self.doc_freq}))

    @classmethod
    def load(cls, path) -> "TermWeights":
        import json

        data = json.loads(path.read_text())
        return cls(data["doc_freq"], data["n_docs"])

    def idf(self, term: str) -> float:
        return math.log((self.n_docs + 1) / (self.doc_freq.get(term, 0) + 0.5))

    def coverage(self, query_terms: list[str], text_terms: set[str]) -> float:
        """IDF-weighted share of the query's terms found in the text."""
        unique = set(query_terms)
        total = sum(self.idf(t) for t in unique)
        if total <= 0:
            return 0.0
        return sum(self.idf(t) for t in unique if t in text_terms) / total


# Mix of the evidence score; tuned on evals/qa.jsonl (see evals/reports).
W_SIMILARITY = 0.5
W_SENTENCE_LEXICAL = 0.25
W_PAPER_LEXICAL = 0.25
TITLE_MATCH_BONUS = 0.2
ANSWER_TYPE_BONUS = 0.12

# Questions that want a number, or a name: the sentence holding the answer is the one with a number / a name in it,
# and it shares fewer words with the question than the sentences around it.
QUANTITY_QUESTION = re.compile(
    r"\b(how (many|much|large|big|fast|long|often|small)|by (how much|what factor)|up to what|to how many|"
    r"what (share|fraction|percentage|proportion|size|accuracy|score|speedup|error|rate|roc-auc|auc|fid|number|factor)|"
    r"how .{0,40}\b(improve|gain|drop|reduce|change|speed))",
    re.IGNORECASE,
)
NAME_QUESTION = re.compile(
    r"\b(name[ds]?|called|which (model|benchmark|dataset|technique|method|loss|theorem|theory|game|engine|framework|"
    r"algorithm|activation|normalization|synthetic benchmark|training objective|model|paradigm|kinds? of))\b",
    re.IGNORECASE,
)
_HAS_NUMBER = re.compile(r"\d")
_NAME_TOKEN = re.compile(r"\b([A-Z][A-Za-z0-9@+\-]*[A-Z0-9@+][A-Za-z0-9@+\-]*|[A-Z][a-z]+(?:-[A-Z][a-z]+)+)\b")


def answer_type(question: str) -> str:
    if QUANTITY_QUESTION.search(question):
        return "quantity"
    if NAME_QUESTION.search(question):
        return "name"
    return "other"


def fits_answer_type(kind: str, sentence: str, question: str) -> bool:
    if kind == "quantity":
        return bool(_HAS_NUMBER.search(sentence))
    if kind == "name":
        asked = {w.casefold() for w in _TOKEN.findall(question)}
        return any(m.casefold() not in asked for m in _NAME_TOKEN.findall(sentence))
    return False


@dataclass(frozen=True)
class PaperEvidence:
    """A retrieved paper's evidence sentences, best first, and how well the paper as a whole supports the question."""

    hit: Hit
    sentences: tuple[Evidence, ...]
    support: float
    coverage: float


class EvidenceSelector:
    def __init__(self, embedder, weights: TermWeights):
        self.embedder = embedder
        self.weights = weights

    def select(self, question: str, hits: list[Hit], per_paper: int) -> list[PaperEvidence]:
        """Score every sentence of every hit; return papers ordered by support."""
        if not hits:
            return []
        q_terms = content_terms(question, question=True)
        kind = answer_type(question)
        spans = [evidence_spans(h.paper.abstract) for h in hits]
        texts = [question] + [h.paper.abstract[s:e] for h, ss in zip(hits, spans) for s, e in ss]
        vectors = self.embedder.encode(texts)
        q_vec, s_vecs = vectors[0], vectors[1:]
        sims = s_vecs @ q_vec if len(s_vecs) else np.zeros(0)
        out: list[PaperEvidence] = []
        pos = 0
        for hit, paper_spans in zip(hits, spans):
            paper = hit.paper
            title_terms = set(content_terms(paper.title))
            paper_cov = self.weights.coverage(q_terms, title_terms | set(content_terms(paper.abstract)))
            scored: list[Evidence] = []
            for start, end in paper_spans:
                text = paper.abstract[start:end]
                sim = float(sims[pos])
                pos += 1
                lex = self.weights.coverage(q_terms, set(content_terms(text)) | title_terms)
                score = W_SIMILARITY * sim + W_SENTENCE_LEXICAL * lex + W_PAPER_LEXICAL * paper_cov
                if hit.title_match:
                    score += TITLE_MATCH_BONUS
                if fits_answer_type(kind, text, question):
                    score += ANSWER_TYPE_BONUS
                scored.append(Evidence(paper_id=paper.id, title=paper.title, text=text, start=start, end=end,
                                       score=score, similarity=sim, lexical=lex))
            scored.sort(key=lambda e: -e.score)
            best = scored[:per_paper]
            support = best[0].score if best else 0.0
            out.append(PaperEvidence(hit=hit, sentences=tuple(best), support=support, coverage=paper_cov))
        out.sort(key=lambda pe: (-pe.support, pe.hit.rank))
        return out
