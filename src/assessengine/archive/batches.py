"""Arrow record batches of the archive's events layout -> the kernel's column batches.

    convert = BatchConverter(scenario, where="part-0.parquet", session_ids=["S1", "S2"])
    convert.check_schema(parquet.schema_arrow)         # ArchiveError naming a missing column
    batch = convert(record, first_row=0)               # EventBatch, or None (no wanted rows)

The layout (`layout.events_schema`): ``session`` and ``event`` strings (dictionary-encoded or
plain), ``seq`` int64, ``t`` float64, ``signals`` a struct of float64 fields named after the
scenario's signals (other fields are ignored; a null value, or a null struct row, is "not
reported"; export writes NaN, older files null).

The conversion works per column, never per row in Python: ``seq`` and ``t`` are copied out of
the Arrow buffers once; ``session`` and ``event`` map their (small) dictionaries through a
lookup table; each signal is filled in one compiled pass over its values and validity bitmap
(NaN where null) straight into the batch's (n_signals, n) array. The arrays it returns are
C-contiguous and writable, of the dtypes the JSON Lines reader gives, so the kernel runs the
same compiled code for both.

Checks, each an ArchiveError naming `where` and the row (counted from `first_row`): a null
session, seq, t or event; an event name the scenario does not have; an infinite signal value;
with ``check_order``, the order rules of JSON Lines input (`core.events.order_problem`) across
the whole file: per session seq increasing from 0 on, t finite and not going backwards from 0
on. Without it, order is the scorer's check (`core.scorer.step`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit
from numpy.typing import NDArray

from ..core.events import EventBatch
from ..core.ids import id_problem, is_id
from ..core.scenario import Scenario
from .layout import FIXED_COLUMNS
from .location import ArchiveError


class BatchConverter:
    """Converts record batches of one file (see the module docstring). With `session_ids`,
    a batch's ``session`` column becomes indexes into that sequence and rows of other
    sessions are dropped; with None, sessions are numbered in order of first appearance
    (`sessions_seen` lists them)."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        where: str,
        session_ids: Sequence[str] | None = None,
        check_order: bool = False,
    ) -> None:
        self.scenario, self.where = scenario, where
        self._last_seq: NDArray[np.int64] | None = (np.full(64, -1, np.int64) if check_order
                                                    else None)  # fmt: skip
        self._last_t = np.zeros(64, np.float64)
        self._fixed = session_ids is not None
        self._sessions: dict[str, int] = {sid: k for k, sid in enumerate(session_ids or ())}
        self._events = {name: code for code, name in enumerate(scenario.event_names)}
        self._signal_fields: list[int] = []
        self._session_lookup = _Lookup(self._number_sessions)
        self._event_lookup = _Lookup(lambda names: [self._events.get(n, -1) for n in names])

    @property
    def sessions_seen(self) -> list[str]:
        """The session ids numbered so far (with `session_ids`: those ids)."""
        return list(self._sessions)

    def check_schema(self, schema: pa.Schema) -> None:
        """ArchiveError unless `schema` has every column the scenario needs, of the right type."""
        where = self.where
        for name in FIXED_COLUMNS:
            if schema.get_field_index(name) < 0:
                raise ArchiveError(f"{where}: column {name!r} is missing")
        _expect(schema.field("seq").type, pa.int64(), "seq", where)
        _expect(schema.field("t").type, pa.float64(), "t", where)
        signals = schema.field("signals").type
        if not pa.types.is_struct(signals):
            raise ArchiveError(f"{where}: column 'signals' is {signals}, expected a struct of "
                               "float64 signal columns")  # fmt: skip
        fields = []
        for name in self.scenario.signal_names:
            index = signals.get_field_index(name)
            if index < 0:
                raise ArchiveError(f"{where}: column 'signals.{name}' is missing (scenario "
                                   f"{self.scenario.scenario!r} has that signal)")  # fmt: skip
            _expect(signals.field(index).type, pa.float64(), f"signals.{name}", where)
            fields.append(index)
        self._signal_fields = fields
        for name in ("session", "event"):
            kind = schema.field(name).type
            value = kind.value_type if pa.types.is_dictionary(kind) else kind
            if not (pa.types.is_string(value) or pa.types.is_large_string(value)):
                raise ArchiveError(f"{where}: column {name!r} is {kind}, expected strings")

    def __call__(self, record: pa.RecordBatch, *, first_row: int = 0) -> EventBatch | None:
        """The kernel batch of `record`'s wanted rows; None when it has none. `check_schema`
        must have passed for its schema. `first_row`: the file row of `record`'s first row."""
        n = record.num_rows
        if n == 0:
            return None
        self._no_nulls(record, ("session", "seq", "t", "event"), first_row)
        session = self._session_codes(record.column("session"), first_row)
        event = self._event_codes(record.column("event"), first_row)
        seq: NDArray[np.int64] = _values(record.column("seq"), np.int64)
        t: NDArray[np.float64] = _values(record.column("t"), np.float64)
        signals = self._signals(record.column("signals"), n, first_row)
        batch = EventBatch(session, seq, t, event, signals)
        if self._last_seq is not None:
            self._check_order(batch, first_row)
        if self._fixed:
            keep = session >= 0
            if not keep.all():
                rows = np.flatnonzero(keep)
                return batch.take(rows) if len(rows) else None
        return batch

    def sessions_and_times(
        self, record: pa.RecordBatch, *, first_row: int = 0
    ) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
        """Only the ``session`` codes (as `__call__` gives them, every row kept) and ``t`` of
        a record batch holding at least those two columns."""
        self._no_nulls(record, ("session", "t"), first_row)
        sessions = self._session_codes(record.column("session"), first_row)
        return sessions, _values(record.column("t"), np.float64)

    def _check_order(self, batch: EventBatch, first_row: int) -> None:
        assert self._last_seq is not None
        seen = len(self._sessions)
        if seen > self._last_seq.shape[0]:
            grown = max(seen, 2 * self._last_seq.shape[0])
            self._last_seq = np.concatenate([self._last_seq, np.full(grown - len(self._last_seq),
                                                                     -1, np.int64)])
            self._last_t = np.concatenate([self._last_t, np.zeros(grown - len(self._last_t))])
        last_seq, last_t = self._last_seq.copy(), self._last_t.copy()
        bad = check_order(batch.session, batch.seq, batch.t, last_seq, last_t)
        if bad < 0:
            self._last_seq, self._last_t = last_seq, last_t
            return
        k = int(batch.session[bad])
        seq, t = int(batch.seq[bad]), float(batch.t[bad])
        if not np.isfinite(t):
            why = f"t {t} is not a finite number"
        elif seq <= last_seq[k]:
            why = f"seq {seq} does not increase (previous seq {int(last_seq[k])})"
        else:
            why = f"t {t} goes backwards (previous t {float(last_t[k])})"
        sid = list(self._sessions)[k] if k >= 0 else "?"
        raise ArchiveError(f"{self.where}: row {first_row + bad}: session {sid!r}: {why}")

    def _no_nulls(
        self, record: pa.RecordBatch, names: Sequence[str], first_row: int
    ) -> None:
        for name in names:
            column = record.column(name)
            # a dictionary column's rows are also null where a valid index points at a null
            # dictionary value (Arrow's logical nulls: `null_count` counts only the indices')
            if column.null_count or (pa.types.is_dictionary(column.type)
                                     and column.dictionary.null_count):  # fmt: skip
                invalid = np.flatnonzero(~_valid(column))
                if len(invalid):
                    raise ArchiveError(f"{self.where}: row {first_row + int(invalid[0])}: "
                                       f"column {name!r} is null")  # fmt: skip

    def _number_sessions(self, names: list[str]) -> list[int]:
        """Each session id's index (with `session_ids`: -1 for an id not among them; else
        numbering the ids not seen before, and `_NOT_AN_ID` for one that breaks the id rule)."""
        if self._fixed:
            return [self._sessions.get(name, -1) for name in names]
        return [self._sessions.setdefault(name, len(self._sessions))
                if name in self._sessions or is_id(name) else _NOT_AN_ID
                for name in names]  # fmt: skip

    def _session_codes(self, column: pa.Array, first_row: int) -> NDArray[np.int32]:
        """The rows' session codes; a session id that breaks the id rule (`core.ids`, as every
        other reader applies it) is refused naming its first row."""
        codes, _ = self._lookup(self._session_lookup, column, "session", first_row)
        if not self._fixed and len(codes) and codes.min() == _NOT_AN_ID:
            row = int(np.flatnonzero(codes == _NOT_AN_ID)[0])
            problem = id_problem(column[row].as_py(), "session")
            raise ArchiveError(f"{self.where}: row {first_row + row}: {problem}")
        return codes

    def _lookup(
        self, lookup: _Lookup, column: pa.Array, name: str, first_row: int
    ) -> tuple[NDArray[np.int32], bool]:
        try:
            return lookup.codes(column)
        except _IndexOutsideError as exc:
            raise ArchiveError(f"{self.where}: row {first_row + exc.row}: column {name!r} has "
                               "a dictionary index outside its dictionary (a corrupt "
                               "file)") from None  # fmt: skip

    def _event_codes(self, column: pa.Array, first_row: int) -> NDArray[np.int32]:
        codes, missing = self._lookup(self._event_lookup, column, "event", first_row)
        if missing and len(codes) and codes.min() < 0:
            row = int(np.flatnonzero(codes < 0)[0])
            name = column[row].as_py()
            raise ArchiveError(f"{self.where}: row {first_row + row}: event {name!r} is not an "
                               f"event of scenario {self.scenario.scenario!r}")  # fmt: skip
        return codes

    def _signals(self, struct: pa.Array, n: int, first_row: int) -> NDArray[np.float64]:
        out = np.empty((len(self._signal_fields), n), np.float64)
        if isinstance(struct, pa.ChunkedArray):  # pragma: no cover - record batches have arrays
            struct = struct.combine_chunks()
        assert isinstance(struct, pa.StructArray)
        for row, index in enumerate(self._signal_fields):
            child = struct.field(index)  # offset applied; the struct's own nulls below
            values = np.frombuffer(child.buffers()[1], np.float64,
                                   count=child.offset + n)[child.offset:]  # fmt: skip
            bitmap = child.buffers()[0]
            if bitmap is None or child.null_count == 0:
                bad = copy_finite(values, out[row])
            else:
                bits = np.frombuffer(bitmap, np.uint8)
                bad = copy_valid(values, bits, child.offset, out[row])
            if bad >= 0:
                name = self.scenario.signal_names[row]
                raise ArchiveError(f"{self.where}: row {first_row + bad}: signal {name!r} is "
                                   f"{values[bad]}, expected a finite number")  # fmt: skip
        if struct.null_count:  # a null struct row: none of its signals reported
            out[:, ~_valid(struct)] = np.nan
        return out


