"""The column path for JSON Lines: a block of lines parsed straight into columns, every check
applied per column, no object per line. Two parsers, tried in turn: the compiled parser of the
events layout (`jsonl_scan`, about 5x pyarrow's speed), then pyarrow's JSON reader for the
blocks it declines (escaped strings, ...).

It accepts a block only when it can prove that the exact path (`jsonl_exact`, the semantics of
`core.events.parse_events_lines`) would accept every line of it and read the same values;
otherwise it returns None and the caller reads the block exactly (which then names the bad
line). So it refuses, without looking further, blocks with anything where the two parsers may
differ: a lone carriage return (a line break to Python's text files), a byte-order mark,
invalid UTF-8, a top-level ``null`` (pyarrow cannot tell it from an absent field), a negative
zero written as an integer (JSON's ``-0`` is the integer 0 to Python, -0.0 to pyarrow in a
column of floats; ``-0.0`` is -0.0 to both); and it refuses a block with
any record the exact path would reject (bad types, names, ids, order, ...).
"""

from __future__ import annotations

import io
import re
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from numba import njit
from numpy.typing import NDArray

from ..core.events import check_keys, check_open, load_record
from ..core.ids import is_id
from ..core.recorded import Chunk
from ..core.scenario import Scenario
from . import jsonl_scan
from .ledger import Ledger
from .parsed import ParsedBlock, bind

FIELDS: Final = frozenset({"session", "seq", "t", "event", "signals", "open", "close"})
_TOP_NULL: Final = re.compile(rb'"(?:session|seq|t|event|signals|open|close)"\s*:\s*null')
_NUMBER: Final = (pa.types.is_int64, pa.types.is_float64)


def read_block(block: bytes, ledger: Ledger, scenario: Scenario) -> tuple[Chunk, int] | None:
    """The chunk of `block` (whole lines, ``\\n`` breaks) and its number of lines, with the
    ledger updated; or None (ledger untouched) when the block is not provably clean."""
    parsed = parse_block(block, scenario)
    if parsed is None:
        return None
    chunk = bind(parsed, ledger)
    return None if chunk is None else (chunk, parsed.n_lines)


def parse_block(block: bytes, scenario: Scenario) -> ParsedBlock | None:
    """The columns of `block` and every check that needs no session's past; None when the
    block is not provably clean. Pure (the part `--workers` runs in other processes)."""
    parsed = jsonl_scan.parse(block, scenario)
    if parsed is not None or not _plain(block):
        return parsed
    parsed = _pyarrow_block(block, scenario)
    if parsed is not None:
        parsed.n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    return parsed


def _pyarrow_block(block: bytes, scenario: Scenario) -> ParsedBlock | None:
    """`block` (plain) parsed by pyarrow's JSON reader, or None."""
    try:
        table = pj.read_json(io.BytesIO(block), read_options=_OPTIONS)
    except (pa.ArrowException, ValueError):
        return None
    return _from_table(table, block, scenario)


_OPTIONS: Final = pj.ReadOptions(use_threads=False, block_size=1 << 30)


def _plain(block: bytes) -> bool:
    """Every line a bare ``{...}`` (pyarrow's reader crashed on a block of one ``null``; blank
    lines go the exact way too), and no byte sequence on which pyarrow and Python's json or
    text files may disagree."""
    found = _scan(np.frombuffer(block, np.uint8))
    if found < 0:
        return False
    if found & _NON_ASCII:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if b"\xef\xbb\xbf" in block:
            return False
    return not found & _NULL or not (found & _ESCAPE or _TOP_NULL.search(block))


_NULL, _NON_ASCII, _ESCAPE = 1, 2, 4


