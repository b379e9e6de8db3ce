"""Eval runner: every question goes through the same chain as `rag ask` (follow-ups through the chat path),
and one report holds retrieval, citation, fact, abstention and cost metrics, overall and per kind.

Definitions (metrics that do not apply to a slice are None):
- recall@k / MRR: paper level over answerable items, from a k=10 search with the question as the chain saw it.
- citation_precision: mean over items that cited anything of (cited ∩ expected) / cited; citing on an
  unanswerable item counts 0.
- citation_recall: mean over answerable items of (cited ∩ expected) / expected (an abstention counts 0).
- fact_hit: share of answerable items with non-empty must_include whose answer contains every string.
- abstention_rate: share of unanswerable items abstained on with no citation; false_abstention_rate: share
  of answerable items abstained on.
- intent_accuracy: share of items of a kind with an expected reading (KIND_INTENTS) whose question was read so.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .corpus import title_key
from .errors import EvalFileError
from .resources import runtime
from .types import Verification

REQUIRED = {"id": str, "question": str, "expected_papers": list, "must_include": list, "answerable": bool, "kind": str}
METRICS = ["recall@1", "recall@5", "recall@10", "mrr", "citation_precision", "citation_recall", "fact_hit",
           "abstention_rate", "false_abstention_rate", "intent_accuracy"]


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    expected_papers: tuple[str, ...]
    must_include: tuple[str, ...]
    answerable: bool
    kind: str
    history: tuple[dict, ...] = ()
    reference_answer: str = ""
    split: str = ""
    line: int = 0


def load_eval_file(path: Path) -> list[EvalItem]:
    """Parse and validate every line before anything runs; a bad line is an error naming it."""
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise EvalFileError(f"{path}: not UTF-8 ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise EvalFileError(f"{where}: expected a JSON object")
        for name, kind in REQUIRED.items():
            if name not in record:
                raise EvalFileError(f"{where}: missing field {name!r}")
            if not isinstance(record[name], kind):
                raise EvalFileError(f"{where}: field {name!r} must be {kind.__name__}")
        for name in ("expected_papers", "must_include"):
            if not all(isinstance(v, str) and v.strip() for v in record[name]):
                raise EvalFileError(f"{where}: {name!r} must hold non-empty strings")
        if not record["question"].strip():
            raise EvalFileError(f"{where}: empty question")
        if record["answerable"] is False and record["expected_papers"]:
            raise EvalFileError(f"{where}: an unanswerable item cannot list expected_papers")
        if record["answerable"] and not record["expected_papers"]:
            raise EvalFileError(f"{where}: an answerable item must list expected_papers")
        history = record.get("history", [])
        if not isinstance(history, list) or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
            for m in history
        ):
            raise EvalFileError(f"{where}: 'history' must be a list of {{role: user|assistant, content: str}}")
        if record.get("split", "") not in ("", "dev", "test"):
            raise EvalFileError(f"{where}: 'split' must be \"dev\" or \"test\"")
        if record["id"] in seen:
            raise EvalFileError(f"{where}: id {record['id']!r} already used on line {seen[record['id']]}")
        seen[record["id"]] = number
        items.append(EvalItem(id=record["id"], question=record["question"],
                              expected_papers=tuple(record["expected_papers"]),
                              must_include=tuple(record["must_include"]), answerable=record["answerable"],
                              kind=record["kind"], history=tuple(history),
                              reference_answer=str(record.get("reference_answer", "")),
                              split=record.get("split", ""), line=number))
    if not items:
        raise EvalFileError(f"{path}: no eval items")
    return items


def check_titles(items: list[EvalItem], titles: set[str], path: str = "eval file") -> None:
    """Every expected title must be in the index: a missing one is an error in the eval file, not a miss."""
    known = {title_key(t) for t in titles}
    missing = [(i.line, t) for i in items for t in i.expected_papers if title_key(t) not in known]
    if missing:
        shown = "; ".join(f"line {line}: {title!r}" for line, title in missing[:10])
        raise EvalFileError(f"{path}: {len(missing)} expected title(s) are not in the index: {shown}")


# ---- metric functions (pure, unit-tested) --------------------------------------------------------
def recall_at(expected: list[str], retrieved: list[str], k: int) -> float:
    if not expected:
        raise ValueError("recall needs expected papers")
    want = {title_key(t) for t in expected}
    return len(want & {title_key(t) for t in retrieved[:k]}) / len(want)


def reciprocal_rank(expected: list[str], retrieved: list[str]) -> float:
    want = {title_key(t) for t in expected}
    for rank, title in enumerate(retrieved, 1):
        if title_key(title) in want:
            return 1.0 / rank
    return 0.0


def citation_precision(expected: list[str], cited: list[str]) -> float | None:
    if not cited:
        return None
    want = {title_key(t) for t in expected}
    got = {title_key(t) for t in cited}
    return len(got & want) / len(got)


def citation_recall(expected: list[str], cited: list[str]) -> float:
    want = {title_key(t) for t in expected}
    return len(want & {title_key(t) for t in cited}) / len(want)


def fact_hit(must_include: list[str], text: str) -> bool:
    folded = text.casefold()
    return all(m.casefold() in folded for m in must_include)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


@dataclass
class RowResult:
    item: EvalItem
    answer_text: str
    abstained: bool
    cited: list[str]
    retrieved: list[str]
    latency: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed: list[str] = field(default_factory=list)
    verification: Verification | None = None
    intent: str = ""
    standalone: str = ""
    confidence: float | None = None   # the answers model's P for its best candidate paper
    candidate_correct: bool = False   # that candidate is one of the expected papers


RELIABILITY_BINS = 10
# The intents a correct reading gives each answerable kind EVAL_FORMAT lists (a short name asked about may be read as
# a definition or a fact; both compose the same single-paper answer). Other kinds have no expected intent.
KIND_INTENTS = {"fact": {"fact", "definition"}, "paraphrase": {"fact", "definition"},
                "acronym": {"fact", "definition"}, "followup": {"fact", "definition"}, "compare": {"compare"},
                "exhaustive": {"list"}, "metadata": {"metadata"}}


def reliability(rows: list[RowResult]) -> dict | None:
    """How well the answer confidence is calibrated: per confidence bin, the share of questions whose candidate
    paper is an expected one (unanswerable questions count as wrong), and the expected calibration error."""
    scored = [r for r in rows if r.confidence is not None]
    if not scored:
        return None
    bins = []
    for b in range(RELIABILITY_BINS):
        lo, hi = b / RELIABILITY_BINS, (b + 1) / RELIABILITY_BINS
        inside = [r for r in scored if lo <= r.confidence < hi or (b == RELIABILITY_BINS - 1 and r.confidence == 1.0)]
        if inside:
            bins.append({"low": lo, "high": hi, "n": len(inside),
                         "mean_confidence": round(statistics.fmean(r.confidence for r in inside), 4),
                         "observed": round(statistics.fmean(r.candidate_correct for r in inside), 4)})
    ece = sum(b["n"] * abs(b["mean_confidence"] - b["observed"]) for b in bins) / len(scored)
    return {"n": len(scored), "ece": round(ece, 4), "bins": bins}


def verification_summary(rows: list[RowResult]) -> dict | None:
    """What verification did to the model's raw answers (None when no row was written by an LLM)."""
    checked = [r.verification for r in rows if r.verification is not None and r.verification.raw_text]
    if not checked:
        return None
    from .citations import split_claims

    raw_sentences = sum(len(split_claims(v.raw_text)) for v in checked)
    return {
        "llm_answers": len(checked),
        "raw_sentences": raw_sentences,
        "kept_sentences": sum(v.kept_sentences for v in checked),
        "removed_sentences": sum(v.removed_sentences for v in checked),
        "dropped_citations": sum(v.dropped_citations for v in checked),
        "reattributed_answers": sum(1 for v in checked if v.reattributed),
        "model_refusals": sum(1 for v in checked if v.model_refused),
        "fell_back_to_extractive": sum(1 for v in checked if v.fell_back),
    }


