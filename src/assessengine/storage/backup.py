"""`backup_store`: a consistent copy of a store (database and payload files) while it is in use.

SQLite's online backup takes a snapshot of the database; the payload files only grow, so the
bytes the snapshot's rows name are already in them and are copied up to there (bytes appended
later belong to later transactions and are left out). The copy is synced before it is named
done, and its ``payload_files`` row marks every batch synced: opening it checks nothing.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .port import StoreError
from .segments import Segments, folder_of, fsync_path
from .sqlite import APPLICATION_ID, BUSY_TIMEOUT_S

CHUNK: Final = 8 * 2**20  # bytes copied per read
Progress = Callable[[int, int], None]
"""Called with (bytes copied, bytes to copy) as payload files are copied."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    sessions: int
    batches: int
    segments: int
    payload_bytes: int


def backup_store(source: Path, target: Path, progress: Progress | None = None) -> BackupResult:
    """Copy the store at `source` into a new store at `target` (with its payload folder).
    Writers may go on meanwhile. Raises StoreError when `source` is not a store or is damaged,
    or `target` (or its folder) exists."""
    if not source.is_file():
        raise StoreError(f"{source}: no such store file")
    if not target.parent.is_dir():
        raise StoreError(f"{target.parent} is not a folder: create it first")
    for taken in (target, folder_of(target)):
        if taken.exists():
            raise StoreError(f"{taken} exists: back up into a new path")
    try:
        _snapshot(source, target)
        db = sqlite3.connect(target)
        try:
            ends = _ends(db)
            (sessions,) = db.execute("SELECT COUNT(*) FROM sessions").fetchone()
            batches, last = db.execute("SELECT COUNT(*), MAX(id) FROM batches").fetchone()
            total = sum(ends.values())
            _copy_payloads(folder_of(source), folder_of(target), ends, total, progress)
            if ends:
                with db:  # commits
                    db.execute("UPDATE payload_files SET synced_batch = ?", (last,))
        finally:
            db.close()
        fsync_path(target)
        fsync_path(target.parent)  # the new names survive a power loss
    except BaseException as exc:
        _remove(target)
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{source}: cannot back up ({exc})") from exc
        raise
    return BackupResult(target, sessions, batches, len(ends), total)


def _snapshot(source: Path, target: Path) -> None:
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
    try:
        if src.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            raise StoreError(f"{source} is not an assessengine store")
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _remove(target: Path) -> None:
    """Take away what a failed backup wrote (none of it existed before)."""
    for path in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        path.unlink(missing_ok=True)
    shutil.rmtree(folder_of(target), ignore_errors=True)


def _ends(db: sqlite3.Connection) -> dict[int, int]:
    """segment -> end of the bytes the snapshot's rows name (empty for a schema-1 store)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(batches)")}
    if "segment" not in columns:
        return {}
    rows = db.execute(
        "SELECT segment, MAX(seg_offset + seg_length) FROM batches "
        "WHERE segment IS NOT NULL GROUP BY segment"
    )
    return {int(segment): int(end) for segment, end in rows}


def _copy_payloads(
    source: Path, target: Path, ends: dict[int, int], total: int, progress: Progress | None
) -> None:
    if not ends:
        return
    target.mkdir()
    names = Segments(source)
    copied = 0
    for segment, end in sorted(ends.items()):
        path = names.path(segment)
        try:
            with path.open("rb") as reader, (target / path.name).open("wb") as writer:
                left = end
                while left:
                    data = reader.read(min(CHUNK, left))
                    if not data:
                        raise StoreError(
                            f"{path} is cut short: its batches name {end} bytes, "
                            f"it has {end - left}"
                        )
                    writer.write(data)
                    left -= len(data)
                    copied += len(data)
                    if progress is not None:
                        progress(copied, total)
                writer.flush()
                os.fsync(writer.fileno())
        except FileNotFoundError:
            raise StoreError(f"{path} is missing: the store's payloads cannot be copied") from None
    fsync_path(target)