@njit(cache=True, nogil=True)
def _scan(buf: NDArray[np.uint8]) -> int:
    """One pass over a block's bytes: -1 unless every line is a bare ``{...}`` ending in
    ``\\n`` or ``\\r\\n`` (the last line may lack it), with no other carriage return and no
    integer ``-0``; else the flags _NULL (``null`` occurs), _NON_ASCII, _ESCAPE (``\\u``)."""
    n = buf.shape[0]
    if n == 0:
        return -1
    flags = 0
    start = True
    for i in range(n):
        c = buf[i]
        if start:
            if c != 123:  # {
                return -1
            start = False
        if c == 10:  # \n: the line ends in } or }\r
            j = i - 1
            if j > 0 and buf[j] == 13:
                j -= 1
            if buf[j] != 125:
                return -1
            start = True
        elif c == 13:
            if i + 1 >= n or buf[i + 1] != 10:
                return -1
        elif c == 45:  # -0 followed by a delimiter: an integer
            if i + 2 < n and buf[i + 1] == 48:
                d = buf[i + 2]
                if d in (44, 125, 93, 32, 9, 13, 10):
                    return -1
        elif c == 110:  # n
            if i + 3 < n and buf[i + 1] == 117 and buf[i + 2] == 108 and buf[i + 3] == 108:
                flags |= 1
        elif c == 92:  # backslash
            if i + 1 < n and buf[i + 1] == 117:
                flags |= 4
        elif c >= 128:
            flags |= 2
    if not start and buf[n - 1] != 125:
        return -1
    return flags


def _from_table(table: pa.Table, block: bytes, scenario: Scenario) -> ParsedBlock | None:
    """The parsed block of pyarrow's table of `block`, or None."""
    names = set(table.column_names)
    if not names <= FIELDS or "session" not in names:
        return None
    cols = {name: table.column(name).combine_chunks() for name in names}
    sess = _sessions(cols["session"])
    kind = _kinds(cols, table.num_rows)
    if sess is None or kind is None:
        return None
    ids, row_local = sess
    ev_rows = np.flatnonzero(kind == 0)
    events = _events(cols, ev_rows, scenario)
    closes = _closes(cols, kind)
    opens = _opens(block, kind, row_local, ids)
    if events is None or closes is None or opens is None:
        return None
    seq, t, code, signals = events
    close_rows, close_t = closes
    return ParsedBlock(ids, row_local, kind, ev_rows, seq, t, code, signals, opens,
               close_rows, close_t)  # fmt: skip


def _sessions(col: pa.Array) -> tuple[list[str], NDArray[np.int64]] | None:
    """The block's session ids (first appearance order) and every row's index into them."""
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return None
    if col.null_count:
        return None
    encoded = pc.dictionary_encode(col)
    ids: list[str] = encoded.dictionary.to_pylist()
    if not all(is_id(s) for s in ids):
        return None
    rows: NDArray[np.int64] = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return ids, rows


def _valid(cols: dict[str, pa.Array], name: str, n: int) -> NDArray[np.bool_]:
    if name not in cols:
        return np.zeros(n, np.bool_)
    mask: NDArray[np.bool_] = cols[name].is_valid().to_numpy(zero_copy_only=False)
    return mask


def _kinds(cols: dict[str, pa.Array], n: int) -> NDArray[np.int8] | None:
    """Each row's kind (0 event, 1 open, 2 close), or None if a row mixes kinds' fields or an
    event lacks one of seq, t, event."""
    has = {name: _valid(cols, name, n) for name in FIELDS - {"session"}}
    is_open = has["open"]
    is_close = ~is_open & has["close"]
    is_event = ~(is_open | is_close)
    event_fields = has["seq"] | has["t"] | has["event"] | has["signals"]
    if np.any(is_open & (event_fields | has["close"])) or np.any(is_close & event_fields):
        return None
    if not np.all(has["seq"][is_event] & has["t"][is_event] & has["event"][is_event]):
        return None
    kind = np.zeros(n, np.int8)
    kind[is_open] = 1
    kind[is_close] = 2
    return kind


def _events(
    cols: dict[str, pa.Array], rows: NDArray[np.intp], scenario: Scenario
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int32], NDArray[np.float64]] | None:
    """The event rows' seq, t, event codes and signals (n_signals, n), or None."""
    n_sig, n = len(scenario.signal_names), rows.shape[0]
    if n == 0:
        return (np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int32),
                np.empty((n_sig, 0), np.float64))  # fmt: skip
    seq_col, t_col, ev_col = cols["seq"], cols["t"], cols["event"]
    if not pa.types.is_int64(seq_col.type) or not _number_type(t_col.type):
        return None
    if not pa.types.is_string(ev_col.type):
        return None
    taken = pa.array(rows)
    seq = _numpy(seq_col.take(taken)).astype(np.int64)
    t = _numpy(t_col.take(taken)).astype(np.float64)
    if np.any(seq < 0) or not np.all(t >= 0) or not np.all(np.isfinite(t)):
        return None
    code = _codes(ev_col, rows, scenario)
    signals = _signals(cols.get("signals"), rows, scenario)
    if code is None or signals is None:
        return None
    return seq, t, code, signals


