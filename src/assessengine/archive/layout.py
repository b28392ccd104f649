"""What an archive holds and where: the Parquet schemas, file names and the manifest.

    ROOT/manifest.json                                   committed last; lists every file
    ROOT/sessions/part-RUN.parquet                       one sessions table part per export run
    ROOT/events/scenario=ID/date=YYYY-MM-DD/part-RUN-K.parquet   raw events, per scenario and day

Events table of a scenario (one file holds whole sessions, rows grouped by session and in seq
order within each; a session's date is the UTC day it was opened):

    session  dictionary<int32, string>   the session id
    seq      int64
    t        float64                     seconds since the session started
    event    dictionary<int32, string>   the event name; its index is the scenario's event code
    signals  struct<NAME: float64, ...>  one field per scenario signal, in scenario order;
                                         NaN = not reported (files written before
                                         2026-12-06 have null there: read alike)

How export writes it (`events_writer_options`): zstd; dictionary pages for every column but
``seq``, which is delta-encoded (0, 1, 2, ... within each session: a few bits a row); the
signals without nulls (NaN stands for "not reported"), so a reader decodes no definition
levels for them and copies their values without a validity bitmap.

Sessions table: one row per archived session (`SESSION_FIELDS`): its info, times, the stored
report (JSON text), the store's chain head, and ``events_sha256``: sha256 over the session's
events packed as columns-v1 records (`core.codec.records_v1`), the digest that `archive verify`
and `rescore` check the events file against.

Only files the manifest names are part of the archive: an export writes its files under
temporary names, moves them in place, and only then commits the new manifest (one atomic
write), so a run cut short leaves at most unnamed files behind (`archive verify` lists them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from ..core.scenario import Scenario
from .location import ArchiveError, ArchiveRoot, ArchiveUnreachableError

FORMAT: Final = "assessengine-archive/1"
MANIFEST: Final = "manifest.json"
SESSIONS_DIR: Final = "sessions"
EVENTS_DIR: Final = "events"
STAGING_DIR: Final = "_staging"
COMPRESSION: Final = "zstd"

FIXED_COLUMNS: Final = ("session", "seq", "t", "event", "signals")
"""The events table's columns, in order."""

SESSION_FIELDS: Final = (
    ("session", pa.string()),
    ("learner", pa.string()),
    ("scenario", pa.string()),
    ("rubric", pa.string()),
    ("rubric_version", pa.int64()),
    ("rubric_sha256", pa.string()),
    ("source", pa.string()),
    ("metadata", pa.string()),            # JSON text
    ("opened_at", pa.timestamp("us", tz="UTC")),
    ("closed_at", pa.timestamp("us", tz="UTC")),
    ("close_t", pa.float64()),
    ("batches", pa.int64()),
    ("events", pa.int64()),
    ("chain_head", pa.string()),
    ("events_sha256", pa.string()),
    ("report", pa.string()),              # JSON text of the stored report; null if none
    ("file", pa.string()),                # the events file, relative to the root
    ("date", pa.string()),                # YYYY-MM-DD (UTC) of opened_at
)
SESSIONS_SCHEMA: Final = pa.schema([pa.field(n, t) for n, t in SESSION_FIELDS])


