"""Is a store file damaged? SQLite's ``PRAGMA quick_check``, naming what it finds damaged.

`serve` runs `damage` before it opens the store: a damaged file is refused with one line that
names the tables (and indexes) SQLite cannot read, instead of failing later, mid-ingest, with
"database disk image is malformed". ``quick_check`` reads every page of the database file (the
payloads live in segment files beside it and are not read), so it takes about as long as
reading the file once.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Final

from .sqlite import open_read_only

MAX_REPORTED: Final = 5
_PAGE = re.compile(r"\bPage (\d+)\b|\bTree (\d+) page\b", re.IGNORECASE)


def damage(path: Path) -> str | None:
    """None when SQLite's quick_check finds the store at `path` whole; otherwise one line:
    which tables (and indexes) are damaged and SQLite's first complaint about each.
    StoreError when the file cannot be read as a store at all."""
    db = open_read_only(path)
    try:
        try:
            if _quick_check(db) is None:
                return None
        except sqlite3.DatabaseError:
            pass  # some damage stops the whole check: look at each table in turn
        parts = _damaged_tables(db)
    finally:
        db.close()
    if not parts:
        parts = ["the database file (no single table or index)"]
    named = "; ".join(parts[:MAX_REPORTED]) + ("; ..." if len(parts) > MAX_REPORTED else "")
    return (f"{path} is damaged (SQLite quick_check): {named}; restore it from a backup "
            "(`assessengine backup`)")


def _quick_check(db: sqlite3.Connection, table: str | None = None) -> str | None:
    """The first complaint of quick_check (of one table and its indexes), or None: ok."""
    pragma = "PRAGMA quick_check" if table is None else f'PRAGMA quick_check("{table}")'
    rows = [str(row[0]) for row in db.execute(pragma).fetchall()]
    if rows == ["ok"]:
        return None
    lines = [line for row in rows for line in row.splitlines() if not line.startswith("***")]
    return lines[0] if lines else "damaged"


def _damaged_tables(db: sqlite3.Connection) -> list[str]:
    try:
        objects = db.execute(
            "SELECT type, name, tbl_name, rootpage FROM sqlite_master WHERE rootpage > 0"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        return [f"the schema (sqlite_master): {exc}"]
    roots = {int(root): (kind, name) for kind, name, _, root in objects}
    found = []
    for kind, name, _, _ in objects:
        if kind != "table":
            continue
        try:
            complaint = _quick_check(db, name)
        except sqlite3.DatabaseError as exc:
            complaint = str(exc)
        if complaint is not None:
            found.append(f"table {name}{_index_of(complaint, roots)}: {complaint}")
    return found


def _index_of(complaint: str, roots: dict[int, tuple[str, str]]) -> str:
    """`` (index X)`` when the complaint names the root page of an index."""
    for match in _PAGE.finditer(complaint):
        page = int(match.group(1) or match.group(2))
        kind, name = roots.get(page, ("", ""))
        if kind == "index":
            return f" (index {name})"
    return ""
