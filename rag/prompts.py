"""Prompt templates are plain files in prompts/, loaded by name, with their placeholders checked at load.

REFUSAL is the single refusal phrase: prompts receive it as {refusal}, the chain emits it when abstaining,
and tests compare against it.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import PromptError
from .resources import prompts_dir

REFUSAL = "The corpus does not answer this question."

# Each template's placeholders, exactly: a missing one would silently drop context, an unknown one would crash late.
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "answer_system": frozenset({"refusal"}),
    "answer_system_json": frozenset({"refusal"}),
    "answer_user": frozenset({"question", "evidence", "refusal"}),
    "condense": frozenset({"history", "question"}),
}


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    fields: frozenset[str]

    def render(self, **values: str) -> str:
        missing = self.fields - values.keys()
        if missing:
            raise PromptError(f"prompt {self.name!r} needs values for {sorted(missing)}")
        return self.text.format(**{k: v for k, v in values.items() if k in self.fields})


def placeholders(text: str) -> frozenset[str]:
    try:
        return frozenset(f for _, f, _, _ in string.Formatter().parse(text) if f)
    except ValueError as exc:
        raise PromptError(f"bad template syntax: {exc}") from None


def load_prompt(name: str, directory: Path | None = None) -> Prompt:
    return _load(name, Path(directory) if directory else prompts_dir())


@lru_cache(maxsize=32)
def _load(name: str, directory: Path) -> Prompt:
    path = directory / f"{name}.txt"
    if not path.is_file():
        raise PromptError(f"prompt file {path} is missing")
    text = path.read_text(encoding="utf-8")
    found = placeholders(text)
    expected = PLACEHOLDERS.get(name)
    if expected is not None and found != expected:
        problems = []
        if expected - found:
            problems.append(f"missing {sorted(expected - found)}")
        if found - expected:
            problems.append(f"unknown {sorted(found - expected)}")
        raise PromptError(f"prompt file {path}: {'; '.join(problems)} (expected exactly {sorted(expected)})")
    return Prompt(name=name, text=text, fields=found)
