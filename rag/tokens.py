"""LLM token counts and budgets with tiktoken (its encodings ship inside llama-index-core; see rag._offline).

The embedding model's word-pieces are a different unit, counted by rag.embeddings.count_wordpieces.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4)
def _encoding(name: str):
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    return len(_encoding(encoding).encode(text, disallowed_special=()))


def clip_tokens(text: str, limit: int, encoding: str = "cl100k_base") -> tuple[str, bool]:
    """The text cut to its first `limit` tokens, and whether anything was cut."""
    if len(text.encode()) <= limit:  # every token stands for at least one byte; loading the encoding costs 0.6 s
        return text, False
    enc = _encoding(encoding)
    tokens = enc.encode(text, disallowed_special=())
    if len(tokens) <= limit:
        return text, False
    return enc.decode(tokens[:limit]), True