def events_schema(scenario: Scenario) -> pa.Schema:
    """The events table's schema for `scenario` (signal fields required: NaN = not reported)."""
    signals = pa.struct([pa.field(name, pa.float64(), nullable=False)
                         for name in scenario.signal_names])  # fmt: skip
    return pa.schema([
        pa.field("session", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("t", pa.float64(), nullable=False),
        pa.field("event", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("signals", signals, nullable=False),
    ])  # fmt: skip


def events_record_batch(
    scenario: Scenario,
    session_ids: Sequence[str],
    session: NDArray[np.integer],
    seq: NDArray[np.int64],
    t: NDArray[np.float64],
    event: NDArray[np.integer],
    signals: NDArray[np.float64],
) -> pa.RecordBatch:
    """Kernel columns as a record batch of the events table (`events_schema`): `session[i]`
    indexes `session_ids`, `event[i]` the scenario's event names, `signals` is
    (n_signals, n) with NaN where a value was not reported (kept as NaN, not null)."""
    schema = events_schema(scenario)
    struct_type = schema.field("signals").type
    if len(scenario.signal_names):
        struct = pa.StructArray.from_arrays(
            [pa.array(row, pa.float64()) for row in signals],
            fields=list(struct_type))  # fmt: skip
    else:
        struct = pa.array([{}] * len(t), struct_type)
    return pa.record_batch([
        pa.DictionaryArray.from_arrays(pa.array(np.asarray(session, np.int32)),
                                       pa.array(list(session_ids), pa.string())),
        pa.array(seq, pa.int64()), pa.array(t, pa.float64()),
        pa.DictionaryArray.from_arrays(pa.array(np.asarray(event, np.int32)),
                                       pa.array(list(scenario.event_names), pa.string())),
        struct,
    ], schema=schema)  # fmt: skip


def events_writer_options(scenario: Scenario) -> dict[str, Any]:
    """`pyarrow.parquet.ParquetWriter` options of export's events files (module docstring):
    zstd, dictionary pages for every column but ``seq``, ``seq`` delta-encoded. Measured on
    2.47 M simulated events (docs/performance.md): 3.7 against 4.5 bytes an event, and with
    the signals' nulls gone a quarter less decoding time."""
    dictionary = ["session", "t", "event", *(f"signals.{n}" for n in scenario.signal_names)]
    return {"compression": COMPRESSION, "use_dictionary": dictionary,
            "column_encoding": {"seq": "DELTA_BINARY_PACKED"}}  # fmt: skip


def events_path(scenario: str, date: str, run: str, part: int) -> str:
    return f"{EVENTS_DIR}/scenario={scenario}/date={date}/part-{run}-{part}.parquet"


def sessions_path(run: str) -> str:
    return f"{SESSIONS_DIR}/part-{run}.parquet"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One committed file: its kind (``events`` or ``sessions``), rows, size and the sha256 of
    its bytes (None in manifests written before it was recorded); an events file also names
    its scenario, day and how many sessions it holds."""

    path: str
    kind: str
    rows: int
    bytes: int
    scenario: str | None = None
    date: str | None = None
    sessions: int | None = None
    sha256: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {k: v for k, v in (("path", self.path), ("kind", self.kind), ("rows", self.rows),
                                  ("bytes", self.bytes), ("scenario", self.scenario),
                                  ("date", self.date), ("sessions", self.sessions),
                                  ("sha256", self.sha256))
                if v is not None}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Manifest:
    """The archive's table of contents: every committed file, and one line per export run."""

    files: tuple[FileEntry, ...] = ()
    exports: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def of_kind(self, kind: str) -> list[FileEntry]:
        return [f for f in self.files if f.kind == kind]

    def events_files(self, scenario: str) -> list[FileEntry]:
        return [f for f in self.files if f.kind == "events" and f.scenario == scenario]

    def extended(self, files: Sequence[FileEntry], export: Mapping[str, Any]) -> Manifest:
        return Manifest((*self.files, *files), (*self.exports, dict(export)))

    def to_json(self) -> bytes:
        data = {"format": FORMAT, "files": [f.to_data() for f in self.files],
                "exports": [dict(e) for e in self.exports]}  # fmt: skip
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def load(cls, root: ArchiveRoot) -> Manifest | None:
        """The committed manifest; None when the archive has none yet. ArchiveError when it is
        unreadable or of another format."""
        raw = root.read_bytes(MANIFEST)
        if raw is None:
            return None
        where = root.where(MANIFEST)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ArchiveError(f"{where}: not an assessengine archive manifest "
                                   f"(format {FORMAT})")  # fmt: skip
            files = tuple(FileEntry(**f) for f in data["files"])
            return cls(files, tuple(data["exports"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"{where}: unreadable manifest: {exc}") from None


def require_manifest(root: ArchiveRoot) -> Manifest:
    """The committed manifest; ArchiveError when there is none (nothing archived there)."""
    root.check_reachable()
    found = Manifest.load(root)
    if found is None:
        raise ArchiveUnreachableError(f"{root.where()}: no archive here ({MANIFEST} not found; "
                           "run assessengine archive export first)")  # fmt: skip
    return found
