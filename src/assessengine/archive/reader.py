"""Archived Parquet (or Arrow IPC) straight into the kernel's column batches, streamed in
bounded memory.

    path = "events/scenario=lhd-underground/date=2026-12-06/part-RUN-0.parquet"
    batches = event_batches(root, path, scenario, session_ids=["S1", "S2"])
    reports = kernel_scorer.score_stream(compiled, batches, ["S1", "S2"], close_t)

`event_batches(source, path, scenario, *, session_ids, rows=BATCH_ROWS) -> Iterator[EventBatch]`

- `source`: an `ArchiveRoot` (the file is `path` relative to it) or an fsspec file system (then
  `path` is that file system's path); `scenario`: the `core.scenario.Scenario` the file
  archives (its signal and event names give the columns and the event codes).
- `row_groups`: read only these Parquet row groups, in this order (None: the whole file;
  ArchiveError for an Arrow IPC file, which has none).
- `session_ids`: the sessions wanted, in the caller's order. Each yielded batch's ``session``
  column holds indexes into this sequence; rows of other sessions in the file are skipped.
  None: every session, numbered in order of first appearance (`EventsReader.sessions_seen`).
- Yields `core.events.EventBatch` es of at most `rows` rows, in file order (each session's
  rows in seq order), read one Parquet record batch at a time (only the events table's
  columns, one thread: a Dask worker has one core): memory is bounded by `rows` times the row
  width, whatever the file's size. The conversion is per column (`batches.BatchConverter`).
- The file may be Arrow IPC (file or stream format: told by its first bytes) or else Parquet;
  a local file is memory-mapped.
- Raises `ArchiveError` naming the file when it cannot be read (missing, corrupt, truncated),
  when a column is missing or of another type, or (naming the row) when it holds an event name
  the scenario does not have, a null where a value is required, or an infinite signal value.

`read_sessions(root, manifest, ...)` reads the sessions table (filtered by scenario and time),
the list a caller takes `session_ids` and close times from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from numpy.typing import NDArray
from pyarrow import ipc

from ..core.events import EventBatch
from ..core.scenario import Scenario
from .batches import BatchConverter
from .layout import FIXED_COLUMNS, SESSIONS_SCHEMA, Manifest
from .location import ArchiveError, ArchiveRoot

BATCH_ROWS: Final = 65_536
PARQUET_MAGIC: Final = b"PAR1"
ARROW_FILE_MAGIC: Final = b"ARROW1"
ARROW_STREAM_MAGIC: Final = b"\xff\xff\xff\xff"


def event_batches(
    source: ArchiveRoot | AbstractFileSystem,
    path: str,
    scenario: Scenario,
    *,
    session_ids: Sequence[str] | None,
    rows: int = BATCH_ROWS,
    row_groups: Sequence[int] | None = None,
) -> Iterator[EventBatch]:
    """See the module docstring."""
    yield from EventsReader(source, path, scenario, session_ids=session_ids, rows=rows,
                            row_groups=row_groups)  # fmt: skip


class EventsReader:
    """`event_batches` as an object: iterate it once for the batches; `sessions_seen` then
    lists the sessions in the order their indexes were given. `check_order`: see
    `batches.BatchConverter`; `handle`: an open binary file to read instead of opening `path`
    (which then only names it); `row_groups`: see `event_batches`."""

    def __init__(
        self,
        source: ArchiveRoot | AbstractFileSystem,
        path: str,
        scenario: Scenario,
        *,
        session_ids: Sequence[str] | None,
        rows: int = BATCH_ROWS,
        check_order: bool = False,
        handle: Any = None,
        row_groups: Sequence[int] | None = None,
    ) -> None:
        self.fs, self.full, self.where = _resolve(source, path)
        self.rows, self.handle, self.row_groups = rows, handle, row_groups
        self.convert = BatchConverter(scenario, where=self.where, session_ids=session_ids,
                                      check_order=check_order)  # fmt: skip

    @property
    def sessions_seen(self) -> list[str]:
        return self.convert.sessions_seen

    def sessions_and_times(self) -> Iterator[tuple[NDArray[np.int32], NDArray[np.float64]]]:
        """Only the ``session`` (indexes, as the batches give them) and ``t`` columns, batch
        by batch (the file's schema is checked in full)."""
        for first_row, record in record_batches(self.fs, self.full, self.where, rows=self.rows,
                                                check=self.convert.check_schema,
                                                columns=("session", "t"), handle=self.handle,
                                                row_groups=self.row_groups):  # fmt: skip
            if record.num_rows:
                yield self.convert.sessions_and_times(record, first_row=first_row)

    def __iter__(self) -> Iterator[EventBatch]:
        for first_row, record in record_batches(self.fs, self.full, self.where, rows=self.rows,
                                                check=self.convert.check_schema,
                                                handle=self.handle,
                                                row_groups=self.row_groups):  # fmt: skip
            try:
                batch = self.convert(record, first_row=first_row)
            except (pa.ArrowException, ValueError) as exc:
                raise ArchiveError(f"{self.where}: unreadable rows ({_first_line(exc)})") from None
            if batch is not None:
                yield batch


def record_batches(
    fs: Any,
    full: str,
    where: str,
    *,
    rows: int,
    check: Callable[[pa.Schema], None],
    columns: Sequence[str] = FIXED_COLUMNS,
    handle: Any = None,
    row_groups: Sequence[int] | None = None,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """The `columns` of the Parquet or Arrow IPC file at `full` (or in the open binary file
    `handle`), in pieces of at most `rows` rows, each with the file row of its first row;
    only the Parquet `row_groups` given (None: all); `check(schema)` runs first (it raises to
    refuse the file)."""
    kind = "Parquet"
    try:
        with ExitStack() as stack:
            if handle is None:
                local = isinstance(fs, LocalFileSystem)
                handle = stack.enter_context(pa.memory_map(full) if local else fs.open(full, "rb"))
            elif not handle.seekable():
                raise ArchiveError(f"{where}: Parquet or Arrow input must be a file (it is read "
                                   "from its end), not a pipe")  # fmt: skip
            magic = handle.read(6)
            handle.seek(0)
            if magic != ARROW_FILE_MAGIC and magic[:4] != ARROW_STREAM_MAGIC:
                parquet = stack.enter_context(pq.ParquetFile(handle))
                check(parquet.schema_arrow)
                yield from _parquet_batches(parquet, rows, columns, row_groups, where)
                return
            if row_groups is not None:
                raise ArchiveError(f"{where}: an Arrow IPC file has no row groups to read")
            kind = "Arrow IPC"
            reader: Any
            pieces: Any
            if magic == ARROW_FILE_MAGIC:
                reader = ipc.open_file(handle)
                pieces = (reader.get_batch(i) for i in range(reader.num_record_batches))
            else:
                reader = pieces = ipc.open_stream(handle)
            check(reader.schema)
            first_row = 0
            for piece in pieces:
                wanted = piece.select(list(columns))
                for start in range(0, wanted.num_rows, rows):
                    yield first_row + start, wanted.slice(start, rows)
                first_row += wanted.num_rows
    except ArchiveError:
        raise
    except FileNotFoundError:
        raise ArchiveError(f"{where}: the events file is missing") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ArchiveError(f"{where}: not a readable {kind} file ({_first_line(exc)})") from None


def _parquet_batches(
    parquet: pq.ParquetFile, rows: int, columns: Sequence[str], row_groups: Sequence[int] | None,
    where: str,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """`record_batches` of a Parquet file (one thread: a Dask worker has one core)."""
    if row_groups is None:
        first_row = 0
        for record in parquet.iter_batches(batch_size=rows, columns=list(columns),
                                           use_threads=False):  # fmt: skip
            yield first_row, record
            first_row += record.num_rows
        return
    meta = parquet.metadata
    starts = [0]
    for g in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(g).num_rows)
    for g in row_groups:
        if not 0 <= g < meta.num_row_groups:
            raise ArchiveError(f"{where}: row group {g} does not exist (the file has "
                               f"{meta.num_row_groups})")  # fmt: skip
        first_row = starts[g]
        for record in parquet.iter_batches(batch_size=rows, columns=list(columns),
                                           row_groups=[g], use_threads=False):  # fmt: skip
            yield first_row, record
            first_row += record.num_rows


def _resolve(source: ArchiveRoot | AbstractFileSystem, path: str) -> tuple[Any, str, str]:
    if isinstance(source, ArchiveRoot):
        return source.fs, source.full(path), source.where(path)
    return source, path, path


# ------------------------------------------------------------------------------ sessions table


def read_sessions(
    root: ArchiveRoot,
    manifest: Manifest,
    *,
    scenario: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The archived sessions (rows of every sessions part the manifest names), those of
    `scenario` opened at or after `since` and before `until` when given; the table has
    `layout.SESSIONS_SCHEMA`'s columns (or `columns` of them), in export order. Raises
    ArchiveError naming a part that is missing, corrupt or lacks a column."""
    wanted = list(columns) if columns is not None else SESSIONS_SCHEMA.names
    needed = list(dict.fromkeys([*wanted, "scenario", "opened_at"]))
    parts: list[pa.Table] = []
    for entry in manifest.of_kind("sessions"):
        table = _read_table(root, entry.path, needed)
        mask = None
        if scenario is not None:
            mask = pc.equal(table.column("scenario"), scenario)
        if since is not None:
            mask = _and(mask, pc.greater_equal(table.column("opened_at"), _utc(since)))
        if until is not None:
            mask = _and(mask, pc.less(table.column("opened_at"), _utc(until)))
        parts.append((table if mask is None else table.filter(mask)).select(wanted))
    schema = pa.schema([SESSIONS_SCHEMA.field(n) for n in wanted])
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _and(mask: Any, more: Any) -> Any:
    return more if mask is None else pc.and_(mask, more)


def _utc(moment: datetime) -> pa.Scalar:
    return pa.scalar(moment, pa.timestamp("us", tz="UTC"))


def _read_table(root: ArchiveRoot, path: str, columns: Sequence[str]) -> pa.Table:
    where = root.where(path)
    try:
        with root.fs.open(root.full(path), "rb") as handle:
            parquet = pq.ParquetFile(handle)
            missing = [c for c in columns if parquet.schema_arrow.get_field_index(c) < 0]
            if missing:
                raise ArchiveError(f"{where}: column {missing[0]!r} is missing")
            table = parquet.read(columns=list(columns))
    except ArchiveError:
        raise
    except FileNotFoundError:
        raise ArchiveError(f"{where}: the sessions file is missing") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ArchiveError(f"{where}: not a readable Parquet file ({_first_line(exc)})") from None
    for name in columns:
        expected = SESSIONS_SCHEMA.field(name).type
        if table.schema.field(name).type != expected:
            raise ArchiveError(f"{where}: column {name!r} is {table.schema.field(name).type}, "
                               f"expected {expected}")  # fmt: skip
    return table


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:200]
