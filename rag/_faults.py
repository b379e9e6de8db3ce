"""Deterministic kill points for the interrupted-ingest tests: `RAG_KILL_AT=<point>:<n>` makes the process
SIGKILL itself the n-th time it reaches `checkpoint(<point>)`. Unset (always, outside those tests) it costs a dict
lookup. The kill is real: nothing is cleaned up, exactly as with `kill -9` from outside."""
from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def checkpoint(point: str) -> None:
    target = os.environ.get("RAG_KILL_AT")
    if not target:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if target == f"{point}:{_counts[point]}":
        os.kill(os.getpid(), signal.SIGKILL)
