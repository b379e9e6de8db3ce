"""Question understanding, done once per turn: the cleaned question, its intent and the answer type it wants.

The result is a `Query` (rag.types) that every later stage reads; nothing downstream re-classifies the text.
"""
from __future__ import annotations

import re

from .errors import RagError
from .tokens import clip_tokens, count_tokens
from .types import AnswerType, Intent, Query


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


_LIST_QUESTION = re.compile(
    r"^\s*(which|what)\s+(papers|works|studies|articles|methods|approaches)\b|^\s*(list|name)\s+(the\s+|all\s+)?"
    r"(papers|works|studies)|\b(are there|any)\s+(papers|works|studies)\b|\ball (the )?papers\b",
    re.IGNORECASE,
)
_QUANTITY = re.compile(
    r"\b(how (many|much|large|big|fast|long|often|small)|by (how much|what factor)|up to what|to how many|"
    r"what (share|fraction|percentage|proportion|size|accuracy|score|speedup|error|rate|roc-auc|auc|fid|number|factor)|"
    r"how .{0,40}\b(improve|gain|drop|reduce|change|speed))",
    re.IGNORECASE,
)
_NAME = re.compile(
    r"\b(name[ds]?|called|which (model|benchmark|dataset|technique|method|loss|theorem|theory|game|engine|framework|"
    r"algorithm|activation|normalization|synthetic benchmark|training objective|model|paradigm|kinds? of))\b",
    re.IGNORECASE,
)


def classify(question: str) -> tuple[Intent, AnswerType]:
    intent = Intent.LIST if _LIST_QUESTION.search(question) else Intent.FACT
    if _QUANTITY.search(question):
        return intent, AnswerType.NUMBER
    if _NAME.search(question):
        return intent, AnswerType.NAME
    return intent, AnswerType.ANY


def make_query(question: str, max_tokens: int, *, standalone: str = "", retrieval: str = "",
               focus: tuple[str, ...] = (), follow_up: bool = False, k: int | None = None,
               warnings: tuple[str, ...] = ()) -> Query:
    """Clean, then classify the self-contained form of the question."""
    question, warning = clean_question(question, max_tokens)
    intent, answer_type = classify(standalone or question)
    return Query(question=question, standalone=standalone, retrieval=retrieval, focus=focus, intent=intent,
                 answer_type=answer_type, follow_up=follow_up, k=k,
                 warnings=warnings + ((warning,) if warning else ()))