def _expect(found: pa.DataType, expected: pa.DataType, name: str, where: str) -> None:
    if found != expected:
        raise ArchiveError(f"{where}: column {name!r} is {found}, expected {expected}")


def _valid(column: pa.Array) -> NDArray[np.bool_]:
    """Each row's validity (a dictionary column's: its index and the value it points at, not
    left to `is_valid`, which tells the latter only in recent pyarrow versions)."""
    out: NDArray[np.bool_] = column.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_dictionary(column.type) and column.dictionary.null_count:
        values = column.dictionary.is_valid().to_numpy(zero_copy_only=False)
        indices = column.indices.fill_null(0).to_numpy(zero_copy_only=False)
        out = out & values[indices]
    return out


def _values(column: pa.Array, dtype: type[np.generic]) -> Any:
    """A writable copy of a null-free primitive column's values (an array of `dtype`)."""
    view = np.frombuffer(column.buffers()[1], dtype,
                         count=column.offset + len(column))[column.offset:]  # fmt: skip
    return view.copy()


class _IndexOutsideError(Exception):
    """A dictionary column's row `row` holds an index outside its dictionary."""

    def __init__(self, row: int) -> None:
        super().__init__(row)
        self.row = row


_NOT_AN_ID = -2
"""The code `BatchConverter._number_sessions` gives a session id that breaks the id rule."""


