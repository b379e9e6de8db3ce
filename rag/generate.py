"""Generation: an LLM writes the answer from numbered sources, and only what verification keeps comes out.

Sources are whole abstracts while they fit the model's context window (a capable model can use a sentence the
selector ranked low), else each paper's best sentences. The model answers in text with [n] markers, streamed
and verified sentence by sentence, or (llm.structured) as JSON where each sentence lists its sources.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

from .citations import StreamVerifier, Verifier, defang
from .evidence import PaperEvidence
from .prompts import REFUSAL, load_prompt
from .tokens import count_tokens
from .types import Citation, Intent, Query, Usage, Verification

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"sentences": {"type": "array", "items": {
        "type": "object",
        "properties": {"text": {"type": "string"}, "sources": {"type": "array", "items": {"type": "integer"}}},
        "required": ["text", "sources"]}}},
    "required": ["sentences"],
}


@dataclass(frozen=True)
class Written:
    """What came of one generation: the verified text and citations (empty when nothing survived)."""

    text: str
    citations: tuple[Citation, ...]
    verification: Verification
    usage: Usage

    @property
    def refused(self) -> bool:
        return not self.text and self.verification.model_refused


class Writer:
    def __init__(self, llm, embedder, store, settings, nearest=None):
        self.llm = llm
        self.embedder = embedder
        self.store = store
        self.settings = settings
        self.nearest = nearest  # the verifier asks it which papers a connective is about (Verifier.nearest)

    def _mode(self) -> str:
        mode = self.settings.llm.evidence
        if mode == "auto":
            return "sentences" if self.llm.bundled else "abstracts"
        return mode

    def prompt(self, query: Query, papers: list[PaperEvidence]) -> tuple[list[dict], dict]:
        """Chat messages with numbered sources that fit the context window, and the papers behind the numbers."""
        cfg = self.settings.llm
        system = load_prompt("answer_system_json" if cfg.structured else "answer_system").render(refusal=REFUSAL)
        template = load_prompt("answer_user")
        question = query.asked
        budget = self.llm.context_window() - cfg.max_tokens - count_tokens(system, cfg.encoding) \
            - count_tokens(template.render(question=question, evidence="", refusal=REFUSAL), cfg.encoding) - 16
        numbered: dict = {}
        blocks: list[str] = []
        used = 0
        for pe in papers[: None if query.intent is Intent.LIST else cfg.max_sources]:
            head = f"[{len(numbered) + 1}] {defang(pe.hit.paper.title)}\n"
            best = sorted(pe.shown[: self.settings.answer.evidence_per_paper], key=lambda e: e.start)
            excerpt = head + " ".join(defang(e.text) for e in best)
            block = head + defang(pe.hit.paper.abstract) if self._mode() == "abstracts" else excerpt
            cost = count_tokens(block, cfg.encoding)
            if used + cost > budget and block is not excerpt:  # over budget: the paper's best sentences only
                block, cost = excerpt, count_tokens(excerpt, cfg.encoding)
            if used + cost > budget:
                break
            numbered[len(numbered) + 1] = pe.hit.paper
            blocks.append(block)
            used += cost
        user = template.render(question=question, evidence="\n\n".join(blocks), refusal=REFUSAL)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}], numbered

    def write(self, query: Query, papers: list[PaperEvidence], on_token) -> Written:
        messages, numbered = self.prompt(query, papers)
        verifier = Verifier(numbered, self.embedder, self.store, self.nearest)
        stream = StreamVerifier(verifier, emit=on_token)
        if self.settings.llm.structured:
            completion = self.llm.complete_json(messages, ANSWER_SCHEMA)
            for sentence in _sentences_from_json(completion.text):
                stream.feed(sentence + " ")
        else:
            completion = self.llm.complete(messages, on_token=stream.feed)
        stream.finish()
        usage = Usage(backend="llm", model=completion.model, prompt_tokens=completion.prompt_tokens,
                      completion_tokens=completion.completion_tokens)
        report = verifier.report(raw_text=completion.text)
        if not verifier.kept:
            return Written("", (), report, usage)
        papers_by_id = {p.id: p for p in numbered.values()}
        return Written(" ".join(verifier.kept), verifier.citations(papers_by_id), report, usage)


def _sentences_from_json(text: str) -> list[str]:
    """The structured answer as sentences with [n] markers (what the verifier reads); a refusal passes as text."""
    try:
        data = json.loads(text)
    except ValueError:
        return [text]
    out = []
    for item in data.get("sentences", []) if isinstance(data, dict) else []:
        if not isinstance(item, dict):
            continue
        sentence = str(item.get("text", "")).strip()
        markers = "".join(f"[{n}]" for n in item.get("sources", []) if isinstance(n, int))
        if sentence:
            out.append(f"{sentence.rstrip('.')} {markers}." if markers else sentence)
    return out


def fell_back(written: Written) -> Verification:
    return replace(written.verification, fell_back=True)
