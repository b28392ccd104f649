"""`SqliteStore`: the embedded default `Store`, on the standard library's sqlite3 in WAL mode,
with batch payloads in append-only segment files beside it (`segments`).

Schema (`storage.schema`, built by the migrations of `storage.migrate`, version 2):

    sessions   one row per OPEN, in open order: the info's canonical JSON (the genesis input)
               and its queryable fields, genesis hash, status, opened_at, close_t, closed_at
    batches    every batch exactly as it arrived: the header BLOB, first_seq, count, encoding,
               received_at, the chain value, and where its payload is: (segment, seg_offset,
               seg_length) in the payload files (version 2), or the payload BLOB itself
               (batches stored by version 1, whose segment is NULL); unique (session, idx)
    payload_files one row: where the last placed payload ends (segment, end_offset), so the
               next goes there, and synced_batch: the id of the last batch whose payload
               bytes are known to be on disk (batches of version 1 count as synced)
    decisions  incremental verdicts with their evidence, one JSON row each
    reports    the final report per session (JSON)

A session's next_seq, chain head and batch count are read from its last batch (one indexed
lookup), so an append writes batch rows only.

Payloads: an append takes its payloads' place at the end of the current segment file
(``<db>-payloads/00000001.seg``...) in a short transaction, writes them there once, end to end,
without holding the write lock, then commits their rows. SQLite would write each BLOB twice
(WAL, then database) through its page cache; payloads are nearly all of the bytes. A place
whose rows never committed (a crash, a refused append) stays a hole that no row names. Copy
or back up the folder with the database.

Durability: every mutating call has committed when it returns. WAL with ``synchronous=NORMAL``
(the default) survives a crash of the process (SIGKILL) with every committed transaction; after
a power loss or OS crash the last transactions may be missing, never half there. ``FULL`` syncs
the segment and the WAL at every commit and also survives power loss, at the disk's fsync cost.
Under NORMAL the background checkpointer syncs the segments before each pass and advances
``synced_batch``; opening the store checks every batch after that mark against its chain
value, and drops a batch whose payload did not reach the disk together with the later batches
of its session (logged): the tail a power loss took, as SQLite drops the WAL's tail (decisions
or a report saved from it stay, and `assessengine audit` shows the difference).
Several stores may append to one file (``serve`` runs the engine's and the API's, which stores
uploaded field logs), and the scoring process writes decisions and reports beside the engine:
each takes its payloads' place in a transaction, so no two take the same bytes, and syncing a
segment file syncs every writer's bytes in it. Writing the payloads outside the transaction
keeps the write lock short for the others (the scoring process waited 0.12 s a round of 1 MiB
frames for it, and scored 7-10 % more once it did not).

Checkpoints run in a background thread (`_Checkpointer`): the bulk of copying the WAL into the
database, and its fsyncs, happen beside the writer, not in an append; the writer copies only
the small remainder, which lets SQLite start the WAL over instead of growing it. When the disk
cannot keep up, the writer waits for the running checkpoint (back-pressure; the WAL stays
bounded).

Threading: one `SqliteStore` owns one writer connection; its methods may be called from any
thread and are serialised by a lock. Another process (an HTTP API, `assessengine audit`) may open
its own `SqliteStore` on the same file and read while this one writes: WAL readers never block
the writer nor wait for it. Keep read transactions short: a reader that holds one open keeps
the WAL from starting over.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from ..core import chain
from . import _common as common
from . import migrate
from .lock import StoreLock
from .port import (
    Payload,
    SessionInfo,
    SessionRecord,
    Status,
    StorageFullError,
    StoredBatch,
    StoreError,
    disk_full,
)
from .segments import SEGMENT_BYTES, Segments, folder_of
from .sqlite_lock import begin_immediate

log = logging.getLogger(__name__)

APPLICATION_ID: Final = 0x41534547  # "ASEG": marks the file as an assessengine store
PAGE_SIZE: Final = 16_384  # of new files: few overflow pages per BLOB, small WAL per commit
CHECKPOINT_INTERVAL_S: Final = 1.0  # a background pass at least this often after writes
SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT_S: Final = 10.0
CHUNK: Final = 256  # batches read per query by `batches()`


_SESSION_COLUMNS: Final = """
    s.id, s.info, s.genesis, s.status, s.opened_at, s.close_t, s.closed_at,
    b.idx, b.first_seq + b.count, b.chain
    FROM sessions s LEFT JOIN batches b ON b.session_id = s.id
        AND b.idx = (SELECT MAX(idx) FROM batches WHERE session_id = s.id)
