"""`SqliteStore`'s payload segment files: payloads live beside the database, written once;
segments rotate; bytes whose rows never committed are never read; the tail a
power loss took is dropped on opening (not by readers such as the audit); version-1 stores
with payloads inside the database still read and migrate."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from assessengine.core import chain
from assessengine.storage import sqlite as sqlite_store
from assessengine.storage.port import StoreError
from assessengine.storage.segments import folder_of
from assessengine.storage.sqlite import SqliteStore

from .stored_payloads import edit_payload
from .test_store import info, item


def payload_rows(path: Path) -> list[tuple[int, int, int, int]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT segment, seg_offset, seg_length, length(payload) FROM batches ORDER BY id"
        ).fetchall()
    finally:
        db.close()


def mark_of(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT synced_batch FROM payload_files").fetchone()[0])
    finally:
        db.close()


def set_mark(path: Path, value: int) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("UPDATE payload_files SET synced_batch = ?", (value,))
        db.commit()
    finally:
        db.close()


def fill(path: Path, sessions: dict[str, int], *, count: int = 10, **options: object) -> None:
    """Open each session and append `sessions[s]` batches of `count` events to it,
    interleaved, one transaction per round; batch k of a session is filled with byte k+1."""
    with SqliteStore(path, **options) as store:  # type: ignore[arg-type]
        for name in sessions:
            store.open_session(info(name))
        for k in range(max(sessions.values())):
            store.append_batches([item(name, k * count, count, fill=k + 1)
                                  for name, n in sessions.items() if k < n])  # fmt: skip


def test_payloads_are_written_once_into_the_segment_and_read_back_exactly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "engine.db"
    fill(path, {"A": 3, "B": 2})
    rows = payload_rows(path)
    assert [(seg, off, n, inline) for seg, off, n, inline in rows] == [
        (1, 0, 600, 0), (1, 600, 600, 0), (1, 1200, 600, 0), (1, 1800, 600, 0),
        (1, 2400, 600, 0),
    ]  # fmt: skip
    assert (folder_of(path) / "00000001.seg").stat().st_size == 3000
    with SqliteStore(path) as store:
        batches = list(store.batches("A"))
        assert [b.payload for b in batches] == [bytes([k + 1]) * 600 for k in range(3)]
        record = store.session("A")
        assert record is not None
        assert chain.verify_chain(chain.genesis(info("A")), batches) is None


def test_a_new_segment_starts_when_the_current_one_is_full(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    fill(path, {"A": 5}, count=20, segment_bytes=2 * 1200 + 100)  # 1200 bytes per batch
    assert [(seg, off) for seg, off, *_ in payload_rows(path)] == [
        (1, 0), (1, 1200), (2, 0), (2, 1200), (3, 0)
    ]
    with SqliteStore(path, segment_bytes=2500) as store:
        assert [b.payload[0] for b in store.batches("A")] == [1, 2, 3, 4, 5]
        store.append_batches([item("A", 100, 200)])  # larger than a segment: one of its own
    assert payload_rows(path)[-1][:3] == (4, 0, 12_000)


def test_bytes_whose_rows_never_committed_are_never_read(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    fill(path, {"A": 1})
    segment = folder_of(path) / "00000001.seg"
    with segment.open("ab") as file:  # past the last place taken: overwritten by the next append
        file.write(b"\xee" * 5000)
    with SqliteStore(path) as store:
        with pytest.raises(StoreError, match="expects seq 10"):  # refused once its place was
            store.append_batches([item("A", 50, fill=7)])  # taken and written: a hole
        store.append_batches([item("A", 10, fill=9)])
        assert [b.payload for b in store.batches("A")] == [b"\x01" * 600, b"\x09" * 600]
    assert payload_rows(path)[-1][:2] == (1, 1200)  # after the 600-byte hole
    with SqliteStore(path) as store:  # opening checks nothing it should not
        assert [b.payload for b in store.batches("A")] == [b"\x01" * 600, b"\x09" * 600]


def test_a_clean_close_marks_every_payload_synced(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    fill(path, {"A": 2, "B": 2})
    assert mark_of(path) == 4


def test_under_full_every_commit_syncs_and_marks(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    with SqliteStore(path, synchronous="FULL") as store:
        store.open_session(info("A"))
        store.append_batches([item("A", 0), item("A", 10)])
        assert mark_of(path) == 2
        store.append_batches([item("A", 20)])
        assert mark_of(path) == 3


def test_opening_drops_the_tail_a_power_loss_took_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "engine.db"
    fill(path, {"A": 4, "B": 4})  # ids: A0 B0 A1 B1 A2 B2 A3 B3
    set_mark(path, 2)  # only the first round was known to be on disk
    edit_payload(path, "s.session = 'A' AND b.idx = 2", (),
                 lambda p: p.__setitem__(slice(None), bytes(len(p))))  # it never got there
    with caplog.at_level(logging.WARNING, logger=sqlite_store.__name__):
        store = SqliteStore(path)
    try:
        record = store.session("A")
        assert record is not None
        assert (record.batches, record.next_seq) == (2, 20)
        assert [b.payload[0] for b in store.batches("A")] == [1, 2]
        assert [b.payload[0] for b in store.batches("B")] == [1, 2, 3, 4]
        store.append_batches([item("A", 20, fill=7)])  # the client's resend continues it
        assert chain.verify_chain(chain.genesis(info("A")), store.batches("A")) is None
    finally:
        store.close()
    assert "session 'A' lost its last 2 batch(es), from seq 20" in caplog.text
    assert mark_of(path) == 9


def test_a_reader_that_must_not_change_the_store_sees_the_broken_tail(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    fill(path, {"A": 3})
    set_mark(path, 0)
    edit_payload(path, "b.idx = 1", (), lambda p: p.__setitem__(0, 0xFF))
    with SqliteStore(path, recover=False) as store:
        batches = list(store.batches("A"))
        assert len(batches) == 3
        assert chain.verify_chain(chain.genesis(info("A")), batches) == 1
    assert mark_of(path) == 0


def test_a_cut_segment_file_is_a_clear_error_for_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    fill(path, {"A": 2})
    os.truncate(folder_of(path) / "00000001.seg", 900)
    with SqliteStore(path, recover=False) as store, pytest.raises(StoreError) as caught:
        list(store.batches("A"))
    assert "00000001.seg is cut short: a payload of 600 bytes at offset 600 has only 300" in str(
        caught.value
    )


VERSION_1 = """
CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,
    session        TEXT NOT NULL UNIQUE,
    info           TEXT NOT NULL,
    learner        TEXT NOT NULL,
    scenario       TEXT NOT NULL,
    rubric         TEXT NOT NULL,
    rubric_version INTEGER NOT NULL,
    source         TEXT NOT NULL CHECK (source IN ('simulator', 'field')),
    genesis        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at      TEXT NOT NULL,
    close_t        REAL,
    closed_at      TEXT
);
CREATE INDEX sessions_by_status ON sessions (status, id);
CREATE TABLE batches (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions (id),
    idx         INTEGER NOT NULL,
    first_seq   INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    encoding    TEXT NOT NULL,
    received_at TEXT NOT NULL,
    chain       TEXT NOT NULL,
    header      BLOB NOT NULL,
    payload     BLOB NOT NULL,
    UNIQUE (session_id, idx)
);
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions (id),
    criterion   TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    row         TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX decisions_by_session ON decisions (session_id, id);
