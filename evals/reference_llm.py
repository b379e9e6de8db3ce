"""What verification does to a good answer, and to a confidently wrong one.

A scripted OpenAI-compatible endpoint (real HTTP on 127.0.0.1, driven through the normal chain by the real
`openai` client) answers each eval question as a strong model would: with the item's hand-written reference
answer, each sentence cited to the sources the prompt shows (a sentence about two papers cites both), and
"the corpus does not answer" for unanswerable items. Its corrupting twin changes one thing per answer: a number,
a name that carries digits (T0 → T7, FPR95 → FPR96), the paper a sentence is cited to, one of the two
papers a synthesis sentence cites ("partner": the sentence now cites one right paper and one unrelated one), or a
comparison's closing sentence ("conclusion": replaced by the closing sentence of another comparison, about two
other papers, still citing this one's two: a fluent conclusion that is not true of them; counted only where the
clean answer's own conclusion is shown).

- keep rate: share of the reference sentences shown after verification (overall, per kind, comparisons apart);
- catch rate: share of corrupted sentences not shown as the wrong claim (removed, or re-attributed);
- refusals: share of correct refusals shown as refusals.

    .venv/bin/python evals/reference_llm.py [--split test] [--json evals/reports/reference_llm.json]
    .venv/bin/python evals/reference_llm.py --swaps --split dev --eval F [F ...]   (conclusion swaps, all pairs)
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import rag  # noqa: E402,F401
from rag.citations import split_claims, strip_markers  # noqa: E402
from rag.prompts import REFUSAL  # noqa: E402
from rag.text import terms  # noqa: E402

_SOURCE = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)
_QUESTION = re.compile(r"^Question: (.+)$", re.MULTILINE)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)")
_DIGIT_NAME = re.compile(r"\b([A-Za-z][A-Za-z\-]*?)(\d+)\b")


def normalize(sentence: str) -> str:
    return " ".join(strip_markers(sentence).casefold().rstrip(".").split())


@dataclass
class Scripted:
    """One answer the endpoint gives: sentences with the titles each cites; which sentence was corrupted."""

    sentences: list[tuple[str, list[str]]]
    corrupted: int | None = None
    corruption: str = ""
    wrong_title: str = ""


def attribute(sentence: str, expected: list[str], abstracts: dict[str, str], last: bool, kind: str) -> list[str]:
    """The expected papers a reference sentence is about: the ones whose title+abstract hold most of its words;
    a compare item's closing sentence is about both."""
    if len(expected) == 1:
        return expected
    if kind == "compare" and last:
        return expected
    words = set(terms(sentence))
    scores = {t: len(words & set(terms(f"{t} {abstracts[t]}"))) for t in expected}
    best = max(scores.values())
    return [t for t in expected if scores[t] == best and best > 0] or expected[:1]


def marked(sentence: str, numbers) -> str:
    """A sentence as the model writes it: its source numbers before the full stop."""
    return f"{sentence.rstrip('.')} " + "".join(f"[{n}]" for n in numbers) + "."


def script(item, abstracts: dict[str, str]) -> Scripted:
    claims = split_claims(item.reference_answer)
    return Scripted([(c, attribute(c, list(item.expected_papers), abstracts, i == len(claims) - 1, item.kind))
                     for i, c in enumerate(claims)])


