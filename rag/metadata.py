"""Metadata in questions: when the indexed records carry authors and dates, "papers by Hinton since 2023" is a
restriction on which papers may answer, read here into `Filters` (rag.types).

Years and author names are data types, not phrasings: a year next to since/after/before/until/in, and a
capitalised word that is an indexed author's name. Nothing is read when the index holds no such metadata.
"""
from __future__ import annotations

import re

from .text import coined, terms
from .types import Filters, Query

_SINCE = re.compile(r"\b(?:since|after|starting(?: in)?|newer than|later than)\s+((?:19|20)\d\d)\b", re.I)
_UNTIL = re.compile(r"\b(?:before|until|till|up to|through|older than|earlier than|by)\s+((?:19|20)\d\d)\b", re.I)
_IN = re.compile(r"\b(?:in|during|of|from)\s+((?:19|20)\d\d)\b(?!\s*(?:-|to|and)\s*\d)", re.I)
_RANGE = re.compile(r"(?:\b(?:from|between)\s+)?\b((?:19|20)\d\d)\s*(?:-|–|to|and)\s*((?:19|20)\d\d)\b", re.I)


def _year_phrases(question: str) -> dict[str, re.Match]:
    """The phrases a question states its years in, by kind: a range, else since and/or until, else "in"."""
    if match := _RANGE.search(question):
        return {"range": match}
    found = {kind: m for kind, m in (("since", _SINCE.search(question)), ("until", _UNTIL.search(question))) if m}
    return found or ({"in": m} if (m := _IN.search(question)) else {})


def _years(question: str) -> tuple[str | None, str | None]:
    phrases = _year_phrases(question)
    if "range" in phrases:
        return phrases["range"].group(1), phrases["range"].group(2)
    if "in" in phrases:
        return phrases["in"].group(1), phrases["in"].group(1)
    since, until = phrases.get("since"), phrases.get("until")
    before = str(int(until.group(1)) - 1) if until and until.group(0).lower().startswith(("before", "older",
                                                                                          "earlier")) else None
    return (since.group(1) if since else None), (before or (until.group(1) if until else None))


def implied_filters(query: Query, store) -> Filters:
    """Filters the question states about metadata the index holds (else none)."""
    since = until = author = None
    if store.has_metadata("published"):
        since, until = _years(query.asked)
    if store.has_metadata("authors"):
        author = _author(query.asked, store)
    return Filters(since=since, until=until, author=author)


def _author(question: str, store) -> str | None:
    """The longest run of capitalised words (not the question's first word) that an indexed author's name holds."""
    runs = [m.group(0) for m in re.finditer(r"(?<!^)\b[A-Z][\w\-']+(?:\s+[A-Z][\w\-']+)*", question)]
    candidates = sorted({" ".join(r.split()[i:j]) for r in runs for i in range(len(r.split()))
                         for j in range(i + 1, len(r.split()) + 1)}, key=lambda c: (-len(c), c))
    for name in candidates:
        if len(name) > 2 and not any(coined(w) for w in name.split()) and store.matching(Filters(author=name)):
            return name
    return None


def without_metadata(question: str, filters: Filters) -> str:
    """The question without the metadata it states ("Which papers on grokking were published since 2024?" →
    "Which papers on grokking were published?"): a year or an author's name is in no abstract, so judged as part
    of the topic it made every paper of a filtered pool look off the question. Only the phrases the filters were
    read from go ("by Adam on Adam optimizers" keeps the second Adam)."""
    text = question
    if filters.since or filters.until:
        for match in sorted(_year_phrases(text).values(), key=lambda m: -m.start()):
            text = text[:match.start()] + " " + text[match.end():]
    if filters.author:
        text = re.sub(rf"(?:\b(?:by|from|of)\s+)?\b{re.escape(filters.author)}\b(?:'s)?", " ", text, count=1,
                      flags=re.IGNORECASE)
    return re.sub(r"\s+([?.!,])", r"\1", " ".join(text.split())).lstrip(",;: ")


def topic_left(query: Query) -> bool:
    """Whether the question asks about anything beyond its metadata (a topic, a method): "papers by X since
    2023" asks for every paper passing the filters; "papers by X on diffusion" still has a topic to judge."""
    named = set(terms(query.filters.author or ""))
    return any(t not in named and not t.isdigit() for t in terms(query.judged, question=True))
