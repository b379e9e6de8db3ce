"""Multi-turn chat state in the library, so the Python API, the REPL and the eval runner share it.

A follow-up ("what speedup did it report?") is made standalone before retrieval: with an LLM by the condense
prompt, without one from the chat state (the papers cited in earlier turns). After `reset()` nothing earlier is
used, and a question that points back at nothing gets a note saying so.
"""
from __future__ import annotations

import re
import threading
from typing import Callable

from .errors import LLMError
from .prompts import load_prompt
from .types import Answer

_ANAPHORA = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|these|those|the paper|the method|the model|the approach|the authors|"
    r"(this|that|the same) (paper|method|model|approach|work|study|one|technique|algorithm|framework)|"
    r"the former|the latter)\b",
    re.IGNORECASE,
)
_MAX_HISTORY_TURNS = 6


def is_follow_up(question: str) -> bool:
    return bool(_ANAPHORA.search(question))


class Conversation:
    def __init__(self, assistant, history: list[dict] | None = None):
        self.assistant = assistant
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
        chain = self.assistant.chain
        standalone, query, focus, note = self._resolve(question, chain)
        answer = chain.ask(question, k=k, on_token=on_token, retrieval_query=query, standalone=standalone, focus=focus)
        if cancel is not None and cancel.is_set():
            return answer
        if note:
            from dataclasses import replace

            answer = replace(answer, warnings=answer.warnings + (note,))
        self.answers.append(answer)
        self.history.append({"role": "user", "content": question})
        self.history.append({"role": "assistant", "content": answer.text})
        del self.history[: -2 * _MAX_HISTORY_TURNS]
        del self.answers[:-_MAX_HISTORY_TURNS]  # a long session keeps only what follow-ups can refer to
        return answer

    def _resolve(self, question: str, chain) -> tuple[str, str | None, tuple[str, ...], str | None]:
        """(standalone question, retrieval query, focus paper ids, note) for this turn."""
        if not is_follow_up(question):
            return "", None, (), None
        if not self.history:
            return "", None, (), ("this looks like a follow-up, but there is no earlier turn in this conversation "
                                  "to refer to")
        context = self._context_papers(chain)
        focus = tuple(pid for pid, _ in context)
        titles = "; ".join(title for _, title in context)
        if chain.llm is not None:
            try:
                rewritten = self._condense_with_llm(question, chain.llm)
                if rewritten:
                    # Small models condense loosely; the earlier turn's titles keep retrieval on its papers.
                    standalone = f"{rewritten} ({titles})" if titles else rewritten
                    return standalone, standalone, focus, None
            except LLMError:
                pass
        if not context:
            return "", None, (), None
        standalone = f"{question} ({titles})"
        return standalone, standalone, focus, None

    def _context_papers(self, chain) -> list[tuple[str, str]]:
        """(id, title) of the papers the conversation was last about: cited in the latest answer that cited any."""
        for answer in reversed(self.answers):
            if answer.citations:
                return [(c.paper_id, c.title) for c in answer.citations[:2]]
        # History given as text only (e.g. an eval item): find the paper the earlier turns talk about.
        text = " ".join(m["content"] for m in self.history[-4:])
        if not text.strip():
            return []
        hits = chain.retriever.search(text, 3)
        evidence = chain.selector.select(text, hits, 1)
        if evidence and evidence[0].support >= chain.settings.answer.abstain_below:
            return [(evidence[0].hit.paper_id, evidence[0].hit.paper.title)]
        return []

    def _condense_with_llm(self, question: str, llm) -> str:
        turns = "\n".join(f"{m['role']}: {m['content']}" for m in self.history[-2 * _MAX_HISTORY_TURNS :])
        prompt = load_prompt("condense").render(history=turns, question=question)
        completion = llm.complete([{"role": "user", "content": prompt}])
        return " ".join(completion.text.split())[:1000]
