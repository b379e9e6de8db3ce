"""Ingest = plan (diff by content hash) → write batches (vectors, then one SQLite transaction) → derived files.

Kill-safe at every step: a batch's chunk vectors are upserted by deterministic id before its papers' rows are
committed, so a kill leaves at most vectors that the next run overwrites; derived files are rebuilt whenever the
manifest does not say "complete".
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .._faults import checkpoint
from ..chunking import chunk_paper, is_evidence, sentences_of
from ..types import Paper

Progress = Callable[[int, int], None]
KNOWN_TEXTS = 50_000  # vectors kept for repeated texts within one ingest run (~77 MB at 384 floats)


@dataclass
class IngestReport:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    listings: int = 0
    chunks_embedded: int = 0
    sentences_embedded: int = 0
    texts_reused: int = 0
    chunks_total: int = 0
    papers_total: int = 0
    seconds: float = 0.0
    issues: list[str] = field(default_factory=list)
    names_rebuilt: int = 0  # papers whose name tables were re-derived (the naming rules changed since the index was built)

    def summary(self) -> str:
        rebuilt = f"; name tables rebuilt for {self.names_rebuilt} stored papers" if self.names_rebuilt else ""
        return (f"{self.papers_total} papers in index: {self.new} new, {self.changed} changed, "
                f"{self.unchanged} unchanged, {self.skipped} skipped records; "
                f"{self.chunks_embedded} chunks embedded, {self.sentences_embedded} sentences embedded "
                f"({self.texts_reused} repeated texts encoded once) "
                f"({self.chunks_total} chunks in index){rebuilt} in {self.seconds:.1f}s")


@dataclass
class Plan:
    """What an ingest must do: papers to (re)embed, and source lists to extend for papers already stored."""

    todo: list[Paper] = field(default_factory=list)
    changed_ids: set[str] = field(default_factory=set)
    source_updates: dict[str, tuple[str, ...]] = field(default_factory=dict)


def make_plan(papers: list[Paper], stored: dict[str, tuple[str, tuple[str, ...]]], report: IngestReport) -> Plan:
    plan = Plan()
    for paper in papers:
        old = stored.get(paper.id)
        if old is None:
            report.new += 1
            plan.todo.append(paper)
        elif old[0] != paper.content_hash:
            report.changed += 1
            plan.todo.append(paper)
            plan.changed_ids.add(paper.id)
        else:
            report.unchanged += 1
            merged = tuple(dict.fromkeys(old[1] + paper.sources))
            if merged != old[1]:
                plan.source_updates[paper.id] = merged
    return plan


class BatchWriter:
    """Splits, embeds and writes papers batch by batch, reporting embedded texts to `progress`."""

    def __init__(self, index, embed: Callable, model: str, progress: Progress | None):
        self.index = index
        self.embed = embed
        self.model = model
        self.progress = progress
        self.done = 0
        self.total = 0
        self.known: dict[str, np.ndarray] = {}

    def _encode(self, texts: list[str], report: IngestReport) -> np.ndarray:
        """Texts repeated within a run (boilerplate sentences, a paper re-listed under a new id) are encoded once."""
        todo = [t for t in dict.fromkeys(texts) if t not in self.known]
        fresh = dict(zip(todo, self.embed(todo, self._tick))) if todo else {}
        for text, vector in fresh.items():
            if len(self.known) >= KNOWN_TEXTS:
                break
            self.known[text] = vector
        reused = len(texts) - len(todo)
        report.texts_reused += reused
        self._tick(reused)
        return np.stack([fresh[t] if t in fresh else self.known[t] for t in texts])

    def _tick(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)

    def run(self, plan: Plan, batch_papers: int, report: IngestReport) -> None:
        settings = self.index.settings.chunking
        split = []
        for paper in plan.todo:
            sentences = sentences_of(paper)
            split.append((paper, sentences, chunk_paper(paper, sentences, settings, self.model)))
        self.total = sum(len(s) + len(c) for _, s, c in split)
        if self.progress:
            self.progress(0, self.total)
        for start in range(0, len(split), batch_papers):
            self._write(split[start : start + batch_papers], plan.changed_ids, report)

    def _write(self, batch: list, changed_ids: set[str], report: IngestReport) -> None:
        chunks = [c for _, _, cs in batch for c in cs]
        sentences = [s for _, ss, _ in batch for s in ss]
        vectors = self._encode([c.embed_text for c in chunks] + [s.text for s in sentences], report)
        chunk_vectors, sentence_vectors = vectors[: len(chunks)], vectors[len(chunks):]
        self.index.vectors.replace([p.id for p, _, _ in batch if p.id in changed_ids], chunks, chunk_vectors)
        checkpoint("vectors-written")
        rows, pos = [], 0
        for paper, paper_sentences, paper_chunks in batch:
            n = len(paper_sentences)
            rows.append((paper, paper_sentences, sentence_vectors[pos : pos + n],
                         [is_evidence(s) for s in paper_sentences], paper_chunks))
            pos += n
        self.index.store.write_batch(rows)
        report.chunks_embedded += len(chunks)
        report.sentences_embedded += len(sentences)


def ingest(index, papers: list[Paper], *, embed: Callable[..., np.ndarray], model: str,
           embed_digest: Callable[[], str] | None = None, progress: Progress | None = None,
           batch_papers: int = 64) -> IngestReport:
    """Add new and changed papers to an index open for writing; unchanged ones cost a hash comparison only."""
    started = time.perf_counter()
    report = IngestReport()
    plan = make_plan(papers, index.store.hashes(), report)
    if plan.source_updates:
        index.store.set_sources(plan.source_updates)
    if plan.todo:
        if embed_digest is not None:  # before anything is written: a refused ingest leaves the index as it was
            index.adopt_digest(embed_digest())
        index.manifest.update(state="ingesting")
        BatchWriter(index, embed, model, progress).run(plan, batch_papers, report)
    index.check_consistent()  # vectors lost behind our back must not pass for indexed papers
    if plan.todo or not index.manifest.complete or not index.has_derived_files():
        index.write_derived_files()
    report.papers_total = index.store.count()
    report.chunks_total = index.store.chunk_total()
    report.seconds = time.perf_counter() - started
    return report
