"""manifest.json: how an index was built and whether an ingest finished. A mismatch is refused, never used."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import Settings
from ..errors import IndexCorruptError, IndexMismatchError
from ..text import SPLITTER_VERSION, TERMS_VERSION
from .names import NAMES_VERSION

MANIFEST = "manifest.json"
# 2: sentences stored with their vectors and terms, chunks are sentence windows, names/IDF persisted at ingest;
# 3: papers keyed by an integer row number (n) that the full-text indexes share.
SCHEMA_VERSION = 3
REBUILD_HINT = "rebuild it with `rag ingest --rebuild` (this deletes only the index directory, never your source files)"
# Manifest keys added later, with the value every index written before them had.
_LEGACY = {"embedding_backend": "torch", "schema": 1, "splitter": 1, "terms": 1, "names": 1}


def build_signature(settings: Settings) -> dict:
    """The settings an index depends on; any difference means stored vectors are not comparable."""
    return {
        "schema": SCHEMA_VERSION,
        "embedding_model": settings.embedding.model,
        "embedding_backend": settings.embedding.backend,
        "chunk_tokens": settings.chunking.chunk_tokens,
        "overlap_tokens": settings.chunking.overlap_tokens,
        "splitter": SPLITTER_VERSION,
        "terms": TERMS_VERSION,
        "names": NAMES_VERSION,
    }


def _describe(sig: dict) -> str:
    return (f"embedding model {sig.get('embedding_model')!r} on {sig.get('embedding_backend')!r}, chunks of "
            f"{sig.get('chunk_tokens')} tokens with {sig.get('overlap_tokens')} overlap, sentence splitter "
            f"v{sig.get('splitter')}, terms v{sig.get('terms')}, names v{sig.get('names')} (schema {sig.get('schema')})")


class Manifest:
    """The manifest's data and its file; written atomically (temp file + rename)."""

    def __init__(self, directory: Path, data: dict):
        self.path = directory / MANIFEST
        self.data = data

    @classmethod
    def new(cls, directory: Path, settings: Settings) -> "Manifest":
        import time

        manifest = cls(directory, {**build_signature(settings), "state": "empty", "created": time.time()})
        manifest.write()
        return manifest

    @classmethod
    def load(cls, directory: Path, settings: Settings, *, names_may_differ: bool = False) -> "Manifest":
        """The manifest, if the index was built as these settings ask. Name tables of another version are refused
        to readers with a pointer to `rag ingest`, and accepted by a writer, which rebuilds them (`names_stale`)."""
        path = directory / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"index manifest {path} is unreadable ({exc}); {REBUILD_HINT}") from None
        expected = build_signature(settings)
        built = {k: data.get(k, _LEGACY.get(k)) for k in expected}
        differs = {k for k in expected if built[k] != expected[k]}
        if differs == {"names"} and not names_may_differ:
            raise IndexMismatchError(
                f"index at {directory} holds name tables of names v{built['names']}; this version reads names "
                f"v{expected['names']}. Run `rag ingest` to rebuild them from the stored papers (nothing is "
                "re-embedded).")
        if differs - {"names"}:
            raise IndexMismatchError(
                f"index at {directory} was built with {_describe(built)}, but the current settings ask for "
                f"{_describe(expected)}. Either restore those settings or {REBUILD_HINT}."
            )
        return cls(directory, data)

    @property
    def names_stale(self) -> bool:
        return self.data.get("names", _LEGACY["names"]) != NAMES_VERSION

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    @property
    def complete(self) -> bool:
        return self.data.get("state") == "complete"

    def update(self, **values) -> None:
        self.data.update(values)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        os.replace(tmp, self.path)

    def check_digest(self, digest: str) -> None:
        """Vectors from other weights (say, a re-exported ONNX file) must not be mixed with or queried against these."""
        built = self.data.get("embedding_digest")
        if built and built != digest:
            raise IndexMismatchError(f"index at {self.path.parent} was embedded with model weights {built[:12]}…, but "
                                     f"the loaded model is {digest[:12]}…; {REBUILD_HINT}")
