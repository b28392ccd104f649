"""Taking SQLite's write lock without SQLite's busy handler.

SQLite's own busy handler (what ``sqlite3.connect(timeout=...)`` installs) sleeps 1, 2, 5, 10,
15, 20, 25 ... ms between attempts, so a writer waiting for a lock another connection holds
for 1.1 ms sleeps 3 ms: the live engine's ingest thread (two write transactions a round) and
its scoring process (decisions, reports) wait on each other that way many times a second
(performance.md, "Where the live engine's wall time goes"). `begin_immediate` retries
``BEGIN IMMEDIATE`` itself instead, after 0.1 ms, doubling up to 1 ms, until the connection's
own busy timeout has passed; then it raises SQLite's "database is locked" as before.
(`storage.engines.sqlite_engine`, for migrations and `copy`, keeps SQLite's handler: one
transaction a run, where a few milliseconds do not matter.)

Contract: on return, `db` is in a write transaction; on error, it is in none, and the
connection's busy timeout is what it was.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Final

FIRST_DELAY_S: Final = 0.0001
MAX_DELAY_S: Final = 0.001


def busy_delays(timeout: float) -> Iterator[float]:
    """The sleeps between attempts: 0.1 ms doubling to at most 1 ms, adding up to `timeout`
    seconds (the last one shortened to fit; none when `timeout` <= 0)."""
    delay, left = FIRST_DELAY_S, timeout
    while left > 0:
        step = min(delay, left)
        yield step
        left -= step
        delay = min(2 * delay, MAX_DELAY_S)


def begin_immediate(db: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE`` on `db`, waiting for the write lock as the module docstring says
    (at most the connection's busy timeout). Raises sqlite3.OperationalError ("database is
    locked") when the lock stays taken, and any other error of the statement at once."""
    timeout_ms = int(db.execute("PRAGMA busy_timeout").fetchone()[0])
    if timeout_ms <= 0:
        db.execute("BEGIN IMMEDIATE")
        return
    db.execute("PRAGMA busy_timeout = 0")
    try:
        delays = busy_delays(timeout_ms / 1000)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # SQLITE_BUSY_*: too
                    raise
                delay = next(delays, None)
                if delay is None or time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
    finally:
        db.execute(f"PRAGMA busy_timeout = {timeout_ms}")
