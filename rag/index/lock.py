"""flock beside the index: writers exclusive, readers shared, so a second process fails fast instead of hanging."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from ..errors import IndexLockedError

LOCK_FILE = ".lock"


class IndexLock:
    """Holders of the exclusive lock write their PID into the lock file, so the error can name them."""

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
                    self._fail(fd)
                time.sleep(0.05)
        if self.exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def _fail(self, fd: int) -> None:
        try:
            holder = os.pread(fd, 32, 0).decode().strip()
        except OSError:
            holder = ""
        os.close(fd)
        who = f"PID {holder}" if holder else "another process"
        action = "write to" if self.exclusive else "read"
        raise IndexLockedError(
            f"index {self.path.parent} is in use by {who}; cannot {action} it now. "
            "Wait for that process to finish (an ingest, or a chat holding the index open) and retry."
        ) from None

    def release(self) -> None:
        if self._fd is not None:
            if self.exclusive:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
