"""Uploaded CSV logs read per column (`api.service.csv_columns`): the same events, seqs and
close as the row-by-row reader on the files it accepts, and every other file left to the
row-by-row reader, so bad files get its messages (line, column) unchanged."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.api.service import uploads
from assessengine.api.service.csv_columns import read_columns
from assessengine.api.service.errors import InvalidError
from tests.strategies import EVENTS, SCENARIO, SIGNALS


def _read(text: str) -> Any:
    try:
        return _outcome(uploads._csv(text, SCENARIO))
    except InvalidError as exc:
        return _error(exc)


def _row_by_row(text: str) -> Any:
    """The outcome of the row-by-row reader alone (the code before the column path)."""
    with patch.object(uploads, "read_columns", lambda *_: None):
        return _read(text)


def _error(exc: InvalidError) -> Any:
    return str(exc), [(p.name, p.reason, p.line, p.column) for p in exc.errors]


def _outcome(log: uploads.FieldLog) -> Any:
    c = log.columns
    return (c.seq.tolist(), c.t.tobytes(), c.event.tolist(), c.event.dtype.str,
            c.signals.tobytes(), c.signals.shape, log.close_t, log.renumbered)  # fmt: skip


_PLAIN = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.sampled_from(["", " ", "nan", "NaN", "null", "NA", "1.", ".5", "+1", "-0", "1e3",
                     "2E-2", " 7 ", "\t3", "0.30000000000000004", "9007199254740993"]),
)  # fmt: skip
_ODD = st.sampled_from(["inf", "-Infinity", "1e999", "1_000", "x", "0x1", '"1"', "1\r2", "1,2",
                        "\x0b", "é", "9" * 200, "1.5.5"])  # fmt: skip


@st.composite
def csv_files(draw: st.DrawFn) -> str:
    """A header of t, maybe event and seq, some signals (any order), and rows: ordered times
    and plain numbers, blank rows; in half the files, odd cells and rows sprinkled in."""
    names = ["t", *draw(st.lists(st.sampled_from(["event", "seq", *SIGNALS]), unique=True))]
    names = draw(st.permutations(names))
    odd = draw(st.booleans())  # else only cells the column path reads
    lines = [",".join(names)]
    t = 0.0
    for k in range(draw(st.integers(1, 30))):
        t += draw(st.sampled_from([0, 0.1, 0.25, 1, 3]))
        cells = []
        for name in names:
            if name == "t":
                cell = draw(_ODD if odd and draw(st.integers(0, 20)) == 0 else st.just(repr(t)))
            elif name == "event":
                cell = draw(st.sampled_from(["", "sample", *EVENTS, " a ", *(["zz"] * odd)]))
            elif name == "seq":
                odd_seq = ["1.5", "-1", "9223372036854775808"] if odd else []
                cell = draw(st.sampled_from([str(k), str(k + 5), "", f"{k}.0", *odd_seq,
                                             "9223372036854775807"]))
            else:
                cell = draw(_ODD if odd and draw(st.integers(0, 20)) == 0 else _PLAIN)
            cells.append(cell)
        if odd and draw(st.integers(0, 25)) == 0:
            cells = cells[:-1] if draw(st.booleans()) else [*cells, "1"]
        lines.append(",".join(cells))
        if draw(st.integers(0, 15)) == 0:
            lines.append(draw(st.sampled_from(["", "  ", ",".join(" " * len(names))])))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return ending.join(lines) + draw(st.sampled_from([ending, ""]))


@settings(max_examples=400, deadline=None)
@given(csv_files())
def test_csv_files_read_as_the_row_by_row_reader_reads_them(text: str) -> None:
    assert _read(text) == _row_by_row(text)


def test_plain_files_take_the_column_path() -> None:
    rows = [f"{k / 10},{'a' if k % 7 == 0 else ''},{k},{k * 0.5}, nan" for k in range(200)]
    text = "t,event,seq,x,y\n" + "\n".join(rows) + "\n"
    names = ["t", "event", "seq", "x", "y"]
    read = read_columns(text, names, {n: k for k, n in enumerate(names)}, SCENARIO)
    assert read is not None
    cols, seq = read
    assert seq.tolist() == list(range(200))
    assert np.isnan(cols.signals[SCENARIO.signal_index["y"]]).all()
    assert cols.signals[SCENARIO.signal_index["x"]].tolist() == [k * 0.5 for k in range(200)]
    assert _read(text) == _row_by_row(text)


def test_a_bad_cell_gets_the_row_by_row_message() -> None:
    text = "t,x\n0,1\n1,fast\n2,1e999\n"
    assert _read(text) == _row_by_row(text)
    assert _read(text)[1] == [("file", "x: 'fast' is not a number", 3, 2),
                                ("file", "x is infinite", 4, 2)]  # fmt: skip
