"""Citation parsing and verification of generated text against the cited abstracts.

A generated sentence keeps a citation only if the cited paper's abstract supports it (a sentence of that abstract
shares its meaning and its content words, and every number it states). A sentence whose cited paper does not
support it is re-attributed to a source paper that does, or removed. Citations are paper ids; the [n] numbers
shown to the user are assigned here, in order of first use, never copied from the model's output.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .evidence import load_sentences, make_probe
from .prompts import REFUSAL
from .text import fold, numbers_in, split_sentences
from .types import Citation, Paper, Verification

MARKER = re.compile(r"\[(\s*\d+(?:\s*[,;–-]\s*\d+)*\s*)\]")
SUPPORT_MIN = 0.55


def defang(text: str) -> str:
    """Abstract text is data: a "[3]" inside it must not read as one of our citation markers."""
    return MARKER.sub(lambda m: f"(ref. {m.group(1).strip()})", text)


def parse_markers(text: str) -> list[int]:
    """All citation numbers in a sentence: [1], [1, 3], [2-4]."""
    numbers: list[int] = []
    for match in MARKER.finditer(text):
        for part in re.split(r"\s*[,;]\s*", match.group(1).strip()):
            if re.fullmatch(r"\d+\s*[–-]\s*\d+", part):
                lo, hi = (int(x) for x in re.split(r"\s*[–-]\s*", part))
                numbers.extend(range(lo, min(hi, lo + 20) + 1))
            elif part.isdigit():
                numbers.append(int(part))
    return list(dict.fromkeys(numbers))


def strip_markers(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", text)).strip()


_MARKER_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[[\d\s,;–-]+\])+)")


def split_claims(text: str) -> list[str]:
    """Sentences of generated text; a marker after the full stop ("... faster. [1]") stays with its sentence."""
    text = _MARKER_AFTER_STOP.sub(lambda m: f"{m.group(2)}{m.group(1)}", text)
    out: list[str] = []
    for line in text.splitlines():
        for start, end in split_sentences(line):
            piece = line[start:end].strip()
            if out and not strip_markers(piece) and MARKER.search(piece):
                out[-1] = f"{out[-1]} {piece}"
            elif piece:
                out.append(piece)
    return out


def is_refusal(text: str) -> bool:
    folded = " ".join(strip_markers(text).casefold().split()).rstrip(".")
    return REFUSAL.casefold().rstrip(".") in folded


@dataclass
class _Support:
    score: float
    quote: str


class Verifier:
    """Checks generated sentences one at a time (so a stream can be verified as it arrives), against the stored
    sentences of the numbered source papers, with the same relevance() that selected the evidence."""

    def __init__(self, numbered: dict[int, Paper], embedder, store):
        self.numbered = numbered
        self.embedder = embedder
        self.store = store
        self._papers = load_sentences(store, {p.id: p for p in numbered.values()}.values())
        self.order: list[str] = []
        self.quotes: dict[str, str] = {}
        self.dropped_citations = 0
        self.removed_sentences = 0
        self.reattributed = 0
        self.model_refused = False
        self.kept: list[str] = []

    def support(self, claim: str, probe, paper: Paper) -> _Support:
        stored = self._papers[paper.id]
        if not stored.sentences or numbers_in(claim) - numbers_in(paper.abstract) - numbers_in(paper.title):
            return _Support(0.0, stored.sentences[0].text if stored.sentences else "")
        scores = stored.scores(probe)
        best = int(np.argmax(scores))
        return _Support(float(scores[best]), stored.sentences[best].text)

    def add(self, sentence: str) -> str | None:
        """The verified sentence with final [n] markers, or None when it is removed."""
        claim = strip_markers(sentence).replace("\\%", "%")  # LaTeX-escaped percent copied from abstracts
        if not claim:
            return None
        if is_refusal(claim):
            self.model_refused = True
            return None
        if self._restates_a_title(claim):
            self.removed_sentences += 1
            return None
        cited_numbers = parse_markers(sentence)
        valid = [n for n in cited_numbers if n in self.numbered]
        self.dropped_citations += len(cited_numbers) - len(valid)
        probe = make_probe(self.store, self.embedder.encode_one(claim), claim, question=False)
        kept: list[tuple[str, str]] = []
        for n in valid:
            paper = self.numbered[n]
            found = self.support(claim, probe, paper)
            if found.score >= SUPPORT_MIN:
                kept.append((paper.id, found.quote))
            else:
                self.dropped_citations += 1
        if not kept:
            candidates = [(self.support(claim, probe, p), p) for p in {p.id: p for p in self.numbered.values()}.values()]
            candidates = [(s, p) for s, p in candidates if s.score >= SUPPORT_MIN]
            if candidates:
                found, paper = max(candidates, key=lambda sp: sp[0].score)
                kept.append((paper.id, found.quote))
                self.reattributed += 1
        if not kept:
            self.removed_sentences += 1
            return None
        markers = []
        for pid, quote in dict(kept).items():
            if pid not in self.quotes:
                self.order.append(pid)
                self.quotes[pid] = quote
            markers.append(f"[{self.order.index(pid) + 1}]")
        rendered = attach_marker(claim, "".join(markers))
        self.kept.append(rendered)
        return rendered

    def _restates_a_title(self, claim: str) -> bool:
        """Small models echo the source headings ("[2] Some Title [2]."): a title alone answers nothing."""
        return any(fold(claim) == fold(p.title) for p in self.numbered.values())

    def citations(self, papers: dict[str, Paper]) -> tuple[Citation, ...]:
        return tuple(Citation(number=i, paper_id=pid, title=papers[pid].title, quote=self.quotes[pid])
                     for i, pid in enumerate(self.order, 1))

    def report(self, fell_back: bool = False, raw_text: str = "") -> Verification:
        return Verification(dropped_citations=self.dropped_citations, removed_sentences=self.removed_sentences,
                            fell_back=fell_back, kept_sentences=len(self.kept), reattributed=self.reattributed,
                            model_refused=self.model_refused, raw_text=raw_text)


def attach_marker(claim: str, markers: str) -> str:
    """Put markers before the sentence's final punctuation: 'It is 4.5x faster [1].'"""
    match = re.search(r"[.!?]+[\"')\]]*$", claim)
    if match:
        return f"{claim[:match.start()]} {markers}{claim[match.start():]}"
    return f"{claim} {markers}"


@dataclass
class StreamVerifier:
    """Feeds streamed tokens to a Verifier sentence by sentence and emits only verified text.

    A sentence is checked once the next one has visibly begun, so its trailing [n] marker has arrived.
    """

    verifier: Verifier
    emit: object = None
    raw: list[str] = field(default_factory=list)
    done: int = 0

    def feed(self, token: str) -> None:
        self.raw.append(token)
        claims = split_claims("".join(self.raw))
        if len(claims) > 1 and len(re.findall(r"[A-Za-z]", strip_markers(claims[-1]))) >= 3:
            for claim in claims[self.done : -1]:
                self._emit(self.verifier.add(claim))
            self.done = max(self.done, len(claims) - 1)

    def finish(self) -> None:
        for claim in split_claims("".join(self.raw))[self.done :]:
            self._emit(self.verifier.add(claim))

    def _emit(self, rendered: str | None) -> None:
        if rendered and callable(self.emit):
            prefix = " " if len(self.verifier.kept) > 1 else ""
            self.emit(prefix + rendered)
