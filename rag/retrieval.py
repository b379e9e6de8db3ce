"""Hybrid retrieval per paper: dense chunks (Chroma) + BM25 (bm25s) + exact title/name matches, fused by RRF.

Dense search misses acronyms ("What is DEUP?") that BM25 and a title match find; BM25 misses paraphrases
that dense search finds. Reciprocal rank fusion combines the rankings without comparing their score scales.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


from .config import RetrievalSettings
from .types import Hit, Paper

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9]|[A-Za-z0-9]")


def bm25_tokens(texts: list[str], return_ids: bool = False):
    """The one tokenization for BM25, at index and at query time: lower-cased, English stop words out, stemmed."""
    import bm25s

    from .evidence import stemmer

    return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer(), return_ids=return_ids, show_progress=False)


def bm25_text(paper: Paper) -> str:
    """The title counts twice: a word in the title says more about the paper than one in the abstract."""
    return f"{paper.title}\n{paper.title}\n{paper.abstract}"


TERM_WEIGHTS = "term_weights.json"


def build_bm25(directory: Path, papers: list[Paper]) -> None:
    import bm25s

    directory.mkdir(parents=True, exist_ok=True)
    retriever = bm25s.BM25()
    if papers:
        tokenized = bm25_tokens([bm25_text(p) for p in papers], return_ids=True)
        retriever.index(tokenized, show_progress=False)
        retriever.save(str(directory), show_progress=False)
    (directory / "paper_ids.json").write_text(json.dumps([p.id for p in papers]))
    from .evidence import TermWeights

    # The answer chain's term weights, computed here once per index change instead of at every start-up.
    TermWeights.from_texts([f"{p.title}\n{p.abstract}" for p in papers]).save(directory / TERM_WEIGHTS)


class BM25Index:
    def __init__(self, directory: Path):
        import bm25s

        self.ids: list[str] = json.loads((directory / "paper_ids.json").read_text())
        self.retriever = bm25s.BM25.load(str(directory), mmap=False, show_progress=False) if self.ids else None

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        if self.retriever is None:
            return []
        tokens = bm25_tokens([query])
        if not tokens[0]:
            return []
        docs, scores = self.retriever.retrieve(tokens, k=min(k, len(self.ids)), show_progress=False, n_threads=1)
        return [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


def _coined(word: str) -> bool:
    """A made-up name (DEUP, A2PR, LoRA, SlowFast, GPT-4), not a capitalised ordinary word (Fine-Tuning)."""
    parts = [p for p in word.split("-") if p]
    if any(len(p) >= 3 and p.isupper() for p in parts):
        return True
    if any(any(ch.isupper() for ch in p[1:]) for p in parts):
        return True
    if len(parts) > 1 and any(len(p) == 1 and p.isupper() for p in parts):
        return True
    return any(ch.isdigit() for ch in word) and any(ch.isupper() for ch in word)


_INTRODUCES = re.compile(r"\b(propose|proposes|introduce|introduces|present|presents|call|called|name|named|dub|dubbed|"
                         r"term|termed|release|releases)\b", re.IGNORECASE)


def _name_candidates(paper: Paper) -> set[str]:
    """Short names a paper goes by: a coined head before a colon ("DEUP: ..."), a parenthesised short form
    ("(VPT)"), or a coined title word that the abstract introduces ("we propose QuantMCU"). A coined word the
    abstract merely uses (ImageNet, GPT-4) names a dataset or model, not this paper."""
    title = paper.title
    names: set[str] = set()
    head = title.split(":", 1)[0].strip() if ":" in title else ""
    if head and len(head) >= 3 and len(head.split()) <= 3 and any(_coined(w) for w in head.split()):
        names.add(head.casefold())
    names.update(m.casefold() for m in re.findall(r"\(([A-Za-z0-9\-+@]{3,})\)", title) if _coined(m))
    for token in _WORD.findall(title):
        if len(token) < 3 or not _coined(token):  # cheap test first: the regex below cost 1.6 s per 875 papers
            continue
        if re.search(rf"{_INTRODUCES.pattern}\W+(?:[\w\-]+\W+){{0,3}}{re.escape(token)}\b", paper.abstract,
                     re.IGNORECASE):
            names.add(token.casefold())
    return names


class TitleMatcher:
    """Finds papers whose full title, or whose short name, the question states outright."""

    MAX_PAPERS_PER_NAME = 3

    def __init__(self, papers: list[Paper]):
        self.by_name: dict[str, list[str]] = {}
        self.by_title: dict[str, str] = {}
        # Titles by their first words and by each word, so a query checks a few candidates, not every title
        # (a full scan cost ~15 ms per query at 100k papers).
        self._by_head: dict[str, list[str]] = {}
        self._by_word: dict[str, set[str]] = {}
        for paper in papers:
            folded = _fold(paper.title)
            self.by_title[folded] = paper.id
            self._by_head.setdefault(" ".join(folded.split()[:_HEAD_WORDS]), []).append(folded)
            for word in set(folded.split()):
                self._by_word.setdefault(word, set()).add(folded)
            for name in _name_candidates(paper):
                self.by_name.setdefault(name, []).append(paper.id)
        # A name shared by many titles (LLM, GPT) identifies no paper.
        self.by_name = {name: ids for name, ids in self.by_name.items() if len(ids) <= self.MAX_PAPERS_PER_NAME}

    def names_unknown_paper(self, question: str) -> str | None:
        """A title-like phrase in the question ("according to Language Models are Few-Shot Learners") that no
        indexed title contains: the question is about a paper the index does not hold."""
        for span in _TITLE_SPAN.findall(question):
            words = span.split()
            while words and words[0].casefold() in _QUESTION_WORDS:
                words.pop(0)
            if sum(w[:1].isupper() for w in words) < 3:
                continue
            folded = _fold(" ".join(words))
            postings = [self._by_word.get(w, set()) for w in folded.split()]
            candidates = set.intersection(*postings) if postings else set()
            if not any(folded in title for title in candidates):
                return " ".join(words)
        return None

    def match(self, question: str) -> list[str]:
        folded = _fold(question)
        hits: list[str] = []
        words = folded.split()
        heads = {" ".join(words[i : i + n]) for n in range(1, _HEAD_WORDS + 1) for i in range(len(words) - n + 1)}
        for head in sorted(heads):
            for title in self._by_head.get(head, ()):
                if len(title) >= 12 and title in folded and self.by_title[title] not in hits:
                    hits.append(self.by_title[title])
        words = {w.casefold() for w in _WORD.findall(question)}
        for word in words:
            for pid in self.by_name.get(word, ()):
                if pid not in hits:
                    hits.append(pid)
        heads = re.findall(r"[A-Za-z0-9][A-Za-z0-9\- ]{2,40}", question)
        for head in heads:
            for pid in self.by_name.get(head.strip().casefold(), ()):
                if pid not in hits:
                    hits.append(pid)
        return hits


_HEAD_WORDS = 3
_CONNECTORS = r"(?:is|are|all|you|of|the|a|an|for|with|to|in|on|and|from|by|as|at|not|do|can|via|without)"
_CAP_WORD = r"[A-Z][\w\-']*"
_TITLE_SPAN = re.compile(rf"{_CAP_WORD}(?:\s+(?:{_CAP_WORD}|{_CONNECTORS}))+")
_QUESTION_WORDS = {"what", "which", "how", "who", "why", "when", "where", "does", "do", "is", "are", "according",
                   "in", "the", "tell", "explain", "describe"}


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.casefold()).split())


@dataclass
class _Candidate:
    dense_rank: int | None = None
    dense_score: float | None = None
    bm25_rank: int | None = None
    bm25_score: float | None = None
    title_match: bool = False
    chunk_id: str = ""


def fuse(
    dense: list[tuple[str, float, str, int]],
    bm25: list[tuple[str, float]],
    titles: list[str],
    settings: RetrievalSettings,
) -> list[tuple[str, float, _Candidate]]:
    """Weighted RRF over per-paper rankings. `dense` holds (paper_id, score, best chunk id), best first."""
    cands: dict[str, _Candidate] = {}
    for rank, (pid, score, chunk_id) in enumerate(dense, 1):
        c = cands.setdefault(pid, _Candidate())
        c.dense_rank, c.dense_score, c.chunk_id = rank, score, chunk_id
    for rank, (pid, score) in enumerate(bm25, 1):
        c = cands.setdefault(pid, _Candidate())
        c.bm25_rank, c.bm25_score = rank, score
    for pid in titles:
        cands.setdefault(pid, _Candidate()).title_match = True
    k = settings.rrf_k
    scored = []
    for pid, c in cands.items():
        score = 0.0
        if c.dense_rank is not None:
            score += settings.dense_weight / (k + c.dense_rank)
        if c.bm25_rank is not None:
            score += settings.bm25_weight / (k + c.bm25_rank)
        if c.title_match:
            score += settings.title_weight / (k + 1)
        scored.append((pid, score, c))
    scored.sort(key=lambda item: (-item[1], item[0]))
    return scored


class Retriever:
    """Search over an open index. Thread-safe for reads: it holds no per-query state."""

    def __init__(self, index, embedder, settings: RetrievalSettings):
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self.papers: dict[str, Paper] = {p.id: p for p in index.papers()}
        self.bm25 = BM25Index(Path(index.dir) / "bm25")
        self.titles = TitleMatcher(list(self.papers.values()))
        self._digest_checked = False

    def term_weights(self):
        from .evidence import TermWeights

        path = Path(self.index.dir) / "bm25" / TERM_WEIGHTS
        if path.is_file():
            return TermWeights.load(path)
        return TermWeights.from_texts([f"{p.title}\n{p.abstract}" for p in self.papers.values()])  # older index

    def dense(self, question: str, n: int) -> list[tuple[str, float, str]]:
        """Best chunk per paper: (paper_id, cosine, chunk id), best first. Only ids and distances come back
        from Chroma: fetching 50 chunks' metadata per query cost ~50-120 ms on a 100k-chunk server."""
        vector = self.embedder.encode_one(question)
        if not self._digest_checked:
            self.index.check_digest(self.embedder.model_digest())
            self._digest_checked = True
        best: dict[str, tuple[str, float, str]] = {}
        for chunk_id, score in self.index.query(vector, n):
            pid = chunk_id.rsplit("#", 1)[0]
            if pid in self.papers and (pid not in best or score > best[pid][1]):
                best[pid] = (pid, score, chunk_id)
        return sorted(best.values(), key=lambda item: -item[1])

    def search(self, question: str, k: int | None = None, focus: tuple[str, ...] = ()) -> list[Hit]:
        """Top-k papers. `focus` ids (papers the conversation is about) count as named by the question."""
        k = k or self.settings.top_k
        dense = self.dense(question, max(self.settings.dense_candidates, k * 3))
        lexical = [(pid, s) for pid, s in self.bm25.search(question, max(self.settings.bm25_candidates, k))
                   if pid in self.papers]
        titles = self.titles.match(question) + [pid for pid in focus if pid in self.papers]
        hits = []
        top = fuse(dense, lexical, titles, self.settings)[:k]
        chunks = self.index.chunk_texts([c.chunk_id for _, _, c in top if c.chunk_id])
        for rank, (pid, score, c) in enumerate(top, 1):
            paper = self.papers[pid]
            snippet, start = chunks.get(c.chunk_id, ("", 0))
            if not snippet:
                snippet, start = paper.abstract[:400], 0
            hits.append(Hit(paper=paper, score=score, rank=rank, dense_score=c.dense_score, bm25_score=c.bm25_score,
                            title_match=c.title_match, snippet=snippet, snippet_start=start))
        return hits
