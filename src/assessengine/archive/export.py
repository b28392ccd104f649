"""`archive export`: closed sessions out of a store into Parquet (see `layout` for the format).

    result = export(store, root, load_scenario=..., since=datetime(2026, 1, 1, tzinfo=UTC))

Reads the store through its port only (`Store.sessions`, `Store.batches`). Each session's hash
chain is walked while its batches are read (`core.chain`: the genesis from its info, every
batch's chain value from its header and payload, the last one equal to the stored chain head;
batch indexes and seqs gapless), every batch is decoded (`core.codec`), and a session that fails
any of it is refused by name and not archived (the others are). Incremental and idempotent:
sessions already in the archive's sessions table are skipped, so a second run writes nothing.
Nothing is presented before it is complete: files are written under ``_staging/RUN/``, moved to
their places, and the manifest that names them is written last.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core import chain
from ..core.codec import CodecError, Columns, Layout, decode_events
from ..core.jsontext import dumps
from ..core.scenario import Scenario
from ..errors import AssessEngineError
from ..storage.port import SessionRecord, Store, StoredBatch
from .digest import columns_digest, file_sha256
from .layout import (
    COMPRESSION,
    MANIFEST,
    SESSIONS_SCHEMA,
    STAGING_DIR,
    FileEntry,
    Manifest,
    events_path,
    events_record_batch,
    events_schema,
    events_writer_options,
    sessions_path,
)
from .location import ArchiveError, ArchiveRoot, unreachable
from .reader import read_sessions

FILE_ROWS: Final = 2_000_000
"""An events file is closed after the session that takes it past this many rows."""
ROW_GROUP_ROWS: Final = 131_072


class BrokenSessionError(AssessEngineError):
    """A stored session's chain does not hold, or a batch does not decode."""


