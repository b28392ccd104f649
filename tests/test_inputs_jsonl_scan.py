"""The compiled parser of the events layout (`inputs.jsonl_scan`): the numbers it converts are
bit for bit the ones Python's json reads, it reads the same columns as pyarrow's path, and it
declines every line it does not read exactly (the end-to-end comparisons with the line reader
are in test_inputs_jsonl.py)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_rubric
from assessengine.inputs import jsonl_columns, jsonl_scan
from assessengine.inputs.parsed import ParsedBlock
from assessengine.sim import SensorOptions, jsonl_lines, simulate
from tests.strategies import SCENARIO
from tests.test_inputs_jsonl import events_files


def _line(t: str = "0", x: str = "1", **extra: str) -> bytes:
    fields = {"session": '"S1"', "seq": "0", "t": t, "event": '"sample"',
              "signals": '{"x": ' + x + "}"} | extra  # fmt: skip
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}\n").encode()


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _expected(text: str) -> float | None:
    """What the exact path reads for a number written `text`: a finite float, else None."""
    value = float(json.loads(text))
    return value if math.isfinite(value) else None


_DECIMALS = st.builds(
    lambda sign, whole, frac, exp: f"{sign}{whole}{frac}{exp}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.integers(1, 10**25).map(str)),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=24).map(lambda d: "." + d)),
    st.one_of(st.just(""), st.builds(lambda e, s, n: f"{e}{s}{n}", st.sampled_from("eE"),
                                     st.sampled_from(["", "+", "-"]), st.integers(0, 400))),
)  # fmt: skip
_NUMBERS = st.one_of(
    _DECIMALS,
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**70), 2**70).map(str),
)


@settings(max_examples=500, deadline=None)
@given(_NUMBERS)
def test_numbers_are_read_as_pythons_json_reads_them(text: str) -> None:
    """A signal value and a time: the same float bits as Python's json (fast path and bulk
    cast alike), the block declined where the exact path rejects the value."""
    expected = _expected(text)
    signal = jsonl_scan.parse(_line(x=text), SCENARIO)
    if expected is None:
        assert signal is None
    else:
        assert signal is not None
        assert _bits(signal.signals[0, 0]) == _bits(expected)
    timed = jsonl_scan.parse(_line(t=text), SCENARIO)
    if expected is None or expected < 0:
        assert timed is None
    else:
        assert timed is not None
        assert _bits(timed.t[0]) == _bits(expected)


def test_a_negative_zero_integer_is_zero_and_a_negative_zero_float_stays_negative() -> None:
    integer = jsonl_scan.parse(_line(x="-0"), SCENARIO)
    decimal = jsonl_scan.parse(_line(x="-0.0"), SCENARIO)
    assert integer is not None
    assert decimal is not None
    assert _bits(integer.signals[0, 0]) == _bits(0.0)
    assert _bits(decimal.signals[0, 0]) == _bits(-0.0)


def _same(a: ParsedBlock, b: ParsedBlock) -> None:
    assert a.ids == b.ids
    for name in ("row_local", "kind", "ev_rows", "seq", "code", "close_rows"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("t", "signals", "close_t"):  # bit for bit: -0.0 and NaN included
        left, right = getattr(a, name), getattr(b, name)
        assert left.tobytes() == right.tobytes() or (
            np.array_equal(left, right, equal_nan=True) and not np.any(np.signbit(left)
                                                                       ^ np.signbit(right))
        )  # fmt: skip
    assert a.opens == b.opens


@settings(max_examples=150, deadline=None)
@given(events_files())
def test_blocks_read_as_pyarrows_path_reads_them(data: bytes) -> None:
    """Where both column parsers accept a block, they read the same columns."""
    if not jsonl_columns._plain(data):
        return
    mine = jsonl_scan.parse(data, SCENARIO)
    theirs = jsonl_columns._pyarrow_block(data, SCENARIO)
    if mine is not None and theirs is not None:
        _same(mine, theirs)


def test_ordinary_lines_take_the_compiled_path() -> None:
    """Events, an open with metadata and a close, in any key order and spacing."""
    lines = [
        {"session": "S1", "open": {"learner": "L1", "tags": ["a", {"b": "}"}]}},
        *(
            {"t": i / 10, "event": "sample", "signals": {"z": -0.0, "x": 1.5, "y": None},
             "session": "S1", "seq": i}
            for i in range(50)
        ),
        {"session": "S1", "close": {"t": 9.5}},
    ]
    data = "\n".join(json.dumps(r, separators=(",", ":")) for r in lines).encode()
    parsed = jsonl_scan.parse(data, SCENARIO)
    assert parsed is not None
    assert parsed.opens == [(0, {"learner": "L1", "tags": ["a", {"b": "}"}]})]
    assert parsed.close_rows.tolist() == [51]
    assert parsed.close_t.tolist() == [9.5]
    assert parsed.seq.tolist() == list(range(50))
    assert np.isnan(parsed.signals[1]).all()


@pytest.mark.parametrize(
    "line",
    [
        _line(session='"S\\u0031"'),  # an escape
        _line(session='"S\t1"'),  # a control character
        _line(seq="1.0"),
        _line(seq="-1"),
        _line(seq="1234567890123456789"),  # 19 digits
        _line(seq="9007199254740993"),  # 2^53 + 1: past what a float holds exactly
        _line(seq="01"),
        _line(seq="-0"),
        _line(seq="1e2"),
        _line(seq="1E2"),
        _line(seq="7x"),
        _line(seq='"1"'),
        _line(event='""'),
        _line(event='"nope"'),
        _line(signals='{"w": 1}'),
        _line(signals='{"x": 1, "x": 2}'),
        _line(signals='{"x": true}'),
        _line(signals='{"x": NaN}'),
        _line(signals="null"),
        _line(x="01"),
        _line(x="1."),
        _line(x=".5"),
        _line(x="1e"),
        _line(x="1e400"),
        _line(t="-0.5"),
        _line(extra="1"),
        b'{"session": "S1", "seq": 0, "t": 0, "event": "sample", "seq": 1}\n',
        b'{"session": "S1", "seq": 0, "t": 0}\n',
        b'{"seq": 0, "t": 0, "event": "sample"}\n',
        b'{"session": "S1", "open": {}, "seq": 0}\n',
        b'{"session": "S1", "close": {"t": -1e400}}\n',
        b'{"session": "S1", "open": {"learner": 5}}\n',
        b'{"session": "S 1", "seq": 0, "t": 0, "event": "sample"}\n',
        b'{"session": "S1", "seq": 0, "t": 0, "event": "sample"} {"session": "S1"}\n',
        b'{"session": "S1", "open": {\r"a": 1}}\n',  # a line break to Python's text files
        b'{"session": "S1", "open": {"a": "\r"}}\n',
        b'{"session": "S1", "seq": 0,\r"t": 0, "event": "sample"}\n',
        b'{"session": "S1", "seq": 0, "t": 0, "event": "sample"}\n\n',  # a blank line
        b'\xef\xbb\xbf{"session": "S1", "seq": 0, "t": 0, "event": "sample"}\n',
        b'{"session": "S1", "open": {"a": "\xff"}}\n',  # not UTF-8
        b"null\n",
        b"",
    ],
)
def test_lines_it_does_not_read_exactly_decline_the_block(line: bytes) -> None:
    assert jsonl_scan.parse(line, SCENARIO) is None


def test_a_seq_up_to_2_to_the_53_takes_the_compiled_path() -> None:
    parsed = jsonl_scan.parse(_line(seq="9007199254740992") + _line(seq="0 "), SCENARIO)
    assert parsed is not None
    assert parsed.seq.tolist() == [2**53, 0]


def test_many_hard_numbers_in_one_block(tmp_path: Any) -> None:
    """More numbers outside the fast path than the first buffer holds (it grows)."""
    values = [0.1 + k * 1e-17 for k in range(300)]
    data = "\n".join(json.dumps({"session": "S1", "seq": k, "t": 0.30000000000000004 * (k + 1),
                                 "event": "sample", "signals": {"y": v}})
                     for k, v in enumerate(values)).encode()  # fmt: skip
    parsed = jsonl_scan.parse(data, SCENARIO)
    assert parsed is not None
    assert parsed.signals[1].tolist() == values
    assert parsed.t.tolist() == [0.30000000000000004 * (k + 1) for k in range(300)]


def test_simulated_forklift_sessions_take_the_compiled_path() -> None:
    """The simulator's own output (noise: -0.0 and 3-decimal values; opens, closes, events)
    is read by the compiled parser, with the values pyarrow's path reads."""
    _, scenario = load_rubric(Path(__file__).parents[1] / "rubrics" / "forklift-load-handling.yaml")
    sim = simulate(scenario, "mixed", 2, seed=5, options=SensorOptions(noise=1.0, drop=0.05))
    data = ("\n".join(jsonl_lines(sim)) + "\n").encode()
    mine = jsonl_scan.parse(data, scenario)
    theirs = jsonl_columns._pyarrow_block(data, scenario)
    assert mine is not None
    assert theirs is not None
    _same(mine, theirs)
