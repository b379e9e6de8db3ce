"""papers.sqlite: the source of truth for which papers are completely indexed.

One transaction per ingest batch writes, for each paper, its row, its sentences (span, content terms, vector),
its contribution to the IDF table and its names. A paper without a row is simply redone by the next ingest, so a
kill at any point leaves no half-written paper behind. Papers and sentences are read on demand, by id.
"""
from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import IndexCorruptError
from ..types import Chunk, Paper, Sentence
from . import names
from .manifest import REBUILD_HINT

PAPERS_DB = "papers.sqlite"
VECTOR_DTYPE = np.float16  # half the bytes of float32; cosine error ~1e-3, far below what any decision uses

SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
    abstract TEXT NOT NULL, url TEXT, authors TEXT, published TEXT, categories TEXT, sources TEXT, hash TEXT NOT NULL,
    n_chunks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sentences (paper_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL,
    end INTEGER NOT NULL, evidence INTEGER NOT NULL, terms TEXT NOT NULL, vector BLOB, PRIMARY KEY (paper_id, idx))
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (paper_id TEXT NOT NULL, idx INTEGER NOT NULL, start INTEGER NOT NULL,
    end INTEGER NOT NULL, PRIMARY KEY (paper_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
""" + names.SCHEMA

_PAPER_COLUMNS = "id, title, abstract, url, authors, published, categories, sources"


def _paper(row) -> Paper:
    return Paper(id=row[0], title=row[1], abstract=row[2], url=row[3] or "", authors=tuple(json.loads(row[4] or "[]")),
                 published=row[5] or "", categories=tuple(json.loads(row[6] or "[]")),
                 sources=tuple(json.loads(row[7] or "[]")))


_DATE = re.compile(r"(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?")


def iso_date(text: str) -> str:
    """'2023-6-30', '2023/06', 'Jun 2023 (v2: 2024)' → '2023-06-30', '2023-06', '2023' (the first date in the text)."""
    match = _DATE.search(text)
    if not match:
        return ""
    year, month, day = match.groups()
    return "-".join([year] + [f"{int(v):02d}" for v in (month, day) if v])


def paper_terms(paper: Paper) -> set[str]:
    """The terms a paper counts for in the IDF table (title and abstract)."""
    from ..text import terms

    return set(terms(f"{paper.title}\n{paper.abstract}"))


class PaperStore:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"paper table {path} is damaged ({exc}); {REBUILD_HINT}") from None
        self.names = names.NameIndex(self.db)
        self._has: dict[str, bool] = {}

    # ---- reading --------------------------------------------------------------------------------
    def hashes(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        return {r[0]: (r[1], tuple(json.loads(r[2] or "[]"))) for r in self.db.execute("SELECT id, hash, sources FROM papers")}

    def get(self, ids: Iterable[str]) -> dict[str, Paper]:
        ids = list(dict.fromkeys(ids))
        out: dict[str, Paper] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(f"SELECT {_PAPER_COLUMNS} FROM papers WHERE id IN ({marks})", part):
                out[row[0]] = _paper(row)
        return out

    def iter_papers(self) -> Iterator[Paper]:
        yield from (_paper(r) for r in self.db.execute(f"SELECT {_PAPER_COLUMNS} FROM papers ORDER BY id"))

    def titles(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT id, title FROM papers"))

    def sentences(self, paper_ids: list[str]) -> dict[str, tuple[list[Sentence], np.ndarray]]:
        """Evidence sentences of these papers with their stored vectors (float32, one row per sentence)."""
        papers = self.get(paper_ids)
        out: dict[str, tuple[list[Sentence], np.ndarray]] = {}
        marks = ",".join("?" * len(papers))
        rows = self.db.execute(f"SELECT paper_id, idx, start, end, terms, vector FROM sentences WHERE paper_id IN "
                               f"({marks}) AND evidence = 1 ORDER BY paper_id, idx", list(papers)).fetchall()
        grouped: dict[str, list] = {}
        for row in rows:
            grouped.setdefault(row[0], []).append(row)
        for pid, items in grouped.items():
            abstract = papers[pid].abstract
            sentences = [Sentence(paper_id=pid, index=r[1], start=r[2], end=r[3], text=abstract[r[2]:r[3]],
                                  terms=frozenset(r[4].split())) for r in items]
            vectors = np.frombuffer(b"".join(r[5] for r in items), dtype=VECTOR_DTYPE).reshape(len(items), -1)
            out[pid] = (sentences, vectors.astype(np.float32))
        return out

    def chunk_spans(self, chunk_ids: list[str]) -> dict[str, tuple[int, int]]:
        """(start, end) in the abstract of chunks given as `<paper id>#<n>`."""
        keys = [cid.rsplit("#", 1) for cid in dict.fromkeys(chunk_ids)]
        out = {}
        for pid, idx in keys:
            row = self.db.execute("SELECT start, end FROM chunks WHERE paper_id = ? AND idx = ?", (pid, int(idx))).fetchone()
            if row:
                out[f"{pid}#{idx}"] = (row[0], row[1])
        return out

    def chunk_ids(self) -> list[str]:
        return [f"{pid}#{idx}" for pid, idx in self.db.execute("SELECT paper_id, idx FROM chunks ORDER BY paper_id, idx")]

    def doc_freq(self, term_list: Iterable[str]) -> dict[str, int]:
        """How many indexed papers use each term (absent: 0)."""
        wanted = sorted(set(term_list))
        found = dict(names.select_in(self.db, "SELECT term, df FROM term_df WHERE term IN ({})", wanted))
        return {t: int(found.get(t, 0)) for t in wanted}

    def idf(self, term_list: Iterable[str]) -> dict[str, float]:
        """Inverse document frequency of terms over the indexed papers; a term no paper uses weighs most."""
        n_docs = max(self.count(), 1)
        return {t: math.log((n_docs + 1) / (df + 0.5)) for t, df in self.doc_freq(term_list).items()}

    def chunk_total(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(n_chunks), 0) FROM papers").fetchone()[0])

    def sentence_total(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM sentences").fetchone()[0])

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM papers").fetchone()[0])

    def matching(self, filters) -> set[str]:
        """Ids of the papers that pass the filters (rag.types.Filters)."""
        sql, args = ["SELECT id, published FROM papers WHERE 1=1"], []
        if filters.category:
            sql.append("AND categories LIKE ?")
            args.append(f'%"{filters.category}"%')
        if filters.author:
            sql.append("AND authors LIKE ?")
            args.append(f"%{filters.author}%")
        out = set()
        for pid, published in self.db.execute(" ".join(sql), args):
            date = iso_date(published or "")
            if filters.since and (not date or date[: len(filters.since)] < filters.since):
                continue
            if filters.until and (not date or date[: len(filters.until)] > filters.until):
                continue
            out.add(pid)
        return out

    def has_metadata(self, column: str) -> bool:
        """Whether any paper carries this metadata column (authors, published, categories); asked per question,
        so remembered until the next write."""
        if column not in self._has:
            empty = {"authors": "[]", "categories": "[]", "published": ""}[column]
            self._has[column] = self.db.execute(
                f"SELECT 1 FROM papers WHERE {column} IS NOT NULL AND {column} != ? LIMIT 1", (empty,)).fetchone() is not None
        return self._has[column]

    # ---- writing --------------------------------------------------------------------------------
    def write_batch(self, batch: list[tuple[Paper, list[Sentence], np.ndarray, list[bool], list[Chunk]]]) -> None:
        """One transaction: rows, sentences, chunk spans, IDF counts and names of (paper, sentences, vectors,
        evidence flags, chunks) tuples. Replaces whatever an earlier version of each paper left."""
        from .._faults import checkpoint

        papers = [item[0] for item in batch]
        old = self.get(p.id for p in papers)
        self._has.clear()
        with self._transaction():
            self._count_terms([paper_terms(p) for p in old.values()], -1)
            self._count_terms([paper_terms(p) for p in papers], +1)
            for table in ("sentences", "chunks"):
                self.db.executemany(f"DELETE FROM {table} WHERE paper_id = ?", [(p.id,) for p in papers])
            names.forget_words(self.db, [p.id for p in papers])  # before their rows are replaced
            for paper, sentences, vectors, evidence, chunks in batch:
                self._insert(paper, sentences, vectors, evidence, chunks)
            names.write_names(self.db, papers)
            checkpoint("store-commit")

    def rewrite_names(self) -> int:
        """Re-derive every paper's name tables and full-text rows from its stored title and abstract, in one
        transaction (after the naming rules changed; no vector moves): the tables are emptied and written again,
        so nothing depends on what the old rules indexed. Returns how many papers. (A change to a names table's
        layout, not only to the rules, needs a new SCHEMA_VERSION: CREATE … IF NOT EXISTS keeps the old table.)"""
        papers = list(self.iter_papers())
        with self._transaction():
            for table in ("names", "titles", "aliases", "capitals", "title_words"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("INSERT INTO paper_words (paper_words) VALUES ('delete-all')")
            names.write_names(self.db, papers)
        return len(papers)

    @contextlib.contextmanager
    def _transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _insert(self, paper: Paper, sentences: list[Sentence], vectors: np.ndarray, evidence: list[bool],
                chunks: list[Chunk]) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO papers ({_PAPER_COLUMNS}, hash, n_chunks) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (paper.id, paper.title, paper.abstract, paper.url, json.dumps(paper.authors), paper.published,
             json.dumps(paper.categories), json.dumps(paper.sources), paper.content_hash, len(chunks)))
        self.db.executemany("INSERT INTO chunks VALUES (?,?,?,?)", [(paper.id, c.index, c.start, c.end) for c in chunks])
        self.db.executemany(
            "INSERT INTO sentences VALUES (?,?,?,?,?,?,?)",
            [(paper.id, s.index, s.start, s.end, int(ok), " ".join(sorted(s.terms)),
              vectors[i].astype(VECTOR_DTYPE).tobytes()) for i, (s, ok) in enumerate(zip(sentences, evidence))])

    def _count_terms(self, term_sets: list[set[str]], delta: int) -> None:
        counts: dict[str, int] = {}
        for term_set in term_sets:
            for term in term_set:
                counts[term] = counts.get(term, 0) + delta
        self.db.executemany("INSERT INTO term_df VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET df = df + excluded.df",
                            list(counts.items()))

    def set_sources(self, updates: dict[str, tuple[str, ...]]) -> None:
        with self._transaction():
            self.db.executemany("UPDATE papers SET sources=? WHERE id=?", [(json.dumps(s), pid) for pid, s in updates.items()])

    def close(self) -> None:
        self.db.close()
