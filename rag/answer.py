"""The answer chain: retrieve → select evidence → generate (LLM or extractive) → verify → abstain.

Whatever writes the text, only verified sentences with citations to retrieved papers reach the user; with no LLM
configured the extractive composer answers from the best evidence sentences, each cited.
"""
from __future__ import annotations

import re
from typing import Callable

from .config import Settings
from .errors import LLMError, RagError
from .citations import attach_marker, defang
from .evidence import EvidenceSelector, PaperEvidence, answer_type, content_terms, fits_answer_type
from .llm import clip_tokens, count_tokens
from .prompts import REFUSAL, load_prompt
from .types import Answer, Citation, Hit, Usage, Verification


class EmptyQuestionError(RagError):
    """The question has no text."""


_LIST_QUESTION = re.compile(
    r"^\s*(which|what)\s+(papers|works|studies|articles|methods|approaches)\b|^\s*(list|name)\s+(the\s+|all\s+)?"
    r"(papers|works|studies)|\b(are there|any)\s+(papers|works|studies)\b|\ball (the )?papers\b",
    re.IGNORECASE,
)
LIST_K = 15
SENTENCE_MARGIN = 0.05
_THE_X_PAPER = re.compile(r"\bthe ((?:[\w\-']+\s+){0,4}?[\w\-']+) paper\b", re.IGNORECASE)
_NOT_A_NAME = {"original", "famous", "first", "same", "seminal", "well-known", "classic", "above", "this", "that"}


def clean_question(question: str, max_tokens: int) -> tuple[str, str | None]:
    """Collapse whitespace and clip an over-long question to the token budget, saying so."""
    text = " ".join((question or "").split())
    if not text:
        raise EmptyQuestionError("the question is empty")
    clipped, was_clipped = clip_tokens(text, max_tokens)
    if was_clipped:
        return clipped, f"question clipped to its first {max_tokens} tokens (of {count_tokens(text)})"
    return text, None


def is_list_question(question: str) -> bool:
    return bool(_LIST_QUESTION.search(question))