def corrupt(scripted: Scripted, how: str, shown: dict[str, int], conclusion: str = "") -> Scripted | None:
    """A copy with one sentence made wrong, or None when this kind of corruption does not apply."""
    if how == "conclusion":
        sentence, titles = scripted.sentences[-1]
        if not conclusion or len(titles) < 2 or not all(t in shown for t in titles):
            return None
        out = Scripted(list(scripted.sentences), len(scripted.sentences) - 1, how)
        out.sentences[-1] = (conclusion, titles)
        return out
    for i, (sentence, titles) in enumerate(scripted.sentences):
        if how == "number" and (m := _NUMBER.search(sentence)):
            value = m.group(1)
            changed = f"{float(value) * 1.7 + 3:.{len(value.split('.')[1]) if '.' in value else 0}f}"
            new = sentence[: m.start(1)] + changed + sentence[m.end(1):]
        elif how == "name" and (m := _DIGIT_NAME.search(sentence)):
            new = sentence[: m.start(2)] + str(int(m.group(2)) + 7) + sentence[m.end(2):]
        elif how in ("paper", "partner"):  # partner: a synthesis citing one right paper and an unrelated one
            others = [t for t in shown if t not in titles]
            applies = any(t in shown for t in titles) if how == "paper" else (
                len(titles) >= 2 and all(t in shown for t in titles))
            if not others or not applies:
                continue
            out = Scripted(list(scripted.sentences), i, how, others[0])
            out.sentences[i] = (sentence, [others[0]] if how == "paper" else [titles[0], others[0]])
            return out
        else:
            continue
        out = Scripted(list(scripted.sentences), i, how)
        out.sentences[i] = (new, titles)
        return out
    return None


def _other_conclusions(items, abstracts: dict[str, str]) -> dict[str, str]:
    """For each comparison, the closing sentence of the next comparison in the file about two other papers."""
    compares = [i for i in items if i.kind == "compare" and i.answerable and i.reference_answer
                and len(i.expected_papers) >= 2]
    out = {}
    for n, item in enumerate(compares):
        for other in compares[n + 1:] + compares[:n]:
            if not set(other.expected_papers) & set(item.expected_papers):
                out[item.id] = script(other, abstracts).sentences[-1][0]
                break
    return out


def _asked_key(question: str) -> str:
    """A question as the endpoint recognises it in a prompt: the chain writes names as the corpus does ("longrope2"
    is asked as "LongRoPE2", "GPT4" as "GPT-4"), so case, spaces and punctuation do not count."""
    return re.sub(r"[^a-z0-9]", "", question.casefold())


class ReferenceEndpoint:
    """The behaviour behind the HTTP server: reads the prompt's sources and question, answers from the script."""

    def __init__(self, items, abstracts: dict[str, str]):
        self.by_question = {_asked_key(i.question): i for i in items}
        self.abstracts = abstracts
        self.conclusions = _other_conclusions(items, abstracts)
        self.corruption = ""
        self.last: Scripted | None = None
        self.shown: dict[str, int] = {}

    def item_for(self, asked: str):
        asked = _asked_key(asked)
        if asked in self.by_question:
            return self.by_question[asked]
        return next((i for q, i in self.by_question.items() if asked.startswith(q)), None)

    def __call__(self, body: dict):
        from llm_server import Reply

        content = body["messages"][-1]["content"]
        if "Standalone question:" in content:  # the chat's condense prompt: a strong model names the paper
            asked = content.rsplit("Last user question:", 1)[-1].split("Standalone question:")[0].strip()
            item = self.item_for(asked)
            title = item.expected_papers[0] if item and item.expected_papers else ""
            return Reply(f"{asked} (about {title})" if title else asked)
        self.shown = {title.strip(): int(n) for n, title in _SOURCE.findall(content)}
        asked = _QUESTION.findall(content)[-1].strip()
        item = self.item_for(asked)
        self.last = None
        if item is None or not item.answerable or not item.reference_answer:
            return Reply(REFUSAL)
        scripted = script(item, self.abstracts)
        if self.corruption:
            scripted = corrupt(scripted, self.corruption, self.shown, self.conclusions.get(item.id, "")) or scripted
        self.last = scripted
        text = " ".join(marked(s, [self.shown[t] for t in titles if t in self.shown])
                        for s, titles in scripted.sentences)
        return Reply(text)


@dataclass
class Tally:
    kept: int = 0
    total: int = 0

    def rate(self) -> float | None:
        return round(self.kept / self.total, 4) if self.total else None