"""
_INSERT_DECISION: Final = (
    "INSERT INTO decisions (session_id, criterion, verdict, row, recorded_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id, criterion) DO NOTHING"
)  # a criterion's decision is stored once per session (revision 0009)
_UPSERT_REPORT: Final = (
    "INSERT INTO reports (session_id, report, saved_at, outcome, score) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (session_id) DO UPDATE SET report = excluded.report, "
    "saved_at = excluded.saved_at, outcome = excluded.outcome, score = excluded.score"
)
_HEAD_MARK: Final = "SELECT n, (SELECT MAX(id) FROM batches) FROM head_changes"
"""What moves when a chain head may have moved: the count of head changes (revision 0018) and
the largest batch id (a new batch)."""
_MARK_SYNCED: Final = "UPDATE payload_files SET synced_batch = MAX(synced_batch, ?)"
_BATCH_COLUMNS: Final = (
    "idx, first_seq, count, encoding, header, payload, chain, received_at, "
    "segment, seg_offset, seg_length"
)


class SqliteStore:
    """A `Store` in the SQLite file at `path` (created with the schema when new).

    synchronous:      ``"NORMAL"`` (default; survives a process crash) or ``"FULL"``
                      (also survives power loss), ``"EXTRA"``, ``"OFF"`` (tests only).
    checkpoint_bytes: bytes written between background checkpoints (the WAL stays near this
                      size while nothing holds old snapshots).
    segment_bytes:    size of a payload segment file before the next one starts.
    recover:          check the batches after the ``synced_batch`` mark when opening, and drop
                      the tail a power loss took (see the module docstring). False for readers
                      that must not change the store: they see such a tail as it is, a broken
                      chain.
    read_only:        open the file for reading only (``assessengine audit``): nothing is
                      created, migrated, recovered or checkpointed, and a copy on a read-only
                      folder can be read (`open_read_only`); every write raises StoreError.
    exclusive:        hold the store's lock (`store_lock`) while open: what the engine's own
                      store does (``serve``, ``demo``), so that a second engine on the same
                      file refuses to start (StoreInUseError) instead of writing beside the
                      first. Other stores on the file (readers, the scoring process) leave it.

    Raises StoreError when the file is not an assessengine store, is damaged, or has a newer
    schema than this version supports. See the module docstring for the threading contract.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        checkpoint_bytes: int = 64 * 2**20,
        segment_bytes: int = SEGMENT_BYTES,
        recover: bool = True,
        read_only: bool = False,
        exclusive: bool = False,
    ) -> None:
        mode = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if mode not in SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}"
            )
        if (
            isinstance(checkpoint_bytes, bool)
            or not isinstance(checkpoint_bytes, int)
            or (checkpoint_bytes < 2**16)
        ):
            raise ValueError("checkpoint_bytes must be an integer >= 65536")
        self.path = Path(path)
        self.synchronous: str = mode
        """The ``synchronous`` mode (upper case): another connection opens the file with it."""
        self._lock = threading.RLock()
        self._appending = threading.Lock()
        self._keys: dict[str, int] = {}  # session -> row id (rows are never deleted or renumbered)
        # session -> chain head after this store's own last append to it, valid while no other
        # connection has changed a head (`_check_heads`): spares a query per batch
        self._heads: dict[str, common.Head] = {}
        self._heads_version = -1  # PRAGMA data_version when last checked
        self._head_mark = (-1, -1)  # `_HEAD_MARK` after this store's own last change
        self._segments = Segments(folder_of(self.path), segment_bytes)
        self._sync_each = mode in ("FULL", "EXTRA")
        self._committed = (0, 1)  # (id, segment) of the last batch this store committed
        self._synced = self._marked = 0  # synced_batch: known on disk / as written to the row
        self._owner = StoreLock(self.path) if exclusive else None
        try:
            self._db: sqlite3.Connection | None = (
                open_read_only(self.path) if read_only else _open(self.path, mode)
            )
        except BaseException:
            self._release()
            raise
        try:
            if recover and not read_only:
                with _errors(self.path):
                    recover_payloads(self.path, self._db, self._segments)
        except BaseException:
            self._db.close()
            self._release()
            raise
        # segments from here on may hold bytes not yet synced
        self._synced_from: int = self._db.execute("SELECT segment FROM payload_files").fetchone()[0]
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._checkpointer = _Checkpointer(
            self.path, mode, checkpoint_bytes, page_size,
            before_pass=None if mode == "OFF" else self._sync_payloads,
        )  # fmt: skip
        if not read_only:
            self._checkpointer.start()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ sessions

    def open_session(self, info: SessionInfo) -> SessionRecord:
        return common.single(self.open_sessions([info]))

    def open_sessions(self, infos: Sequence[SessionInfo]) -> list[SessionRecord | StoreError]:
        out: list[SessionRecord | StoreError] = []
        stamp = common.now()
        nbytes = opened = 0
        with self._write() as db:
            for info in infos:
                try:
                    text = common.info_json(info)
                    out.append(self._open_one(db, info, text, stamp))
                except StoreError as exc:
                    out.append(exc)
                else:
                    nbytes, opened = nbytes + len(text), opened + 1
        self._checkpointer.wrote(nbytes, pages=3 * opened)
        return out

    def _open_one(
        self, db: sqlite3.Connection, info: SessionInfo, text: str, stamp: str
    ) -> SessionRecord:
        """One lookup (the whole record, for a repeated OPEN), and for a new session its
        INSERT, whose record is returned as written (not read back)."""
        found = db.execute(f"SELECT {_SESSION_COLUMNS} WHERE s.session = ?", (info.session,))
        row = found.fetchone()
        if row is not None:
            if row[1] != text:
                raise StoreError(common.conflict_message(info.session, row[1], text))
            return _to_record(row)
        record = common.opened_record(text, stamp)
        db.execute(
            "INSERT INTO sessions (session, info, learner, scenario, rubric, "
            "rubric_version, source, genesis, status, opened_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)",
            (info.session, text, info.learner, info.scenario, info.rubric,
             info.rubric_version, info.source, record.chain_head, stamp),
        )  # fmt: skip
        return record

    def session(self, session_id: str) -> SessionRecord | None:
        with self._read() as db:
            rows = db.execute(f"SELECT {_SESSION_COLUMNS} WHERE s.session = ?", (session_id,))
            found = rows.fetchall()
        return _to_record(found[0]) if found else None

    def close_session(self, session_id: str, close_t: float) -> SessionRecord:
        return common.single(self.close_sessions([(session_id, close_t)]))

    def close_sessions(
        self, closing: Sequence[tuple[str, float]]
    ) -> list[SessionRecord | StoreError]:
        stamp = common.now()
        with self._write() as db:
            self._check_heads(db)
            out = common.each(lambda item: self._close_one(db, *item, stamp), closing)
            self._own_head_changes(db)
        self._checkpointer.wrote(0, pages=2 * len(closing))
        return out

    def _close_one(
        self, db: sqlite3.Connection, session_id: str, close_t: float, stamp: str
    ) -> SessionRecord:
        """One lookup (the whole record) and, unless closed already, its UPDATE; the record
        is returned as the UPDATE left it (not read back)."""
        value = common.check_close_t(session_id, close_t)
        found = db.execute(f"SELECT {_SESSION_COLUMNS} WHERE s.session = ?", (session_id,))
        row = found.fetchone()
        if row is None:
            raise StoreError(f"unknown session {session_id!r}")
        record = _to_record(row)
        if record.status == "closed":
            if record.close_t != value:
                raise StoreError(common.reclose_message(session_id, record.close_t, value))
            return record
        db.execute(
            "UPDATE sessions SET status = 'closed', close_t = ?, closed_at = ? WHERE id = ?",
            (value, stamp, row[0]),
        )
        self._heads.pop(session_id, None)
        return common.closed_record(record, value, stamp)

    def sessions(self, *, status: Status | None = None) -> list[SessionRecord]:
        common.check_status(status)
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_SESSION_COLUMNS} WHERE ?1 IS NULL OR s.status = ?1 ORDER BY s.id",
                (status,),
            ).fetchall()
        return [_to_record(row) for row in rows]

    # ------------------------------------------------------------------------------ batches

    def append_batches(
        self, items: Sequence[tuple[str, int, int, str, bytes, Payload]]
    ) -> list[StoredBatch]:
        checked = common.check_items(items)
        if not checked:
            return []
        digests = [chain.digests(item[4], item[5]) for item in checked]  # outside the lock
        with self._appending:  # one append at a time: payloads are written in placing order
            segment, offset = self._reserve(sum(len(item[5]) for item in checked))
            self._segments.write(segment, offset, [item[5] for item in checked])  # no lock
            if self._sync_each:
                self._segments.sync()
            with self._lock:
                planned = self._append(checked, digests, segment, offset)
                self._heads.update(  # committed: these are the sessions' heads now
                    (b.session,
                     common.Head(key, "open", b.first_seq + b.count, b.chain, b.index + 1))
                    for key, b in planned
                )  # fmt: skip
        return [batch for _, batch in planned]

    def _reserve(self, total: int) -> tuple[int, int]:
        """Take the place of `total` payload bytes after the last placed payload, in a
        transaction of its own: no other writer (another store on the same file) takes the same
        place, and the bytes are written without holding the store's lock, so other threads
        (the engine's scoring thread saving its results) are not kept waiting meanwhile."""
        with self._write() as db:
            end = db.execute("SELECT segment, end_offset FROM payload_files").fetchone()
            segment, offset = self._segments.place(end, total)
            db.execute("UPDATE payload_files SET segment = ?, end_offset = ?",
                       (segment, offset + total))  # fmt: skip
        return segment, offset

    def _append(
        self,
        checked: list[common.AppendItem],
        digests: list[tuple[bytes, bytes]],
        segment: int,
        offset: int,
    ) -> list[tuple[int, StoredBatch]]:
        """Plan and commit the rows of one group of batches whose payloads are written end to
        end from (`segment`, `offset`) (the caller holds the lock)."""
        with self._write() as db:
            self._check_heads(db)
            read = _head_reader(db)
            heads = self._heads

            def head_of(session: str) -> common.Head | None:
                head = heads.get(session)
                return head if head is not None else read(session)

            planned, last = self._insert_batches(db, checked, digests, head_of, segment, offset)
            self._own_head_changes(db)
        self._appended(planned, last, segment)
        return planned

    def _check_heads(self, db: sqlite3.Connection) -> None:
        """At the start of a write transaction that reads or moves chain heads: drop the
        cached heads if another connection has changed one since this store last looked.
        Cheap when nobody else committed (``PRAGMA data_version`` unchanged); else one read of
        `_HEAD_MARK` (revision 0018: triggers count every update and delete of a batch and
        every change of a session's status; a new batch raises the largest batch id), so that
        writes which move no head (the scoring process's decisions and reports, the review
        tables) keep the cache."""
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._heads_version:
            return
        self._heads_version = version
        mark = tuple(db.execute(_HEAD_MARK).fetchone())
        if mark != self._head_mark:  # another connection moved a head (or unknown)
            self._heads.clear()
            self._head_mark = mark

    def _own_head_changes(self, db: sqlite3.Connection) -> None:
        """At the end of a write transaction that `_check_heads` began with: the mark as this
        transaction's own changes left it (the write lock is held: nobody else's)."""
        self._head_mark = tuple(db.execute(_HEAD_MARK).fetchone())

    def _insert_batches(
        self,
        db: sqlite3.Connection,
        checked: list[common.AppendItem],
        digests: list[tuple[bytes, bytes]],
        head_of: Callable[[str], common.Head | None],
        segment: int,
        offset: int,
    ) -> tuple[list[tuple[int, StoredBatch]], int]:
        """Plan and insert the rows of batches whose payloads lie end to end from (`segment`,
        `offset`), inside the caller's transaction; (planned, id of the last row)."""
        planned = common.plan_appends(checked, digests, head_of, common.now())
        rows = []
        for key, b in planned:  # every item is planned (or plan_appends raised)
            rows.append((key, b.index, b.first_seq, b.count, b.encoding, b.received_at,
                         b.chain, b.header, segment, offset, len(b.payload)))  # fmt: skip
            offset += len(b.payload)
        db.executemany(
            "INSERT INTO batches (session_id, idx, first_seq, count, encoding, received_at, "
            "chain, header, payload, segment, seg_offset, seg_length) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, X'', ?, ?, ?)",
            rows,
        )
        last: int = db.execute("SELECT MAX(id) FROM batches").fetchone()[0]
        synced = last if self._sync_each else self._synced
        db.execute(_MARK_SYNCED, (synced,))
        return planned, last

    def _appended(self, planned: list[tuple[int, StoredBatch]], last: int, segment: int) -> None:
        """Account for batches just committed (the sync mark, the checkpointer's budget)."""
        self._marked = max(self._marked, last if self._sync_each else self._synced)
        self._committed = max(self._committed, (last, segment))
        sessions = len({key for key, _ in planned})
        nbytes = sum(len(b.header) + len(b.payload) for _, b in planned)
        self._checkpointer.wrote(nbytes, pages=sessions + 3)  # a pass syncs the payloads too

    def file_session(
        self,
        info: SessionInfo,
        items: Sequence[tuple[str, int, int, str, bytes, Payload]],
        close_t: float,
        report: Mapping[str, Any],
    ) -> SessionRecord:
        text = common.info_json(info)
        value = common.check_close_t(info.session, close_t)
        reported = common.report_row(info.session, report)
        checked = common.check_items(items)
        if any(item[0] != info.session for item in checked):
            raise StoreError(f"session {info.session!r}: every batch must be of this session")
        digests = [chain.digests(item[4], item[5]) for item in checked]
        stamp = common.now()
        with self._appending:
            segment, offset = self._reserve(sum(len(item[5]) for item in checked))
            self._segments.write(segment, offset, [item[5] for item in checked])
            if self._sync_each:
                self._segments.sync()
            with self._write() as db:  # an error anywhere rolls all of it back
                if db.execute("SELECT 1 FROM sessions WHERE session = ?",
                              (info.session,)).fetchone():  # fmt: skip
                    raise StoreError(f"session {info.session!r} exists already")
                self._open_one(db, info, text, stamp)
                planned, last = self._insert_batches(
                    db, checked, digests, _head_reader(db), segment, offset
                ) if checked else ([], 0)  # fmt: skip
                record = self._close_one(db, info.session, value, stamp)
                db.execute("INSERT INTO reports (session_id, report, saved_at, outcome, score) "
                           "VALUES ((SELECT id FROM sessions WHERE session = ?), ?, ?, ?, ?)",
                           (info.session, reported.text, stamp, reported.outcome,
                            reported.score))  # fmt: skip
            if planned:
                self._appended(planned, last, segment)
        self._checkpointer.wrote(len(text) + len(reported.text), pages=6)
        return record

    def batches(self, session_id: str) -> Iterator[StoredBatch]:
        """The session's batches in order, read `CHUNK` at a time (no lock or read
        transaction is held between chunks). Raises StoreError at once for an unknown
        session."""
        with self._read() as db:
            key = self._key(db, session_id)
        return self._iter_batches(session_id, key)

    def _iter_batches(self, session_id: str, key: int) -> Iterator[StoredBatch]:
        start = 0
        while True:
            with self._read() as db:
                rows = db.execute(
                    f"SELECT {_BATCH_COLUMNS} FROM batches WHERE session_id = ? AND idx >= ? "
                    "ORDER BY idx LIMIT ?",
                    (key, start, CHUNK),
                ).fetchall()
            for *fields, segment, offset, length in rows:
                if segment is not None:
                    fields[5] = self._segments.read(segment, offset, length)
                yield StoredBatch(session_id, *fields)
            if len(rows) < CHUNK:
                return
            start = rows[-1][0] + 1

    # ------------------------------------------------------------------------------ results

    def save_decisions(self, session_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        checked = common.decision_rows(session_id, rows)
        stamp = common.now()
        with self._write() as db:
            key = self._key(db, session_id)
            db.executemany(
                _INSERT_DECISION,
                [(key, criterion, verdict, text, stamp) for criterion, verdict, text in checked],
            )
        self._checkpointer.wrote(sum(len(text) for _, _, text in checked), pages=2)

    def decisions(self, session_id: str) -> list[dict[str, Any]]:
        with self._read() as db:
            key = self._key(db, session_id)
            rows = db.execute(
                "SELECT row FROM decisions WHERE session_id = ? ORDER BY id", (key,)
            ).fetchall()
        return [common.from_json(text) for (text,) in rows]

    def save_report(self, session_id: str, report: Mapping[str, Any]) -> None:
        reported = common.report_row(session_id, report)
        with self._write() as db:
            key = self._key(db, session_id)
            db.execute(_UPSERT_REPORT, (key, reported.text, common.now(), reported.outcome,
                                        reported.score))  # fmt: skip
        self._checkpointer.wrote(len(reported.text), pages=2)

    def save_results(
        self,
        decisions: Mapping[str, Sequence[Mapping[str, Any]]],
        reports: Mapping[str, Mapping[str, Any]],
    ) -> None:
        rows = {sid: common.decision_rows(sid, given) for sid, given in decisions.items()}
        texts = {sid: common.report_row(sid, report) for sid, report in reports.items()}
        if not any(rows.values()) and not texts:
            return
        stamp = common.now()
        with self._write() as db:
            keys = {sid: self._key(db, sid) for sid in {*rows, *texts}}
            rows, texts = common.first_final_save(rows, texts, [
                sid for sid in texts
                if db.execute("SELECT 1 FROM reports WHERE session_id = ?", (keys[sid],)).fetchone()
            ])  # fmt: skip
            db.executemany(
                _INSERT_DECISION,
                [(keys[sid], criterion, verdict, text, stamp)
                 for sid, checked in rows.items() for criterion, verdict, text in checked],
            )  # fmt: skip
            db.executemany(_UPSERT_REPORT, [(keys[sid], r.text, stamp, r.outcome, r.score)
                                            for sid, r in texts.items()])  # fmt: skip
        nbytes = sum(len(t) for checked in rows.values() for *_, t in checked)
        nbytes += sum(len(r.text) for r in texts.values())
        self._checkpointer.wrote(nbytes, pages=2 + len(texts))

    def report(self, session_id: str) -> dict[str, Any] | None:
        with self._read() as db:
            key = self._key(db, session_id)
            rows = db.execute("SELECT report FROM reports WHERE session_id = ?", (key,))
            found = rows.fetchall()
        return common.from_json(found[0][0]) if found else None

    # ------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the checkpointer, sync the payload files and mark them so, close the connection
        (idempotent). SQLite checkpoints the WAL into the database as the last connection
        closes."""
        self._checkpointer.stop()
        with self._lock:
            db, self._db = self._db, None
        if db is None:
            return
        try:
            if self._committed[0] > self._marked:
                with _errors(self.path):
                    self._sync_payloads()
                    with immediate(db):
                        self._mark(db, self._synced)
        finally:
            db.close()
            self._release()

    def _release(self) -> None:
        self._segments.close()
        if self._owner is not None:
            self._owner.release()

    # ------------------------------------------------------------------------------ helpers

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _errors(self.path):
            yield self._connection()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: committed on success, rolled back on any error."""
        with self._lock, _errors(self.path):
            db = self._connection()
            with immediate(db):
                yield db
            self._checkpointer.after_commit(db)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._db

    def _sync_payloads(self) -> None:
        """Sync the payload files through the last batch this store committed (the
        checkpointer's thread, before each pass); the next append records the mark in
        ``payload_files``. Batches of another writer on the same file (the API's store beside
        the engine's) with lower ids lie in the same or earlier segments: syncing a file syncs
        every writer's bytes in it, and earlier segments are synced by name."""
        committed, segment = self._committed
        self._segments.sync()
        for earlier in range(self._synced_from, segment):  # filled by another writer too?
            self._segments.sync_file(earlier)
        self._synced_from = segment
        self._synced = max(self._synced, committed)

    def _mark(self, db: sqlite3.Connection, synced: int) -> None:
        if synced > self._marked:
            db.execute(_MARK_SYNCED, (synced,))
            self._marked = synced

    def _key(self, db: sqlite3.Connection, session_id: str) -> int:
        """The session's row id (cached); StoreError when it does not exist."""
        key = self._keys.get(session_id)
        if key is None:
            key = self._keys[session_id] = int(self._find(db, session_id)[0])
        return key

    @staticmethod
    def _find(db: sqlite3.Connection, session_id: str, columns: str = "NULL") -> tuple[Any, ...]:
        """(rowid, *columns) of the session; StoreError when it does not exist."""
        found = db.execute(
            f"SELECT id, {columns} FROM sessions WHERE session = ?", (session_id,)
        ).fetchone()
        if found is None:
            raise StoreError(f"unknown session {session_id!r}")
        return tuple(found)


def _head_reader(db: sqlite3.Connection) -> Callable[[str], common.Head | None]:
    def head(session_id: str) -> common.Head | None:
        row = db.execute(f"SELECT {_SESSION_COLUMNS} WHERE s.session = ?", (session_id,)).fetchone()
        if row is None:
            return None
        key, _, genesis, status, *_, idx, next_seq, value = row
        if idx is None:
            return common.Head(key, status, 0, genesis, 0)
        return common.Head(key, status, next_seq, value, idx + 1)

    return head


def _to_record(row: Sequence[Any]) -> SessionRecord:
    _, info, genesis, status, opened_at, close_t, closed_at, idx, next_seq, value = row
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


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One BEGIN IMMEDIATE transaction on `db`: committed when the block ends, rolled back if it
    raises (whatever it raises). Shared by every SQLite adapter of the engine's database. The
    write lock is waited for in steps of 0.1-1 ms, not by SQLite's busy handler
    (`sqlite_lock.begin_immediate`)."""
    begin_immediate(db)
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@contextmanager
def _errors(path: Path) -> Iterator[None]:
    """sqlite3 errors -> StoreError naming the file."""
    try:
        yield
    except sqlite3.Error as exc:
        failure = StorageFullError if disk_full(exc) else StoreError
        raise failure(_explain(path, exc)) from exc


def _explain(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if disk_full(exc):
        return f"{path}: the disk is full ({text}); free space, then retry"
    if "file is not a database" in text:
        return f"{path} is not an assessengine store: not a SQLite database"
    if "malformed" in text:
        return f"{path} is damaged ({text}); restore it from a backup"
    if "unable to open" in text:
        return f"cannot open {path} ({text}); does its directory exist and is it writable?"
    return f"{path}: {text}"


def _open(path: Path, synchronous: str) -> sqlite3.Connection:
    """The writer connection, with the schema created or migrated to the newest version."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a store file")
    with _errors(path):
        db = _connect(path, synchronous)
        try:
            _prepare(path, db)
        except BaseException:
            db.close()
            raise
    return db


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that only reads the store at `path` (``mode=ro``). Where the file or its
    folder is read-only (`_read_only`) and no other connection has the store open (no
    shared-memory file), it is opened ``immutable``, which a store that no one can write is:
    then no file is created beside it (not even the WAL's). StoreError when it is not an
    assessengine store, is newer than this version, or holds changes in a write-ahead log
    that a read-only folder keeps from being read."""
    if not path.is_file():
        raise StoreError(f"no store at {path}")
    params = "mode=ro"
    if (_read_only(path) or _read_only(path.parent)) and not _shm_readable(path):
        wal = path.with_name(path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise StoreError(f"{path}: its write-ahead log {wal.name} holds changes that cannot "
                             "be read in a read-only folder; copy the store with "
                             "`assessengine backup`, or make the folder writable")  # fmt: skip
        params += "&immutable=1"
    uri = f"file:{quote(str(path.resolve()))}?{params}"
    with _errors(path):
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)  # fmt: skip
        try:
            _check_readable(path, db)
        except BaseException:
            db.close()
            raise
    return db


def _read_only(path: Path) -> bool:
    """Whether `path` may not be written: by this user, or by anyone (no write bit: even root,
    who may write anyway, then leaves it as it is)."""
    return not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222


def _shm_readable(path: Path) -> bool:
    shm = path.with_name(path.name + "-shm")
    return shm.is_file() and os.access(shm, os.R_OK)


def _check_readable(path: Path, db: sqlite3.Connection) -> None:
    """The checks `_prepare` makes before it changes anything: an assessengine store, at a
    schema version this one reads."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    if app_id != APPLICATION_ID or "schema_version" not in tables:
        raise StoreError(f"{path} is not an assessengine store")
    current, head = _version(db), migrate.head_version()
    if current is not None and current > head:
        raise StoreError(f"{path} has store schema version {current}; this assessengine "
                         f"supports up to {head}: upgrade assessengine")  # fmt: skip
    if current != head:
        raise StoreError(f"{path} has store schema version {current or 'unknown'}: open it "
                         "once with `assessengine serve` (which migrates it) before reading "
                         "it read-only")  # fmt: skip


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        db.execute(f"PRAGMA synchronous = {synchronous}")
        db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        db.close()
        raise
    return db


def _prepare(path: Path, db: sqlite3.Connection) -> None:
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    if tables and (app_id != APPLICATION_ID or "schema_version" not in tables):
        listed = ", ".join(sorted(tables))
        raise StoreError(
            f"{path} is not an assessengine store (a SQLite database with other tables: {listed})"
        )
    if not tables:
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(
            f"{path}: cannot use WAL mode (journal mode is {mode!r}); "
            "put the store on a local file system"
        )
    db.execute("PRAGMA wal_autocheckpoint = 0")  # the _Checkpointer does it
    _migrate(path, db)


def _migrate(path: Path, db: sqlite3.Connection) -> None:
    """Bring the file to the newest schema version (`storage.migrate`: Alembic, one scheme for
    every backend), in a connection and transaction of its own; nothing to do (no SQLAlchemy)
    when the file is at it already."""
    head = migrate.head_version()
    if _version(db) == head:
        return
    migrate.upgrade_sqlite(path, after=f"PRAGMA application_id = {APPLICATION_ID}")


def _version(db: sqlite3.Connection) -> int | None:
    """The file's schema version (None for a new file or one of a release before Alembic)."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "alembic_version" not in tables or "schema_version" not in tables:
        return None
    return migrate.stored_version(db.execute)


# ================================================================================ payloads


def recover_payloads(path: Path, db: sqlite3.Connection, segments: Segments) -> None:
    """Check each batch after the ``synced_batch`` mark against its chain value, and drop a
    batch whose payload is not what was stored (bytes a power loss kept from the disk), with
    the later batches of its session, logging what went. Then sync the files and move the
    mark past the batches checked."""
    with immediate(db):
        (mark,) = db.execute("SELECT synced_batch FROM payload_files").fetchone()
        rows = db.execute(
            "SELECT b.id, b.session_id, s.session, b.idx, b.first_seq, b.header, b.chain, "
            "COALESCE((SELECT p.chain FROM batches p WHERE p.session_id = b.session_id "
            "AND p.idx = b.idx - 1), s.genesis), b.segment, b.seg_offset, b.seg_length "
            "FROM batches b JOIN sessions s ON s.id = b.session_id "
            "WHERE b.id > ? AND b.segment IS NOT NULL ORDER BY b.id",
            (mark,),
        ).fetchall()
        if not rows:
            return
        lost: dict[int, tuple[str, int, int, str]] = {}  # key -> (session, idx, first_seq, why)
        for _, key, session, idx, first_seq, header, value, previous, *where in rows:
            if key in lost:
                continue
            try:
                payload = segments.read(*where)
            except StoreError as exc:
                lost[key] = (session, idx, first_seq, str(exc))
                continue
            if chain.link(previous, *chain.digests(header, payload)) != value:
                lost[key] = (session, idx, first_seq, "its payload is not the bytes stored")
        for key, (session, idx, first_seq, why) in lost.items():
            gone = db.execute(
                "DELETE FROM batches WHERE session_id = ? AND idx >= ?", (key, idx)
            ).rowcount
            log.warning(
                "%s: session %r lost its last %d batch(es), from seq %d: they did not reach the "
                "disk before the system stopped (%s)", path, session, gone, first_seq, why,
            )  # fmt: skip
        for segment in sorted({row[-3] for row in rows}):
            segments.sync_file(segment)
        db.execute(_MARK_SYNCED, (rows[-1][0],))


# ================================================================================ checkpoints


class _Checkpointer:
    """Copies the WAL into the database from a thread of its own, once about `threshold`
    bytes have gone into the WAL (or `CHECKPOINT_INTERVAL_S` after a write): PASSIVE
    checkpoints that run beside the writer, so the bulk of the copy and its fsyncs stay off the
    append path. After each pass the writer copies the few pages appended meanwhile
    (`after_commit`); the WAL is then wholly copied and SQLite starts it over at the next write
    instead of letting it grow.

    Back-pressure: when more than ``4 * threshold`` bytes wait to be copied (the disk is
    slower than the appends), the writer waits for the running pass and copies the rest
    itself, so appends slow to the disk's pace and the WAL stays bounded.
    """

    def __init__(
        self,
        path: Path,
        synchronous: str,
        threshold: int,
        page_size: int,
        before_pass: Callable[[], None] | None = None,
    ) -> None:
        self._path, self._synchronous, self._threshold = path, synchronous, threshold
        self._page_size = page_size
        self._before_pass = before_pass
        self._pending = 0  # WAL bytes (estimated) since the last background pass started
        self._uncopied = 0  # WAL bytes (estimated) since the WAL was last wholly copied
        self._last_pass = time.monotonic()
        self._running = False
        self._tail = False
        self._stopping = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wrote(self, nbytes: int, *, pages: int) -> None:
        """A transaction committed `nbytes` of data and rewrote about `pages` other pages
        (table and index leaves): what it added to the WAL, roughly."""
        estimate = nbytes + pages * self._page_size
        with self._wake:
            self._pending += estimate
            self._uncopied += estimate
            if self._pending >= self._threshold:
                self._wake.notify_all()

    def after_commit(self, db: sqlite3.Connection) -> None:
        """Called by the writer after each commit, holding the store's lock. One checkpoint
        runs at a time (`_running`), so the writer's never collides with a background pass."""
        with self._wake:
            if not (self._tail or self._uncopied > 4 * self._threshold):
                return
            while self._running:  # behind: wait for the pass (back-pressure)
                self._wake.wait()
            self._running, self._tail = True, False
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # committed data is safe; the next round tries again
            log.warning("%s: checkpoint failed: %s", self._path, exc)
        finally:
            with self._wake:
                self._running, self._uncopied, self._pending = False, 0, 0
                self._wake.notify_all()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            db = _connect(self._path, self._synchronous)
        except sqlite3.Error as exc:
            log.error("%s: background checkpoints disabled, cannot connect: %s", self._path, exc)
            return
        try:
            while self._wait():
                try:
                    self._checkpoint(db)
                finally:
                    with self._wake:
                        self._running, self._tail = False, True
                        self._last_pass = time.monotonic()
                        self._wake.notify_all()
        finally:
            db.close()

    def _due(self) -> bool:
        if self._running or not self._pending:
            return False
        waited = time.monotonic() - self._last_pass
        return self._pending >= self._threshold or waited >= CHECKPOINT_INTERVAL_S

    def _wait(self) -> bool:
        with self._wake:
            while not (self._stopping or self._due()):
                self._wake.wait(timeout=CHECKPOINT_INTERVAL_S)
            self._pending = 0
            self._running = not self._stopping
            return self._running

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        if self._before_pass is not None:
            try:
                self._before_pass()
            except StoreError as exc:  # the mark stays behind; the next pass tries again
                log.warning("%s", exc)
        try:
            copied = 0
            for _ in range(3):  # again while a pass copied much (appends go on meanwhile)
                done = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[2]
                if (done - copied) * self._page_size < self._threshold // 8:
                    break
                copied = done
        except sqlite3.Error as exc:  # the next round retries; the writer is unaffected
            log.warning("%s: checkpoint failed: %s", self._path, exc)
