"""The answer chain: retrieve → select evidence → decide whether the corpus answers → compose (LLM or extractive).

Whatever writes the text, only verified sentences with citations to retrieved papers reach the user; with no LLM
configured the extractive composer answers from the best evidence sentences, each cited.
"""
from __future__ import annotations

import re
from typing import Callable

from .citations import attach_marker, defang
from .config import Settings
from .errors import LLMError
from .evidence import EvidenceSelector, PaperEvidence, fits_answer_type
from .prompts import REFUSAL, load_prompt
from .text import terms
from .tokens import count_tokens
from .types import AbstainReason, Answer, AnswerType, Citation, Hit, Intent, Query, Usage, Verification

LIST_K = 15
SENTENCE_MARGIN = 0.05
_THE_X_PAPER = re.compile(r"\bthe ((?:[\w\-']+\s+){0,4}?[\w\-']+) paper\b", re.IGNORECASE)
_NOT_A_NAME = {"original", "famous", "first", "same", "seminal", "well-known", "classic", "above", "this", "that"}

OnToken = Callable[[str], None] | None


class AnswerChain:
    def __init__(self, retriever, embedder, settings: Settings, llm=None):
        self.retriever = retriever
        self.embedder = embedder
        self.store = retriever.index.store
        self.settings = settings
        self.selector = EvidenceSelector(self.store)
        if llm is None and settings.llm.base_url:
            from .llm import LLMClient

            llm = LLMClient.from_settings(settings.llm)
        self.llm = llm

    @property
    def backend_name(self) -> str:
        return self.llm.name if self.llm is not None else "extractive (offline, no LLM)"

    def ask(self, query: Query, on_token: OnToken = None) -> Answer:
        hits, evidence = self.gather(query)
        base = dict(question=query.question, sources=tuple(hits), standalone_question=query.standalone,
                    warnings=query.warnings)
        reason = self.abstain_reason(query, evidence)
        if reason:
            return self._abstain(base, on_token, Verification(abstain_reason=reason))
        if self.llm is not None:
            try:
                return self._generate(query, evidence, base, on_token)
            except LLMError as exc:
                base["warnings"] = query.warnings + (f"{exc}; answered extractively instead",)
        return self._extractive(evidence, query.intent is Intent.LIST, base, on_token)

    def gather(self, query: Query) -> tuple[list[Hit], list[PaperEvidence]]:
        """Retrieve and score evidence; papers ordered by support (a follow-up's own papers first)."""
        cfg = self.settings.answer
        top_k = self.settings.retrieval.top_k
        k = query.k or (max(LIST_K, top_k) if query.intent is Intent.LIST else top_k)
        vector = self.retriever.embed(query.search_text)
        hits = self.retriever.search(query.search_text, k, focus=query.focus, vector=vector)
        evidence = self.selector.select(query, vector, hits, cfg.evidence_per_paper)
        if query.focus:
            # A follow-up is about the papers of the earlier turns: answer from them while they support it.
            held = [pe for pe in evidence if pe.hit.paper_id in query.focus and pe.support >= cfg.abstain_below]
            evidence = held + [pe for pe in evidence if pe not in held]
        return hits, evidence

    def papers_about(self, text: str) -> list[tuple[str, str]]:
        """(id, title) of the paper a piece of conversation is about, if one clearly is."""
        _, evidence = self.gather(Query(question=text, k=3)) if text.strip() else ([], [])
        if evidence and evidence[0].support >= self.settings.answer.abstain_below:
            return [(evidence[0].hit.paper_id, evidence[0].hit.paper.title)]
        return []

    def condense(self, history: list[dict], question: str) -> str:
        """The LLM's standalone rewrite of a follow-up ("" without an LLM, or when the call fails)."""
        if self.llm is None:
            return ""
        turns = "\n".join(f"{m['role']}: {m['content']}" for m in history)
        prompt = load_prompt("condense").render(history=turns, question=question)
        try:
            completion = self.llm.complete([{"role": "user", "content": prompt}])
        except LLMError:
            return ""
        return " ".join(completion.text.split())[:1000]

    # ---- abstain ----------------------------------------------------------------------------------
    def abstain_reason(self, query: Query, evidence: list[PaperEvidence]) -> AbstainReason | None:
        """Why the corpus cannot answer, or None."""
        cfg = self.settings.answer
        if not evidence or evidence[0].support < cfg.abstain_below:
            return AbstainReason.NO_SUPPORT
        if self.store.names.names_unknown_paper(query.question) or self._named_paper_missing(query, evidence):
            return AbstainReason.UNKNOWN_PAPER
        top = evidence[0]
        if query.answer_type is AnswerType.NUMBER and not any(
            fits_answer_type(AnswerType.NUMBER, e.text, query.question) for e in top.sentences
        ):
            return AbstainReason.NO_NUMBER
        return None

    def _named_paper_missing(self, query: Query, evidence: list[PaperEvidence]) -> bool:
        """'the deep residual learning paper': some top paper's title must carry those words."""
        for match in _THE_X_PAPER.finditer(query.question):
            words = [w for w in match.group(1).split() if w.casefold() not in _NOT_A_NAME]
            wanted = set(terms(" ".join(words)))
            if wanted and not any(pe.hit.title_match or wanted <= set(terms(pe.hit.paper.title))
                                  for pe in evidence[:3]):
                return True
        return False

    @staticmethod
    def _abstain(base: dict, on_token: OnToken, verification: Verification, usage: Usage | None = None) -> Answer:
        if on_token:
            on_token(REFUSAL)
        return Answer(text=REFUSAL, citations=(), abstained=True, usage=usage or Usage(), verification=verification,
                      **base)

    # ---- extractive composer ----------------------------------------------------------------------
    def _extractive(self, evidence: list[PaperEvidence], as_list: bool, base: dict, on_token: OnToken,
                    verification: Verification | None = None, usage: Usage | None = None) -> Answer:
        text, citations = (self._list_answer if as_list else self._single_answer)(evidence)
        if on_token:
            on_token(text)
        return Answer(text=text, citations=tuple(citations), abstained=False,
                      usage=usage or Usage(), verification=verification or Verification(), **base)

    def _list_answer(self, evidence: list[PaperEvidence]) -> tuple[str, list[Citation]]:
        cfg = self.settings.answer
        floor = max(cfg.list_min_support, evidence[0].support - cfg.list_max_gap)
        chosen = [pe for pe in evidence if pe.support >= floor][: cfg.list_max_papers]
        lines = [f"{len(chosen)} paper{'s' if len(chosen) != 1 else ''} in the corpus bear on this:"]
        citations = []
        for n, pe in enumerate(chosen, 1):
            best = pe.sentences[0]
            citations.append(Citation(number=n, paper_id=pe.hit.paper_id, title=pe.hit.paper.title, quote=best.text))
            lines.append(f"- {defang(pe.hit.paper.title)} [{n}]: {defang(best.text)}")
        return "\n".join(lines), citations

    def _single_answer(self, evidence: list[PaperEvidence]) -> tuple[str, list[Citation]]:
        top = evidence[0]
        best = top.sentences[0]
        picked = [e for i, e in enumerate(top.sentences) if i < 2 or e.score >= best.score - SENTENCE_MARGIN]
        picked = sorted(picked[: self.settings.answer.max_sentences], key=lambda e: e.start)
        body = " ".join(attach_marker(defang(e.text), "[1]") for e in picked)
        text = f"From \u201c{defang(top.hit.paper.title)}\u201d [1]: {body}"
        return text, [Citation(number=1, paper_id=top.hit.paper_id, title=top.hit.paper.title, quote=best.text)]

    # ---- LLM generation + verification ------------------------------------------------------------
    def _prompt(self, query: Query, evidence: list[PaperEvidence]) -> tuple[list[dict], dict]:
        """Chat messages with numbered sources that fit the context budget, and the papers behind the numbers."""
        llm_cfg = self.settings.llm
        system = load_prompt("answer_system").render(refusal=REFUSAL)
        template = load_prompt("answer_user")
        question = query.asked
        budget = llm_cfg.context_tokens - llm_cfg.max_tokens - count_tokens(system, llm_cfg.encoding) \
            - count_tokens(template.render(question=question, evidence="", refusal=REFUSAL), llm_cfg.encoding) - 16
        numbered: dict = {}
        blocks: list[str] = []
        used = 0
        for pe in evidence[: None if query.intent is Intent.LIST else llm_cfg.max_sources]:
            head = f"[{len(numbered) + 1}] {defang(pe.hit.paper.title)}\n"
            excerpt = head + " ".join(defang(e.text) for e in sorted(pe.sentences, key=lambda e: e.start))
            block = head + defang(pe.hit.paper.abstract) if llm_cfg.evidence == "abstracts" else excerpt
            cost = count_tokens(block, llm_cfg.encoding)
            if used + cost > budget and block is not excerpt:  # the excerpt is shorter; try it
                block, cost = excerpt, count_tokens(excerpt, llm_cfg.encoding)
            if used + cost > budget:
                break
            numbered[len(numbered) + 1] = pe.hit.paper
            blocks.append(block)
            used += cost
        user = template.render(question=question, evidence="\n\n".join(blocks), refusal=REFUSAL)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}], numbered

    def _generate(self, query: Query, evidence: list[PaperEvidence], base: dict, on_token: OnToken) -> Answer:
        from .citations import StreamVerifier, Verifier

        messages, numbered = self._prompt(query, evidence)
        verifier = Verifier(numbered, self.embedder, self.store)
        stream = StreamVerifier(verifier, emit=on_token)
        completion = self.llm.complete(messages, on_token=stream.feed)
        stream.finish()
        usage = Usage(backend="llm", model=completion.model, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens)
        if not verifier.kept:
            if verifier.model_refused and self.settings.llm.on_refusal == "abstain":
                report = verifier.report(raw_text=completion.text)
                return self._abstain(base, on_token, _with_reason(report, AbstainReason.MODEL_REFUSED), usage)
            return self._extractive(evidence, query.intent is Intent.LIST, base, on_token,
                                    verification=verifier.report(fell_back=True, raw_text=completion.text), usage=usage)
        papers = {p.id: p for p in numbered.values()}
        return Answer(text=" ".join(verifier.kept), citations=verifier.citations(papers), abstained=False,
                      usage=usage, verification=verifier.report(raw_text=completion.text), **base)


def _with_reason(report: Verification, reason: AbstainReason) -> Verification:
    from dataclasses import replace

    return replace(report, abstain_reason=reason)

