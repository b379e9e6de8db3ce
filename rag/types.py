"""Domain objects passed between pipeline stages. Frozen so no stage edits another's output."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


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
class Hit:
    """A retrieved paper with the scores that ranked it and its best matching chunk."""

    paper: Paper
    score: float
    rank: int
    dense_score: float | None = None
    bm25_score: float | None = None
    title_match: bool = False
    snippet: str = ""
    snippet_start: int = 0

    @property
    def paper_id(self) -> str:
        return self.paper.id


@dataclass(frozen=True)
class Evidence:
    """A sentence of a retrieved abstract that bears on the question, with where it sits in the abstract."""

    paper_id: str
    title: str
    text: str
    start: int
    end: int
    score: float
    similarity: float
    lexical: float


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


@dataclass(frozen=True)
class Verification:
    """What verification removed from a generated answer, so its effect can be measured."""

    dropped_citations: int = 0
    removed_sentences: int = 0
    fell_back: bool = False
    notes: tuple[str, ...] = ()
    kept_sentences: int = 0
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
            "verification": {
                "dropped_citations": self.verification.dropped_citations,
                "removed_sentences": self.verification.removed_sentences,
                "fell_back": self.verification.fell_back,
                "kept_sentences": self.verification.kept_sentences,
                "raw_text": self.verification.raw_text,
            },
            "warnings": list(self.warnings),
        }
