"""`PostgresStore`: the `Store` on a PostgreSQL server, through psycopg 3 and a connection pool.

The tables are those of `storage.schema`, built by the same migrations as SQLite's
(`storage.migrate`, run when the store opens). A batch's header and payload are BYTEA columns
of its row (no segment files: the server's WAL makes the bytes durable with the row).

Durability: every mutating call has committed when it returns (the engine acknowledges after
it). With ``synchronous`` NORMAL, FULL or EXTRA (the default NORMAL) a commit has reached the
server's disk (``synchronous_commit = on``): stronger than SQLite's NORMAL. ``OFF`` sets
``synchronous_commit = off``: a crash of the server (not of the engine) may lose the last
transactions, never half of one.

Group commit: `append_batches` stores its whole group in one transaction. It first locks the
rows of the group's sessions (``SELECT ... FOR UPDATE``, in id order, so two writers never
deadlock) and reads their chain heads under the lock: several engines, the API's uploads and
the scoring process may write to one database, and each batch still follows its session's
last one exactly. A refused item (`BatchRefusedError`) rolls the whole group back.

Threading: the methods may be called from any thread; each call takes a connection from the
pool (``pool_size`` at most) for its duration. `batches` holds none between its chunks.

Connections: the pool checks a connection before handing it out (one empty round trip), so
after a server restart or a failover the next call reconnects instead of failing; a call that
was running when the connection broke raises StoreError (the engine did not acknowledge it,
and its client resends).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import psycopg
import sqlalchemy as sa
from psycopg_pool import ConnectionPool

from ..core import chain
from . import _common as common
from . import migrate
from .engines import postgres_engine
from .port import (
    Payload,
    SessionInfo,
    SessionRecord,
    Status,
    StorageFullError,
    Store,
    StoredBatch,
    StoreError,
    StoreOpenError,
    disk_full,
)
from .url import one_line, redact

SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
CHUNK: Final = 256  # batches read per query by `batches()`

_HEAD: Final = """
    LEFT JOIN LATERAL (
        SELECT idx, first_seq + count AS next_seq, chain FROM batches
        WHERE session_id = s.id ORDER BY idx DESC LIMIT 1
    ) b ON true
"""
_SESSION: Final = f"""
    SELECT s.info, s.genesis, s.status, s.opened_at, s.close_t, s.closed_at,
           b.idx, b.next_seq, b.chain
    FROM sessions s {_HEAD}
"""
_LOCK: Final = "SELECT id FROM sessions WHERE session = ANY(%s) ORDER BY id FOR UPDATE"
_HEADS: Final = f"""
    SELECT s.session, s.id, s.status, s.genesis, b.idx, b.next_seq, b.chain
    FROM sessions s {_HEAD}
    WHERE s.session = ANY(%s)
