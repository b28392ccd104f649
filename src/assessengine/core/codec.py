"""The two EVENTS encodings of the ingest protocol (`docs/protocol.md`): ``json-v1`` and
``columns-v1``, to and from `Columns` (one session's events as numpy columns).

Pure: numpy, json and one compiled check (`codec_kernel`). Every decoder validates completely
and raises `CodecError` whose `code` is the protocol's NACK code, so the engine can answer a bad
batch precisely.

Typical use (the engine, and `assessengine audit` on stored batches)::

    layout = Layout.of(scenario)                    # once per scenario
    cols = decode_events(header, payload, layout)   # header: the EVENTS header (dict or JSON bytes)
    batch = cols.to_batch(slot)                     # -> core.events.EventBatch

``columns-v1`` payload: ``count`` packed little-endian records, no padding, of
``seq <i8 | t <f8 | event <i4 | one <f8 per signal in scenario order`` (NaN = not reported);
record size = 20 + 8 * n_signals bytes. Decoding it copies nothing: the arrays of the result are
read-only views of the payload buffer.

``json-v1`` payload: a UTF-8 JSON array of event objects, like events-file lines minus
``session``: ``{"seq": 0, "t": 0.0, "event": "sample", "signals": {"speed": 3.2}}``
(``signals`` optional; a signal value ``null`` or NaN = not reported).

Both: seqs run ``first_seq, first_seq + 1, ...``; ``t`` is finite, >= 0, never decreases and
is >= `min_t` (the last stored ``t`` of the session); signal values are finite or NaN.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias

import numpy as np
import orjson
from numpy.typing import NDArray

from ..errors import AssessEngineError
from .codec_kernel import columns_ok
from .events import INT64_MAX, Event, EventBatch

Bytes: TypeAlias = bytes | bytearray | memoryview
"""A frame's bytes: `bytes`, or a `memoryview` of a received zmq frame (no copy)."""

JSON_V1: Final = "json-v1"
COLUMNS_V1: Final = "columns-v1"
ENCODINGS: Final = (JSON_V1, COLUMNS_V1)
Encoding = Literal["json-v1", "columns-v1"]

FIXED_FIELDS: Final = (("seq", "<i8"), ("t", "<f8"), ("event", "<i4"))
"""The first three columns-v1 fields, always in this order; then one ``<f8`` per signal."""
FIXED_BYTES: Final = 20
SIGNAL_FORMAT: Final = "<f8"

CODEC_CODES: Final = (
    "bad_header",      # the EVENTS header lacks or mistypes first_seq / count / encoding / dtype
    "bad_encoding",    # encoding is neither json-v1 nor columns-v1
    "bad_payload",     # json-v1 payload is not a UTF-8 JSON array of event objects
    "dtype_mismatch",  # columns-v1 dtype differs from the scenario's layout
    "truncated",       # columns-v1 payload length is not a whole number of records
    "count_mismatch",  # number of events differs from the header's count
    "seq_order",       # seqs are not first_seq, first_seq + 1, ...
    "bad_time",        # t NaN, infinite, negative, decreasing, or before min_t
    "unknown_event",   # event name (json) or code (columns) not in the scenario
    "unknown_signal",  # json-v1 signal name not in the scenario
    "bad_value",       # a signal value is infinite or not a number
)


