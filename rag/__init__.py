"""Question answering over ML paper abstracts with verified citations.

`from rag import Assistant` is cheap: heavy libraries load when first needed.
"""
from __future__ import annotations

from . import _offline

_offline.configure()

__all__ = ["Assistant", "load_settings", "Settings", "RagError", "REFUSAL"]


def __getattr__(name: str):
    if name == "Assistant":
        from .assistant import Assistant

        return Assistant
    if name in ("load_settings", "Settings"):
        from . import config

        return getattr(config, name)
    if name == "RagError":
        from .errors import RagError

        return RagError
    if name == "REFUSAL":
        from .prompts import REFUSAL

        return REFUSAL
    raise AttributeError(name)
