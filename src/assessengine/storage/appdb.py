"""`AppDb`: connections to a store's database for the HTTP app's stores (`ReviewStore`,
`SqlCredentialStore`), the same SQL on SQLite and PostgreSQL.

The adapters write their SQL once, with ``?`` placeholders (positional only); `AppDb`
translates for the driver (``%s`` for psycopg). Both dialects take
``INSERT ... ON CONFLICT ... DO UPDATE`` and ``RETURNING``.

The tables are `storage.schema`'s, created by the migrations when the engine's store opens
(`open_store`): open the store first. On SQLite calls are serialised by a lock (one
connection); on PostgreSQL they run at once on a pool of connections (`POOL_SIZE`);
`write` is one transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``BEGIN``), committed when
the block ends and rolled back if it raises. Driver errors become StoreError (StorageFullError
when the disk is full), naming the store without its password. A PostgreSQL connection that
broke (a server restart, a failover) is found so when the pool hands it out, and replaced.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol, Self

from .port import StorageFullError, StoreError, StoreOpenError, disk_full
from .sqlite import immediate
from .url import one_line, parse_url, redact

BUSY_TIMEOUT_S: Final = 10.0
RANGE_BITS: Final = 40
"""A database that joined a hub makes ids in [number << 40, (number + 1) << 40) (`id_range`;
`storage.replication`); the ids it had before it joined stay below 2**40."""
POOL_SIZE: Final = 8
"""PostgreSQL connections of one app at most (requests served at once; more wait for one)."""
APPLICATION_NAME: Final = "assessengine-app"
"""The PostgreSQL connections' application_name (what pg_stat_activity shows)."""


class Rows(Protocol):
    """What `Db.execute` returns (a driver cursor)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Db:
    """The connection inside `AppDb.read` / `write`: `execute` with ``?`` placeholders."""

    def __init__(self, conn: Any, dialect: Literal["sqlite", "postgresql"]) -> None:
        self._conn, self._dialect = conn, dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        if self._dialect == "postgresql":
            sql = sql.replace("%", "%%").replace("?", "%s")
        rows: Rows = self._conn.execute(sql, tuple(params))
        return rows

    def for_update(self) -> str:
        """`` FOR UPDATE`` on PostgreSQL (lock the rows read until the transaction ends), ``""``
        on SQLite (a write transaction holds the whole database already)."""
        return " FOR UPDATE" if self._dialect == "postgresql" else ""

    def skip_locked(self) -> str:
        """`` FOR UPDATE SKIP LOCKED`` on PostgreSQL (lock the rows read; skip those another
        transaction holds), ``""`` on SQLite (one writer at a time)."""
        return " FOR UPDATE SKIP LOCKED" if self._dialect == "postgresql" else ""

    def serialize(self, key: str) -> None:
        """Wait until no other write transaction that serialized on `key` is open, and hold
        `key` until this one ends: on PostgreSQL a transaction-level advisory lock on the
        key's hash (a collision only serializes two keys), on SQLite nothing (a write
        transaction holds the whole database already). For a rule no unique key can keep."""
        if self._dialect == "postgresql":
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """`execute` once per row of `rows` (the driver's batch call: one round trip per
        batch on PostgreSQL, not per row)."""
        if not rows:
            return
        if self._dialect == "postgresql":
            sql = sql.replace("%", "%%").replace("?", "%s")
            with self._conn.cursor() as cursor:
                cursor.executemany(sql, [tuple(r) for r in rows])
            return
        self._conn.executemany(sql, [tuple(r) for r in rows])

    def id_range(self) -> tuple[int, int]:
        """The ids this database gives its rows: the range of its identity sequences on a
        PostgreSQL database that joined a hub (`storage.replication`), else every positive
        id. Keys the app numbers itself (status lists) are taken from it too, so that no two
        sites' rows share a key at the hub."""
        if self._dialect == "postgresql":
            row = self._conn.execute(
                "SELECT seqmin, seqmax FROM pg_sequence WHERE seqrelid = "
                "pg_get_serial_sequence('sessions', 'id')::regclass"
            ).fetchone()
            if row is not None:
                return int(row[0]), int(row[1])
        return 1, 2**63 - 1

    def made_elsewhere(self, key: int) -> bool:
        """Whether `key` (a row id or a number taken from `id_range`) was made by another
        database of this one's federation: it lies in another database's range. Keys below
        2**40 (made before a database joined) count as this one's."""
        lo, hi = self.id_range()
        return lo >= 1 << RANGE_BITS and key >= 1 << RANGE_BITS and not lo <= key <= hi

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT and return the new row's ``id`` (``RETURNING id``)."""
        row = self.execute(f"{sql} RETURNING id", params).fetchone()
        return int(row[0])


