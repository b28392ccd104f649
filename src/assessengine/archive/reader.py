"""Archived Parquet straight into the kernel's column batches, streamed in bounded memory.

    path = "events/scenario=lhd-underground/date=2026-12-06/part-RUN-0.parquet"
    batches = event_batches(root, path, scenario, session_ids=["S1", "S2"])
    reports = kernel_scorer.score_stream(compiled, batches, ["S1", "S2"], close_t)

`event_batches(source, path, scenario, *, session_ids, rows=BATCH_ROWS) -> Iterator[EventBatch]`

- `source`: an `ArchiveRoot` (the file is `path` relative to it) or an fsspec file system (then
  `path` is that file system's path); `scenario`: the `core.scenario.Scenario` the file
  archives (its signal and event names give the columns and the event codes).
- `session_ids`: the sessions wanted, in the caller's order. Each yielded batch's ``session``
  column holds indexes into this sequence; rows of other sessions in the file are skipped.
- Yields `core.events.EventBatch` es of at most `rows` rows, in file order (each session's
  rows in seq order), read one Parquet record batch at a time: memory is bounded by `rows`
  times the row width, whatever the file's size. Columns: seq int64, t float64, event int32
  (the scenario's event codes), signals float64 (n_signals, n) with NaN where a value was not
  reported.
- Raises `ArchiveError` naming the file when it cannot be read (missing, corrupt, truncated),
  when a column is missing or of another type, or when it holds an event name the scenario
  does not have.

`read_sessions(root, manifest, ...)` reads the sessions table (filtered by scenario and time),
the list a caller takes `session_ids` and close times from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from numpy.typing import NDArray

from ..core.events import EventBatch
from ..core.scenario import Scenario
from .layout import FIXED_COLUMNS, SESSIONS_SCHEMA, Manifest
from .location import ArchiveError, ArchiveRoot

BATCH_ROWS: Final = 65_536


def event_batches(
    source: ArchiveRoot | AbstractFileSystem,
    path: str,
    scenario: Scenario,
    *,
    session_ids: Sequence[str],
    rows: int = BATCH_ROWS,
) -> Iterator[EventBatch]:
    """See the module docstring."""
    fs, full, where = _resolve(source, path)
    wanted = {sid: k for k, sid in enumerate(session_ids)}
    events = {name: code for code, name in enumerate(scenario.event_names)}
    try:
        with fs.open(full, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            _check_schema(parquet.schema_arrow, scenario, where)
            for record in parquet.iter_batches(batch_size=rows, columns=list(FIXED_COLUMNS)):
                batch = _to_batch(record, scenario, wanted, events, where)
                if batch is not None:
                    yield batch
    except ArchiveError:
        raise
    except FileNotFoundError:
        raise ArchiveError(f"{where}: the events file is missing") from None
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ArchiveError(f"{where}: not a readable Parquet file ({_first_line(exc)})") from None


def _resolve(source: ArchiveRoot | AbstractFileSystem, path: str) -> tuple[Any, str, str]:
    if isinstance(source, ArchiveRoot):
        return source.fs, source.full(path), source.where(path)
    return source, path, path


def _check_schema(schema: pa.Schema, scenario: Scenario, where: str) -> None:
    for name in FIXED_COLUMNS:
        if schema.get_field_index(name) < 0:
            raise ArchiveError(f"{where}: column {name!r} is missing")
    _expect(schema.field("seq").type, pa.int64(), "seq", where)
    _expect(schema.field("t").type, pa.float64(), "t", where)
    signals = schema.field("signals").type
    if not pa.types.is_struct(signals):
        raise ArchiveError(f"{where}: column 'signals' is {signals}, expected a struct of "
                           "float64 signal columns")  # fmt: skip
    for name in scenario.signal_names:
        index = signals.get_field_index(name)
        if index < 0:
            raise ArchiveError(f"{where}: column 'signals.{name}' is missing (scenario "
                               f"{scenario.scenario!r} has that signal)")  # fmt: skip
        _expect(signals.field(index).type, pa.float64(), f"signals.{name}", where)
    for name in ("session", "event"):
        kind = schema.field(name).type
        value = kind.value_type if pa.types.is_dictionary(kind) else kind
        if not (pa.types.is_string(value) or pa.types.is_large_string(value)):
            raise ArchiveError(f"{where}: column {name!r} is {kind}, expected strings")


def _expect(found: pa.DataType, expected: pa.DataType, name: str, where: str) -> None:
    if found != expected:
        raise ArchiveError(f"{where}: column {name!r} is {found}, expected {expected}")


def _to_batch(
    record: pa.RecordBatch,
    scenario: Scenario,
    wanted: Mapping[str, int],
    events: Mapping[str, int],
    where: str,
) -> EventBatch | None:
    if record.num_rows == 0:
        return None
    for name in ("session", "seq", "t", "event"):
        if record.column(name).null_count:
            raise ArchiveError(f"{where}: column {name!r} has null values")
    session = _codes(record.column("session"), wanted, None, where, "session")
    event = _codes(record.column("event"), events, scenario, where, "event")
    keep = session >= 0
    seq = record.column("seq").to_numpy()
    t = record.column("t").to_numpy()
    struct = record.column("signals")
    columns = [_float_column(struct, name) for name in scenario.signal_names]
    signals = (np.vstack(columns) if columns
               else np.empty((0, record.num_rows), np.float64))  # fmt: skip
    batch = EventBatch(session.astype(np.int32), seq, t, event.astype(np.int32), signals)
    if keep.all():
        return batch
    rows = np.flatnonzero(keep)
    return batch.take(rows) if len(rows) else None


def _float_column(struct: pa.Array, name: str) -> NDArray[np.float64]:
    column = pc.struct_field(struct, name)
    if struct.null_count:  # a null struct row: none of its signals reported
        column = pc.if_else(struct.is_valid(), column, pa.scalar(None, pa.float64()))
    out: NDArray[np.float64] = column.to_numpy(zero_copy_only=False)
    return out


def _codes(
    column: pa.Array,
    positions: Mapping[str, int],
    scenario: Scenario | None,
    where: str,
    name: str,
) -> NDArray[np.int64]:
    """The position in `positions` of each row's string (-1: not there); with a `scenario`,
    a string not in `positions` is an unknown event name (ArchiveError)."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    names = column.dictionary.to_pylist()
    lookup = np.array([positions.get(n, -1) for n in names] or [-1], np.int64)
    if scenario is not None and (lookup < 0).any():
        used = np.unique(column.indices.to_numpy())
        unknown = sorted({names[i] for i in used.tolist() if lookup[i] < 0})
        if unknown:
            raise ArchiveError(f"{where}: {name} {unknown[0]!r} is not an event of scenario "
                               f"{scenario.scenario!r}")  # fmt: skip
    indices = column.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    out: NDArray[np.int64] = lookup[indices]
    return out


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