def _number_type(kind: pa.DataType) -> bool:
    return any(test(kind) for test in _NUMBER)


def _numpy(col: pa.Array) -> NDArray[Any]:
    return col.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def _codes(col: pa.Array, rows: NDArray[np.intp], scenario: Scenario) -> NDArray[np.int32] | None:
    encoded = pc.dictionary_encode(col.take(pa.array(rows)))
    table = scenario.event_code
    names: list[str] = encoded.dictionary.to_pylist()
    if not all(name in table for name in names):
        return None
    lookup = np.array([table[name] for name in names], np.int32)
    codes: NDArray[np.int32] = lookup[encoded.indices.to_numpy(zero_copy_only=False)]
    return codes


def _signals(
    col: pa.Array | None, rows: NDArray[np.intp], scenario: Scenario
) -> NDArray[np.float64] | None:
    """(n_signals, n) values, NaN where not reported; None for an unknown name, a value that
    is not a number or an infinite value."""
    out = np.full((len(scenario.signal_names), rows.shape[0]), np.nan, np.float64)
    if col is None:
        return out
    if not pa.types.is_struct(col.type):
        return None
    index = scenario.signal_index
    struct = col.take(pa.array(rows))
    for child, spec in zip(struct.flatten(), col.type, strict=True):
        if spec.name not in index:
            return None
        if pa.types.is_null(spec.type):
            continue
        if not _number_type(spec.type):
            return None
        values = _numpy(child).astype(np.float64)
        if np.any(np.isinf(values)):
            return None
        out[index[spec.name]] = values
    return out


def _closes(
    cols: dict[str, pa.Array], kind: NDArray[np.int8]
) -> tuple[NDArray[np.intp], NDArray[np.float64]] | None:
    """The close rows and their finite times, or None."""
    rows = np.flatnonzero(kind == 2)
    if rows.shape[0] == 0:
        return rows, np.empty(0, np.float64)
    col = cols["close"]
    if not pa.types.is_struct(col.type) or col.type.get_field_index("t") < 0:
        return None
    t_col = col.take(pa.array(rows)).flatten()[col.type.get_field_index("t")]
    if not _number_type(t_col.type) or t_col.null_count:
        return None
    t = _numpy(t_col).astype(np.float64)
    if not np.all(np.isfinite(t)):
        return None
    return rows, t


def _opens(
    block: bytes, kind: NDArray[np.int8], row_local: NDArray[np.int64], ids: list[str]
) -> list[tuple[int, dict[str, Any]]] | None:
    """Each open row's metadata, read by Python's json from its line (found by the
    ``"open"`` it holds), or None when the lines do not match the rows one to one."""
    rows = np.flatnonzero(kind == 1)
    if rows.shape[0] == 0:
        return []
    records = [r for r in _records_with(block, b'"open"') if isinstance(r, dict) and "open" in r]
    if len(records) != rows.shape[0]:
        return None
    out: list[tuple[int, dict[str, Any]]] = []
    for row, record in zip(rows.tolist(), records, strict=True):
        if record.get("session") != ids[row_local[row]]:
            return None
        try:
            check_keys(record, {"session", "open"})
            meta = check_open(record)
        except ValueError:
            return None
        out.append((row, dict(meta)))
    return out


def _records_with(block: bytes, needle: bytes) -> list[Any]:
    """The JSON value of every line of `block` that contains `needle`, in order."""
    out: list[Any] = []
    at = block.find(needle)
    while at >= 0:
        start = block.rfind(b"\n", 0, at) + 1
        end = block.find(b"\n", at)
        end = len(block) if end < 0 else end
        try:
            out.append(load_record(block[start:end].decode("utf-8")))
        except ValueError:
            out.append(None)
        at = block.find(needle, end)
    return out