@dataclass(slots=True)
class ExportResult:
    """What one run did: sessions and events archived, files and bytes written, and the
    sessions refused (id -> why)."""

    run: str
    sessions: int = 0
    events: int = 0
    files: list[FileEntry] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    skipped: int = 0        # closed sessions already archived
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def export(
    store: Store,
    root: ArchiveRoot,
    *,
    load_scenario: Callable[[str], Scenario],
    since: datetime | None = None,
    file_rows: int = FILE_ROWS,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Archive the store's closed sessions not yet in the archive at `root` (closed at or
    after `since` when given). `load_scenario(id)` gives a session's scenario (ScenarioError
    if unknown: the session is refused). `progress(n)` is called after each session with the
    number done. Raises ArchiveError when the archive cannot be read or written; then no new
    manifest was committed (the archive is as it was)."""
    started = time.perf_counter()
    result = ExportResult(run=_run_id())
    _prepare(root)
    manifest = Manifest.load(root) or Manifest()
    done = set(read_sessions(root, manifest, columns=["session"]).column("session").to_pylist())
    todo = _candidates(store, done, since, result)
    staged: list[tuple[str, FileEntry]] = []
    rows: list[dict[str, Any]] = []
    for scenario_id, group in groupby(todo, key=lambda r: r.info.scenario):
        records = list(group)
        try:
            scenario = load_scenario(scenario_id)
        except AssessEngineError as exc:
            result.refused |= {r.info.session: f"scenario {scenario_id!r}: {exc}"
                               for r in records}  # fmt: skip
            continue
        writer = _EventsWriter(root, result.run, scenario, file_rows)
        for record in records:
            _export_session(store, record, scenario, writer, rows, result)
            if progress is not None:
                progress(result.sessions + len(result.refused))
        staged += writer.close()
    if rows:
        staged.append(_write_sessions(root, result.run, rows))
    _commit(root, manifest, staged, result, since)
    result.seconds = time.perf_counter() - started
    return result


def _run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def _prepare(root: ArchiveRoot) -> None:
    if root.is_local:
        try:
            root.fs.makedirs(root.path, exist_ok=True)
        except OSError as exc:
            raise unreachable(root.where(), exc) from None
    root.check_reachable()


def _candidates(
    store: Store, done: set[str], since: datetime | None, result: ExportResult
) -> list[SessionRecord]:
    """Closed sessions not archived yet, by scenario then open time."""
    out = []
    for record in store.sessions(status="closed"):
        if record.info.session in done:
            result.skipped += 1
        elif since is None or _when(record.closed_at or record.opened_at) >= since:
            out.append(record)
    return sorted(out, key=lambda r: (r.info.scenario, _day(r.opened_at), r.opened_at))


def _when(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _day(stamp: str) -> str:
    return _when(stamp).astimezone(UTC).date().isoformat()


# ------------------------------------------------------------------------------ one session


def _export_session(
    store: Store,
    record: SessionRecord,
    scenario: Scenario,
    writer: _EventsWriter,
    rows: list[dict[str, Any]],
    result: ExportResult,
) -> None:
    sid = record.info.session
    layout = writer.layout
    try:
        parts = list(verified_columns(record, store.batches(sid), layout))
    except BrokenSessionError as exc:
        result.refused[sid] = str(exc)
        return
    n = sum(len(p) for p in parts)
    path = writer.add(sid, record, parts)
    report = store.report(sid)
    info = record.info
    rows.append({
        "session": sid, "learner": info.learner, "scenario": info.scenario,
        "rubric": info.rubric, "rubric_version": info.rubric_version,
        "rubric_sha256": info.rubric_sha256, "source": info.source,
        "metadata": dumps(dict(info.metadata), sort_keys=True),
        "opened_at": _when(record.opened_at),
        "closed_at": _when(record.closed_at) if record.closed_at else None,
        "close_t": record.close_t, "batches": record.batches, "events": n,
        "chain_head": record.chain_head, "events_sha256": columns_digest(parts, layout),
        "report": dumps(report, sort_keys=True) if report is not None else None,
        "file": path, "date": _day(record.opened_at),
    })  # fmt: skip
    result.sessions += 1
    result.events += n


def verified_columns(
    record: SessionRecord, batches: Iterable[StoredBatch], layout: Layout
) -> Iterator[Columns]:
    """The session's batches decoded, in order, each checked on the way (`core.chain`, as
    `assessengine audit` does): its chain value follows from the one before (the genesis of
    `record.info` first) and its own header and payload, its index and first seq continue
    the previous, and the last chain value is the stored chain head. Raises
    BrokenSessionError naming the session and the first batch that fails (after yielding the
    batches before it: a caller keeps nothing until the iteration ends)."""
    sid = record.info.session
    prev = chain.genesis(record.info)
    next_seq, last_t, count = 0, 0.0, 0
    for position, batch in enumerate(batches):
        where = f"session {sid!r}: batch {position}"
        expected = chain.next_chain(prev, batch.header, batch.payload)
        if batch.chain != expected:
            raise BrokenSessionError(f"{where}: hash chain broken (its stored chain value "
                                     "does not follow from the batches before it and its own "
                                     "header and payload)")  # fmt: skip
        if batch.index != position or batch.first_seq != next_seq:
            raise BrokenSessionError(f"{where}: stored as index {batch.index} from seq "
                                     f"{batch.first_seq}, expected seq {next_seq}")  # fmt: skip
        try:
            cols = decode_events(batch.header, batch.payload, layout, min_t=last_t)
        except (CodecError, ValueError) as exc:
            raise BrokenSessionError(f"{where}: does not decode: {exc}") from None
        prev, count = expected, count + 1
        next_seq = batch.first_seq + batch.count
        if len(cols):
            last_t = float(cols.t[-1])
            yield cols
    if prev != record.chain_head or count != record.batches:
        raise BrokenSessionError(f"session {sid!r}: hash chain broken (the stored chain head "
                                 f"is not its last batch's chain value; {count} of "
                                 f"{record.batches} batches found)")  # fmt: skip


# ------------------------------------------------------------------------------ events files


class _EventsWriter:
    """Writes one scenario's sessions into staged events files, one (date, part) at a time,
    a row group at a time (memory: about `ROW_GROUP_ROWS` rows)."""

    def __init__(self, root: ArchiveRoot, run: str, scenario: Scenario, file_rows: int) -> None:
        self.root, self.run, self.scenario = root, run, scenario
        self.layout = Layout.of(scenario)
        self.schema = events_schema(scenario)
        self.file_rows = file_rows
        self.staged: list[tuple[str, FileEntry]] = []
        self._writer: pq.ParquetWriter | None = None
        self._handle: Any = None
        self._path = ""
        self._date = ""
        self._rows = self._sessions = self._part = 0
        self._pending: list[tuple[str, Columns]] = []
        self._pending_rows = 0

    def add(self, sid: str, record: SessionRecord, parts: Sequence[Columns]) -> str:
        """Queue the session's rows; returns the events file (final path) it lands in."""
        date = _day(record.opened_at)
        if self._writer is None or date != self._date or self._rows >= self.file_rows:
            self._finish()
            self._start(date)
        for cols in parts:
            self._pending.append((sid, cols))
            self._pending_rows += len(cols)
        self._rows += sum(len(c) for c in parts)
        self._sessions += 1
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()
        return self._path

    def close(self) -> list[tuple[str, FileEntry]]:
        self._finish()
        return self.staged

    def _start(self, date: str) -> None:
        self._date = date
        self._path = events_path(self.scenario.scenario, date, self.run, self._part)
        self._part += 1
        staging = self.root.full(f"{STAGING_DIR}/{self.run}/{self._path}")
        try:
            if self.root.is_local:
                self.root.fs.makedirs(staging.rsplit("/", 1)[0], exist_ok=True)
            self._handle = self.root.fs.open(staging, "wb")
            self._writer = pq.ParquetWriter(self._handle, self.schema,
                                           **events_writer_options(self.scenario))
        except Exception as exc:
            raise unreachable(self.root.where(self._path), exc) from None
        self._rows = self._sessions = 0

    def _flush(self) -> None:
        if not self._pending or self._writer is None:
            return
        table = pa.Table.from_batches([self._record_batch()], schema=self.schema)
        try:
            self._writer.write_table(table, row_group_size=max(len(table), 1))
        except Exception as exc:
            raise unreachable(self.root.where(self._path), exc) from None
        self._pending, self._pending_rows = [], 0

    def _record_batch(self) -> pa.RecordBatch:
        ids = list(dict.fromkeys(sid for sid, _ in self._pending))
        index = {sid: k for k, sid in enumerate(ids)}
        session = np.concatenate([np.full(len(c), index[sid], np.int32)
                                  for sid, c in self._pending])  # fmt: skip
        cols = [c for _, c in self._pending]
        return events_record_batch(
            self.scenario, ids, session, np.concatenate([c.seq for c in cols]),
            np.concatenate([c.t for c in cols]), np.concatenate([c.event for c in cols]),
            np.concatenate([c.signals for c in cols], axis=1),
        )  # fmt: skip

    def _finish(self) -> None:
        if self._writer is None:
            return
        self._flush()
        try:
            self._writer.close()
            self._handle.close()
            staged = self.root.full(f"{STAGING_DIR}/{self.run}/{self._path}")
            size = self.root.fs.size(staged)
            sha256 = file_sha256(self.root.fs, staged)
        except Exception as exc:
            raise unreachable(self.root.where(self._path), exc) from None
        self.staged.append((self._path, FileEntry(
            self._path, "events", self._rows, int(size), scenario=self.scenario.scenario,
            date=self._date, sessions=self._sessions, sha256=sha256,
        )))  # fmt: skip
        self._writer = None


