"""`assessengine backup` / `backup_store`: a consistent, complete copy of a store, also while a
writer appends; a target that exists or a source that is no store is refused, leaving nothing."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from assessengine.cli import main
from assessengine.core import chain
from assessengine.storage.backup import backup_store
from assessengine.storage.port import StoreError
from assessengine.storage.segments import folder_of
from assessengine.storage.sqlite import SqliteStore

from .test_store import info, item
from .test_store_payloads import fill, mark_of, set_mark


def test_a_backup_holds_every_session_batch_and_payload_and_nothing_more(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "engine.db", tmp_path / "copy.db"
    fill(source, {"A": 3, "B": 2}, segment_bytes=1500)  # 600-byte payloads: 3 segments
    with (folder_of(source) / "00000003.seg").open("ab") as file:
        file.write(b"\xee" * 999)  # an append that never committed
    set_mark(source, 0)  # as while the engine runs: its syncs lag
    seen: list[tuple[int, int]] = []
    result = backup_store(source, target, lambda done, total: seen.append((done, total)))
    assert (result.sessions, result.batches, result.segments, result.payload_bytes) == (
        2, 5, 3, 3000,
    )
    assert seen[-1] == (3000, 3000)
    assert sorted(p.stat().st_size for p in folder_of(target).iterdir()) == [600, 1200, 1200]
    assert mark_of(target) == 5
    with SqliteStore(target, recover=False) as copy, SqliteStore(source) as original:
        for name in ("A", "B"):
            assert list(copy.batches(name)) == list(original.batches(name))
            assert copy.session(name) == original.session(name)


def test_a_backup_taken_while_a_writer_appends_is_consistent(tmp_path: Path) -> None:
    source = tmp_path / "engine.db"
    store = SqliteStore(source, segment_bytes=64 * 1024)
    store.open_session(info("A"))
    stop = threading.Event()

    def write() -> None:
        seq = 0
        while not stop.is_set():
            store.append_batches([item("A", seq, 20, fill=seq % 250)])
            seq += 20

    writer = threading.Thread(target=write)
    writer.start()
    try:
        results = [backup_store(source, tmp_path / f"copy{k}.db") for k in range(5)]
    finally:
        stop.set()
        writer.join()
        store.close()
    for result in results:
        with SqliteStore(result.path) as copy:
            batches = list(copy.batches("A"))
            assert len(batches) == result.batches
            assert chain.verify_chain(chain.genesis(info("A")), batches) is None
    assert results[-1].batches > 0


def test_an_existing_target_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    source, target = tmp_path / "engine.db", tmp_path / "copy.db"
    fill(source, {"A": 1})
    target.write_bytes(b"mine")
    with pytest.raises(StoreError, match=r"copy\.db exists: back up into a new path"):
        backup_store(source, target)
    assert target.read_bytes() == b"mine"


def test_a_target_in_a_missing_folder_is_refused_plainly(tmp_path: Path) -> None:
    source = tmp_path / "engine.db"
    fill(source, {"A": 1})
    with pytest.raises(StoreError, match=r"nowhere is not a folder: create it first"):
        backup_store(source, tmp_path / "nowhere" / "copy.db")


def test_a_file_that_is_no_store_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    other, target = tmp_path / "other.db", tmp_path / "copy.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"other\.db is not an assessengine store"):
        backup_store(other, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_a_cut_payload_file_fails_the_backup_and_nothing_is_left(tmp_path: Path) -> None:
    source, target = tmp_path / "engine.db", tmp_path / "copy.db"
    fill(source, {"A": 2})
    (folder_of(source) / "00000001.seg").write_bytes(b"\x01" * 700)
    with pytest.raises(StoreError, match=r"00000001\.seg is cut short: its batches name 1200 "):
        backup_store(source, target)
    assert not target.exists()
    assert not folder_of(target).exists()


def test_the_command_reports_what_it_copied_and_refuses_an_existing_target(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "engine.db", tmp_path / "copy.db"
    fill(source, {"A": 2, "B": 1})
    runner = CliRunner()
    done = runner.invoke(main, ["backup", "--db", str(source), str(target)])
    assert done.exit_code == 0, done.output
    assert f"backed up 2 sessions, 3 batches and 0.0 MB of payloads in 1 file(s) to {target}" in (
        done.output
    )
    audited = runner.invoke(main, ["audit", "A", "--db", str(target), "--json"])
    assert '"batches": 2' in audited.output
    again = runner.invoke(main, ["backup", "--db", str(source), str(target)])
    assert again.exit_code == 2
    assert "copy.db exists: back up into a new path" in again.output
