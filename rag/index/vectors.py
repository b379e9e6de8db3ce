"""Chroma adapter: chunk vectors in a collection (embedded PersistentClient in the index directory, or a server).

Chroma gets our own embeddings (its default embedding function would download a model) and telemetry is off.

Reading a local index does not need the `chromadb` Python package: its import alone costs ~1.2 s here, most of
a cold `rag ask`. `_LocalReader` queries the same files through Chroma's own engine (`chromadb_rust_bindings`,
which the package itself drives, 0.06 s to import). If those bindings ever change shape, the reader falls back
to the public client, so a Chroma upgrade costs speed, never answers (tests/test_index.py checks both agree).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import IndexCorruptError
from ..types import Chunk
from .manifest import REBUILD_HINT

_UPSERT_LIMIT = 5000


def _client(settings: Settings, directory: Path):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.index.chroma_host:
        return chromadb.HttpClient(host=settings.index.chroma_host, port=settings.index.chroma_port,
                                   settings=chroma_settings)
    return chromadb.PersistentClient(path=str(directory / "chroma"), settings=chroma_settings)


def forget_chroma_system(path: Path) -> None:
    """Stop any Chroma system this process still holds on `path`, so the directory can be deleted and rebuilt."""
    from chromadb.api.shared_system_client import SharedSystemClient

    system = SharedSystemClient._identifier_to_system.pop(str(path), None)
    SharedSystemClient._identifier_to_refcount.pop(str(path), None)
    if system is not None:
        with contextlib.suppress(Exception):
            system.stop()


_TENANT, _DATABASE = "default_tenant", "default_database"


class _LocalReader:
    """Read-only nearest-neighbour queries on a local Chroma directory, through Chroma's Rust engine."""

    def __init__(self, directory: Path, name: str):
        import chromadb_rust_bindings as rust

        config = rust.SqliteDBConfig(hash_type=rust.MigrationHash.MD5, migration_mode=rust.MigrationMode.Validate,
                                     url=str(directory / "chroma.sqlite3"))
        self.bindings = rust.Bindings(allow_reset=False, sqlite_db_config=config, persist_path=str(directory),
                                      hnsw_cache_size=16)
        self.collection_id = str(self.bindings.get_collection(name, _TENANT, _DATABASE).id)

    def query(self, query_embeddings, n_results: int, include: list[str]) -> dict:
        result = self.bindings.query(self.collection_id, None, query_embeddings, n_results, None, None, include,
                                     _TENANT, _DATABASE)
        return {"ids": result.ids, "distances": result.distances}


def local_reader(directory: Path, name: str) -> _LocalReader | None:
    """The fast reader, or None when this Chroma's bindings do not have the shape it was written for."""
    if not (directory / "chroma.sqlite3").is_file():
        return None
    try:
        return _LocalReader(directory, name)
    except (ImportError, AttributeError, TypeError):
        return None


class VectorStore:
    """The chunk collection, opened on first use (a question answered from BM25 alone never imports chromadb)."""

    def __init__(self, settings: Settings, directory: Path, *, write: bool):
        self.settings = settings
        self.dir = directory
        self.write = write
        self._client = None
        self._collection = None
        self._reader = None

    @property
    def reader(self):
        """What queries go to: the fast local reader when it applies, else the collection."""
        if self._reader is None:
            local = not self.write and not self.settings.index.chroma_host
            self._reader = (local and local_reader(self.dir / "chroma", self.settings.index.collection)) or \
                self.collection
        return self._reader

    @property
    def collection(self):
        if self._collection is None:
            self._client = _client(self.settings, self.dir)
            name = self.settings.index.collection
            try:
                if self.write:
                    self._collection = self._client.get_or_create_collection(
                        name, embedding_function=None, metadata={"hnsw:space": "cosine"})
                else:
                    self._collection = self._client.get_collection(name, embedding_function=None)
            except Exception as exc:
                raise IndexCorruptError(f"collection {name!r} of index {self.dir} cannot be opened ({exc}); "
                                        f"{REBUILD_HINT}") from None
        return self._collection

    def _read(self, call):
        """Run a read; Chroma raises many types for a damaged store, all become one."""
        try:
            return call()
        except IndexCorruptError:
            raise
        except Exception as exc:
            raise IndexCorruptError(f"vector store of index {self.dir} cannot be read ({exc}); {REBUILD_HINT}") from None

    def count(self) -> int:
        return self._read(lambda: self.collection.count())

    def query(self, embedding: np.ndarray, n: int) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk id, cosine similarity), best first; ids and distances only (fetching
        documents and metadata for 50 chunks cost ~50-120 ms per query on a 100k-chunk server)."""
        result = self._read(lambda: self.reader.query(query_embeddings=[embedding.astype(np.float32)], n_results=n,
                                                      include=["distances"]))
        return [(str(cid), 1.0 - float(dist)) for cid, dist in zip(result["ids"][0], result["distances"][0])]

    def replace(self, changed_ids: list[str], chunks: list[Chunk], vectors: np.ndarray) -> None:
        """Upsert by deterministic chunk id: vectors a killed ingest left behind are overwritten, not duplicated.
        Only changed papers can have stale extra chunks, so only they pay a filtered delete."""
        if changed_ids:
            self.collection.delete(where={"paper_id": {"$in": changed_ids}})
        for start in range(0, len(chunks), _UPSERT_LIMIT):
            part = chunks[start : start + _UPSERT_LIMIT]
            self.collection.upsert(
                ids=[c.id for c in part],
                embeddings=vectors[start : start + _UPSERT_LIMIT],
                metadatas=[{"paper_id": c.paper_id, "chunk": c.index, "start": c.start, "end": c.end} for c in part],
            )

    def chunk_ids(self) -> list[str]:
        return list(self._read(lambda: self.collection.get(include=[]))["ids"])

    def drop_remote(self) -> None:
        """A server keeps the collection outside the index directory: delete it by name on rebuild."""
        if self.settings.index.chroma_host:
            with contextlib.suppress(Exception):
                _client(self.settings, self.dir).delete_collection(self.settings.index.collection)

    def close(self) -> None:
        self._collection = self._reader = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