class AnswerChain:
    def __init__(self, retriever, embedder, settings: Settings, llm=None):
        self.retriever = retriever
        self.embedder = embedder
        self.settings = settings
        self.selector = EvidenceSelector(embedder, retriever.term_weights())
        if llm is None and settings.llm.base_url:
            from .llm import LLMClient

            llm = LLMClient.from_settings(settings.llm)
        self.llm = llm

    @property
    def backend_name(self) -> str:
        return self.llm.name if self.llm is not None else "extractive (offline, no LLM)"

    def ask(self, question: str, *, k: int | None = None, on_token: Callable[[str], None] | None = None,
            retrieval_query: str | None = None, standalone: str = "", focus: tuple[str, ...] = ()) -> Answer:
        cfg = self.settings.answer
        question, warning = clean_question(question, cfg.max_question_tokens)
        warnings = (warning,) if warning else ()
        as_list = is_list_question(standalone or question)
        hits, evidence = self.gather(question, k=k, retrieval_query=retrieval_query, standalone=standalone, focus=focus)
        base = dict(question=question, sources=tuple(hits), standalone_question=standalone, warnings=warnings)
        reason = self.abstain_reason(question, evidence)
        if reason:
            return self._abstain(base, on_token, notes=(reason,))
        if self.llm is not None:
            try:
                return self._generate(question if not standalone else standalone, evidence, base, on_token)
            except LLMError as exc:
                base["warnings"] = warnings + (f"{exc}; answered extractively instead",)
        return self._extractive(evidence, as_list, base, on_token)

    def gather(self, question: str, *, k: int | None = None, retrieval_query: str | None = None,
               standalone: str = "", focus: tuple[str, ...] = ()) -> tuple[list[Hit], list[PaperEvidence]]:
        """Retrieve and score evidence; papers ordered by support (a follow-up's own papers first)."""
        cfg = self.settings.answer
        asked = standalone or question
        k = k or (max(LIST_K, self.settings.retrieval.top_k) if is_list_question(asked) else self.settings.retrieval.top_k)
        hits = self.retriever.search(retrieval_query or asked, k, focus=focus)
        evidence = self.selector.select(asked, hits, cfg.evidence_per_paper)
        if focus:
            # A follow-up is about the papers of the earlier turns: answer from them while they support it.
            held = [pe for pe in evidence if pe.hit.paper_id in focus and pe.support >= cfg.abstain_below]
            evidence = held + [pe for pe in evidence if pe not in held]
        return hits, evidence

    # ---- abstain ----------------------------------------------------------------------------------
    def abstain_reason(self, question: str, evidence: list[PaperEvidence]) -> str | None:
        """Why the corpus cannot answer, or None. Each rule was checked against evals/qa.jsonl."""
        cfg = self.settings.answer
        if not evidence or evidence[0].support < cfg.abstain_below:
            return "no passage supports an answer"
        unknown = self.retriever.titles.names_unknown_paper(question)
        if unknown:
            return f"the question names a paper that is not in the index ({unknown!r})"
        named = self._named_paper_missing(question, evidence)
        if named:
            return f"no indexed paper matches {named!r}"
        top = evidence[0]
        if answer_type(question) == "quantity" and not any(
            fits_answer_type("quantity", e.text, question) for e in top.sentences
        ):
            return "the question asks for a number and the best passages hold none"
        return None

    def _named_paper_missing(self, question: str, evidence: list[PaperEvidence]) -> str | None:
        """'the deep residual learning paper': some top paper's title must carry those words."""
        for match in _THE_X_PAPER.finditer(question):
            words = [w for w in match.group(1).split() if w.casefold() not in _NOT_A_NAME]
            terms = set(content_terms(" ".join(words)))
            if not terms:
                continue
            if any(pe.hit.title_match or terms <= set(content_terms(pe.hit.paper.title)) for pe in evidence[:3]):
                continue
            return " ".join(words)
        return None

    @staticmethod
    def _abstain(base: dict, on_token, usage: Usage | None = None, verification: Verification | None = None,
                 notes: tuple[str, ...] = ()) -> Answer:
        if on_token:
            on_token(REFUSAL)
        verification = verification or Verification(notes=notes)
        return Answer(text=REFUSAL, citations=(), abstained=True, usage=usage or Usage(),
                      verification=verification, **base)

    # ---- extractive composer ----------------------------------------------------------------------
    def _extractive(self, evidence: list[PaperEvidence], as_list: bool, base: dict, on_token,
                    verification: Verification | None = None, usage: Usage | None = None) -> Answer:
        cfg = self.settings.answer
        citations: list[Citation] = []
        if as_list:
            floor = max(cfg.list_min_support, evidence[0].support - cfg.list_max_gap)
            chosen = [pe for pe in evidence if pe.support >= floor][: cfg.list_max_papers]
            lines = [f"{len(chosen)} paper{'s' if len(chosen) != 1 else ''} in the corpus bear on this:"]
            for n, pe in enumerate(chosen, 1):
                best = pe.sentences[0]
                citations.append(Citation(number=n, paper_id=pe.hit.paper_id, title=pe.hit.paper.title, quote=best.text))
                lines.append(f"- {defang(pe.hit.paper.title)} [{n}]: {defang(best.text)}")
            text = "\n".join(lines)
        else:
            top = evidence[0]
            best = top.sentences[0]
            picked = [e for i, e in enumerate(top.sentences) if i < 2 or e.score >= best.score - SENTENCE_MARGIN]
            picked = sorted(picked[: cfg.max_sentences], key=lambda e: e.start)
            citations.append(Citation(number=1, paper_id=top.hit.paper_id, title=top.hit.paper.title, quote=best.text))
            body = " ".join(attach_marker(defang(e.text), "[1]") for e in picked)
            text = f"From \u201c{defang(top.hit.paper.title)}\u201d [1]: {body}"
        if on_token:
            on_token(text)
        return Answer(text=text, citations=tuple(citations), abstained=False,
                      usage=usage or Usage(), verification=verification or Verification(), **base)

    # ---- LLM generation + verification ------------------------------------------------------------
    def _generate(self, question: str, evidence: list[PaperEvidence], base: dict, on_token) -> Answer:
        from .citations import StreamVerifier, Verifier

        llm_cfg = self.settings.llm
        system = load_prompt("answer_system").render(refusal=REFUSAL)
        template = load_prompt("answer_user")
        budget = llm_cfg.context_tokens - llm_cfg.max_tokens - count_tokens(system, llm_cfg.encoding) \
            - count_tokens(template.render(question=question, evidence="", refusal=REFUSAL), llm_cfg.encoding) - 16
        numbered: dict = {}
        blocks: list[str] = []
        used = 0
        as_list = is_list_question(question)
        for pe in evidence[: None if as_list else llm_cfg.max_sources]:
            n = len(numbered) + 1
            head = f"[{n}] {defang(pe.hit.paper.title)}\n"
            excerpt = " ".join(defang(e.text) for e in sorted(pe.sentences, key=lambda e: e.start))
            block = head + (defang(pe.hit.paper.abstract) if llm_cfg.evidence == "abstracts" else excerpt)
            cost = count_tokens(block, llm_cfg.encoding)
            if used + cost > budget and llm_cfg.evidence == "abstracts":  # the excerpt is shorter; try it
                block = head + excerpt
                cost = count_tokens(block, llm_cfg.encoding)
            if used + cost > budget:
                break
            numbered[n] = pe.hit.paper
            blocks.append(block)
            used += cost
        user = template.render(question=question, evidence="\n\n".join(blocks), refusal=REFUSAL)
        verifier = Verifier(numbered, self.embedder)
        stream = StreamVerifier(verifier, emit=on_token)
        completion = self.llm.complete([{"role": "system", "content": system}, {"role": "user", "content": user}],
                                       on_token=stream.feed)
        stream.finish()
        usage = Usage(backend="llm", model=completion.model, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens)
        papers = {p.id: p for p in numbered.values()}
        if not verifier.kept:
            if "refusal" in verifier.notes and llm_cfg.on_refusal == "abstain":
                return self._abstain(base, on_token, usage, verifier.report(raw_text=completion.text))
            return self._extractive(evidence, as_list, base, on_token,
                                    verification=verifier.report(fell_back=True, raw_text=completion.text), usage=usage)
        return Answer(text=" ".join(verifier.kept), citations=verifier.citations(papers), abstained=False,
                      usage=usage, verification=verifier.report(raw_text=completion.text), **base)
