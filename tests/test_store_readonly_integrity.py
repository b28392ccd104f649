"""A store copy that no one may write is audited as it is (nothing created or changed beside it),
and `serve` refuses a damaged store file at start with one line naming the damaged table (SQLite's
quick_check), exit 2."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from assessengine.cli import main
from assessengine.storage.port import StoreError
from assessengine.storage.sqlite import SqliteStore
from assessengine.storage.sqlite_check import damage

from .stored_payloads import copy_store
from .test_audit import SESSION, audit, stored_db  # noqa: F401  (the fixture)


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and folder under `folder` (and itself): mode, modification time (a folder's
    changes when a file is made or removed in it, even one removed again) and contents."""
    return {str(p.relative_to(folder)): (
        p.stat().st_mode, p.stat().st_mtime_ns,
        hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder",
    ) for p in sorted([folder, *folder.rglob("*")])}  # fmt: skip


@pytest.fixture
def read_only_copy(stored_db: Path, tmp_path: Path) -> Iterator[Path]:  # noqa: F811
    """A copy of the store whose file, payload folder and folder have no write bits."""
    folder = tmp_path / "archive"
    folder.mkdir()
    copy = folder / "engine.db"
    copy_store(stored_db, copy)
    paths = [*folder.rglob("*"), folder]
    for path in paths:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield copy
    for path in paths:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_a_read_only_copy_is_audited_and_left_as_it_was(read_only_copy: Path) -> None:
    folder = read_only_copy.parent
    before = snapshot(folder)
    result = audit(SESSION, "--db", str(read_only_copy))
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("audit: ok")
    assert snapshot(folder) == before  # no -wal, no -shm, no byte changed
    assert not os.access(folder, os.W_OK) or os.geteuid() == 0  # really read-only (but root)


def test_a_read_only_store_refuses_writes(read_only_copy: Path) -> None:
    with SqliteStore(read_only_copy, read_only=True) as store:
        assert store.session(SESSION) is not None
        with pytest.raises(StoreError, match="readonly"):
            store.save_report(SESSION, {"outcome": "pass"})


def test_a_log_that_a_read_only_folder_cannot_read_is_named(read_only_copy: Path) -> None:
    wal = read_only_copy.with_name(read_only_copy.name + "-wal")
    folder = read_only_copy.parent
    folder.chmod(folder.stat().st_mode | stat.S_IWUSR)
    wal.write_bytes(b"\0" * 32)
    folder.chmod(folder.stat().st_mode & ~stat.S_IWUSR)
    result = audit(SESSION, "--db", str(read_only_copy))
    if os.geteuid() == 0:  # root may write anywhere: the log is read as usual
        return
    assert result.exit_code == 2
    assert "write-ahead log engine.db-wal" in result.output


# ==================================================================================== integrity


def damage_table(path: Path, table: str) -> None:
    """Overwrite the page header of `table`'s root page (SQLite cannot read that b-tree)."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                             (table,)).fetchone()  # fmt: skip
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    finally:
        db.close()
    with path.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * 12)


@pytest.fixture
def damaged(stored_db: Path, tmp_path: Path) -> Path:  # noqa: F811
    copy = tmp_path / "engine.db"
    copy_store(stored_db, copy)
    damage_table(copy, "batches")
    return copy


def test_a_whole_store_passes_the_check(stored_db: Path) -> None:  # noqa: F811
    assert damage(stored_db) is None


def test_the_check_names_the_damaged_table(damaged: Path) -> None:
    found = damage(damaged)
    assert found is not None
    assert "is damaged (SQLite quick_check): table batches" in found
    assert "\n" not in found
    assert "table sessions" not in found


def test_the_check_names_a_damaged_index(stored_db: Path, tmp_path: Path) -> None:  # noqa: F811
    copy = tmp_path / "engine.db"
    copy_store(stored_db, copy)
    damage_table(copy, "sessions_by_status")
    found = damage(copy)
    assert found is not None
    assert "table sessions (index sessions_by_status)" in found


def test_serve_refuses_a_damaged_store_in_one_line(damaged: Path) -> None:
    before = damaged.read_bytes()
    result = CliRunner().invoke(main, ["serve", "--db", str(damaged), "--zmq",
                                       "tcp://127.0.0.1:*", "--http", "127.0.0.1:0"])  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "is damaged (SQLite quick_check): table batches" in lines[0]
    assert "Traceback" not in result.output
    assert damaged.read_bytes() == before  # refused as it was: nothing opened for writing
