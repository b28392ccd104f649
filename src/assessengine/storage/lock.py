"""One engine per store: an exclusive lock on a file beside the SQLite store, held for as long
as the engine's store is open.

The lock is an advisory ``flock`` on ``<db>.lock``, which holds the owner's pid (for the error
message only). The operating system drops it when the process ends however it ends, so a
crash or SIGKILL never leaves a stale lock behind. Readers (the HTTP API's own store, the
scoring process, ``assessengine audit``) do not take it: only the process that ingests does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .port import StoreError


class StoreInUseError(StoreError):
    """Another process holds the store's lock (another `serve` runs on the same store)."""


def lock_path(db_path: Path) -> Path:
    """The lock file of the store at `db_path`: ``<db>.lock`` beside it."""
    return db_path.with_name(db_path.name + ".lock")


class StoreLock:
    """The store's lock, taken when built (raises StoreInUseError if another process holds
    it, StoreError if the lock file cannot be opened); `release` (idempotent) gives it back."""

    def __init__(self, db_path: Path) -> None:
        self.path = lock_path(db_path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise StoreInUseError(
                f"{db_path} is in use by another engine{who}: only one `serve` may run on a "
                "store; stop it first, or give this one another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor drops the flock


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
    return ""