def summarize(rows: list[RowResult]) -> dict:
    answerable = [r for r in rows if r.item.answerable]
    unanswerable = [r for r in rows if not r.item.answerable]
    with_facts = [r for r in answerable if r.item.must_include]
    citing = [r for r in rows if r.cited]
    latencies = [r.latency for r in rows]

    def precision(r: RowResult) -> float:
        return citation_precision(list(r.item.expected_papers), r.cited) or 0.0

    read = [r for r in rows if r.item.kind in KIND_INTENTS and r.intent]

    return {
        "n": len(rows),
        "recall@1": _mean([recall_at(list(r.item.expected_papers), r.retrieved, 1) for r in answerable]),
        "recall@5": _mean([recall_at(list(r.item.expected_papers), r.retrieved, 5) for r in answerable]),
        "recall@10": _mean([recall_at(list(r.item.expected_papers), r.retrieved, 10) for r in answerable]),
        "mrr": _mean([reciprocal_rank(list(r.item.expected_papers), r.retrieved) for r in answerable]),
        "citation_precision": _mean([precision(r) for r in citing]),
        "citation_recall": _mean([citation_recall(list(r.item.expected_papers), r.cited) for r in answerable]),
        "fact_hit": _mean([1.0 if fact_hit(list(r.item.must_include), r.answer_text) and not r.abstained else 0.0
                           for r in with_facts]),
        "abstention_rate": _mean([1.0 if r.abstained and not r.cited else 0.0 for r in unanswerable]),
        "false_abstention_rate": _mean([1.0 if r.abstained else 0.0 for r in answerable]),
        "intent_accuracy": _mean([1.0 if r.intent in KIND_INTENTS[r.item.kind] else 0.0 for r in read]),
        "latency_p50_s": round(percentile(latencies, 50), 4),
        "latency_p95_s": round(percentile(latencies, 95), 4),
        "prompt_tokens": sum(r.prompt_tokens for r in rows),
        "completion_tokens": sum(r.completion_tokens for r in rows),
    }


