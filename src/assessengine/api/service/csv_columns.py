"""The column path for uploaded CSV logs: the whole table read by Arrow's CSV reader, every
check applied per column (vectorised), no Python object per cell.

It accepts a file only when it can prove that the row-by-row reader (`uploads._csv_rows`, whose
messages users see) would accept every row and read the same values; otherwise it returns None
and the caller reads the file row by row, which then names each problem's line and column. So
it declines, without looking further, text where the two readers may split or strip cells
differently (a quote, a carriage return outside a ``\\r\\n``, non-ASCII text, a control
character, a cell longer than the csv module's limit), and any file with a problem: a row of
the wrong length, a cell that is not a plain decimal number (``1.5``, ``-2``, ``.5``, ``1e3``;
Python's ``float`` also reads ``1_000`` or ``infinity``: those go row by row), an unknown event,
an infinite value, an empty or decreasing ``t``, a ``seq`` that is not a whole number in range.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from numpy.typing import NDArray

from ...core.codec import Columns
from ...core.scenario import SAMPLE, Scenario

_UNSAFE: Final = np.zeros(256, np.bool_)
_UNSAFE[[*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x22, *range(0x7F, 0x100)]] = True
"""Bytes where the two readers may split or strip cells differently: a quote, non-ASCII text,
a control character (Python's ``str.strip`` also strips \\x0b, \\x0c and \\x1c-\\x1f);
and a carriage return outside ``\\r\\n`` (`_plain`)."""
_NUMBER: Final = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_MISSING: Final = ["", "nan", "null", "na"]
_TWO_63: Final = 2.0**63


def read_columns(
    text: str, names: list[str], columns: Mapping[str, int], scenario: Scenario
) -> tuple[Columns, NDArray[np.int64]] | None:
    """The events of CSV `text` whose header row (already checked: `names`, `columns` =
    name -> position) is its first line, and each row's seq (the file's, else its row
    number among the events); None when the row-by-row reader must read it."""
    data = text.encode()
    if not _plain(data):
        return None
    table = _table(data, len(names))
    if table is None or table.num_rows == 0:
        return None
    cells = [pc.utf8_trim_whitespace(table.column(k)) for k in range(len(names))]
    blank = _all_blank(cells)
    if blank is not None:
        cells = [c.filter(pc.invert(blank)) for c in cells]
    n = len(cells[0])
    t = _numbers(cells[columns["t"]], required=True)
    if t is None or np.any(t < 0) or np.any(t[1:] < t[:-1]):
        return None
    code = _events(cells[columns["event"]], scenario) if "event" in columns else np.zeros(n)
    seq = _seq(cells[columns["seq"]], n) if "seq" in columns else np.arange(n, dtype=np.int64)
    signals = np.full((len(scenario.signal_names), n), np.nan, np.float64)
    for name, k in columns.items():
        if name in ("t", "event", "seq"):
            continue
        values = _numbers(cells[k], required=False)
        if values is None:
            return None
        signals[scenario.signal_index[name]] = values
    if code is None or seq is None:
        return None
    cols = Columns(np.arange(n, dtype=np.int64), t, code.astype(np.int32), signals)
    return cols, seq


def _plain(data: bytes) -> bool:
    """No byte of `_UNSAFE`, and every carriage return followed by a line feed."""
    if _UNSAFE[np.frombuffer(data, np.uint8)].any():
        return False
    return data.count(b"\r") == data.count(b"\r\n")


def _table(data: bytes, width: int) -> pa.Table | None:
    """Every row after the header as `width` string columns; None if a row has another
    number of cells or a cell is longer than the csv module allows."""
    read = pcsv.ReadOptions(skip_rows=1, column_names=[f"c{k}" for k in range(width)],
                            use_threads=False, block_size=max(1 << 20, 2 * len(data)))  # fmt: skip
    parse = pcsv.ParseOptions(quote_char=False, newlines_in_values=False)
    types = {f"c{k}": pa.string() for k in range(width)}
    convert = pcsv.ConvertOptions(column_types=types, strings_can_be_null=False)
    try:
        table = pcsv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse,
                              convert_options=convert)  # fmt: skip
    except (pa.ArrowInvalid, ValueError):
        return None
    limit = csv.field_size_limit()
    for k in range(width):
        longest = pc.max(pc.utf8_length(table.column(k))).as_py()
        if longest is not None and longest > limit:
            return None
    return table


def _all_blank(cells: list[pa.ChunkedArray]) -> pa.ChunkedArray | None:
    """Rows whose every cell is blank (skipped, as the row-by-row reader skips them), or
    None when there are none."""
    blank = pc.equal(cells[0], "")
    for col in cells[1:]:
        blank = pc.and_(blank, pc.equal(col, ""))
    return blank if pc.any(blank).as_py() else None


def _numbers(col: pa.ChunkedArray, *, required: bool) -> NDArray[np.float64] | None:
    """The column's numbers, NaN for a missing cell (empty, nan, null, na); None if a cell is
    not a plain decimal number, is infinite, or is missing where `required`."""
    missing = pc.is_in(pc.ascii_lower(col), value_set=pa.array(_MISSING))
    valid = pc.match_substring_regex(col, _NUMBER)
    if not pc.all(pc.or_(valid, missing)).as_py():
        return None
    if pc.any(missing).as_py():
        if required:
            return None
        col = pc.if_else(missing, pa.scalar(None, pa.string()), col)
    values: NDArray[np.float64] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    if np.any(np.isinf(values)):
        return None
    return values


def _events(col: pa.ChunkedArray, scenario: Scenario) -> NDArray[np.int32] | None:
    """Each row's event code (an empty cell is a sample), None for an unknown name."""
    encoded = pc.dictionary_encode(col).combine_chunks()
    names: list[str] = [name or SAMPLE for name in encoded.dictionary.to_pylist()]
    if not all(name in scenario.event_code for name in names):
        return None
    lookup = np.array([scenario.event_code[name] for name in names], np.int32)
    codes: NDArray[np.int32] = lookup[encoded.indices.to_numpy(zero_copy_only=False)]
    return codes


def _seq(col: pa.ChunkedArray, n: int) -> NDArray[np.int64] | None:
    """The seq column: whole numbers from 0 to 2**63 - 1; a missing cell is the row's number
    among the events. None for any other value."""
    values = _numbers(col, required=False)
    if values is None:
        return None
    missing = np.isnan(values)
    given = values[~missing]
    if np.any(given != np.floor(given)) or np.any(given < 0) or np.any(given >= _TWO_63):
        return None
    seq = np.arange(n, dtype=np.int64)
    seq[~missing] = given.astype(np.int64)
    return seq