CREATE TABLE reports (
    session_id INTEGER PRIMARY KEY REFERENCES sessions (id),
    report     TEXT NOT NULL,
    saved_at   TEXT NOT NULL
);
"""
"""The schema of store version 1, as the releases before the payload files created it."""


def test_a_version_1_store_with_payloads_inside_migrates_and_reads(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA application_id = {sqlite_store.APPLICATION_ID}")
    db.executescript(VERSION_1)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    db.execute("INSERT INTO schema_version VALUES (1, 'then')")
    old = info("A")
    text = chain.canonical_json(chain.info_data(old)).decode()
    genesis = chain.genesis(old)
    db.execute(
        "INSERT INTO sessions VALUES (1, 'A', ?, 'L1', 'forklift-warehouse', "
        "'forklift-load-handling', 1, 'simulator', ?, 'open', 'then', NULL, NULL)",
        (text, genesis),
    )
    _, first_seq, count, encoding, header, payload = item("A", 0, fill=5)
    value = chain.next_chain(genesis, header, payload)
    db.execute(
        "INSERT INTO batches VALUES (1, 1, 0, ?, ?, ?, 'then', ?, ?, ?)",
        (first_seq, count, encoding, value, header, payload),
    )
    db.commit()
    db.close()
    SqliteStore(path).close()  # migrates: the BLOBs inside count as synced, nothing to check
    assert mark_of(path) == 1
    with SqliteStore(path) as store:
        store.append_batches([item("A", 10, fill=6)])
        batches = list(store.batches("A"))
        assert [b.payload for b in batches] == [b"\x05" * 600, b"\x06" * 600]
        assert chain.verify_chain(genesis, batches) is None
    assert payload_rows(path) == [(None, None, None, 600), (1, 0, 600, 0)]


def test_a_group_of_more_payloads_than_one_pwritev_takes_lands_in_order(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    with SqliteStore(path) as store:
        store.open_session(info("A"))
        store.append_batches([item("A", k, 1, fill=k % 251) for k in range(1300)])
        assert [b.payload for b in store.batches("A")] == [
            bytes([k % 251]) * 60 for k in range(1300)
        ]


def test_short_writes_are_continued_where_they_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.pwritev

    def at_most_100_bytes(fd: int, buffers: list[memoryview], offset: int) -> int:
        first = bytes(buffers[0][:100])  # the OS may write less than asked
        return real(fd, [first], offset)

    monkeypatch.setattr(os, "pwritev", at_most_100_bytes)
    path = tmp_path / "engine.db"
    fill(path, {"A": 2, "B": 1})
    monkeypatch.undo()
    with SqliteStore(path) as store:
        assert [b.payload for b in store.batches("A")] == [b"\x01" * 600, b"\x02" * 600]
        assert [b.payload for b in store.batches("B")] == [b"\x01" * 600]


def test_two_writers_on_one_file_place_their_payloads_one_after_the_other(
    tmp_path: Path,
) -> None:
    """`serve` has two: the engine's store and the HTTP API's (field uploads)."""
    path = tmp_path / "engine.db"
    engine = SqliteStore(path, segment_bytes=1500)
    api = SqliteStore(path, segment_bytes=1500)
    try:
        engine.open_session(info("E"))
        api.open_session(info("F"))
        for k in range(6):
            engine.append_batches([item("E", 10 * k, fill=k + 1)])
            api.append_batches([item("F", 10 * k, fill=k + 11)])
        for store in (engine, api):
            assert [b.payload[0] for b in store.batches("E")] == [1, 2, 3, 4, 5, 6]
            assert [b.payload[0] for b in store.batches("F")] == [11, 12, 13, 14, 15, 16]
    finally:
        api.close()
        engine.close()
    assert [(seg, off) for seg, off, *_ in payload_rows(path)] == [
        (s, o) for s in range(1, 7) for o in (0, 600)
    ]
    assert mark_of(path) == 12


def test_without_pwritev_payloads_are_written_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "pwritev")  # as on an OS without it
    path = tmp_path / "engine.db"
    fill(path, {"A": 3})
    monkeypatch.undo()
    with SqliteStore(path) as store:
        assert [b.payload for b in store.batches("A")] == [bytes([k]) * 600 for k in (1, 2, 3)]
