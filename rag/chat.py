"""Multi-turn chat state in the library, so the Python API, the REPL and the eval runner share it.

Each turn is resolved into one `Query`: a follow-up ("what speedup did it report?") gets a standalone form, a
retrieval text and the papers it is about (with an LLM by the condense prompt, without one from the chat state:
the papers cited in earlier turns). After `reset()` nothing earlier is used, and a question that points back at
nothing gets a note saying so.
"""
from __future__ import annotations

import re
import threading
from dataclasses import replace
from typing import Callable

from .query import make_query
from .types import Answer, Query

_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|these|those|the paper|the method|the model|the approach|the authors|"
    r"(this|that|the same) (paper|method|model|approach|work|study|one|technique|algorithm|framework)|"
    r"the former|the latter)\b",
    re.IGNORECASE,
)
_MAX_HISTORY_TURNS = 6
NO_EARLIER_TURN = "this looks like a follow-up, but there is no earlier turn in this conversation to refer to"


def is_follow_up(question: str) -> bool:
    return bool(_ANAPHORA.search(question))


class Conversation:
    def __init__(self, chain, max_question_tokens: int, history: list[dict] | None = None):
        self.chain = chain
        self.max_question_tokens = max_question_tokens
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
        query = self.resolve(question, k=k)
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
        query = make_query(question, self.max_question_tokens, k=k)
        if not is_follow_up(query.question):
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
        return make_query(question, self.max_question_tokens, standalone=standalone, retrieval=standalone,
                          focus=tuple(pid for pid, _ in context), follow_up=True, k=k)

    def _context_papers(self) -> list[tuple[str, str]]:
        """(id, title) of the papers the conversation was last about: cited in the latest answer that cited any."""
        for answer in reversed(self.answers):
            if answer.citations:
                return [(c.paper_id, c.title) for c in answer.citations[:2]]
        # History given as text only (e.g. an eval item): find the paper the earlier turns talk about.
        return self.chain.papers_about(" ".join(m["content"] for m in self.history[-4:]))

    def _condense(self, question: str) -> str:
        return self.chain.condense(self.history[-2 * _MAX_HISTORY_TURNS :], question)
