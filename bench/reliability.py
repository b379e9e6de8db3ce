"""Resource bounds, measured in one run (not asserted in tests): a 100-word query against the full index,
and 200 consecutive chat questions in the REPL, reporting time and resident memory.

    .venv/bin/python bench/reliability.py            # uses the default index (run `rag ingest` first)
"""
from __future__ import annotations

import io
import random
import resource
import statistics
import time

from rich.console import Console

from rag import load_settings
from rag.text import split_sentences
from rag.repl import Repl


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    settings = load_settings()
    repl = Repl(settings, Console(file=io.StringIO(), width=120), k=None)
    repl.banner()
    assistant = repl.assistant
    papers = list(assistant.index.store.iter_papers())
    rng = random.Random(0)

    words = " ".join(p.abstract for p in rng.sample(papers, 3)).split()[:100]
    query = " ".join(words)
    assistant.search(query, 10)
    before = rss_mb()
    times = []
    for _ in range(20):
        started = time.perf_counter()
        assistant.search(query, 10)
        times.append(time.perf_counter() - started)
    print(f"100-word query, 20 runs: search p50 {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms, RSS {before:.0f} -> {rss_mb():.0f} MB")

    questions = []
    for paper in rng.sample(papers, 100):
        s, e = split_sentences(paper.abstract)[0]
        questions.append(f"What does the paper on {paper.title.split(':')[0]} study?")
        questions.append("What did they report about it?" if rng.random() < 0.5 else paper.abstract[s:e][:200])
    samples = {}
    started = time.perf_counter()
    for n, question in enumerate(questions, 1):
        repl.handle(question)
        if n % 10 == 0:
            repl.console.file.seek(0)
            repl.console.file.truncate()  # the terminal's scrollback is not the process's memory
        if n in (20, 50, 100, 150, 200):
            samples[n] = rss_mb()
    elapsed = time.perf_counter() - started
    print(f"REPL, 200 consecutive questions in {elapsed:.0f} s ({elapsed / 200:.2f} s each); RSS by question: "
          + ", ".join(f"#{n}: {mb:.0f} MB" for n, mb in samples.items()))
    print(f"growth from question 20 to 200: {samples[200] - samples[20]:+.1f} MB; "
          f"history kept: {len(repl.conversation.history)} messages, {len(repl.conversation.answers)} answers")
    assistant.close()


if __name__ == "__main__":
    main()
