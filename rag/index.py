"""The persisted index: Chroma for chunk vectors, SQLite for papers, bm25s for lexical search, a manifest.

Layout of the index directory:
  manifest.json   how the index was built (embedding model, chunk settings) and whether an ingest is unfinished
  papers.sqlite   one row per paper with its content hash and chunk count (written after its vectors)
  chroma/         Chroma's PersistentClient store (unless a Chroma server is configured)
  bm25/           the saved BM25 index and the paper ids in its row order
  .lock           flock: writers exclusive, readers shared, so a second process fails fast instead of hanging

Ingest is incremental and kill-safe: a paper's chunks go to Chroma (deleted then added) before its row is
committed to SQLite, so a paper without a row is simply redone on the next run.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .config import Settings
from .errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError
from .types import Chunk, Paper

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
PAPERS_DB = "papers.sqlite"
LOCK_FILE = ".lock"
REBUILD_HINT = "rebuild it with `rag ingest --rebuild` (this deletes only the index directory, never your source files)"


# Manifest keys added later, with the value every index written before them had.
_LEGACY = {"embedding_backend": "torch"}


def build_signature(settings: Settings) -> dict:
    """The settings an index depends on; any difference means stored vectors are not comparable."""
    return {
        "schema": SCHEMA_VERSION,
        "embedding_model": settings.embedding.model,
        "embedding_backend": settings.embedding.backend,
        "chunk_tokens": settings.chunking.chunk_tokens,
        "overlap_tokens": settings.chunking.overlap_tokens,
    }


def _describe(sig: dict) -> str:
    return (f"embedding model {sig.get('embedding_model')!r} on {sig.get('embedding_backend')!r}, chunks of {sig.get('chunk_tokens')} tokens "
            f"with {sig.get('overlap_tokens')} overlap (schema {sig.get('schema')})")


class IndexLock:
    """flock-based lock beside the index; holders of the exclusive lock write their PID into it."""

    def __init__(self, directory: Path, exclusive: bool, timeout_s: float):
        self.path = directory / LOCK_FILE
        self.exclusive = exclusive
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def acquire(self) -> "IndexLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = self._holder(fd)
                    os.close(fd)
                    who = f"PID {holder}" if holder else "another process"
                    action = "write to" if self.exclusive else "read"
                    raise IndexLockedError(
                        f"index {self.path.parent} is in use by {who}; cannot {action} it now. "
                        "Wait for that process to finish (an ingest, or a chat holding the index open) and retry."
                    ) from None
                time.sleep(0.05)
        if self.exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            return os.pread(fd, 32, 0).decode().strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._fd is not None:
            if self.exclusive:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass
class IngestReport:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    listings: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    papers_total: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    issues: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.papers_total} papers in index: {self.new} new, {self.changed} changed, "
                f"{self.unchanged} unchanged, {self.skipped} skipped records; "
                f"{self.chunks_embedded} chunks embedded ({self.chunks_total} in index) in {self.seconds:.1f}s")


class PaperStore:
    """SQLite table of papers; the source of truth for which papers are completely indexed."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = sqlite3.connect(path, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS papers (id TEXT PRIMARY KEY, title TEXT NOT NULL, abstract TEXT NOT NULL,"
                " url TEXT, authors TEXT, published TEXT, categories TEXT, sources TEXT, hash TEXT NOT NULL,"
                " n_chunks INTEGER NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"paper table {path} is damaged ({exc}); {REBUILD_HINT}") from None

    def hashes(self) -> dict[str, tuple[str, str]]:
        return {row[0]: (row[1], row[2]) for row in self.db.execute("SELECT id, hash, sources FROM papers")}

    def upsert(self, papers: Iterable[tuple[Paper, int]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO papers VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (p.id, p.title, p.abstract, p.url, json.dumps(p.authors), p.published, json.dumps(p.categories),
                     json.dumps(p.sources), p.content_hash, n)
                    for p, n in papers
                ],
            )

    def set_sources(self, updates: dict[str, tuple[str, ...]]) -> None:
        with self.db:
            self.db.executemany("UPDATE papers SET sources=? WHERE id=?",
                                [(json.dumps(s), pid) for pid, s in updates.items()])

    def all(self) -> list[Paper]:
        rows = self.db.execute(
            "SELECT id, title, abstract, url, authors, published, categories, sources FROM papers ORDER BY id"
        )
        return [
            Paper(id=r[0], title=r[1], abstract=r[2], url=r[3] or "", authors=tuple(json.loads(r[4] or "[]")),
                  published=r[5] or "", categories=tuple(json.loads(r[6] or "[]")), sources=tuple(json.loads(r[7] or "[]")))
            for r in rows
        ]

    def chunk_total(self) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(n_chunks), 0) FROM papers").fetchone()[0])

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM papers").fetchone()[0])

    def close(self) -> None:
        self.db.close()


