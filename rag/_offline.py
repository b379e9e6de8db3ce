"""Process environment for running offline: set before any hub, tiktoken or chroma code runs.

Nothing here imports a heavy library; the paths are found with importlib's spec lookup.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def _tiktoken_cache_dir() -> str | None:
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    cache = Path(list(spec.submodule_search_locations)[0]) / "_static" / "tiktoken_cache"
    return str(cache) if cache.is_dir() else None


def configure() -> None:
    """Point every library at local files; user-set values win."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # oneDNN caches compiled kernels per input shape (1024 by default); every question's sentences have new shapes,
    # so a long chat grew ~300 MB over 200 questions. 16 keeps memory flat at the same speed (bench/reliability.py).
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        cache = _tiktoken_cache_dir()
        if cache:
            os.environ["TIKTOKEN_CACHE_DIR"] = cache