def failed_checks(row: RowResult) -> list[str]:
    item = row.item
    failed = []
    if item.answerable:
        expected = list(item.expected_papers)
        if recall_at(expected, row.retrieved, 5) < 1:
            failed.append("recall@5")
        if row.abstained:
            failed.append("false_abstention")
        else:
            if (citation_precision(expected, row.cited) or 0.0) < 1:
                failed.append("citation_precision")
            if citation_recall(expected, row.cited) < 1:
                failed.append("citation_recall")
            if item.must_include and not fact_hit(list(item.must_include), row.answer_text):
                failed.append("fact_hit")
    elif not row.abstained or row.cited:
        failed.append("abstention")
    return failed


def run_eval(assistant, items: list[EvalItem], *, k: int | None = None,
             progress: Callable[[dict], None] | None = None, path: str = "eval file") -> dict:
    """Run every item; return the JSON report (overall, by_kind, rows). `progress` gets each answer's row as soon as
    it is scored, so an hour-long run leaves its answers behind even when it is stopped."""
    check_titles(items, set(assistant.index.store.titles().values()), path)
    rows: list[RowResult] = []
    shown: list[dict] = []
    for item in items:
        started = time.perf_counter()
        answer = assistant.ask(item.question, k=k, history=list(item.history))
        latency = time.perf_counter() - started
        query = answer.standalone_question or answer.question
        retrieved = [h.paper.title for h in assistant.search(query, max(10, k or 0))]
        row = RowResult(item=item, answer_text=answer.text, abstained=answer.abstained,
                        cited=[c.title for c in answer.citations], retrieved=retrieved, latency=latency,
                        prompt_tokens=answer.usage.prompt_tokens, completion_tokens=answer.usage.completion_tokens,
                        verification=answer.verification, intent=answer.intent.value if answer.intent else "",
                        standalone=answer.standalone_question, confidence=answer.confidence,
                        candidate_correct=any(h.paper_id == answer.candidate and h.paper.title in item.expected_papers
                                              for h in answer.sources))
        row.failed = failed_checks(row)
        rows.append(row)
        shown.append(row_json(row))
        if progress:
            progress(shown[-1])
    kinds = sorted({r.item.kind for r in rows})
    return {
        "backend": assistant.chain.backend_name,
        "index": {k: v for k, v in assistant.describe().items() if k not in ("backend", "index_dir")}
        | {"embedding_digest": assistant.index.manifest.get("embedding_digest")},
        "runtime": runtime(),
        "overall": summarize(rows),
        "by_kind": {kind: summarize([r for r in rows if r.item.kind == kind]) for kind in kinds},
        "verification": verification_summary(rows),
        "reliability": reliability(rows),
        "rows": shown,
    }


