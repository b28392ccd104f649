"""`Store.file_session`: a whole session (an uploaded log) in one transaction, on every store:
all of it is kept, or nothing, also when the disk fills up halfway (SQLite's SQLITE_FULL, or
ENOSPC writing a payload segment)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from assessengine.storage import segments
from assessengine.storage.port import (
    BatchRefusedError,
    StorageFullError,
    Store,
    StoreError,
    disk_full,
)
from assessengine.storage.sqlite import SqliteStore

from .test_store import Stores, info, item, stores  # noqa: F401  (the fixture)

REPORT = {"session": "S1", "outcome": "pass", "score": 100.0}


@pytest.fixture
def store(stores: Stores) -> Store:  # noqa: F811  (`stores` is the imported fixture)
    return stores.open()


def batches(session: str = "S1") -> list[tuple[str, int, int, str, bytes, bytes]]:
    return [item(session, 0), item(session, 10, fill=1), item(session, 20, fill=2)]


def nothing_of(store: Store, session: str = "S1") -> bool:
    return store.session(session) is None and all(
        r.info.session != session for r in store.sessions()
    )


def test_a_filed_session_is_what_open_append_close_and_report_make(
    store: Store, tmp_path: Path
) -> None:
    filed = store.file_session(info(), batches(), 30.5, REPORT)
    with SqliteStore(tmp_path / "by-steps.db") as steps:
        steps.open_session(info())
        steps.append_batches(batches())
        expected = steps.close_session("S1", 30.5)
        assert [b.chain for b in store.batches("S1")] == [b.chain for b in steps.batches("S1")]
    assert (filed.status, filed.close_t, filed.batches) == ("closed", 30.5, 3)
    assert filed.chain_head == expected.chain_head
    assert store.report("S1") == REPORT
    assert store.session("S1") == filed


def test_filing_an_existing_session_changes_nothing(store: Store) -> None:
    store.open_session(info())
    with pytest.raises(StoreError, match="exists already"):
        store.file_session(info(), batches(), 30.5, REPORT)
    record = store.session("S1")
    assert record is not None
    assert (record.status, record.batches) == ("open", 0)


def test_a_batch_out_of_order_keeps_nothing(store: Store) -> None:
    out_of_order = [item("S1", 0), item("S1", 20)]
    with pytest.raises(BatchRefusedError, match="expects seq 10"):
        store.file_session(info(), out_of_order, 30.5, REPORT)
    assert nothing_of(store)


def test_a_batch_of_another_session_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="every batch must be of this session"):
        store.file_session(info(), [item("S2", 0)], 30.5, REPORT)
    assert nothing_of(store)
    assert nothing_of(store, "S2")


def test_a_full_disk_under_the_payload_files_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*_: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with SqliteStore(tmp_path / "s.db") as store:
        monkeypatch.setattr(segments, "_pwritev", no_space)
        with pytest.raises(StorageFullError, match="the disk is full"):
            store.file_session(info(), batches(), 30.5, REPORT)
        assert nothing_of(store)
        monkeypatch.undo()
        store.file_session(info(), batches(), 30.5, REPORT)  # space again: it goes through
        assert store.report("S1") == REPORT


def test_a_full_database_keeps_nothing(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "s.db") as store:
        store.file_session(info("S0"), batches("S0"), 30.5, REPORT)
        db = store._connection()
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: SQLITE_FULL
        big = {**REPORT, "note": "x" * 200_000}
        with pytest.raises(StorageFullError, match="the disk is full") as raised:
            store.file_session(info(), batches(), 30.5, big)
        assert disk_full(raised.value)
        assert nothing_of(store)
        assert [r.info.session for r in store.sessions()] == ["S0"]


def test_disk_full_is_recognised_through_the_chain_of_causes() -> None:
    outer = StoreError("could not write")
    outer.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full(outer)
    assert not disk_full(StoreError("unknown session"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
