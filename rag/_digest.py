"""sha256 of large files, computed once: a stamp beside the file records digest, size and mtime, so later starts
trust the file without re-reading it, and a file changed since (other size or mtime) is hashed again."""
from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def write_stamp(path: Path, digest: str) -> None:
    st = path.stat()
    _stamp(path).write_text(f"{digest} {st.st_size} {st.st_mtime_ns}\n")


def stamped_digest(path: Path) -> str | None:
    """The digest the stamp records, if the stamp still describes the file as it is."""
    stamp = _stamp(path)
    if not (path.is_file() and stamp.is_file()):
        return None
    parts = stamp.read_text().split()
    st = path.stat()
    if len(parts) == 3 and parts[1:] == [str(st.st_size), str(st.st_mtime_ns)]:
        return parts[0]
    return None


def file_digest(path: Path) -> str:
    """The file's sha256, from its stamp when the file is unchanged, else hashed and stamped."""
    digest = stamped_digest(path)
    if digest is None:
        digest = sha256_file(path)
        write_stamp(path, digest)
    return digest