@dataclass
class Report:
    keep: dict = field(default_factory=lambda: defaultdict(Tally))
    keep_shown: dict = field(default_factory=lambda: defaultdict(Tally))
    catch: dict = field(default_factory=lambda: defaultdict(Tally))
    refusals: Tally = field(default_factory=Tally)
    misses: list = field(default_factory=list)  # (kind, reference sentence, shown answer) for each one lost
    slips: list = field(default_factory=list)  # (corruption, item id, corrupted sentence) for each one shown

    def as_dict(self) -> dict:
        return {"keep_rate": {k: v.rate() for k, v in sorted(self.keep.items())},
                "keep_rate_sources_shown": {k: v.rate() for k, v in sorted(self.keep_shown.items())},
                "catch_rate": {k: v.rate() for k, v in sorted(self.catch.items())},
                "refusals_shown": self.refusals.rate(),
                "counts": {"kept": {k: [v.kept, v.total] for k, v in sorted(self.keep.items())},
                           "caught": {k: [v.kept, v.total] for k, v in sorted(self.catch.items())},
                           "refusals": [self.refusals.kept, self.refusals.total]}}


def _tally(tallies: dict, keys: list[str], ok: bool) -> None:
    for key in keys:
        tallies[key].total += 1
        tallies[key].kept += ok


def measure(assistant, endpoint: ReferenceEndpoint, items) -> Report:
    """Clean run (keep rate, refusals), then one run per corruption kind (catch rate)."""
    report = Report()
    for item in items:
        endpoint.corruption = ""
        answer = assistant.ask(item.question, history=list(item.history))
        if not item.answerable:
            _tally({"all": report.refusals}, ["all"], answer.abstained and answer.text.startswith(REFUSAL))
            continue
        shown = {normalize(c) for c in split_claims(answer.text)}
        scripted = endpoint.last or script(item, endpoint.abstracts)
        last = len(scripted.sentences) - 1
        closing_kept = normalize(scripted.sentences[last][0]) in shown
        for i, (sentence, titles) in enumerate(scripted.sentences):
            keys = ["overall", item.kind] + (["comparison sentences"] if item.kind == "compare" and i == last else [])
            ok = normalize(sentence) in shown
            _tally(report.keep, keys, ok)
            if not ok:
                report.misses.append((item.kind, sentence, answer.text))
            if endpoint.last is not None and all(t in endpoint.shown for t in titles):
                _tally(report.keep_shown, keys, ok)
        for how in ("number", "name", "paper", "partner", "conclusion"):
            endpoint.corruption = how
            answer = assistant.ask(item.question, history=list(item.history))
            wrong = endpoint.last
            if wrong is None or wrong.corrupted is None or (how == "conclusion" and not closing_kept):
                continue  # a conclusion swap counts only where the right conclusion is shown: else it says nothing
            sentence, _ = wrong.sentences[wrong.corrupted]
            claims = {normalize(c): c for c in split_claims(answer.text)}
            shown_as = claims.get(normalize(sentence))
            if how in ("paper", "partner"):  # caught unless shown cited to the wrong paper
                wrong_n = [c.number for c in answer.citations if c.title == wrong.wrong_title]
                slipped = shown_as is not None and any(f"[{n}]" in shown_as for n in wrong_n)
            else:
                slipped = shown_as is not None
            _tally(report.catch, ["overall", how, item.kind], not slipped)
            if slipped:
                report.slips.append((how, item.id, sentence))
    endpoint.corruption = ""
    return report


def run(settings, items, papers) -> Report:
    """Serve the scripted model on 127.0.0.1 and measure the chain against it."""
    from llm_server import FakeOpenAIServer

    from rag.assistant import Assistant

    endpoint = ReferenceEndpoint(items, {p.title: p.abstract for p in papers})
    with FakeOpenAIServer() as server:
        server.default = None
        server.replies = _Forever(endpoint)
        llm = {"base_url": server.url, "model": "reference", "max_retries": 0, "timeout_s": 30}
        with Assistant(settings.with_overrides(llm=llm), build_if_missing=False) as assistant:
            return measure(assistant, endpoint, items)