class AppDb:
    """Connections to the database of the store `url` names (see the module): on SQLite one
    connection, its calls one at a time (SQLite has one writer); on PostgreSQL a pool of up
    to `pool_size` connections, so that several requests of the HTTP API run at once. A call
    nested in another of the same thread (a read inside a write) uses the same connection."""

    def __init__(self, url: str | Path, *, pool_size: int = POOL_SIZE) -> None:
        parsed = parse_url(url)
        self.dialect: Literal["sqlite", "postgresql"] = parsed.backend
        self.where = str(parsed)
        self._target = parsed.target
        self._lock = threading.RLock()
        self._local = threading.local()  # .conn: the connection this thread's call holds
        self._conn: Any = None
        self._pool: Any = None
        try:
            if self.dialect == "sqlite":
                self._conn = _sqlite(Path(self._target))
            else:
                self._pool = _postgres_pool(self._target, pool_size)
        except (sqlite3.Error, OSError) as exc:
            raise StoreOpenError(f"{self.where}: cannot open ({exc})") from None
        except Exception as exc:  # psycopg.Error: psycopg is imported only for PostgreSQL
            raise StoreOpenError(f"{redact(self.where)}: cannot connect "
                                 f"({one_line(str(exc))})") from None  # fmt: skip

    @contextmanager
    def read(self) -> Iterator[Db]:
        with self._errors(), self._connection() as conn:
            yield Db(conn, self.dialect)

    @contextmanager
    def write(self) -> Iterator[Db]:
        with self._errors(), self._connection() as conn:
            if self.dialect == "postgresql":
                with conn.transaction():
                    yield Db(conn, self.dialect)
                return
            with immediate(conn):
                yield Db(conn, self.dialect)

    def close(self) -> None:
        """Close the connection or the pool (idempotent)."""
        with self._lock:
            conn, self._conn = self._conn, None
            pool, self._pool = self._pool, None
        if conn is not None:
            conn.close()
        if pool is not None:
            pool.close()

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """The connection for one call: this thread's if it holds one already; on SQLite the
        one connection (the lock held); on PostgreSQL one from the pool, checked before it is
        handed out (one the server ended, by a restart or a failover, is replaced)."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        if self.dialect == "sqlite":
            with self._lock:
                if self._conn is None:
                    raise StoreError(f"{self.where}: closed")
                yield from self._holding(self._conn)
            return
        pool = self._pool
        if pool is None:
            raise StoreError(f"{self.where}: closed")
        with pool.connection(timeout=BUSY_TIMEOUT_S) as conn:
            yield from self._holding(conn)

    def _holding(self, conn: Any) -> Iterator[Any]:
        self._local.conn = conn
        try:
            yield conn
        finally:
            self._local.conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            if not _driver_error(exc):
                raise
            if disk_full(exc):
                raise StorageFullError(f"{self.where}: the disk is full ({one_line(str(exc))})"
                                       "; free space, then retry") from exc  # fmt: skip
            raise StoreError(f"{self.where}: {one_line(str(exc))}") from exc


class AppTables:
    """Base of a store of some of the app's tables on one `AppDb`, which it owns (closed with
    it). `_read` and `_write` are `AppDb.read` / `write` raising `error` in place of a
    StoreError, and `error(closed)` once the store is closed."""

    error: ClassVar[type[Exception]] = StoreError
    closed: ClassVar[str] = "the store is closed"

    def __init__(self, db: AppDb) -> None:
        self._db: AppDb | None = db
        self.where = db.where

    def close(self) -> None:
        """Close the connection(s) (idempotent)."""
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Db]:
        with self._translated(), self._connection().read() as db:
            yield db

    @contextmanager
    def _write(self) -> Iterator[Db]:
        with self._translated(), self._connection().write() as db:
            yield db

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except StoreError as exc:
            if isinstance(exc, self.error):
                raise
            raise self.error(str(exc)) from exc

    def _connection(self) -> AppDb:
        if self._db is None:
            raise self.error(f"{self.where}: {self.closed}")
        return self._db


def _driver_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    module = type(exc).__module__
    return module.startswith("psycopg")


def _sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                           check_same_thread=False)  # fmt: skip
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _postgres_pool(url: str, size: int) -> Any:
    from psycopg_pool import ConnectionPool  # noqa: PLC0415  (the postgres extra)

    pool = ConnectionPool(
        url, min_size=1, max_size=size, open=False, name=APPLICATION_NAME,
        kwargs={"autocommit": True, "connect_timeout": int(BUSY_TIMEOUT_S),
                "application_name": APPLICATION_NAME},
        check=ConnectionPool.check_connection,
    )  # fmt: skip
    try:
        pool.open(wait=True, timeout=BUSY_TIMEOUT_S)
    except BaseException:
        pool.close()
        raise
    return pool
