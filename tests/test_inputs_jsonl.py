"""The JSON Lines reader (`inputs.jsonl`: columns per block, exact lines where needed) against
the line-by-line reader `core.events.parse_events_lines` (the behaviour it must keep): the
same sessions, values, messages and skipped lines on generated and on mangled files, in blocks
of any size; and the same reports from `score_chunks` as from `score_sessions`."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_rubric
from assessengine.cli import main
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import Event, SessionEvents, parse_events_lines
from assessengine.core.jsontext import dumps
from assessengine.core.offline import collect_sessions, score_chunks, score_sessions
from assessengine.core.rubric import Rubric
from assessengine.errors import EventsError
from assessengine.inputs import jsonl_columns
from assessengine.inputs.jsonl import read_jsonl
from assessengine.inputs.ledger import Ledger
from assessengine.sim import SensorOptions, jsonl_lines, simulate
from tests.strategies import EVENTS, SCENARIO, SIGNALS, rubrics

Outcome = tuple[str | None, list[Any], list[str]]


def _value(x: Any) -> Any:
    """A value whose equality also tells -0.0 from 0.0 and ints from floats."""
    return float.hex(x) if isinstance(x, float) else x


def _event(e: Event) -> Any:
    return e.seq, _value(e.t), e.event, sorted((k, _value(v)) for k, v in e.signals.items())


def _summary(sessions: list[SessionEvents]) -> list[Any]:
    return [
        (
            s.session,
            json.dumps(s.open, sort_keys=True),
            None if s.close_t is None else _value(s.close_t),
            [_event(e) for e in s.events],
        )
        for s in sessions
    ]


def old_read(data: bytes, skip: bool) -> Outcome:
    lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    try:
        parsed = parse_events_lines(lines, scenario=SCENARIO, source="f.jsonl", skip_invalid=skip)
    except EventsError as exc:
        return str(exc), [], []
    return None, _summary(list(parsed.sessions.values())), parsed.problems


def new_read(data: bytes, skip: bool, block: int) -> Outcome:
    chunks = read_jsonl(io.BytesIO(data), scenario=SCENARIO, source="f.jsonl",
                        skip_invalid=skip, block_bytes=block)  # fmt: skip
    try:
        sessions, problems = collect_sessions(chunks, SCENARIO)
    except EventsError as exc:
        return str(exc), [], []
    return None, _summary(sessions), problems


# ------------------------------------------------------------------------------ generated files

_T = st.one_of(
    st.integers(0, 3), st.floats(0, 3, allow_nan=False), st.sampled_from([0.1, 1e-300, 2.5e15])
)
_SIGNAL_VALUE = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=True),
    st.integers(-(2**60), 2**60),
    st.sampled_from([None, 1e308, 9007199254740993, 0.30000000000000004]),
)


@st.composite
def session_records(draw: st.DrawFn, sid: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if draw(st.booleans()):
        meta = draw(st.sampled_from([{}, {"learner": "L1"}, {"learner": "L2", "scenario": "prop",
                                                              "n": 1.5, "tags": ["a", {"b": 2}]}]))
        out.append({"session": sid, "open": meta})  # fmt: skip
    seq, t = draw(st.integers(0, 3)), 0.0
    for _ in range(draw(st.integers(0, 12))):
        seq += draw(st.integers(1, 3))
        t += draw(_T)
        record: dict[str, Any] = {"session": sid, "seq": seq, "t": t,
                                  "event": draw(st.sampled_from(("sample", *EVENTS)))}  # fmt: skip
        if draw(st.integers(0, 3)):
            names = draw(st.lists(st.sampled_from(SIGNALS), unique=True))
            record["signals"] = {n: draw(_SIGNAL_VALUE) for n in names}
        out.append(record)
    if draw(st.booleans()):
        out.append({"session": sid, "close": {"t": t + draw(st.sampled_from([0, 0.5, 7]))}})
    return out


def _dumps(record: dict[str, Any], style: int) -> str:
    if style == 1:
        return json.dumps(record, separators=(",", ":"))
    if style == 2:
        return json.dumps(dict(reversed(record.items())), indent=None, separators=(", ", " : "))
    return json.dumps(record)


@st.composite
def events_files(draw: st.DrawFn) -> bytes:
    """Interleaved sessions' records (each session's in order), as JSON Lines."""
    queues = [draw(session_records(f"S{k}")) for k in range(draw(st.integers(1, 4)))]
    lines: list[str] = []
    while any(queues):
        q = draw(st.sampled_from([q for q in queues if q]))
        lines.append(_dumps(q.pop(0), draw(st.integers(0, 2))))
        if draw(st.integers(0, 15)) == 0:
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    return (ending.join(lines) + draw(st.sampled_from([ending, ""]))).encode()


BLOCKS = st.sampled_from([1, 64, 300, 4096, 1 << 20])


@settings(max_examples=100, deadline=None)
@given(events_files(), BLOCKS, st.booleans())
def test_generated_files_read_as_the_line_reader_reads_them(
    data: bytes, block: int, skip: bool
) -> None:
    assert new_read(data, skip, block) == old_read(data, skip)


# ------------------------------------------------------------------------------- mangled lines

_MANGLES = [
    lambda r: r.replace('"seq": ', '"seq": null, "x": ', 1),
    lambda r: r.replace('"signals": {', '"signals": null, "s": {', 1),
    lambda r: r.replace('"t": ', '"t": -', 1),
    lambda r: r.replace('"t": ', '"t": -0, "q": ', 1).replace('"q": ', "", 1),
    lambda r: r.replace('"seq": ', '"seq": 1.0, "seq": ', 1),
    lambda r: r.replace('"seq": ', '"seq": 99999999999999999999, "k": ', 1),
    lambda r: r.replace('"t": ', '"t": NaN, "k": ', 1),
    lambda r: r.replace('"x": ', '"x": Infinity, "k": ', 1),
    lambda r: r.replace('"x": ', '"x": -0.0, "k": ', 1),
    lambda r: r.replace('"x": ', '"x": true, "k": ', 1),
    lambda r: r.replace('"x": ', '"w": ', 1),
    lambda r: r.replace('"event": "', '"event": "zz', 1),
    lambda r: r.replace('"session": "', '"session": "/', 1),
    lambda r: r.replace('"session": "S', '"session": "\\u0053', 1),
    lambda r: r.replace('"open": ', '"open": null, "o": ', 1),
    lambda r: r.replace('"close": {', '"close": {"t": null, "u": 1, "v": ', 1),
    lambda r: r.replace('"learner": "', '"learner": "-', 1),
    lambda r: r.replace("}", "", 1),
    lambda r: r[: len(r) // 2],
    lambda r: r + " x",
    lambda r: "\ufeff" + r,
    lambda r: r.replace(", ", ",\r", 1),
    lambda r: r.replace('"', "'", 2),
    lambda r: "[" + r + "]",
    lambda r: "null",
    lambda r: r.replace('"seq": ', '"seq": "1", "k": ', 1),
    lambda r: r.replace("{", '{"open": {}, ', 1),
    lambda r: r.replace('"t": ', '"t": 1e400, "k": ', 1),
    lambda r: r.replace('"t": ', '"t": 0.5, "k": ', 1),
]


@settings(max_examples=150, deadline=None)
@given(events_files(), st.data(), BLOCKS, st.booleans())
def test_mangled_lines_give_the_line_readers_messages(
    data: bytes, draw: st.DataObject, block: int, skip: bool
) -> None:
    lines = data.decode().split("\n")
    for _ in range(draw.draw(st.integers(1, 3))):
        at = draw.draw(st.integers(0, len(lines) - 1))
        mangle = draw.draw(st.sampled_from(_MANGLES))
        lines[at] = mangle(lines[at])
    if draw.draw(st.integers(0, 4)) == 0:  # a duplicated line: seq and order errors
        at = draw.draw(st.integers(0, len(lines) - 1))
        lines.insert(at, lines[draw.draw(st.integers(0, len(lines) - 1))])
    mangled = "\n".join(lines).encode()
    assert new_read(mangled, skip, block) == old_read(mangled, skip)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), BLOCKS, st.booleans())
def test_arbitrary_bytes_give_the_line_readers_messages(
    data: bytes, block: int, skip: bool
) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return  # the line reader raised a traceback there (see test_inputs_registry)
    assert new_read(data, skip, block) == old_read(data, skip)


# --------------------------------------------------------------------------------- the columns


def test_a_clean_simulated_block_is_read_as_columns() -> None:
    """The column path is taken on ordinary files (so the comparisons above test it), negative
    zeros written as floats included (a noisy simulator writes them; they sent every block the
    exact way, at a tenth of the speed)."""
    text = "\n".join(
        json.dumps({"session": "S1", "seq": i, "t": i / 10, "event": "sample",
                    "signals": {"x": 1.5, "y": i, "z": -0.0}})
        for i in range(100)
    ) + "\n"  # fmt: skip
    assert jsonl_columns.read_block(text.encode(), Ledger(), SCENARIO) is not None


@pytest.mark.parametrize(
    "line",
    [
        b'{"session": "S1", "seq": 0, "t": 0, "event": "sample", "signals": null}\n',
        b'{"session": "S1", "seq": 0, "t": 0, "event": "sample"}\r{"session": "S1"}\n',
        b'\xef\xbb\xbf{"session": "S1", "seq": 0, "t": 0, "event": "sample"}\n',
    ],
)
def test_bytes_where_the_parsers_may_differ_go_the_exact_way(line: bytes) -> None:
    assert jsonl_columns.read_block(line, Ledger(), SCENARIO) is None


# ---------------------------------------------------------------------------------- the scores


@settings(max_examples=8, deadline=None)
@given(rubrics(), events_files(), BLOCKS)
def test_streamed_chunks_score_as_whole_sessions(rubric: Rubric, data: bytes, block: int) -> None:
    error, _, _ = old_read(data, False)
    if error is not None:
        return
    lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    sessions = list(parse_events_lines(lines, scenario=SCENARIO).sessions.values())
    before = [r.to_data() for r in score_sessions(rubric, SCENARIO, sessions)]
    chunks = read_jsonl(io.BytesIO(data), scenario=SCENARIO, source="f", block_bytes=block)
    after = score_chunks(compile_rubric(rubric, SCENARIO), chunks)
    assert [r.to_data() for r in after.reports] == before
    assert after.n_events == sum(len(s.events) for s in sessions)
    assert not any(math.isnan(x) for s in sessions for e in s.events for x in e.signals.values())


# ------------------------------------------------------------------------- the shipped rubrics

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["forklift-load-handling", "haul-truck-surface", "lhd-underground", "network-lab"]


def _interleaved(lines: list[str]) -> list[str]:
    """Round-robin over the sessions' lines (each session's order kept)."""
    by_session: dict[str, list[str]] = {}
    for ln in lines:
        by_session.setdefault(json.loads(ln)["session"], []).append(ln)
    queues = list(by_session.values())
    out: list[str] = []
    while any(queues):
        for q in queues:
            out.extend(q[:7])
            del q[:7]
    return out


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_rubrics_print_byte_equal_reports(tmp_path: Path, name: str) -> None:
    rubric, scenario = load_rubric(ROOT / "rubrics" / f"{name}.yaml")
    batch = simulate(scenario, "mixed", 3, seed=11, options=SensorOptions(noise=1.0, drop=0.2))
    lines = _interleaved(list(jsonl_lines(batch)))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    parsed = parse_events_lines(lines, scenario=scenario)
    before = score_sessions(rubric, scenario, list(parsed.sessions.values()))
    expected = dumps({"sessions": [r.to_data() for r in before]}, indent=2) + "\n"
    result = CliRunner().invoke(
        main, ["score", "--rubric", str(ROOT / "rubrics" / f"{name}.yaml"), "--json", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert result.output == expected


@pytest.mark.parametrize(
    ("signals", "events"),
    [({}, {}), ({"speed": {"unit": "m/s", "range": [0, 20]}}, {"horn": "sounded"})],
    ids=["no_signals_no_events", "signals_and_events"],
)
def test_the_reader_warms_up_on_any_scenario(
    signals: dict[str, Any], events: dict[str, str]
) -> None:
    """`warm_up_reader` (what `serve` runs before it starts) reads its small file for any
    valid scenario, one without signals or events included: a scenario it could not read
    would stop `serve` from starting."""
    from assessengine.core.scenario import Scenario  # noqa: PLC0415
    from assessengine.inputs.jsonl import warm_up_reader  # noqa: PLC0415

    scenario = Scenario.model_validate({"scenario": "bare-lab", "title": "Bare",
                                        "signals": signals, "events": events})  # fmt: skip
    warm_up_reader(scenario)
