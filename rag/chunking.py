"""Split an abstract once into sentences, and group consecutive sentences into chunks that fit the embedding window.

MiniLM sees at most 256 word-pieces and over half of the abstracts are longer, so a paper is embedded as a few
chunks: windows of whole sentences (title + body ≤ `chunk_tokens`), consecutive windows sharing up to
`overlap_tokens` of sentences. Because chunks are made of the stored sentences, every offset is exact.

The sentence splitter is rag.text.split_sentences: NLTK's punkt (what llama-index uses) was measured on this corpus
first; it cut 96 of 875 abstracts after "vs.", "et al." and "i.e." and took 8 s to load.
"""
from __future__ import annotations

from .config import ChunkSettings
from .embeddings import count_wordpieces
from .text import looks_like_instruction, split_sentences, terms
from .types import Chunk, Paper, Sentence

_SPECIAL_TOKENS = 2  # [CLS] and [SEP]
_MIN_BODY_TOKENS = 64


def sentences_of(paper: Paper) -> list[Sentence]:
    """The abstract's sentences with exact spans and their content terms."""
    out = []
    for n, (start, end) in enumerate(split_sentences(paper.abstract)):
        text = paper.abstract[start:end]
        out.append(Sentence(paper_id=paper.id, index=n, start=start, end=end, text=text,
                            terms=frozenset(terms(text))))
    return out


def is_evidence(sentence: Sentence) -> bool:
    """Instructions planted in an abstract are stored (they are part of the text) but never support or get quoted."""
    return not looks_like_instruction(sentence.text)


def windows(sizes: list[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """[first, last) sentence ranges: greedy windows of at most `budget` pieces (a longer sentence stands alone),
    each starting with as many of the previous window's last sentences as fit in `overlap`."""
    out: list[tuple[int, int]] = []
    first = 0
    while first < len(sizes):
        last, used = first, 0
        while last < len(sizes) and (last == first or used + sizes[last] <= budget):
            used += sizes[last]
            last += 1
        out.append((first, last))
        if last >= len(sizes):
            break
        start, shared = last, 0
        while start - 1 > first and shared + sizes[start - 1] <= overlap:
            start -= 1
            shared += sizes[start]
        first = start
    return out


def chunk_paper(paper: Paper, sentences: list[Sentence], settings: ChunkSettings, model: str) -> list[Chunk]:
    """Chunks with deterministic ids `<paper id>#<n>`, each a run of whole sentences."""
    title_tokens = count_wordpieces(model, paper.title)
    budget = max(settings.chunk_tokens - _SPECIAL_TOKENS - title_tokens, _MIN_BODY_TOKENS)
    sizes = [count_wordpieces(model, s.text) for s in sentences]
    chunks = []
    for n, (first, last) in enumerate(windows(sizes, budget, settings.overlap_tokens)):
        start, end = sentences[first].start, sentences[last - 1].end
        chunks.append(Chunk(id=f"{paper.id}#{n}", paper_id=paper.id, index=n, text=paper.abstract[start:end],
                            start=start, end=end, title=paper.title))
    return chunks
