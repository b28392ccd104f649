"""The store port: sessions, raw event batches (hash-chained), decisions, reports.

The embedded default is SQLite (`sqlite_store.SqliteStore`, WAL); `memory_store.MemoryStore` is
the fake that unit tests use. A server database can implement the same Protocol later. No SQL
leaves the adapter; the scorer never sees the store.

Chain: every stored batch carries ``chain = sha256(previous chain || sha256(header) ||
sha256(payload))`` as hex, the first batch's previous chain being the session's genesis hash
``sha256(canonical JSON of its SessionInfo)``. Changing, removing or reordering any stored batch
changes every later chain value, so tampering is evident (`assessengine audit`). `||` joins raw
32-byte digests; the functions are in `core.chain`.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..errors import AssessEngineError

Source = Literal["simulator", "field"]
Status = Literal["open", "closed"]


class StoreError(AssessEngineError):
    """The store refused an operation (conflicting open, unknown or closed session, ...)."""


class StoreOpenError(StoreError):
    """A store could not be opened: an unknown URL scheme, an unreachable server, refused
    credentials, a file or database that is not an assessengine store, or one at a newer schema
    version than this assessengine knows. The message is one line and never shows a password;
    the CLI prints it and exits with status 2."""


class StorageFullError(StoreError):
    """The disk that holds the store is full (or the store is at its size or quota limit):
    nothing of the write was kept. Free space, then retry."""


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_PG_DISK_FULL = "53100"


def disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, says the disk is full: a
    `StorageFullError`, SQLite's ``SQLITE_FULL`` ("database or disk is full"), PostgreSQL's
    ``disk_full`` (SQLSTATE 53100), or an OSError ENOSPC / EDQUOT."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageFullError) or (
            isinstance(current, sqlite3.Error)
            and getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        ) or (isinstance(current, OSError) and current.errno in _FULL_ERRNOS) or (
            getattr(current, "sqlstate", None) == _PG_DISK_FULL
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def unavailable(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, says the store is unavailable for now
    (the same write can succeed later): a full disk (`disk_full`), an ``OperationalError`` of
    SQLite (locked, busy, I/O) or of psycopg (the server gone, a broken connection, no
    connection from the pool in time), or an OSError. Not: a refused or invalid write."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) or any(
            cls.__name__ == "OperationalError" for cls in type(current).__mro__
        ):
            return True
        current = current.__cause__ or current.__context__
    return disk_full(exc)


class BatchRefusedError(StoreError):
    """`append_batches` refused item `index` of its group (unknown or closed session, or a
    first_seq other than `expected_seq`); nothing of the group was stored."""

    def __init__(
        self, message: str, *, index: int, session: str, expected_seq: int | None = None
    ) -> None:
        super().__init__(message)
        self.index = index
        self.session = session
        self.expected_seq = expected_seq


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What an OPEN says about a session; immutable once stored."""

    session: str
    learner: str
    scenario: str
    rubric: str
    rubric_version: int
    rubric_sha256: str
    source: Source = "simulator"
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A stored session: its info, status, the next expected seq and the chain head."""

    info: SessionInfo
    status: Status
    opened_at: str            # ISO 8601 UTC
    next_seq: int             # seq the next new event must carry (0 for a fresh session)
    chain_head: str           # hex; the genesis hash while no batch is stored
    batches: int
    close_t: float | None = None
    closed_at: str | None = None


Payload = bytes | memoryview
"""A batch payload: `bytes`, or a read-only view of a received frame (the engine appends what
it received without copying it). Batches read back from a store always hold `bytes`."""


def kept_payload(payload: bytes | bytearray | memoryview) -> Payload:
    """The payload to keep: `bytes` or a read-only contiguous view as it is (no copy), anything
    mutable copied (it could change after it was checked)."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, memoryview) and payload.readonly and payload.c_contiguous:
        return payload
    return bytes(payload)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch exactly as it arrived (header and payload bytes), with its place in the chain."""

    session: str
    index: int                # 0, 1, 2 ... within the session
    first_seq: int
    count: int
    encoding: str             # "json-v1" | "columns-v1"
    header: bytes
    payload: Payload
    chain: str
    received_at: str


class Store(Protocol):
    """Durable storage. Every mutating call has committed when it returns."""

    def open_session(self, info: SessionInfo) -> SessionRecord:
        """Create the session, or return it if an identical one exists (idempotent re-OPEN).
        Raises StoreError when a session with this id exists with different info."""
        ...

    def open_sessions(self, infos: Sequence[SessionInfo]) -> list[SessionRecord | StoreError]:
        """`open_session` for each info (of distinct sessions), in ONE transaction: per item its
        record, or the StoreError `open_session` would have raised for it (the others still
        open)."""
        ...

    def session(self, session_id: str) -> SessionRecord | None: ...

    def append_batches(
        self, items: Sequence[tuple[str, int, int, str, bytes, Payload]]
    ) -> list[StoredBatch]:
        """Append (session, first_seq, count, encoding, header, payload) batches in ONE
        transaction (group commit) and return them with their chain values. Each batch's
        first_seq must equal its session's next_seq (StoreError otherwise; nothing is stored).
        The refusal is a BatchRefusedError naming the item's index and the expected seq."""
        ...

    def batches(self, session_id: str) -> Iterator[StoredBatch]:
        """The session's batches in order."""
        ...

    def close_session(self, session_id: str, close_t: float) -> SessionRecord:
        """Mark closed (idempotent for the same close_t)."""
        ...

    def file_session(
        self,
        info: SessionInfo,
        items: Sequence[tuple[str, int, int, str, bytes, Payload]],
        close_t: float,
        report: Mapping[str, Any],
    ) -> SessionRecord:
        """A whole session at once (an uploaded log): open `info`'s session, append `items`
        (its batches, in order from seq 0), close it at `close_t` and save its `report`, in ONE
        transaction: all of it is stored, or nothing is (StoreError; StorageFullError when the
        disk is full). A session with this id must not exist yet."""
        ...

    def close_sessions(
        self, closing: Sequence[tuple[str, float]]
    ) -> list[SessionRecord | StoreError]:
        """`close_session` for each (session, close_t), in ONE transaction: per item its record,
        or the StoreError `close_session` would have raised for it (the others still close)."""
        ...

    def save_decisions(self, session_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record incremental decisions: each row {criterion, verdict, evidence (dict)}. A
        criterion's decision is kept once per session: a row for a criterion the session has
        a decision for already is left out (another engine derived the same decision)."""
        ...

    def decisions(self, session_id: str) -> list[dict[str, Any]]: ...

    def save_report(self, session_id: str, report: Mapping[str, Any]) -> None:
        """Store (or replace) the final report (the JSON shape of `SessionReport.to_data()`)."""
        ...

    def report(self, session_id: str) -> dict[str, Any] | None: ...

    def save_results(
        self,
        decisions: Mapping[str, Sequence[Mapping[str, Any]]],
        reports: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """`save_decisions` and `save_report` for many sessions in ONE transaction (the live
        engine's scoring thread saves a whole step's results at once). All or nothing. A
        session of `reports` that has a stored report already is left out of the save, its
        decisions too: its final results are stored once, by the first final save, even
        when two engines derived them (`save_report` alone still replaces a report)."""
        ...

    def sessions(self, *, status: Status | None = None) -> list[SessionRecord]:
        """Sessions in the order they were opened, optionally by status."""
        ...

    def close(self) -> None:
        """Release connections (the data stays)."""
        ...
