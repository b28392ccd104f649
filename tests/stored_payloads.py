"""Reach the payload files of a `SqliteStore` behind its back: tests that tamper or copy."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assessengine.storage.segments import Segments, folder_of


def edit_payload(db: Path, where: str, params: tuple[Any, ...],
                 edit: Callable[[bytearray], None]) -> None:  # fmt: skip
    """Change in place (same length) the stored payload of the one batch `where` selects
    (an SQL condition over ``batches b`` joined to ``sessions s``)."""
    conn = sqlite3.connect(db)
    try:
        segment, offset, length = conn.execute(
            "SELECT b.segment, b.seg_offset, b.seg_length FROM batches b "
            f"JOIN sessions s ON s.id = b.session_id WHERE {where}",
            params,
        ).fetchone()
    finally:
        conn.close()
    with Segments(folder_of(db)).path(segment).open("r+b") as file:
        file.seek(offset)
        data = bytearray(file.read(length))
        edit(data)
        assert len(data) == length, "an in-place edit keeps the length"
        file.seek(offset)
        file.write(data)


def copy_store(source: Path, target: Path) -> None:
    """Copy a closed store: the database file and its payload folder (if it has one)."""
    shutil.copyfile(source, target)
    if folder_of(source).exists():
        shutil.copytree(folder_of(source), folder_of(target))
