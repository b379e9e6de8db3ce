"""Domain objects passed between pipeline stages. Frozen so no stage edits another's output."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class Paper:
    """One unique paper. `sources` lists every file:line it was read from (a paper may sit on several pages)."""

    id: str
    title: str
    abstract: str
    url: str = ""
    authors: tuple[str, ...] = ()
    published: str = ""
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """A paper as the HTTP API and MCP server return it."""
        return {"id": self.id, "title": self.title, "abstract": self.abstract, "url": self.url,
                "authors": list(self.authors), "published": self.published, "categories": list(self.categories)}

    @property
    def content_hash(self) -> str:
        """What the embeddings depend on: a changed hash means the paper's chunks must be rebuilt."""
        return hashlib.sha256(f"{self.title}\n{self.abstract}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Chunk:
    """A piece of one abstract; `start`/`end` index the abstract so a quote can be taken from it."""

    id: str
    paper_id: str
    index: int
    text: str
    start: int
    end: int
    title: str

    @property
    def embed_text(self) -> str:
        """Text given to the embedding model: the title gives every chunk its paper's context."""
        return f"{self.title}\n{self.text}"


@dataclass(frozen=True)
class Sentence:
    """One sentence of an abstract, as split once at ingest: `abstract[start:end] == text`. `terms` are its
    stemmed content words (rag.text.terms), stored so no question re-tokenizes abstracts."""

    paper_id: str
    index: int
    start: int
    end: int
    text: str
    terms: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Hit:
    """A retrieved paper with the scores that ranked it and its best matching chunk."""

    paper: Paper
    score: float
    rank: int
    dense_score: float | None = None
    bm25_score: float | None = None
    bm25_rank: int | None = None
    title_match: bool = False
    snippet: str = ""

    @property
    def paper_id(self) -> str:
        return self.paper.id

    def to_dict(self) -> dict:
        """The `rag search --json` row; the HTTP API returns the same."""
        return {"paper_id": self.paper_id, "title": self.paper.title, "score": round(self.score, 6),
                "snippet": self.snippet}


@dataclass(frozen=True)
class Evidence:
    """A sentence of a retrieved abstract that bears on the question, scored for it."""

    sentence: Sentence
    score: float

    @property
    def text(self) -> str:
        return self.sentence.text

    @property
    def start(self) -> int:
        return self.sentence.start


class Intent(str, Enum):
    """What the user wants from the corpus; decides how the answer is composed."""

    FACT = "fact"              # a fact stated by one paper
    DEFINITION = "definition"  # what a named method/model/dataset is
    LIST = "list"              # every paper on a topic
    COMPARE = "compare"        # the same fact of two papers, side by side
    METADATA = "metadata"      # authors, dates, venues, categories


class AnswerType(str, Enum):
    """The kind of thing the answer sentence must hold."""

    NUMBER = "number"
    NAME = "name"
    ANY = "any"


class MetadataField(str, Enum):
    AUTHORS = "authors"
    DATE = "published"
    CATEGORY = "categories"
    OTHER = "other"  # venue, affiliation, citations...: never in an index


_ISO_PREFIX = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


@dataclass(frozen=True)
class Filters:
    """Restrictions on which papers may answer, from the papers' metadata (when the records carried it).
    Dates are ISO prefixes ("2023", "2023-06", "2023-06-30"), compared by the same prefix of `published`."""

    since: str | None = None
    until: str | None = None
    category: str | None = None
    author: str | None = None

    def __bool__(self) -> bool:
        return any((self.since, self.until, self.category, self.author))

    def problems(self) -> list[str]:
        """What is wrong with these filters as given (a date that is not an ISO prefix), for a clear error."""
        return [f"{name} {value!r} is not a date like 2023, 2023-06 or 2023-06-30"
                for name, value in (("since", self.since), ("until", self.until))
                if value and not _ISO_PREFIX.fullmatch(value)]

    def describe(self) -> str:
        parts = [f"{name} {value!r}" for name, value in (("since", self.since), ("until", self.until),
                                                          ("category", self.category), ("author", self.author)) if value]
        return ", ".join(parts)


@dataclass(frozen=True)
class Query:
    """One turn's question, resolved once: what was typed, what is searched, which papers a follow-up is about,
    and what kind of answer is wanted. Every stage reads it; none re-derives it."""

    question: str  # as read: names written as the corpus writes them (NameIndex.truecase)
    standalone: str = ""
    retrieval: str = ""
    focus: tuple[str, ...] = ()
    intent: Intent = Intent.FACT
    answer_type: AnswerType = AnswerType.ANY
    metadata: MetadataField | None = None
    follow_up: bool = False
    off_topic: bool = False  # the domain model reads it as outside ML research (answer.domain_gate on)
    k: int | None = None
    warnings: tuple[str, ...] = ()
    filters: Filters = field(default_factory=Filters)
    vector: object = field(default=None, compare=False, repr=False)  # embedding of `search_text`
    typed: str = ""  # the question as the user typed it, when reading rewrote a name (shown back to them)
    # the question without the metadata it states and the filters hold ("… published since 2024"): a year or an
    # author's name is in no abstract, so papers are searched and judged for the rest
    topic: str = ""

    @property
    def asked(self) -> str:
        """The self-contained question the answer must address (what a model is asked)."""
        return self.standalone or self.question

    @property
    def judged(self) -> str:
        """What papers and sentences are judged against: the question without the metadata it states."""
        return self.topic or self.asked

    @property
    def search_text(self) -> str:
        return self.retrieval or self.judged


@dataclass(frozen=True)
class Citation:
    """A cited paper with a quote that occurs verbatim in its abstract."""

    number: int
    paper_id: str
    title: str
    quote: str


@dataclass(frozen=True)
class Usage:
    backend: str = "extractive"
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class AbstainReason(str, Enum):
    NO_SUPPORT = "no passage supports an answer"
    UNKNOWN_PAPER = "the question names a paper that is not in the index"
    NO_NUMBER = "the question asks for a number and the best passages hold none"
    MISSING_NAME = "a name the question asks about is in none of the supporting papers"
    NAMES_APART = "no paper holds the names the question asks about together"
    NO_TOPIC = "no paper in the corpus is about the topic the question asks for"
    NO_METADATA = "the index holds no such metadata for these papers"
    MODEL_REFUSED = "the model found no answer in the sources"
    OFF_CORPUS = "most of the question's words occur in no indexed abstract"
    OFF_TOPIC = "the question is not about machine-learning research"


@dataclass(frozen=True)
class Verification:
    """What verification removed from a generated answer, so its effect can be measured."""

    dropped_citations: int = 0
    removed_sentences: int = 0
    fell_back: bool = False
    kept_sentences: int = 0
    reattributed: int = 0
    model_refused: bool = False
    abstain_reason: AbstainReason | None = None
    raw_text: str = ""


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    citations: tuple[Citation, ...]
    sources: tuple[Hit, ...]
    abstained: bool
    usage: Usage = field(default_factory=Usage)
    standalone_question: str = ""
    verification: Verification = field(default_factory=Verification)
    warnings: tuple[str, ...] = ()
    intent: Intent | None = None
    confidence: float | None = None  # P(the candidate paper states the answer), from the answers model
    candidate: str = ""              # that paper's id: cited when confidence clears the threshold

    def to_dict(self) -> dict:
        """The `rag ask --json` shape; scripts depend on these keys."""
        return {
            "question": self.question,
            "text": self.text,
            "abstained": self.abstained,
            "citations": [
                {"number": c.number, "paper_id": c.paper_id, "title": c.title, "quote": c.quote}
                for c in self.citations
            ],
            "sources": [
                {"paper_id": h.paper_id, "title": h.paper.title, "score": round(h.score, 6)}
                for h in self.sources
            ],
            "usage": {
                "backend": self.usage.backend,
                "model": self.usage.model,
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
            "standalone_question": self.standalone_question,
            "intent": self.intent.value if self.intent else None,
            "confidence": round(self.confidence, 4) if self.confidence is not None else None,
            "candidate": self.candidate or None,
            "abstain_reason": self.verification.abstain_reason.value if self.verification.abstain_reason else None,
            "verification": {
                "dropped_citations": self.verification.dropped_citations,
                "removed_sentences": self.verification.removed_sentences,
                "fell_back": self.verification.fell_back,
                "kept_sentences": self.verification.kept_sentences,
                "raw_text": self.verification.raw_text,
            },
            "warnings": list(self.warnings),
        }