class CodecError(AssessEngineError):
    """A batch could not be decoded. `code` is one of `CODEC_CODES` (= the NACK code),
    `message` says what and where, in words a client developer can act on."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class ScenarioNames(Protocol):
    """What the codec needs of a scenario (`core.scenario.Scenario` satisfies it)."""

    @property
    def signal_names(self) -> tuple[str, ...]: ...

    @property
    def event_names(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Layout:
    """A scenario's column layout, computed once: names, codes and the columns-v1 record.

    `dtype_fields` is the exact ``dtype`` list a columns-v1 header must carry.
    """

    signal_names: tuple[str, ...]
    event_names: tuple[str, ...]
    signal_index: Mapping[str, int] = field(repr=False)
    event_code: Mapping[str, int] = field(repr=False)
    dtype_fields: tuple[tuple[str, str], ...] = field(repr=False)
    record: np.dtype[np.void] = field(repr=False)  # seq/t/event fields, itemsize incl. signals

    @classmethod
    def of(cls, scenario: ScenarioNames) -> Layout:
        return cls.from_names(scenario.signal_names, scenario.event_names)

    @classmethod
    def from_names(cls, signal_names: Sequence[str], event_names: Sequence[str]) -> Layout:
        """`event_names[0]` must be ``sample`` (code 0)."""
        signals, events = tuple(signal_names), tuple(event_names)
        record = np.dtype(
            {
                "names": [name for name, _ in FIXED_FIELDS],
                "formats": [fmt for _, fmt in FIXED_FIELDS],
                "offsets": [0, 8, 16],
                "itemsize": FIXED_BYTES + 8 * len(signals),
            }
        )
        return cls(
            signal_names=signals,
            event_names=events,
            signal_index={name: i for i, name in enumerate(signals)},
            event_code={name: i for i, name in enumerate(events)},
            dtype_fields=(*FIXED_FIELDS, *((name, SIGNAL_FORMAT) for name in signals)),
            record=record,
        )

    @property
    def itemsize(self) -> int:
        """Bytes per columns-v1 record: 20 + 8 * n_signals."""
        return int(self.record.itemsize)

    def dtype_header(self) -> list[list[str]]:
        """The ``dtype`` value of a columns-v1 EVENTS header, JSON-ready."""
        return [[name, fmt] for name, fmt in self.dtype_fields]


@dataclass(frozen=True, slots=True)
class Columns:
    """Events of ONE session as columns (`EventBatch` minus the session slot).

    seq:     NDArray[np.int64]    (n,) consecutive
    t:       NDArray[np.float64]  (n,) seconds since the session started, non-decreasing
    event:   NDArray[np.int32]    (n,) index into `Layout.event_names` (0 = sample)
    signals: NDArray[np.float64]  (n_signals, n) NaN = not reported; rows in scenario order

    Decoded columns-v1 arrays are read-only views of the payload: keep the payload alive.
    """

    seq: NDArray[np.int64]
    t: NDArray[np.float64]
    event: NDArray[np.int32]
    signals: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def tail(self, start: int) -> Columns:
        """Rows `start` .. end (views, no copy)."""
        return Columns(
            self.seq[start:], self.t[start:], self.event[start:], self.signals[:, start:]
        )

    def to_batch(self, slot: int) -> EventBatch:
        """The `EventBatch` of these rows, all in session `slot` (columns shared, not copied)."""
        return EventBatch(
            np.full(len(self), slot, dtype=np.int32), self.seq, self.t, self.event, self.signals
        )

    @classmethod
    def from_events(cls, events: Iterable[Event], layout: Layout) -> Columns:
        """Columns of `Event`s. Raises CodecError on an unknown event or signal name."""
        items = list(events)
        n = len(items)
        signals = np.full((len(layout.signal_names), n), np.nan, dtype=np.float64)
        codes = np.empty(n, dtype=np.int32)
        for j, ev in enumerate(items):
            codes[j] = _event_code(layout, ev.event, j)
            for name, value in ev.signals.items():
                signals[_signal_row(layout, name, j), j] = value
        return cls(
            seq=np.fromiter((e.seq for e in items), dtype=np.int64, count=n),
            t=np.fromiter((e.t for e in items), dtype=np.float64, count=n),
            event=codes,
            signals=signals,
        )

    def to_events(self, layout: Layout) -> list[Event]:
        """The rows as `Event`s (NaN signals left out)."""
        names = layout.signal_names
        out: list[Event] = []
        values = self.signals.T.tolist()
        for seq, t, code, row in zip(
            self.seq.tolist(), self.t.tolist(), self.event.tolist(), values, strict=True
        ):
            sig = {names[i]: v for i, v in enumerate(row) if not math.isnan(v)}
            out.append(Event(seq=seq, t=t, event=layout.event_names[code], signals=sig))
        return out


# ------------------------------------------------------------------------------ decoding


def decode_events(
    header: Mapping[str, Any] | bytes | str, payload: Bytes, layout: Layout, *, min_t: float = 0.0
) -> Columns:
    """Decode one batch from its EVENTS header (a dict, or the header frame's JSON bytes, such
    as `StoredBatch.header`) and payload, dispatching on ``encoding``. Raises CodecError."""
    fields = _header_fields(header)
    encoding = fields.get("encoding")
    first_seq = _header_int(fields, "first_seq")
    count = _header_int(fields, "count")
    if encoding == COLUMNS_V1:
        return decode_columns_v1(
            payload, layout, dtype=fields.get("dtype"), first_seq=first_seq, count=count,
            min_t=min_t,
        )
    if encoding == JSON_V1:
        return decode_json_v1(payload, layout, first_seq=first_seq, count=count, min_t=min_t)
    raise CodecError(
        "bad_encoding", f"encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}"
    )


def decode_columns_v1(
    payload: Bytes,
    layout: Layout,
    *,
    dtype: Any,
    first_seq: int,
    count: int,
    min_t: float = 0.0,
) -> Columns:
    """Decode and validate a columns-v1 payload without copying it.

    `dtype`: the header's ``dtype`` list, which must equal `Layout.dtype_header()`.
    Returns read-only views into `payload` (pass bytes or a memoryview of a received frame).
    Raises CodecError: bad_header (seqs beyond int64), dtype_mismatch, truncated,
    count_mismatch, seq_order, bad_time, unknown_event, bad_value.
    """
    check_dtype(dtype, layout)
    view = memoryview(payload).cast("B")
    size, itemsize = view.nbytes, layout.itemsize
    if size % itemsize:
        raise CodecError(
            "truncated",
            f"payload is {size} bytes, not a whole number of {itemsize}-byte records "
            f"({size // itemsize} records and {size % itemsize} bytes left over)",
        )
    n = size // itemsize
    _check_seq_range(first_seq, count)
    if n != count:
        raise CodecError("count_mismatch", f"header says count={count}, payload holds {n} records")
    cols = records_view(view, layout, n)
    if not columns_ok(cols.seq, cols.t, cols.event, cols.signals, first_seq, min_t,
                      len(layout.event_names)):  # fmt: skip
        _check_columns(cols, layout, first_seq=first_seq, min_t=min_t)  # raises, naming it
    return cols


def warm_up_decoder(layout: Layout) -> tuple[Columns, Columns]:
    """Decode a columns-v1 payload of one record and one of two, so that the first batches a
    live engine receives do not wait for numba to load (or, on a fresh install, compile) the
    compiled check (a quarter of a second in a process that has not loaded numba yet; minutes
    for a compile on a busy machine). Returns the two decoded batches: read-only views of the
    payload, contiguous for one record and strided for several, which numba compiles apart
    (so whatever consumes batches is warmed up on both)."""
    out = []
    for n in (1, 2):
        rows = Columns(np.arange(n, dtype=np.int64), np.zeros(n), np.zeros(n, np.int32),
                       np.full((len(layout.signal_names), n), np.nan))  # fmt: skip
        out.append(decode_columns_v1(records_v1(rows, layout).data, layout,
                                     dtype=layout.dtype_header(), first_seq=0, count=n))
    return out[0], out[1]


def records_view(buffer: Any, layout: Layout, n: int, *, offset: int = 0) -> Columns:
    """Read-only column views of `n` columns-v1 records at `offset` of `buffer` (no copy, no
    checks: for records decoded once already)."""
    records = np.frombuffer(buffer, dtype=layout.record, count=n, offset=offset)
    records.flags.writeable = False
    signals = _signal_view(buffer, len(layout.signal_names), n, layout.itemsize, offset)
    signals.flags.writeable = False
    return Columns(seq=records["seq"], t=records["t"], event=records["event"], signals=signals)


@dataclass(frozen=True, slots=True)
class RunColumns(Columns):
    """Rows `start` .. `start + len` of `run` (views): one batch of several whose records lie
    back to back in one buffer (`records_runs`), so that consecutive batches are spanned by a
    view of `run` (`adjacent_records`) instead of being copied together."""

    run: Columns
    start: int


def records_runs(buffer: Any, layout: Layout, parts: Sequence[tuple[int, int]]) -> list[Columns]:
    """Read-only column views of columns-v1 records in `buffer`, one per part (byte offset,
    records; no copy, no checks: for records decoded once already). Parts whose records follow
    the previous part's are rows of one run of records (`RunColumns`)."""
    out: list[Columns] = []
    size = layout.itemsize
    i = 0
    while i < len(parts):
        offset, n = parts[i]
        j, end = i + 1, offset + n * size
        while j < len(parts) and parts[j][0] == end:
            end += parts[j][1] * size
            j += 1
        run = records_view(buffer, layout, (end - offset) // size, offset=offset)
        rows = 0
        for _, n in parts[i:j]:
            out.append(RunColumns(run.seq[rows : rows + n], run.t[rows : rows + n],
                                  run.event[rows : rows + n], run.signals[:, rows : rows + n],
                                  run, rows))  # fmt: skip
            rows += n
        i = j
    return out


def adjacent_records(parts: Sequence[Columns]) -> Columns | None:
    """Views spanning all of `parts` without a copy, when they are consecutive rows of one
    run of records, in order (`records_runs`: batches back to back in a scoring process's
    buffer); else None (also for no parts, or an empty one). One part is returned as it is."""
    if not parts or not all(len(p) for p in parts):
        return None
    first = parts[0]
    if len(parts) == 1:
        return first
    if not isinstance(first, RunColumns):
        return None
    run, start = first.run, first.start
    rows = start
    for part in parts:
        if not isinstance(part, RunColumns) or part.run is not run or part.start != rows:
            return None
        rows += len(part)
    return Columns(run.seq[start:rows], run.t[start:rows], run.event[start:rows],
                   run.signals[:, start:rows])  # fmt: skip


def _signal_view(
    buffer: Bytes, k: int, n: int, itemsize: int, offset: int = 0
) -> NDArray[np.float64]:
    """The (k, n) float64 view of the signal fields of n packed records (no copy)."""
    if k == 0 or n == 0:
        return np.empty((k, n), dtype=np.float64)
    return np.ndarray(
        shape=(k, n), dtype=np.dtype(SIGNAL_FORMAT), buffer=buffer, offset=offset + FIXED_BYTES,
        strides=(8, itemsize),
    )


def check_dtype(dtype: Any, layout: Layout) -> None:
    """Raise CodecError ``dtype_mismatch`` unless `dtype` is exactly the layout's field list."""
    expected = layout.dtype_header()
    if dtype == expected:  # the usual case, decided fast
        return
    if not isinstance(dtype, list | tuple) or not all(
        isinstance(f, list | tuple) and len(f) == 2 and all(isinstance(x, str) for x in f)
        for f in dtype
    ):
        raise CodecError(
            "dtype_mismatch", f"dtype must be a list of [name, format] pairs: {_short(expected)}"
        )
    got = [[str(name), str(fmt)] for name, fmt in dtype]
    if got == expected:
        return
    for i, (g, e) in enumerate(zip(got, expected, strict=False)):
        if g != e:
            raise CodecError(
                "dtype_mismatch", f"dtype field {i} is {g}, the scenario expects {e}; "
                f"expected fields: {_short(expected)}",
            )
    raise CodecError(
        "dtype_mismatch",
        f"dtype has {len(got)} fields, the scenario expects {len(expected)}: {_short(expected)}",
    )


def decode_json_v1(
    payload: Bytes | str,
    layout: Layout,
    *,
    first_seq: int,
    count: int,
    min_t: float = 0.0,
) -> Columns:
    """Decode and validate a json-v1 payload (a UTF-8 JSON array of event objects).

    Raises CodecError: bad_header (seqs beyond int64), bad_payload, count_mismatch, seq_order,
    bad_time, unknown_event, unknown_signal, bad_value.

    orjson parses (several times faster than `json`, where the json-v1 path spent half its
    time); a payload it refuses, or whose events are refused, is parsed again with `json.loads`
    and the error comes from that: orjson reads an integer beyond 64 bits as a float and
    refuses what `json` accepts (NaN, 1e400, lone surrogates), so only an exact parse names the
    problem as the client wrote it. Valid payloads decode the same either way
    (tests/test_codec.py holds the two to it).
    """
    _check_seq_range(first_seq, count)
    try:
        items = orjson.loads(payload)
        if isinstance(items, list):
            return _json_columns(items, layout, first_seq, count, min_t)
    except (ValueError, CodecError):  # orjson.JSONDecodeError is a ValueError
        pass
    return _json_columns(_json_array(payload), layout, first_seq, count, min_t)


def _json_columns(
    items: list[Any], layout: Layout, first_seq: int, count: int, min_t: float
) -> Columns:
    n = len(items)
    if n != count:
        raise CodecError("count_mismatch", f"header says count={count}, payload holds {n} events")
    fast = _json_fast(items, layout, first_seq)
    if fast is not None:
        _check_columns(fast, layout, first_seq=first_seq, min_t=min_t)
        return fast
    seq = np.empty(n, dtype=np.int64)
    t = np.empty(n, dtype=np.float64)
    codes = np.empty(n, dtype=np.int32)
    signals = np.full((len(layout.signal_names), n), np.nan, dtype=np.float64)
    for j, item in enumerate(items):
        seq[j], t[j], codes[j] = _json_event(item, j, first_seq, layout, signals)
    cols = Columns(seq=seq, t=t, event=codes, signals=signals)
    _check_columns(cols, layout, first_seq=first_seq, min_t=min_t)
    return cols


_EVENT_KEYS = frozenset({"seq", "t", "event", "signals"})


def _json_fast(items: list[Any], layout: Layout, first_seq: int) -> Columns | None:
    """Columns of well-formed event objects, quickly; None at the first irregularity (then the
    careful path, `_json_event`, finds and names the problem)."""
    n = len(items)
    codes, signal_rows, times = layout.event_code, layout.signal_index, [0.0] * n
    events = [0] * n
    values = [[math.nan] * n for _ in layout.signal_names]
    try:
        for j, item in enumerate(items):
            if type(item) is not dict or not item.keys() <= _EVENT_KEYS:
                return None
            seq, t = item.get("seq"), item.get("t")
            if type(seq) is not int or seq != first_seq + j:
                return None
            if type(t) is not float and type(t) is not int:
                return None
            times[j] = t
            code = codes.get(item.get("event"))  # type: ignore[arg-type]
            if code is None:
                return None
            events[j] = code
            signals = item.get("signals")
            if signals is None:
                continue
            if type(signals) is not dict:
                return None
            for name, value in signals.items():
                row = signal_rows.get(name)
                if row is None or (value is not None and type(value) is not float
                                   and type(value) is not int):
                    return None
                if value is not None:
                    values[row][j] = value
        return Columns(
            seq=np.arange(first_seq, first_seq + n, dtype=np.int64),
            t=np.array(times, dtype=np.float64),
            event=np.array(events, dtype=np.int32),
            signals=np.array(values, dtype=np.float64).reshape(len(values), n),
        )
    except (TypeError, OverflowError):  # unhashable event name, integer beyond float64
        return None


def _json_event(
    item: Any, j: int, first_seq: int, layout: Layout, signals: NDArray[np.float64]
) -> tuple[int, float, int]:
    if not isinstance(item, dict):
        raise CodecError("bad_payload", f"event {j}: expected a JSON object, got {_kind(item)}")
    if not item.keys() <= _EVENT_KEYS:
        extra = sorted(set(item) - _EVENT_KEYS)[0]
        raise CodecError("bad_payload", f"event {j}: unexpected field {extra!r} (allowed: event, "
                         "seq, signals, t)")
    seq, t, name = item.get("seq"), item.get("t"), item.get("event")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise CodecError("bad_payload", f"event {j}: 'seq' must be an integer, got {seq!r}")
    if seq != first_seq + j:
        raise CodecError("seq_order", f"event {j} has seq {seq}, expected {first_seq + j}")
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise CodecError("bad_time", f"event {j} (seq {seq}): 't' must be a number, got {t!r}")
    if not isinstance(name, str):
        raise CodecError("bad_payload", f"event {j} (seq {seq}): 'event' must be a string, "
                         f"got {name!r}")
    code = _event_code(layout, name, j)
    raw = item.get("signals")
    if raw is not None:
        if not isinstance(raw, dict):
            raise CodecError("bad_payload", f"event {j} (seq {seq}): 'signals' must be an "
                             f"object of name -> number, got {_kind(raw)}")
        for key, value in raw.items():
            row = _signal_row(layout, key, j)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CodecError("bad_value", f"event {j} (seq {seq}): signal {key!r} must be a "
                                 f"number or null, got {value!r}")
            try:
                signals[row, j] = value
            except OverflowError:
                raise CodecError("bad_value", f"event {j} (seq {seq}): signal {key!r} is out "
                                 "of range for a 64-bit float") from None
    try:
        return seq, float(t), code
    except OverflowError:
        raise CodecError("bad_time", f"event {j} (seq {seq}): t is out of range") from None


def _check_columns(cols: Columns, layout: Layout, *, first_seq: int, min_t: float) -> None:
    n = len(cols)
    if n == 0:
        return
    seq = cols.seq
    if seq[0] != first_seq or (n > 1 and not bool((np.diff(seq) == 1).all())):
        j = 0 if seq[0] != first_seq else int(np.argmax(np.diff(seq) != 1)) + 1
        raise CodecError(
            "seq_order", f"row {j} has seq {int(seq[j])}, expected {first_seq + j} "
            "(seqs must run first_seq, first_seq + 1, ...)",
        )
    _check_times(cols.t, cols.seq, min_t)
    codes = cols.event
    bad = (codes < 0) | (codes >= len(layout.event_names))
    if bad.any():
        j = int(np.argmax(bad))
        raise CodecError(
            "unknown_event", f"row {j} (seq {int(seq[j])}) has event code {int(codes[j])}; "
            f"this scenario has codes 0..{len(layout.event_names) - 1} (0 = sample)",
        )
    if cols.signals.size and bool(np.isinf(cols.signals).any()):
        k, j = (int(x) for x in np.argwhere(np.isinf(cols.signals))[0])
        raise CodecError(
            "bad_value", f"row {j} (seq {int(seq[j])}): signal {layout.signal_names[k]!r} is "
            f"{float(cols.signals[k, j])} (values must be finite; NaN = not reported)",
        )


def _check_times(t: NDArray[np.float64], seq: NDArray[np.int64], min_t: float) -> None:
    finite = np.isfinite(t)
    if not finite.all():
        j = int(np.argmin(finite))
        raise CodecError("bad_time", f"row {j} (seq {int(seq[j])}) has t={float(t[j])}; "
                         "t must be finite")
    if t[0] < min_t:
        what = "negative" if t[0] < 0 else f"before the session's last stored t={min_t}"
        raise CodecError("bad_time", f"row 0 (seq {int(seq[0])}) has t={float(t[0])}: {what}")
    back = np.diff(t) < 0
    if back.any():
        j = int(np.argmax(back)) + 1
        raise CodecError("bad_time", f"row {j} (seq {int(seq[j])}) has t={float(t[j])}, before "
                         f"the previous row's t={float(t[j - 1])} (t must not decrease)")


def _json_array(payload: Bytes | str) -> list[Any]:
    try:
        text = payload if isinstance(payload, str) else str(memoryview(payload), "utf-8")
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        raise CodecError("bad_payload", f"payload is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CodecError(
            "bad_payload", f"payload is not JSON ({exc.msg} at char {exc.pos})"
        ) from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise CodecError("bad_payload", f"payload is not usable JSON ({exc})") from None
    except RecursionError:
        raise CodecError("bad_payload", "payload JSON is nested too deeply") from None
    if not isinstance(data, list):
        raise CodecError(
            "bad_payload", f"payload must be a JSON array of events, got {_kind(data)}"
        )
    return data


def _event_code(layout: Layout, name: str, j: int) -> int:
    code = layout.event_code.get(name)
    if code is None:
        raise CodecError(
            "unknown_event", f"event {j}: unknown event {name!r}; this scenario's events: "
            f"{_short(list(layout.event_names))}",
        )
    return code


def _signal_row(layout: Layout, name: str, j: int) -> int:
    row = layout.signal_index.get(name)
    if row is None:
        raise CodecError(
            "unknown_signal", f"event {j}: unknown signal {name!r}; this scenario's signals: "
            f"{_short(list(layout.signal_names))}",
        )
    return row


def _header_fields(header: Mapping[str, Any] | bytes | str) -> Mapping[str, Any]:
    if isinstance(header, Mapping):
        return header
    try:
        data = json.loads(header)
    except (ValueError, RecursionError):
        raise CodecError("bad_header", "header is not a UTF-8 JSON object") from None
    if not isinstance(data, dict):
        raise CodecError("bad_header", f"header must be a JSON object, got {_kind(data)}")
    return data


def _header_int(fields: Mapping[str, Any], key: str) -> int:
    value = fields.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CodecError("bad_header", f"header field {key!r} must be an integer >= 0, "
                         f"got {value!r}")
    return value


def _check_seq_range(first_seq: int, count: int) -> None:
    """Seqs are int64 (stored so, and checked by the compiled `columns_ok`): the seqs
    first_seq .. first_seq + count - 1 must be int64 values, else `bad_header` (not numba's
    error for a first_seq it cannot take, nor seqs wrapping past 2**63 - 1). A negative
    first_seq is refused by `decode_events` (`_header_int`), not here."""
    if first_seq < -INT64_MAX - 1 or first_seq + max(count, 1) - 1 > INT64_MAX:
        raise CodecError("bad_header", f"the seqs first_seq={first_seq} .. first_seq + count - 1 "
                         f"(count={count}) must be int64 values (at most {INT64_MAX})")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else repr(value)[:40]


def _short(items: Sequence[Any], limit: int = 12) -> str:
    shown = ", ".join(str(x) if not isinstance(x, list) else json.dumps(x) for x in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


# ------------------------------------------------------------------------------ encoding


def records_v1(cols: Columns, layout: Layout) -> NDArray[np.uint8]:
    """The columns-v1 payload of `cols` as a fresh contiguous uint8 array (send it as a frame
    without copying: it supports the buffer protocol)."""
    n = len(cols)
    if cols.signals.shape != (len(layout.signal_names), n):
        raise ValueError(
            f"signals must have shape ({len(layout.signal_names)}, {n}), got {cols.signals.shape}"
        )
    raw = np.empty(n * layout.itemsize, dtype=np.uint8)
    records = raw.view(layout.record)
    records["seq"] = cols.seq
    records["t"] = cols.t
    records["event"] = cols.event
    _signal_view(raw.data, len(layout.signal_names), n, layout.itemsize)[...] = cols.signals
    return raw


def encode_columns_v1(cols: Columns, layout: Layout) -> bytes:
    """The columns-v1 payload of `cols` (see `records_v1` for a copy-free variant)."""
    return records_v1(cols, layout).tobytes()


def encode_json_v1(events: Columns | Sequence[Event], layout: Layout) -> bytes:
    """The json-v1 payload (compact UTF-8 JSON; NaN signals are left out)."""
    if isinstance(events, Columns):
        return _json_from_columns(events, layout)
    items: list[dict[str, Any]] = []
    for e in events:
        item: dict[str, Any] = {"seq": e.seq, "t": e.t, "event": e.event}
        sig = {k: v for k, v in e.signals.items() if not math.isnan(v)}
        if sig:
            item["signals"] = sig
        items.append(item)
    return json.dumps(items, separators=(",", ":"), allow_nan=False).encode()


def _json_from_columns(cols: Columns, layout: Layout) -> bytes:
    """json-v1 text written directly (no dict per event): about twice as fast as json.dumps.
    float repr is JSON's own number syntax; names are quoted by json.dumps once."""
    if not np.isfinite(cols.t).all() or np.isinf(cols.signals).any():
        raise ValueError("json-v1 cannot carry infinite or NaN times, nor infinite signals")
    keys = [json.dumps(name) + ":" for name in layout.signal_names]
    events = [f'"event":{json.dumps(name)}' for name in layout.event_names]
    parts: list[str] = []
    for seq, t, code, row in zip(
        cols.seq.tolist(), cols.t.tolist(), cols.event.tolist(), cols.signals.T.tolist(),
        strict=True,
    ):
        sig = ",".join([k + repr(v) for k, v in zip(keys, row, strict=True) if v == v])  # noqa: PLR0124 - NaN test
        head = f'{{"seq":{seq},"t":{t!r},{events[code]}'
        parts.append(f'{head},"signals":{{{sig}}}}}' if sig else head + "}")
    return ("[" + ",".join(parts) + "]").encode()


def slice_payload(
    encoding: str, payload: Bytes, layout: Layout, start: int
) -> bytes:
    """The payload of rows `start`.. of a VALID batch (used to store only the new tail of a
    partly duplicate batch): byte slice for columns-v1, re-encoded array for json-v1."""
    if encoding == COLUMNS_V1:
        return bytes(memoryview(payload).cast("B")[start * layout.itemsize :])
    items = _json_array(payload)[start:]
    return json.dumps(items, separators=(",", ":")).encode()
