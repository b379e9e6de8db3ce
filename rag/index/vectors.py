"""Chroma adapter: chunk vectors in a collection (embedded PersistentClient in the index directory, or a server).

Chroma gets our own embeddings (its default embedding function would download a model) and telemetry is off.
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


class VectorStore:
    """The chunk collection, opened on first use (a question answered from BM25 alone never imports chromadb)."""

    def __init__(self, settings: Settings, directory: Path, *, write: bool):
        self.settings = settings
        self.dir = directory
        self.write = write
        self._client = None
        self._collection = None

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
        """Run a read against the collection; Chroma raises many types for a damaged store, all become one."""
        try:
            return call(self.collection)
        except IndexCorruptError:
            raise
        except Exception as exc:
            raise IndexCorruptError(f"vector store of index {self.dir} cannot be read ({exc}); {REBUILD_HINT}") from None

    def count(self) -> int:
        return self._read(lambda c: c.count())

    def query(self, embedding: np.ndarray, n: int) -> list[tuple[str, float]]:
        """Nearest chunks as (chunk id, cosine similarity), best first; ids and distances only (fetching
        documents and metadata for 50 chunks cost ~50-120 ms per query on a 100k-chunk server)."""
        result = self._read(lambda c: c.query(query_embeddings=[embedding.astype(np.float32)], n_results=n,
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
        return list(self._read(lambda c: c.get(include=[]))["ids"])

    def drop_remote(self) -> None:
        """A server keeps the collection outside the index directory: delete it by name on rebuild."""
        if self.settings.index.chroma_host:
            with contextlib.suppress(Exception):
                _client(self.settings, self.dir).delete_collection(self.settings.index.collection)

    def close(self) -> None:
        self._collection = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
