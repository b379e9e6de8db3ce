"""Question understanding, done once per turn: the cleaned question, its vector, intent, answer type, and whether
it leans on an earlier turn. The result is a `Query` (rag.types) that every later stage reads.

Intent, answer type and follow-up are read by small linear models over the question's MiniLM vector (already
computed for retrieval) and its function words ("which … papers", "how many", "it", "the authors"), trained on
varied questions written for the purpose plus the eval set's dev split (evals/train.py). No rule here names a
phrasing; the one fixed vocabulary is which metadata field a metadata question is about.
"""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from .errors import ConfigError, RagError
from .learned import load_model
from .text import name_tokens, words
from .tokens import clip_tokens, count_tokens
from .types import AnswerType, Intent, MetadataField, Query


class EmptyQuestionError(RagError):
    """The question has no text."""


def clean_question(question: str, max_tokens: int) -> tuple[str, str | None]:
    """Collapse whitespace and clip an over-long question to the token budget, saying so."""
    text = " ".join((question or "").split())
    if not text:
        raise EmptyQuestionError("the question is empty")
    clipped, was_clipped = clip_tokens(text, max_tokens)
    if was_clipped:
        return clipped, f"question clipped to its first {max_tokens} tokens (of {count_tokens(text)})"
    return text, None


def cues(question: str) -> set[str]:
    """The question's cues: its words, "first:<word>", "first2:<w1> <w2>", and its shape: how many coined names
    ("names:2+": two methods named, as a comparison has) and quoted titles it carries, how many things it asks
    ("asks:2+": two wh-words, as a two-part question about two papers has) and its length in words."""
    tokens = words(question.replace("'", " "))
    present = set(tokens)
    if tokens:
        present.add(f"first:{tokens[0]}")
        present.add(f"first2:{' '.join(tokens[:2])}")
    named = len({n.casefold() for n in name_tokens(question)}) + len(_QUOTED.findall(question)) + \
        len(_TITLED.findall(question[1:]))
    present.add(f"names:{min(named, 2)}{'+' if named >= 2 else ''}")
    asks = sum(t in _WH for t in tokens)
    present.add(f"asks:{min(asks, 2)}{'+' if asks >= 2 else ''}")
    present.add(f"words:{next(b for b in _LENGTHS if len(tokens) <= b)}")
    return present


_WH = {"what", "which", "how", "who", "whom", "whose", "where", "when", "why"}
_LENGTHS = (6, 10, 16, 25, 10**6)  # question length buckets, in words


_QUOTED = re.compile(r"[\"“”]([^\"“”]{8,})[\"“”]")
# A title written out in Title Case ("Memorizing Transformers", "Attention Is All You Need"): two capitalised words
# in a row, not counting the question's first word. A question that names its paper is not a follow-up.
_TITLED = re.compile(r"\b[A-Z][a-z][\w\-']*(?:\s+(?:(?:of|for|in|and|is|are|all|you|with|to|the|a|an)\s+)*[A-Z][\w\-']+)+")


def cue_features(question: str, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Presence of each vocabulary cue in the question."""
    present = cues(question)
    return np.array([cue in present for cue in vocabulary], dtype=np.float64)


def question_features(question: str, vector: np.ndarray, vocabulary: tuple[str, ...]) -> np.ndarray:
    return np.concatenate([vector.astype(np.float64), cue_features(question, vocabulary)])


_FIELDS = (
    (MetadataField.OTHER, re.compile(r"\b(venues?|conferences?|journals?|workshops?|affiliat\w*|institutions?|labs?|"
                                     r"universit\w*|cit(ed|ations?)|licen[cs]e\w*|doi|pages?|isbn)\b", re.IGNORECASE)),
    (MetadataField.AUTHORS, re.compile(r"\b(authors?|wrote|written|writers?|who)\b", re.IGNORECASE)),
    (MetadataField.DATE, re.compile(r"\b(when|year|date|dated|published|publication|released?|month)\b", re.IGNORECASE)),
    (MetadataField.CATEGORY, re.compile(r"\b(categor(y|ies)|subject|area|field|arxiv (class|section))\b", re.IGNORECASE)),
)


def metadata_field(question: str) -> MetadataField:
    """Which bibliographic field a metadata question is about (venue, affiliation, citations…: OTHER)."""
    for field, pattern in _FIELDS:
        if pattern.search(question):
            return field
    return MetadataField.OTHER


def off_topic(vector: np.ndarray, embedding_model: str) -> bool:
    """Whether the question is about something else than ML research ("What time is it right now?" shares words
    with a paper title). The question's vector alone: what it is about, not how it is phrased."""
    vector = np.asarray(vector)
    domain = load_model("domain", tuple(f"vector:{i}" for i in range(vector.shape[-1])))
    trained_with = domain.info.get("embedding")
    if domain.threshold is None or trained_with != embedding_model:
        raise ConfigError(f"learned model domain.json was trained with embedding {trained_with!r} and threshold "
                          f"{domain.threshold}, not for {embedding_model!r}; retrain it with evals/train.py or set "
                          "answer.domain_gate = false")
    return bool(domain.proba(vector[None, :])[0, 0] < domain.threshold)


class QuestionReader:
    """Turns typed text into a Query. Holds the embedder (the question's vector serves retrieval too)."""

    def __init__(self, embedder, max_tokens: int, domain_gate: bool = True, names=None):
        self.embedder = embedder
        self.max_tokens = max_tokens
        self.domain_gate = domain_gate
        self.names = names  # the index's NameIndex: names typed in lower case are read in the corpus's casing

    def read(self, question: str, *, k: int | None = None) -> Query:
        typed, warning = clean_question(question, self.max_tokens)
        text = self.as_written(typed)
        vector = self.embedder.encode_one(text)
        intent, answer_type, follow_up = self.classify(text, vector)
        return Query(question=text, vector=vector, intent=intent, answer_type=answer_type,
                     metadata=metadata_field(text) if intent is Intent.METADATA else None,
                     follow_up=follow_up, k=k,
                     off_topic=self.domain_gate and off_topic(vector, self.embedder.settings.model),
                     warnings=(warning,) if warning else (), typed=typed if typed != text else "")

    def as_written(self, text: str) -> str:
        """The text with names written as the corpus writes them (unchanged without an index's names)."""
        if self.names is None:
            return text
        from .embeddings import ordinary_words

        return self.names.truecase(text, ordinary_words(self.embedder.settings.model))

    def classify(self, text: str, vector: np.ndarray) -> tuple[Intent, AnswerType, bool]:
        intents = load_model("intent")
        vocabulary = tuple(intents.info["vocabulary"])
        x = question_features(text, vector, vocabulary)
        intent = Intent(intents.classes[int(np.argmax(intents.proba(x)[0]))])
        types = load_model("answer_type", intents.features)
        answer_type = AnswerType(types.classes[int(np.argmax(types.proba(x)[0]))])
        follow = load_model("follow_up", intents.features)
        return intent, answer_type, bool(follow.proba(x)[0, 0] >= (follow.threshold or 0.5))

    def with_text(self, query: Query, standalone: str, focus: tuple[str, ...]) -> Query:
        """A follow-up made self-contained: searched as `standalone`, about the `focus` papers."""
        return replace(query, standalone=standalone, retrieval=standalone, focus=focus,
                       vector=self.embedder.encode_one(standalone))
