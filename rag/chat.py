"""Multi-turn chat state in the library, so the Python API, the REPL and the eval runner share it.

Each turn is resolved into one `Query`: a follow-up ("what speedup did it report?") gets a standalone form, a
retrieval text and the papers it is about (with an LLM by the condense prompt, without one from the chat state:
the papers cited in earlier turns). After `reset()` nothing earlier is used, and a question that points back at
nothing gets a note saying so.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Callable

from .types import Answer, Filters, Query

_MAX_HISTORY_TURNS = 6
NO_EARLIER_TURN = "this looks like a follow-up, but there is no earlier turn in this conversation to refer to"


class Conversation:
    def __init__(self, chain, reader, history: list[dict] | None = None, filters: Filters = Filters()):
        self.chain = chain
        self.reader = reader
        self.filters = filters
        self.history: list[dict] = [dict(m) for m in history or []]
        self.answers: list[Answer] = []

    def reset(self) -> None:
        self.history.clear()
        self.answers.clear()

    @property
    def last(self) -> Answer | None:
        return self.answers[-1] if self.answers else None

    def ask(self, question: str, *, k: int | None = None, on_token: Callable[[str], None] | None = None,
            cancel: threading.Event | None = None) -> Answer:
        """Answer and remember the turn; a turn cancelled meanwhile (Ctrl-C in the REPL) is not remembered."""
        query = replace(self.resolve(question, k=k), filters=self.filters)
        answer = self.chain.ask(query, on_token=on_token)
        if cancel is not None and cancel.is_set():
            return answer
        self.answers.append(answer)
        self.history.append({"role": "user", "content": question})
        self.history.append({"role": "assistant", "content": answer.text})
        del self.history[: -2 * _MAX_HISTORY_TURNS]
        del self.answers[:-_MAX_HISTORY_TURNS]  # a long session keeps only what follow-ups can refer to
        return answer

    def resolve(self, question: str, k: int | None = None) -> Query:
        """This turn's Query: standalone form, retrieval text and focus papers when it is a follow-up."""
        query = self.reader.read(question, k=k)
        if not query.follow_up:
            return query
        if not self.history:
            return replace(query, warnings=query.warnings + (NO_EARLIER_TURN,))
        context = self._context_papers()
        titles = "; ".join(title for _, title in context)
        rewritten = self._condense(query.question)
        if rewritten:
            # Small models condense loosely; the earlier turn's titles keep retrieval on its papers.
            standalone = f"{rewritten} ({titles})" if titles else rewritten
        elif context:
            standalone = f"{query.question} ({titles})"
        else:
            return query
        return self.reader.with_text(query, standalone, tuple(pid for pid, _ in context))

    def _context_papers(self) -> list[tuple[str, str]]:
        """(id, title) of the papers the conversation was last about: cited in the latest answer that cited any."""
        for answer in reversed(self.answers):
            if answer.citations:
                return [(c.paper_id, c.title) for c in answer.citations[:2]]
        # History given as text only (e.g. an eval item): the paper the latest exchange talks about.
        return self.chain.papers_about(" ".join(m["content"] for m in self.history[-2:]))

    def _condense(self, question: str) -> str:
        return self.chain.condense(self.history[-2 * _MAX_HISTORY_TURNS :], question)