def row_json(r: RowResult) -> dict:
    """One answer as the report shows it (also streamed to `progress` while a long run goes on)."""
    return {"id": r.item.id, "kind": r.item.kind, "question": r.item.question, "answer": r.answer_text,
            "abstained": r.abstained, "cited_titles": r.cited, "retrieved_titles": r.retrieved,
            "failed": r.failed, "latency_s": round(r.latency, 4),
            "intent": r.intent, "standalone_question": r.standalone,
            "abstain_reason": r.verification.abstain_reason.value
            if r.verification and r.verification.abstain_reason else None,
            "raw_llm_answer": r.verification.raw_text if r.verification else "",
            "confidence": round(r.confidence, 4) if r.confidence is not None else None,
            "candidate_correct": r.candidate_correct}


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown_report(report: dict, title: str = "") -> str:
    columns = ["n"] + METRICS + ["latency_p50_s", "latency_p95_s", "prompt_tokens", "completion_tokens"]
    header = "| slice | " + " | ".join(columns) + " |"
    lines = ([f"### {title}", ""] if title else []) + [header, "|" + "---|" * (len(columns) + 1)]
    slices = [("**overall**", report["overall"])] + list(report["by_kind"].items())
    for name, metrics in slices:
        lines.append(f"| {name} | " + " | ".join(_fmt(metrics.get(c)) for c in columns) + " |")
    if report.get("verification"):
        v = report["verification"]
        lines += ["", f"Verification of {v['llm_answers']} LLM answers: {v['raw_sentences']} raw sentences, "
                  f"{v['kept_sentences']} kept, {v['removed_sentences']} removed as unsupported, "
                  f"{v['dropped_citations']} citations dropped, {v['reattributed_answers']} answers with re-attributed "
                  f"sentences, {v['model_refusals']} model refusals, {v['fell_back_to_extractive']} fell back to the "
                  "extractive answer."]
    return "\n".join(lines)


def plot_report(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ["recall@5", "mrr", "citation_precision", "citation_recall", "fact_hit", "abstention_rate",
             "false_abstention_rate"]
    slices = [("overall", report["overall"])] + list(report["by_kind"].items())
    curve = report.get("reliability")
    fig, axes = plt.subplots(1, 2 if curve else 1, figsize=(17 if curve else 12, 5),
                             gridspec_kw={"width_ratios": [3, 1.3]} if curve else None, squeeze=False)
    ax = axes[0][0]
    width = 0.8 / len(shown)
    for i, metric in enumerate(shown):
        values = [m.get(metric) for _, m in slices]
        xs = [j + i * width for j in range(len(slices))]
        ax.bar(xs, [v if v is not None else 0 for v in values], width, label=metric)
        for x, v in zip(xs, values):
            if v == 0:  # a real zero, unlike a metric that does not apply (no bar, no label)
                ax.text(x, 0.01, "0", ha="center", va="bottom", fontsize=7)
    ax.set_xticks([j + width * (len(shown) - 1) / 2 for j in range(len(slices))])
    ax.set_xticklabels([f"{name}\n(n={m['n']})" for name, m in slices])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (missing bar: metric does not apply)")
    ax.set_title(f"Eval by kind — {report['backend']}")
    ax.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    if curve:
        _plot_reliability(axes[0][1], curve)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_reliability(ax, curve: dict) -> None:
    """Reliability diagram of the answer confidence, with the abstention threshold the chain uses."""
    from .support import answer_threshold

    bins = curve["bins"]
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.plot([b["mean_confidence"] for b in bins], [b["observed"] for b in bins], marker="o", label="observed")
    for b in bins:
        ax.annotate(str(b["n"]), (b["mean_confidence"], b["observed"]), textcoords="offset points", xytext=(4, -10),
                    fontsize=7)
    ax.axvline(answer_threshold(), color="red", linestyle="--", label="answer threshold")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence: P(candidate paper states the answer)")
    ax.set_ylabel("share whose candidate is an expected paper")
    ax.set_title(f"Reliability (n={curve['n']}, ECE {curve['ece']:.3f})")
    ax.legend(fontsize=7, loc="upper left")