class _Lookup:
    """A string column's rows as int32 codes, through its dictionary: `lookup(names)` gives
    each distinct string's code. The table is made once per distinct dictionary, not once per
    batch: a file's record batches mostly share theirs (a Parquet row group's pieces have the
    same one; export writes every session of a file in each), and the session dictionary
    holds every session of the file, 720 strings and a Python lookup each in the benchmark's,
    against 65,536 rows a batch. `lookup` must give the same codes for an equal dictionary
    (numbering sessions does: the second time every name is known)."""

    def __init__(self, lookup: Callable[[list[str]], list[int]]) -> None:
        self._lookup = lookup
        self._dictionary: pa.Array | None = None
        self._table: NDArray[np.int32] | None = None  # None: the codes are the indices
        self._missing = False

    def codes(self, column: pa.Array) -> tuple[NDArray[np.int32], bool]:
        """The rows' codes (a new int32 array) and whether the dictionary has a string whose
        code is -1 (the rows may then hold -1)."""
        if not pa.types.is_dictionary(column.type):
            column = pc.dictionary_encode(column)
        dictionary = column.dictionary
        if self._dictionary is None or not dictionary.equals(self._dictionary):
            lookup = self._lookup(dictionary.to_pylist())
            # 0, 1, 2, ... (export writes the scenario's event names, and each file's sessions
            # in the order its rows hold them): a plain copy, a third of the time of the gather
            identity = lookup == list(range(len(lookup)))
            self._table = None if identity else np.array(lookup or [-1], np.int32)
            self._missing = min(lookup, default=0) < 0
            self._dictionary = dictionary
        indices = column.indices.to_numpy(zero_copy_only=False)
        # Arrow IPC files are read without a full validation: an index outside the dictionary
        # would name another session or event (or read past the lookup table)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(dictionary)):
            raise _IndexOutsideError(int(np.flatnonzero((indices < 0)
                                                   | (indices >= len(dictionary)))[0]))  # fmt: skip
        if self._table is None:
            return np.array(indices, np.int32), self._missing
        out: NDArray[np.int32] = np.take(self._table, indices)  # 0.6x the time of table[indices]
        return out, self._missing