"""
_INSERT_BATCH: Final = (
    "INSERT INTO batches (session_id, idx, first_seq, count, encoding, received_at, chain, "
    "header, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_INSERT_DECISIONS: Final = (
    "INSERT INTO decisions (session_id, criterion, verdict, row, recorded_at) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) "
    "ON CONFLICT (session_id, criterion) DO NOTHING"
)  # one statement for a step's decisions (thousands of rows), in order; a criterion's
# decision is stored once per session (revision 0009)
_UPSERT_REPORT: Final = (
    "INSERT INTO reports (session_id, report, saved_at, outcome, score) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (session_id) DO UPDATE SET "
    "report = excluded.report, saved_at = excluded.saved_at, outcome = excluded.outcome, "
    "score = excluded.score"
)


def open_postgres(url: str, **options: Any) -> Store:
    """`PostgresStore(url, **options)` (what `open_store` calls for a postgresql:// URL)."""
    return PostgresStore(url, **options)


class PostgresStore:
    """A `Store` in the PostgreSQL database at `url` (a libpq URL), its schema created or
    migrated when it opens.

    synchronous:     ``"NORMAL"`` (default), ``"FULL"``, ``"EXTRA"``: commits are durable on
                     the server; ``"OFF"``: ``synchronous_commit = off`` (see the module).
    pool_size:       connections at most (the calls of that many threads run at once).
    connect_timeout: seconds to wait for the server when connecting.
    recover:         accepted for the same calls as `SqliteStore`; nothing to recover here
                     (the server's own recovery keeps every committed transaction whole).
    read_only, exclusive: accepted for the same calls as `SqliteStore`: an audit reads
                     through the same store (nothing to recover changes nothing); a server
                     database is shared by several engines, each session owned by one
                     (`postgres_owners`).

    Raises StoreOpenError (one line, no password) when the server cannot be reached, refuses
    the credentials, or holds a database that is not an assessengine store or is at a newer
    schema version; ValueError for an option out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        synchronous: str = "NORMAL",
        pool_size: int = 4,
        connect_timeout: float = 10.0,
        recover: bool = True,
        read_only: bool = False,
        exclusive: bool = False,
    ) -> None:
        mode = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if mode not in SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}"
            )
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be an integer >= 1, got {pool_size!r}")
        if not isinstance(connect_timeout, int | float) or not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be a number > 0, got {connect_timeout!r}")
        del recover, read_only, exclusive  # see the docstring
        self.where = redact(url)
        """The URL without its password, as messages name the store."""
        self.synchronous: str = mode
        self._url, self._timeout = url, float(connect_timeout)
        self._keys: dict[str, int] = {}  # session -> row id (rows are never deleted)
        self._closing = threading.Lock()
        _migrate(url, self.where, self._timeout)
        commit = "off" if mode == "OFF" else "on"

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.execute(f"SET synchronous_commit = {commit}")

        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False, name="assessengine-store",
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self._timeout))},
            configure=configure, check=ConnectionPool.check_connection,
        )  # fmt: skip
        try:
            self._pool.open(wait=True, timeout=self._timeout)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreOpenError(f"{self.where}: cannot connect ({one_line(str(exc))})") from None

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ sessions

    def open_session(self, info: SessionInfo) -> SessionRecord:
        return common.single(self.open_sessions([info]))

    def open_sessions(self, infos: Sequence[SessionInfo]) -> list[SessionRecord | StoreError]:
        stamp = common.now()
        with self._transaction() as conn:
            return common.each(lambda info: self._open_one(conn, info, stamp), infos)

    def _open_one(
        self, conn: psycopg.Connection[Any], info: SessionInfo, stamp: str
    ) -> SessionRecord:
        """The INSERT; a new session's record is returned as written (not read back), an
        existing one's is read (one lookup) and compared."""
        text = common.info_json(info)
        record = common.opened_record(text, stamp)
        inserted = conn.execute(
            "INSERT INTO sessions (session, info, learner, scenario, rubric, rubric_version, "
            "source, genesis, status, opened_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
            "'open', %s) ON CONFLICT (session) DO NOTHING RETURNING id",
            (info.session, text, info.learner, info.scenario, info.rubric,
             info.rubric_version, info.source, record.chain_head, stamp),
        ).fetchone()  # fmt: skip
        if inserted is not None:
            return record
        existing, stored = _record(conn, info.session)
        if stored != text:
            raise StoreError(common.conflict_message(info.session, stored, text))
        return existing

    def session(self, session_id: str) -> SessionRecord | None:
        with self._connection() as conn:
            row = conn.execute(f"{_SESSION} WHERE s.session = %s", (session_id,)).fetchone()
        return None if row is None else _to_record(row)

    def close_session(self, session_id: str, close_t: float) -> SessionRecord:
        return common.single(self.close_sessions([(session_id, close_t)]))

    def close_sessions(
        self, closing: Sequence[tuple[str, float]]
    ) -> list[SessionRecord | StoreError]:
        stamp = common.now()
        with self._transaction() as conn:
            return common.each(lambda item: self._close_one(conn, *item, stamp), closing)

    def _close_one(
        self, conn: psycopg.Connection[Any], session_id: str, close_t: float, stamp: str
    ) -> SessionRecord:
        """The UPDATE (which locks the row: no separate lookup), then one read of the record
        (in a snapshot taken after the lock: it includes the batches of an append that held
        the row meanwhile). A session the UPDATE left alone is unknown or closed already."""
        value = common.check_close_t(session_id, close_t)
        updated = conn.execute(
            "UPDATE sessions SET status = 'closed', close_t = %s, closed_at = %s "
            "WHERE session = %s AND status <> 'closed' RETURNING id",
            (value, stamp, session_id),
        ).fetchone()
        row = conn.execute(f"{_SESSION} WHERE s.session = %s", (session_id,)).fetchone()
        if row is None:
            raise StoreError(f"unknown session {session_id!r}")
        record = _to_record(row)
        if updated is None and record.close_t != value:
            raise StoreError(common.reclose_message(session_id, record.close_t, value))
        return record

    def sessions(self, *, status: Status | None = None) -> list[SessionRecord]:
        common.check_status(status)
        with self._connection() as conn:
            rows = conn.execute(
                f"{_SESSION} WHERE %(status)s::text IS NULL OR s.status = %(status)s "
                "ORDER BY s.id",
                {"status": status},
            ).fetchall()
        return [_to_record(row) for row in rows]

    # ------------------------------------------------------------------------------ batches

    def append_batches(
        self, items: Sequence[tuple[str, int, int, str, bytes, Payload]]
    ) -> list[StoredBatch]:
        checked = common.check_items(items)
        if not checked:
            return []
        digests = [chain.digests(item[4], item[5]) for item in checked]
        stamp = common.now()
        with self._transaction() as conn:
            heads = _heads(conn, sorted({item[0] for item in checked}))
            planned = common.plan_appends(checked, digests, heads.get, stamp)
            with conn.cursor() as cursor:
                cursor.executemany(_INSERT_BATCH, [
                    (key, b.index, b.first_seq, b.count, b.encoding, b.received_at, b.chain,
                     b.header, b.payload) for key, b in planned
                ])  # fmt: skip
        return [batch for _, batch in planned]

    def file_session(
        self,
        info: SessionInfo,
        items: Sequence[tuple[str, int, int, str, bytes, Payload]],
        close_t: float,
        report: Mapping[str, Any],
    ) -> SessionRecord:
        value = common.check_close_t(info.session, close_t)
        reported = common.report_row(info.session, report)
        checked = common.check_items(items)
        if any(item[0] != info.session for item in checked):
            raise StoreError(f"session {info.session!r}: every batch must be of this session")
        digests = [chain.digests(item[4], item[5]) for item in checked]
        stamp = common.now()
        with self._transaction() as conn:  # an error anywhere rolls all of it back
            if conn.execute("SELECT 1 FROM sessions WHERE session = %s",
                            (info.session,)).fetchone():  # fmt: skip
                raise StoreError(f"session {info.session!r} exists already")
            self._open_one(conn, info, stamp)
            heads = _heads(conn, [info.session])
            planned = common.plan_appends(checked, digests, heads.get, stamp)
            with conn.cursor() as cursor:
                if planned:
                    cursor.executemany(_INSERT_BATCH, [
                        (key, b.index, b.first_seq, b.count, b.encoding, b.received_at, b.chain,
                         b.header, b.payload) for key, b in planned
                    ])  # fmt: skip
                record = self._close_one(conn, info.session, value, stamp)
                cursor.execute(
                    "INSERT INTO reports (session_id, report, saved_at, outcome, score) VALUES "
                    "((SELECT id FROM sessions WHERE session = %s), %s, %s, %s, %s)",
                    (info.session, reported.text, stamp, reported.outcome, reported.score),
                )
        return record

    def batches(self, session_id: str) -> Iterator[StoredBatch]:
        """The session's batches in order, read `CHUNK` at a time (no connection is held
        between chunks). Raises StoreError at once for an unknown session."""
        with self._connection() as conn:
            key = self._key(conn, session_id)
        return self._iter_batches(session_id, key)

    def _iter_batches(self, session_id: str, key: int) -> Iterator[StoredBatch]:
        start = 0
        while True:
            with self._connection() as conn, conn.cursor(binary=True) as cursor:
                rows = cursor.execute(
                    "SELECT idx, first_seq, count, encoding, header, payload, chain, "
                    "received_at FROM batches WHERE session_id = %s AND idx >= %s "
                    "ORDER BY idx LIMIT %s",
                    (key, start, CHUNK),
                ).fetchall()
            for row in rows:
                yield StoredBatch(session_id, *row)
            if len(rows) < CHUNK:
                return
            start = rows[-1][0] + 1

    # ------------------------------------------------------------------------------ results

    def save_decisions(self, session_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.save_results({session_id: rows}, {}, check=True)

    def decisions(self, session_id: str) -> list[dict[str, Any]]:
        with self._connection() as conn:
            key = self._key(conn, session_id)
            rows = conn.execute(
                "SELECT row FROM decisions WHERE session_id = %s ORDER BY id", (key,)
            ).fetchall()
        return [common.from_json(text) for (text,) in rows]

    def save_report(self, session_id: str, report: Mapping[str, Any]) -> None:
        self.save_results({}, {session_id: report}, replace=True)

    def report(self, session_id: str) -> dict[str, Any] | None:
        with self._connection() as conn:
            key = self._key(conn, session_id)
            row = conn.execute("SELECT report FROM reports WHERE session_id = %s", (key,))
            found = row.fetchone()
        return None if found is None else common.from_json(found[0])

    def save_results(
        self,
        decisions: Mapping[str, Sequence[Mapping[str, Any]]],
        reports: Mapping[str, Mapping[str, Any]],
        *,
        check: bool = False,
        replace: bool = False,
    ) -> None:
        """See `Store.save_results`. `check`: look the sessions up even when there is nothing
        to save (`save_decisions` of no rows refuses an unknown session, as SQLite's does);
        `replace`: a stored report is replaced (`save_report`), not kept."""
        rows = {sid: common.decision_rows(sid, given) for sid, given in decisions.items()}
        texts = {sid: common.report_row(sid, report) for sid, report in reports.items()}
        if not check and not any(rows.values()) and not texts:
            return
        stamp = common.now()
        with self._transaction() as conn:
            keys = {sid: self._key(conn, sid) for sid in {*rows, *texts}}
            if texts and not replace:  # one final save of a session at a time: the later
                # finds the first's report
                ids = sorted(keys[sid] for sid in texts)
                conn.execute(_LOCK_SESSIONS, (ids,))
                found = {key for (key,) in conn.execute(_REPORTED, (ids,)).fetchall()}
                rows, texts = common.first_final_save(
                    rows, texts, [sid for sid in texts if keys[sid] in found])
            with conn.cursor() as cursor:
                decided = [(keys[sid], criterion, verdict, text, stamp)
                           for sid, checked in rows.items()
                           for criterion, verdict, text in checked]  # fmt: skip
                if decided:
                    cursor.execute(_INSERT_DECISIONS, [list(column) for column in zip(*decided,
                                                                                      strict=True)])
                if texts:
                    cursor.executemany(_UPSERT_REPORT, [
                        (keys[sid], r.text, stamp, r.outcome, r.score) for sid, r in texts.items()
                    ])  # fmt: skip

    # ------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the pool's connections (idempotent); later calls raise StoreError."""
        with self._closing:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # ------------------------------------------------------------------------------ helpers

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit: each statement on its own) for the block;
        psycopg errors become StoreError naming the store."""
        pool = self._pool
        if pool is None:
            raise StoreError(f"{self.where}: the store is closed")
        try:
            with pool.connection(timeout=self._timeout) as conn:
                yield conn
        except psycopg.Error as exc:
            if disk_full(exc):
                raise StorageFullError(f"{self.where}: the disk is full ({one_line(str(exc))}); "
                                       "free space, then retry") from exc  # fmt: skip
            raise StoreError(f"{self.where}: {one_line(str(exc))}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def _key(self, conn: psycopg.Connection[Any], session_id: str) -> int:
        """The session's row id (cached); StoreError when it does not exist."""
        key = self._keys.get(session_id)
        if key is None:
            found = conn.execute(
                "SELECT id FROM sessions WHERE session = %s", (session_id,)
            ).fetchone()
            if found is None:
                raise StoreError(f"unknown session {session_id!r}")
            key = self._keys[session_id] = int(found[0])
        return key


def _heads(conn: psycopg.Connection[Any], sessions: list[str]) -> dict[str, common.Head]:
    """The chain heads of `sessions` (those that exist), their rows locked until the
    transaction ends. Lock first, then read: a statement that waited for a lock still sees
    the snapshot it started with (READ COMMITTED), so the heads are read by the next one."""
    conn.execute(_LOCK, (sessions,))
    heads: dict[str, common.Head] = {}
    for session, key, status, genesis, idx, next_seq, value in conn.execute(_HEADS, (sessions,)):
        if idx is None:
            heads[session] = common.Head(key, status, 0, genesis, 0)
        else:
            heads[session] = common.Head(key, status, next_seq, value, idx + 1)
    return heads


def _record(conn: psycopg.Connection[Any], session_id: str) -> tuple[SessionRecord, str]:
    """The stored session and its info's canonical JSON (the session exists)."""
    row = conn.execute(f"{_SESSION} WHERE s.session = %s", (session_id,)).fetchone()
    assert row is not None
    return _to_record(row), row[0]


def _to_record(row: Sequence[Any]) -> SessionRecord:
    info, genesis, status, opened_at, close_t, closed_at, idx, next_seq, value = row
    return SessionRecord(
        info=common.info_from_json(info),
        status=status,
        opened_at=opened_at,
        next_seq=0 if idx is None else next_seq,
        chain_head=genesis if idx is None else value,
        batches=0 if idx is None else idx + 1,
        close_t=close_t,
        closed_at=closed_at,
    )


# ================================================================================ opening


_LOCK_SESSIONS: Final = "SELECT id FROM sessions WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
_REPORTED: Final = "SELECT session_id FROM reports WHERE session_id = ANY(%s)"


def _migrate(url: str, where: str, timeout: float) -> None:
    """Connect once (the credentials are checked here, with the server's own words), and
    bring the database to the newest schema version unless it is there already."""
    try:
        conn = psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=True)
    except psycopg.Error as exc:
        raise StoreOpenError(f"{where}: cannot connect ({one_line(str(exc))})") from None
    try:
        if _version(conn) == migrate.head_version():
            conn.close()
            return
        engine = postgres_engine(_once(conn))
        try:
            with engine.begin() as connection:
                migrate.upgrade(connection, where)
        finally:
            engine.dispose()
    except sa.exc.DBAPIError as exc:
        raise StoreOpenError(f"{where}: cannot migrate ({one_line(str(exc.orig))})") from None
    except psycopg.Error as exc:
        raise StoreOpenError(f"{where}: {one_line(str(exc))}") from None
    finally:
        conn.close()


def _version(conn: psycopg.Connection[Any]) -> int | None:
    """The database's schema version (None for a new database)."""
    found = conn.execute(
        "SELECT to_regclass('alembic_version') IS NOT NULL AND "
        "to_regclass('schema_version') IS NOT NULL"
    ).fetchone()
    return migrate.stored_version(conn.execute) if found and found[0] else None


def _once(conn: psycopg.Connection[Any]) -> Callable[[], psycopg.Connection[Any]]:
    """A SQLAlchemy `creator` that hands over `conn` (autocommit off: one transaction)."""

    def creator() -> psycopg.Connection[Any]:
        conn.autocommit = False
        return conn

    return creator