def _chroma_client(settings: Settings, directory: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.index.chroma_host:
        return chromadb.HttpClient(host=settings.index.chroma_host, port=settings.index.chroma_port,
                                   settings=chroma_settings)
    return chromadb.PersistentClient(path=str(directory / "chroma"), settings=chroma_settings)


def _forget_chroma_system(path: Path) -> None:
    """Stop any Chroma system this process still holds on `path`, so the directory can be deleted and rebuilt."""
    from chromadb.api.shared_system_client import SharedSystemClient

    system = SharedSystemClient._identifier_to_system.pop(str(path), None)
    SharedSystemClient._identifier_to_refcount.pop(str(path), None)
    if system is not None:
        with contextlib.suppress(Exception):
            system.stop()


class Index:
    """An open index. Use `Index.open` to read and `Index.open_for_write` to ingest; close when done."""

    def __init__(self, settings: Settings, *, write: bool):
        self.settings = settings
        self.dir = Path(settings.index.dir)
        self.write = write
        self._lock = IndexLock(self.dir, exclusive=write, timeout_s=settings.index.lock_timeout_s)
        self.manifest: dict = {}
        self.store: PaperStore | None = None
        self._collection = None
        self._client = None

    # ---- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings) -> "Index":
        if not (Path(settings.index.dir) / MANIFEST).exists():
            raise IndexMissingError(f"no index at {settings.index.dir}; build one with `rag ingest`")
        index = cls(settings, write=False)
        index._lock.acquire()
        try:
            index._load()
        except BaseException:
            index.close()
            raise
        return index

    @classmethod
    def open_for_write(cls, settings: Settings, rebuild: bool = False) -> "Index":
        index = cls(settings, write=True)
        index.dir.mkdir(parents=True, exist_ok=True)
        index._lock.acquire()
        try:
            if rebuild:
                index._wipe()
            if (index.dir / MANIFEST).exists():
                index._load()
            else:
                index.manifest = {**build_signature(settings), "state": "empty", "created": time.time()}
                index._write_manifest()
                index.store = PaperStore(index.dir / PAPERS_DB)
        except BaseException:
            index.close()
            raise
        return index

    def _wipe(self) -> None:
        """Delete what the index owns, and only that: never files outside these names."""
        for name in (MANIFEST, PAPERS_DB, PAPERS_DB + "-wal", PAPERS_DB + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()
        _forget_chroma_system(self.dir / "chroma")
        for name in ("chroma", "bm25"):
            shutil.rmtree(self.dir / name, ignore_errors=True)
        if self.settings.index.chroma_host:
            client = _chroma_client(self.settings, self.dir)
            with contextlib.suppress(Exception):
                client.delete_collection(self.settings.index.collection)

    def _load(self) -> None:
        try:
            self.manifest = json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"index manifest {self.dir / MANIFEST} is unreadable ({exc}); {REBUILD_HINT}") from None
        expected = build_signature(self.settings)
        built = {k: self.manifest.get(k, _LEGACY.get(k)) for k in expected}
        if built != expected:
            raise IndexMismatchError(
                f"index at {self.dir} was built with {_describe(built)}, but the current settings ask for "
                f"{_describe(expected)}. Either restore those settings or {REBUILD_HINT}."
            )
        if not (self.dir / PAPERS_DB).exists():
            raise IndexCorruptError(f"index at {self.dir} has no paper table; {REBUILD_HINT}")
        self.store = PaperStore(self.dir / PAPERS_DB)
        if not self.write:
            self._check_consistent()

    def _check_consistent(self) -> None:
        try:
            count = self.collection.count()
        except Exception as exc:  # chroma raises many types for a damaged store
            raise IndexCorruptError(f"vector store of index {self.dir} cannot be read ({exc}); {REBUILD_HINT}") from None
        expected = self.store.chunk_total()
        if self.manifest.get("state") == "complete" and count != expected:
            raise IndexCorruptError(
                f"index {self.dir} is inconsistent: {count} vectors stored but {expected} expected; {REBUILD_HINT}"
            )

    @property
    def unfinished(self) -> bool:
        return self.manifest.get("state") == "ingesting"

    @property
    def collection(self):
        if self._collection is None:
            client = self._client = _chroma_client(self.settings, self.dir)
            name = self.settings.index.collection
            try:
                if self.write:
                    self._collection = client.get_or_create_collection(
                        name, embedding_function=None, metadata={"hnsw:space": "cosine"}
                    )
                else:
                    self._collection = client.get_collection(name, embedding_function=None)
            except Exception as exc:
                raise IndexCorruptError(f"collection {name!r} of index {self.dir} cannot be opened ({exc}); {REBUILD_HINT}") from None
        return self._collection

    def _write_manifest(self) -> None:
        tmp = self.dir / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.manifest, indent=2))
        os.replace(tmp, self.dir / MANIFEST)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self._collection = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        self._lock.release()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------------------
    def papers(self) -> list[Paper]:
        return self.store.all()

    def check_digest(self, digest: str) -> None:
        """Vectors from other weights (say, a re-exported ONNX file) must not be mixed with or queried against these."""
        built = self.manifest.get("embedding_digest")
        if built and built != digest:
            raise IndexMismatchError(f"index at {self.dir} was embedded with model weights {built[:12]}…, but the "
                                     f"loaded model is {digest[:12]}…; {REBUILD_HINT}")

    def _check_digest(self, digest: str) -> None:
        if self.store.count():
            self.check_digest(digest)
        self.manifest["embedding_digest"] = digest
        self._write_manifest()

    def query(self, embedding: np.ndarray, n: int) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk id, cosine similarity), best first."""
        count = self._chunk_count()
        if count == 0:
            return []
        result = self.collection.query(query_embeddings=[embedding.astype(np.float32)], n_results=min(n, count),
                                       include=["distances"])
        return [(str(cid), 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0])]

    def chunk_texts(self, chunk_ids: list[str]) -> dict[str, tuple[str, int]]:
        """Text and start offset of a few chunks, by id (for the snippets of the hits shown)."""
        if not chunk_ids:
            return {}
        got = self.collection.get(ids=list(dict.fromkeys(chunk_ids)), include=["documents", "metadatas"])
        return {cid: (doc, int(meta["start"])) for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"])}

    def _chunk_count(self) -> int:
        """A complete index knows its size from the manifest; asking a Chroma server costs a round trip per query."""
        if not self.write and self.manifest.get("state") == "complete" and self.manifest.get("chunks") is not None:
            return int(self.manifest["chunks"])
        return self.collection.count()

    # ---- writing ---------------------------------------------------------------------------------
    def ingest(
        self,
        papers: list[Paper],
        *,
        chunker: Callable[[Paper], list[Chunk]],
        embed: Callable[[list[str], Callable[[int], None] | None], np.ndarray],
        progress: Callable[[int, int], None] | None = None,
        batch_papers: int = 64,
        embed_digest: Callable[[], str] | None = None,
    ) -> IngestReport:
        """Add new and changed papers; unchanged ones cost a hash comparison only."""
        assert self.write and self.store is not None
        started = time.perf_counter()
        report = IngestReport()
        stored = self.store.hashes()
        todo: list[Paper] = []
        source_updates: dict[str, tuple[str, ...]] = {}
        for paper in papers:
            old = stored.get(paper.id)
            if old is None:
                report.new += 1
                todo.append(paper)
            elif old[0] != paper.content_hash:
                report.changed += 1
                todo.append(paper)
            else:
                report.unchanged += 1
                merged = tuple(dict.fromkeys(tuple(json.loads(old[1] or "[]")) + paper.sources))
                if merged != tuple(json.loads(old[1] or "[]")):
                    source_updates[paper.id] = merged
        if source_updates:
            self.store.set_sources(source_updates)
        if todo:
            if embed_digest is not None:  # before anything is written: a refused ingest leaves the index as it was
                self._check_digest(embed_digest())
            self.manifest["state"] = "ingesting"
            self._write_manifest()
            chunked = [(paper, chunker(paper)) for paper in todo]
            total = sum(len(c) for _, c in chunked)
            done = 0

            def tick(n: int) -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, total)

            if progress:
                progress(0, total)
            embed_started = time.perf_counter()
            for start in range(0, len(chunked), batch_papers):
                batch = chunked[start : start + batch_papers]
                chunks = [c for _, cs in batch for c in cs]
                vectors = embed([c.embed_text for c in chunks], tick)
                self._replace_chunks([p.id for p, _ in batch if p.id in stored], chunks, vectors)
                self.store.upsert((p, len(cs)) for p, cs in batch)
                report.chunks_embedded += len(chunks)
            report.embed_seconds = time.perf_counter() - embed_started
        if todo or self.manifest.get("state") != "complete" or not (self.dir / "bm25").exists():
            from .retrieval import build_bm25

            build_bm25(self.dir / "bm25", self.store.all())
            self.manifest["state"] = "complete"
            self.manifest["papers"] = self.store.count()
            self.manifest["chunks"] = self.store.chunk_total()
            self.manifest["updated"] = time.time()
            self._write_manifest()
        report.papers_total = self.store.count()
        report.chunks_total = self.store.chunk_total()
        report.seconds = time.perf_counter() - started
        return report

    def _replace_chunks(self, changed_ids: list[str], chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Upsert by deterministic chunk id: vectors a killed ingest left behind are overwritten, not duplicated.
        Only changed papers can have stale extra chunks, so only they pay a filtered delete (one more server
        round trip and metadata lookup per batch otherwise)."""
        collection = self.collection
        if changed_ids:
            collection.delete(where={"paper_id": {"$in": changed_ids}})
        if not chunks:
            return
        limit = 5000
        for start in range(0, len(chunks), limit):
            part = chunks[start : start + limit]
            collection.upsert(
                ids=[c.id for c in part],
                embeddings=vectors[start : start + limit],
                documents=[c.text for c in part],
                metadatas=[{"paper_id": c.paper_id, "title": c.title, "chunk": c.index, "start": c.start, "end": c.end}
                           for c in part],
            )


def iter_chunks(index: Index) -> Iterator[tuple[str, dict]]:
    """All stored chunk ids with metadata (for tests and integrity checks)."""
    got = index.collection.get(include=["metadatas"])
    yield from zip(got["ids"], got["metadatas"])