def _write_sessions(
    root: ArchiveRoot, run: str, rows: list[dict[str, Any]]
) -> tuple[str, FileEntry]:
    path = sessions_path(run)
    staging = root.full(f"{STAGING_DIR}/{run}/{path}")
    table = pa.Table.from_pylist(rows, schema=SESSIONS_SCHEMA)
    try:
        if root.is_local:
            root.fs.makedirs(staging.rsplit("/", 1)[0], exist_ok=True)
        with root.fs.open(staging, "wb") as handle:
            pq.write_table(table, handle, compression=COMPRESSION)
        size = root.fs.size(staging)
        sha256 = file_sha256(root.fs, staging)
    except Exception as exc:
        raise unreachable(root.where(path), exc) from None
    return path, FileEntry(path, "sessions", len(rows), int(size), sha256=sha256)


# ------------------------------------------------------------------------------ commit


def _commit(
    root: ArchiveRoot,
    manifest: Manifest,
    staged: list[tuple[str, FileEntry]],
    result: ExportResult,
    since: datetime | None,
) -> None:
    """Move the staged files in place, then write the manifest naming them (the commit)."""
    staging = root.full(f"{STAGING_DIR}/{result.run}")
    if not staged:
        _remove(root, staging)
        return
    try:
        for path, _ in staged:
            target = root.full(path)
            if root.is_local:
                root.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            root.fs.mv(f"{staging}/{path}", target)
    except Exception as exc:
        raise ArchiveError(f"{root.where()}: moving the new files in place failed, nothing "
                           f"committed: {exc}") from None  # fmt: skip
    result.files = [entry for _, entry in staged]
    export_line = {"run": result.run, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                   "sessions": result.sessions, "events": result.events,
                   "since": since.isoformat() if since else None}  # fmt: skip
    root.write_bytes(MANIFEST, manifest.extended(result.files, export_line).to_json())
    _remove(root, staging)


def _remove(root: ArchiveRoot, path: str) -> None:
    """Remove the run's staging folder, and the staging folder itself once empty (leftovers
    are harmless: no manifest names them)."""
    with contextlib.suppress(Exception):
        if root.fs.exists(path):
            root.fs.rm(path, recursive=True)
        parent = path.rsplit("/", 1)[0]
        if root.is_local and root.fs.exists(parent) and not root.fs.ls(parent):
            root.fs.rmdir(parent)