def swaps(assistant, items) -> dict:
    """Each comparison's closing sentence checked after its answer's other sentences, and in its place every other
    comparison's closing sentence about two other papers, cited to this one's two: [kept, total] of each. The
    endpoint's conclusion swap tries one per item, too few to show how close a bar sits to wrong conclusions;
    this tries every pair (the verifier alone, no HTTP: thousands of checks in seconds). It is not the endpoint's
    count: only the two papers are numbered (the chain numbers every shown source, so there a swap may also be
    re-attributed to a third), and every swap counts, also for items whose true conclusion is not kept (the
    endpoint counts a swap only where it is)."""
    from rag.citations import Verifier

    store = assistant.index.store
    by_title = {p.title: p for p in store.iter_papers()}
    abstracts = {t: p.abstract for t, p in by_title.items()}
    compares = [i for i in items if i.kind == "compare" and i.answerable and i.reference_answer
                and len(i.expected_papers) == 2 and all(t in by_title for t in i.expected_papers)]
    scripted = {i.id: script(i, abstracts) for i in compares}
    kept, swapped = Tally(), Tally()

    def tally(into: Tally, verifier: Verifier, sentence: str) -> None:
        into.total += 1
        into.kept += verifier.fork().add(marked(sentence, (1, 2))) is not None

    for item in compares:
        number = {t: n for n, t in enumerate(item.expected_papers, 1)}
        verifier = Verifier({n: by_title[t] for t, n in number.items()}, assistant.embedder, store,
                            assistant.chain.nearest_papers)
        for sentence, titles in scripted[item.id].sentences[:-1]:
            verifier.add(marked(sentence, [number[t] for t in titles]))
        tally(kept, verifier, scripted[item.id].sentences[-1][0])
        for other in compares:
            if not set(other.expected_papers) & set(item.expected_papers):
                tally(swapped, verifier, scripted[other.id].sentences[-1][0])
    return {"comparisons": len(compares), "conclusions_kept": [kept.kept, kept.total],
            "swapped_conclusions_kept": [swapped.kept, swapped.total]}


class _Forever(list):
    """A reply list that never runs out: every request is answered by the endpoint."""

    def __init__(self, endpoint):
        super().__init__([endpoint])
        self.endpoint = endpoint

    def pop(self, index=-1):
        return self.endpoint


def main() -> None:
    from rag.config import load_settings
    from rag.eval import load_eval_file

    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", nargs="+", default=[str(ROOT / "evals" / "qa.jsonl")])
    parser.add_argument("--split", default="test", choices=["dev", "test", "all"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--misses", action="store_true", help="print each reference sentence not shown")
    parser.add_argument("--swaps", action="store_true", help="only the all-pairs conclusion swap check (swaps())")
    parser.add_argument("--context-tokens", type=int, default=None,
                        help="the context window the endpoint stands for (unset: llm.context_tokens, else 8192 for an "
                        "unknown model); 128000 is gpt-4o-mini's")
    args = parser.parse_args()
    items = [i for f in args.eval for i in load_eval_file(Path(f))
             if args.split == "all" or (i.split or "dev") == args.split]
    repeated = sorted(n for n, count in Counter(i.id for i in items).items() if count > 1)
    if repeated:  # items are told apart by id (scripts, conclusions), and by question (the endpoint)
        parser.error(f"eval ids repeated across files: {', '.join(repeated[:5])}")
    alike = sorted(q for q, count in Counter(_asked_key(i.question) for i in items).items() if count > 1)
    if alike:
        parser.error(f"eval questions the endpoint cannot tell apart (they differ only in case or punctuation): "
                     f"{', '.join(alike[:5])}")
    settings = load_settings()
    if args.context_tokens:
        settings = settings.with_overrides(llm={"context_tokens": args.context_tokens})
    from rag.assistant import Assistant

    with Assistant(settings, build_if_missing=False) as assistant:
        if args.swaps:
            result = json.dumps(swaps(assistant, items))
            print(result)
            if args.json:
                Path(args.json).write_text(result + "\n")
            return
        papers = list(assistant.index.store.iter_papers())
    measured = run(settings, items, papers)
    if args.misses:
        for kind, sentence, shown in measured.misses:
            print(f"--- [{kind}] lost: {sentence}\n    shown: {' '.join(shown.split())[:400]}", file=sys.stderr)
        for how, item_id, sentence in measured.slips:
            print(f"+++ [{how}] {item_id} slipped: {sentence}", file=sys.stderr)
    report = measured.as_dict()
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