@njit(cache=True, nogil=True)
def check_order(
    session: NDArray[np.int32],
    seq: NDArray[np.int64],
    t: NDArray[np.float64],
    last_seq: NDArray[np.int64],
    last_t: NDArray[np.float64],
) -> int:  # pragma: no cover (compiled)
    """Advance each session's (last seq, last t) over the rows (sessions < 0 skipped); the
    first row whose t is not finite, whose seq does not increase or whose t goes backwards
    (-1: none; the arrays then hold the state after every row)."""
    for i in range(seq.shape[0]):
        k = session[i]
        if k < 0:
            continue
        x = t[i]
        if not np.isfinite(x) or seq[i] <= last_seq[k] or x < last_t[k]:
            return i
        last_seq[k] = seq[i]
        last_t[k] = x
    return -1


@njit(cache=True, nogil=True)
def copy_valid(
    values: NDArray[np.float64], bitmap: NDArray[np.uint8], offset: int, out: NDArray[np.float64]
) -> int:  # pragma: no cover (compiled)
    """out[i] = values[i] where bit offset + i of the Arrow validity `bitmap` is set, else NaN.
    Returns the first row holding an infinite valid value (-1: none)."""
    bad = -1
    for i in range(out.shape[0]):
        k = offset + i
        if (bitmap[k >> 3] >> (k & 7)) & 1:
            x = values[i]
            if bad < 0 and np.isinf(x):
                bad = i
            out[i] = x
        else:
            out[i] = np.nan
    return bad


@njit(cache=True, nogil=True)
def copy_finite(values: NDArray[np.float64], out: NDArray[np.float64]) -> int:  # pragma: no cover
    """out[:] = values; returns the first row holding an infinite value (-1: none). The copy
    counts infinities without a branch (a loop the compiler vectorises: 0.3-1.0 against
    1.0-1.9 ns a value with the first row tested in the loop); only a file holding one is
    searched again for its row."""
    infinite = 0
    for i in range(out.shape[0]):
        x = values[i]
        out[i] = x
        infinite += np.isinf(x)
    if infinite == 0:
        return -1
    for i in range(out.shape[0]):
        if np.isinf(values[i]):
            return i
    return -1  # pragma: no cover - counted one above


def warm_up() -> None:
    """Call each compiled function once on a one-row array (numba loads it from its cache, or
    compiles it), so that the first real batch does not pay for it."""
    out = np.empty(1, np.float64)
    copy_finite(np.zeros(1, np.float64), out)
    copy_valid(np.zeros(1, np.float64), np.ones(1, np.uint8), 0, out)
    check_order(np.zeros(1, np.int32), np.zeros(1, np.int64), np.zeros(1, np.float64),
                np.full(1, -1, np.int64), np.zeros(1, np.float64))  # fmt: skip
