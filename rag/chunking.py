"""Split abstracts into chunks that fit the embedding window, with the title in each chunk's embedded text.

MiniLM sees at most 256 word-pieces; over half of the abstracts are longer, so embedding them whole would drop
their endings. llama-index's SentenceSplitter cuts at sentence boundaries, sized with the model's own tokenizer.
"""
from __future__ import annotations

from functools import lru_cache

from .config import ChunkSettings
from .embeddings import load_tokenizer
from .types import Chunk, Paper

_SPECIAL_TOKENS = 2  # [CLS] and [SEP]
_MIN_BODY_TOKENS = 64


@lru_cache(maxsize=64)
def _splitter(model: str, body_tokens: int, overlap: int):
    from llama_index.core.node_parser import SentenceSplitter

    tokenizer = load_tokenizer(model)
    return SentenceSplitter(
        chunk_size=body_tokens,
        chunk_overlap=min(overlap, body_tokens // 2),
        tokenizer=lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
    )


def body_budget(model: str, settings: ChunkSettings, title: str) -> int:
    """Word-pieces left for abstract text once the title and special tokens are counted."""
    title_tokens = len(load_tokenizer(model).encode(title, add_special_tokens=False).ids)
    return max(settings.chunk_tokens - _SPECIAL_TOKENS - title_tokens, _MIN_BODY_TOKENS)


def chunk_paper(paper: Paper, settings: ChunkSettings, model: str) -> list[Chunk]:
    """Chunks with deterministic ids `<paper id>#<n>` and their character spans in the abstract."""
    splitter = _splitter(model, body_budget(model, settings, paper.title), settings.overlap_tokens)
    chunks: list[Chunk] = []
    cursor = 0
    for n, text in enumerate(splitter.split_text(paper.abstract)):
        start = paper.abstract.find(text, cursor)
        if start < 0:
            start = paper.abstract.find(text)
        if start < 0:
            # The splitter normalised whitespace; fall back to the nearest faithful span.
            start, text = cursor, paper.abstract[cursor : cursor + len(text)]
        end = start + len(text)
        chunks.append(Chunk(id=f"{paper.id}#{n}", paper_id=paper.id, index=n, text=text, start=start, end=end,
                            title=paper.title))
        cursor = start + 1
    return chunks
