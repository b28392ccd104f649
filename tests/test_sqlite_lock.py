"""SQLite's write lock is waited for in steps of 0.1-1 ms by `begin_immediate` (every store
transaction: `storage.sqlite.immediate`), not by SQLite's busy handler (1, 2, 5, 10 ... ms):
the waiter retries ``BEGIN IMMEDIATE`` itself, still gives up after the connection's busy
timeout, and leaves that timeout as it was."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.storage.sqlite import immediate
from assessengine.storage.sqlite_lock import FIRST_DELAY_S, MAX_DELAY_S, busy_delays

WAIT_S = 30.0


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    return db


@pytest.fixture
def holder(tmp_path: Path) -> sqlite3.Connection:
    """A connection holding the write lock of a fresh WAL file with one table."""
    db = _connect(tmp_path / "lock.db", 10.0)
    db.execute("CREATE TABLE t (x INTEGER)")
    db.execute("BEGIN IMMEDIATE")
    return db


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0.0, max_value=20.0, allow_nan=False))
def test_busy_delays_start_small_stay_below_a_millisecond_and_add_up_to_the_timeout(
    timeout: float,
) -> None:
    delays = list(busy_delays(timeout))
    assert all(0 < d <= MAX_DELAY_S for d in delays)
    assert sum(delays) == pytest.approx(timeout, abs=1e-9)
    if delays:
        assert delays[0] == min(FIRST_DELAY_S, timeout)


def test_a_waiting_writer_retries_begin_itself_and_gets_the_lock_once_released(
    tmp_path: Path, holder: sqlite3.Connection
) -> None:
    waiter = _connect(tmp_path / "lock.db", 10.0)
    statements: list[str] = []
    waiter.set_trace_callback(statements.append)
    done = threading.Event()

    def write() -> None:
        with immediate(waiter):
            waiter.execute("INSERT INTO t VALUES (1)")
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    deadline = time.monotonic() + WAIT_S  # the holder lets go once the waiter has retried
    while statements.count("BEGIN IMMEDIATE") < 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    holder.execute("COMMIT")
    thread.join(WAIT_S)
    assert done.is_set()
    assert statements.count("BEGIN IMMEDIATE") >= 2  # SQLite's busy handler would retry unseen
    assert waiter.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000


def test_a_lock_that_stays_taken_still_fails_after_the_busy_timeout(
    tmp_path: Path, holder: sqlite3.Connection
) -> None:
    waiter = _connect(tmp_path / "lock.db", 0.05)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"), immediate(waiter):
        waiter.execute("INSERT INTO t VALUES (1)")
    assert not waiter.in_transaction
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 50
    holder.execute("COMMIT")


def test_an_error_other_than_busy_is_raised_at_once(tmp_path: Path) -> None:
    db = _connect(tmp_path / "other.db", 10.0)
    statements: list[str] = []
    db.execute("BEGIN")
    db.set_trace_callback(statements.append)
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"), immediate(db):
        pass
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
