"""The persisted index. Layout of the index directory, each file owned by one module of this package:

  manifest.json   how the index was built and whether an ingest finished          (manifest)
  papers.sqlite   papers, their sentences (spans, terms, vectors), chunk spans,
                  the IDF table and the name tables                              (store, names)
  chroma/         chunk vectors, unless a Chroma server is configured            (vectors)
  bm25/           BM25 over the papers, derived after each ingest                (lexical)
  .lock           flock: writers exclusive, readers shared                       (lock)
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import IndexCorruptError, IndexMissingError
from .._faults import checkpoint
from .ingest import IngestReport, ingest
from .lexical import BM25_DIR, BM25Index, build_bm25
from .lock import IndexLock
from .manifest import MANIFEST, REBUILD_HINT, Manifest, build_signature
from .names import NAMES_VERSION
from .store import PAPERS_DB, PaperStore
from .vectors import VectorStore, forget_chroma_system

__all__ = ["Index", "IngestReport", "REBUILD_HINT", "build_signature"]


EXACT_SEARCH_CHUNKS = 5000


class Index:
    """An open index. `Index.open` to read, `Index.open_for_write` to ingest; close when done."""

    def __init__(self, settings: Settings, *, write: bool):
        self.settings = settings
        self.dir = Path(settings.index.dir)
        self.write = write
        self._lock = IndexLock(self.dir, exclusive=write, timeout_s=settings.index.lock_timeout_s)
        self.manifest: Manifest | None = None
        self.store: PaperStore | None = None
        self.vectors = VectorStore(settings, self.dir, write=write)
        self._bm25: BM25Index | None = None
        self.names_rebuilt = 0  # papers whose name tables a writer re-derived on opening (names version changed)

    # ---- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings) -> "Index":
        if not (Path(settings.index.dir) / MANIFEST).exists():
            raise IndexMissingError(f"no index at {settings.index.dir}; build one with `rag ingest`")
        index = cls(settings, write=False)
        with index._closing_on_error():
            index._lock.acquire()
            index._load()
            if not index.manifest.complete or not index.has_derived_files():
                raise IndexCorruptError(f"index at {index.dir} is incomplete (an ingest was interrupted); run "
                                        "`rag ingest` again to finish it")
        return index

    @classmethod
    def open_for_write(cls, settings: Settings, rebuild: bool = False) -> "Index":
        index = cls(settings, write=True)
        index.dir.mkdir(parents=True, exist_ok=True)
        with index._closing_on_error():
            index._lock.acquire()
            if rebuild:
                index._wipe()
            if (index.dir / MANIFEST).exists():
                index._load(names_may_differ=True)
                if index.manifest.names_stale:  # the naming rules changed: re-derive the tables from the text
                    index.names_rebuilt = index.store.rewrite_names()
                    index.manifest.update(names=NAMES_VERSION)
            else:
                index.manifest = Manifest.new(index.dir, settings)
                index.store = PaperStore(index.dir / PAPERS_DB)
        return index

    @contextlib.contextmanager
    def _closing_on_error(self):
        try:
            yield
        except BaseException:
            self.close()
            raise

    def _wipe(self) -> None:
        """Delete what the index owns, and only that: never files outside these names."""
        for name in (MANIFEST, PAPERS_DB, PAPERS_DB + "-wal", PAPERS_DB + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()
        forget_chroma_system(self.dir / "chroma")
        for name in ("chroma", BM25_DIR):
            shutil.rmtree(self.dir / name, ignore_errors=True)
        self.vectors.drop_remote()

    def _load(self, names_may_differ: bool = False) -> None:
        self.manifest = Manifest.load(self.dir, self.settings, names_may_differ=names_may_differ)
        if not (self.dir / PAPERS_DB).exists():
            raise IndexCorruptError(f"index at {self.dir} has no paper table; {REBUILD_HINT}")
        self.store = PaperStore(self.dir / PAPERS_DB)

    def check_consistent(self) -> None:
        """The vector store holds exactly the chunks the paper table expects (one Chroma round trip)."""
        count = self.vectors.count()
        expected = self.store.chunk_total()
        if count != expected:
            raise IndexCorruptError(f"index {self.dir} is inconsistent: {count} vectors stored but {expected} "
                                    f"expected; {REBUILD_HINT}")

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self.vectors.close()
        self._bm25 = None
        self._lock.release()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------------------
    @property
    def bm25(self) -> BM25Index:
        if self._bm25 is None:
            self._bm25 = BM25Index(self.dir / BM25_DIR)
        return self._bm25

    def has_derived_files(self) -> bool:
        return (self.dir / BM25_DIR / "paper_ids.json").is_file()

    @property
    def chunk_count(self) -> int:
        """A complete index knows its size from the manifest; asking a Chroma server costs a round trip."""
        return int(self.manifest.get("chunks") or 0)

    def dense(self, embedding: np.ndarray, n: int) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk id, cosine similarity), best first.

        Chroma's HNSW search is approximate, and what it misses varies between processes: on the bundled corpus a
        chunk at rank 8 of 50 came back in some processes and not in others, same index, same query vector. Up to
        EXACT_SEARCH_CHUNKS chunks every chunk is asked for (the search is then exhaustive, and answers repeat
        run to run) and the best n kept; beyond that, HNSW as configured."""
        count = self.chunk_count
        if not count:
            return []
        if count <= EXACT_SEARCH_CHUNKS:
            return self.vectors.query(embedding, count)[:n]
        return self.vectors.query(embedding, min(n, count))

    # ---- writing ---------------------------------------------------------------------------------
    def adopt_digest(self, digest: str) -> None:
        """Record the embedding weights' digest, refusing weights other than those the stored vectors came from."""
        if self.store.count():
            self.manifest.check_digest(digest)
        self.manifest.update(embedding_digest=digest)

    def ingest(self, papers, **kwargs) -> IngestReport:
        assert self.write and self.store is not None
        return ingest(self, papers, **kwargs)

    def write_derived_files(self) -> None:
        build_bm25(self.dir / BM25_DIR, self.store.iter_papers())
        self._bm25 = None
        checkpoint("manifest-complete")
        self.manifest.update(state="complete", papers=self.store.count(), chunks=self.store.chunk_total(),
                             sentences=self.store.sentence_total())
