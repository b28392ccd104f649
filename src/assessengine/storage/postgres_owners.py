"""`PostgresOwners`: session ownership through PostgreSQL session-level advisory locks.

Each session maps to a 64-bit lock key (the first 8 bytes of ``sha256(schema NUL session)``,
the schema being the store's, so stores in two schemas of one database do not share keys).
An engine owns a session while it holds the key's advisory lock on its own dedicated
connection (``pg_try_advisory_lock``: never waits). The server releases every lock of a
connection when it ends, so when the owning engine stops, crashes or is killed, or its host or
network goes away (noticed by TCP keepalives within about `KEEPALIVE_S` seconds), its
sessions become claimable by the next engine that hears from their clients. No row is
written, no clock is compared and nothing expires on a timer.

Requires a connection that is really the engine's own for its lifetime: a direct connection to
the server, or a pooler in session mode (PgBouncer's transaction mode would hand the locks to
whoever gets the server connection next). Each held session uses one entry of the server's
shared lock table (``max_locks_per_transaction × (max_connections +
max_prepared_transactions)`` entries in all, 6,400 by default): raise
``max_locks_per_transaction`` for many thousands of sessions open at once.

Liveness: the lock connection is checked (one empty round trip) at most every `CHECK_S`
seconds when a claim needs no lock; if it broke, the locks went with it: it reconnects and
every session is claimed anew (and, if acquired, rebuilt from the store).
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from collections.abc import Collection
from typing import Any, Final

import psycopg

from .owners import Claim
from .port import StoreError, StoreOpenError
from .url import one_line, redact

CHECK_S: Final = 1.0
"""Seconds between liveness checks of the lock connection (when no claim queried it)."""
KEEPALIVE_S: Final = 10
"""TCP keepalive idle seconds of the lock connection, on both ends (the server notices a
vanished engine host, and the engine a vanished server, after about this plus 3 probes 3 s
apart)."""
_LOCK: Final = (
    "SELECT u.i, pg_try_advisory_lock(u.k) FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(k, i)"
)
_UNLOCK: Final = "SELECT pg_advisory_unlock(k) FROM unnest(%s::bigint[]) AS u(k)"


class PostgresOwners:
    """`storage.owners.Owners` on the PostgreSQL database at `url` (the store's URL).

    name:           the lock connection's ``application_name`` (what ``pg_stat_activity``
                    shows; the NACK ``session_owned`` names the owner by it).
    check_interval: seconds between liveness checks of the lock connection (`CHECK_S`).

    Raises StoreOpenError (one line, no password) when the server cannot be reached.
    Thread-safe: the ingest thread claims, the scoring side releases.
    """

    def __init__(self, url: str, *, name: str = "assessengine", connect_timeout: float = 10.0,
                 check_interval: float = CHECK_S) -> None:  # fmt: skip
        self.where = redact(url)
        self._interval = check_interval
        self._url, self._name, self._base, self._timeout = url, name, name, connect_timeout
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # session -> lock key
        self._checked = 0.0
        self._conn: psycopg.Connection[Any] | None = None
        self._schema = ""
        self._connect(opening=True)

    def claim(self, sessions: Collection[str]) -> Claim:
        with self._lock:
            try:
                return self._claim(sessions)
            except psycopg.OperationalError:  # the connection broke (its locks went with it)
                self._lost()
            try:
                return self._claim(sessions)  # on a new connection: every session anew
            except psycopg.Error as exc:
                self._lost()
                raise StoreError(f"{self.where}: cannot claim sessions ({one_line(str(exc))})"
                                 ) from exc  # fmt: skip

    def _claim(self, sessions: Collection[str]) -> Claim:
        conn = self._alive()
        wanted = {s: self._key(s) for s in sessions if s not in self._held}
        if not wanted:
            return Claim()
        names = list(wanted)
        rows = conn.execute(_LOCK, ([wanted[s] for s in names],)).fetchall()
        self._checked = time.monotonic()
        got = {names[int(i) - 1] for i, ok in rows if ok}
        self._held.update((s, wanted[s]) for s in got)
        return Claim(refused=frozenset(set(names) - got), acquired=frozenset(got))

    def owner(self, session: str) -> str | None:
        """The ``application_name`` of the connection holding `session`'s lock (None if no
        other connection holds it, or it cannot be read)."""
        key = self._key(session)
        with self._lock:
            conn = self._conn
            if conn is None:
                return None
            try:
                row = conn.execute(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1 "
                    "AND l.pid <> pg_backend_pid() LIMIT 1",
                    ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
                ).fetchone()
            except psycopg.Error:
                return None
        return None if row is None else str(row[0])

    def serving(self, endpoint: str) -> None:
        """Name the lock connection ``ENDPOINT NAME`` (the endpoint first: PostgreSQL keeps
        63 bytes of an ``application_name``)."""
        with self._lock:
            self._name = f"{endpoint} {self._base}"
            if self._conn is None:
                return
            try:
                self._conn.execute("SELECT set_config('application_name', %s, false)",
                                   (self._name[:63],))  # fmt: skip
            except psycopg.Error:
                self._lost()  # named anew when it reconnects

    def release(self, sessions: Collection[str]) -> None:
        with self._lock:
            keys = [self._held.pop(s) for s in sessions if s in self._held]
            if not keys or self._conn is None:
                return
            try:
                self._conn.execute(_UNLOCK, (keys,))
            except psycopg.Error:
                self._lost()  # the connection is gone, and its locks with it

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._held.clear()
        if conn is not None:
            conn.close()  # the server releases the connection's locks

    @property
    def held(self) -> frozenset[str]:
        """The sessions owned now."""
        with self._lock:
            return frozenset(self._held)

    # ------------------------------------------------------------------------------ helpers

    def _key(self, session: str) -> int:
        digest = hashlib.sha256(f"{self._schema}\0{session}".encode()).digest()
        key: int = struct.unpack(">q", digest[:8])[0]
        return key

    def _alive(self) -> psycopg.Connection[Any]:
        """The lock connection, checked if it was not used for `CHECK_S`; reconnected (every
        session then unowned) if it broke. StoreError when the server cannot be reached."""
        conn = self._conn
        if conn is not None and not conn.closed:
            if time.monotonic() - self._checked < self._interval:
                return conn
            try:
                conn.execute("SELECT 1")
                self._checked = time.monotonic()
                return conn
            except psycopg.Error:
                pass
        self._lost()
        return self._connect(opening=False)

    def _lost(self) -> None:
        """The lock connection broke: its locks are gone."""
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            conn.close()

    def _connect(self, *, opening: bool) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=max(1, round(self._timeout)),
                application_name=self._name[:63], keepalives=1, keepalives_idle=KEEPALIVE_S,
                keepalives_interval=3, keepalives_count=3,
            )  # fmt: skip
            for name, value in (("idle", KEEPALIVE_S), ("interval", 3), ("count", 3)):
                conn.execute(f"SET tcp_keepalives_{name} = {value}")  # the server's side
            row = conn.execute("SELECT current_schema()").fetchone()
        except psycopg.Error as exc:
            error = StoreOpenError if opening else StoreError
            raise error(f"{self.where}: cannot connect for session ownership "
                        f"({one_line(str(exc))})") from None  # fmt: skip
        self._schema = "" if row is None or row[0] is None else str(row[0])
        self._conn, self._checked = conn, time.monotonic()
        return conn
