"""Rubric test files (`NAME.tests.yaml`): every malformed file gives exact FILE:LINE:COL lines,
all of them in one run, in file order; a valid file gives the examples as written.

Each fixture is a whole test file for the shipped forklift rubric; line numbers in the
expectations are those of the text as written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_rubric
from assessengine.adapters.rubric_tests_file import (
    check_tests_file,
    example_sessions,
    files_for,
    path_of_tests,
    rubric_of_tests,
)
from assessengine.core.events import Event
from assessengine.core.rubric_tests import Row, RubricTests, validate_tests
from assessengine.errors import LocatedProblem

REPO = Path(__file__).resolve().parents[1]
RUBRIC_PATH = REPO / "rubrics" / "forklift-load-handling.yaml"
RUBRIC, SCENARIO = load_rubric(RUBRIC_PATH)


def _check(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "r.tests.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_tests_file(path, RUBRIC, SCENARIO)
    assert all(p.location.file == str(path) for p in result.problems)
    return [f"{p.location.line}:{p.location.column}: {p.message}" for p in result.problems]


def test_a_valid_file_reads_rows_as_events_with_seq_by_row(tmp_path: Path) -> None:
    text = """\
rubric: forklift-load-handling
examples:
  - name: horn in time
    events:
      - [0, {speed: 0, load: 0}]
      - [1.5, horn]
      - ["2s", intersection_entered, {speed: 3, load: null}]
    close: 1min
    observations: {looks_before_reversing: pass}
    expect:
      horn_at_intersections: pass
      loaded_speed: {verdict: pass, t: 60, seq: 2}
    outcome: fail
    score: 50
"""
    path = tmp_path / "r.tests.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_tests_file(path, RUBRIC, SCENARIO)
    assert result.problems == ()
    assert result.tests is not None
    (example,) = result.tests.examples
    assert example.events == (
        Row(0.0, "sample", {"speed": 0.0, "load": 0.0}),
        Row(1.5, "horn"),
        Row(2.0, "intersection_entered", {"speed": 3.0, "load": None}),
    )
    (session,) = example_sessions(result.tests, SCENARIO)
    assert session.events == [
        Event(0, 0.0, "sample", {"speed": 0.0, "load": 0.0}),
        Event(1, 1.5, "horn", {}),
        Event(2, 2.0, "intersection_entered", {"speed": 3.0}),
    ]
    assert session.end_t == 60.0
    assert example.expect["loaded_speed"].seq == 2
    assert example.expect["horn_at_intersections"].verdict == "pass"


def test_every_problem_is_reported_in_one_run_in_file_order(tmp_path: Path) -> None:
    text = """\
rubric: forklift-load-handling
examples:
  - name: late horn
    events:
      - [0, engine_start]
      - [1, {speed: 3, lod: 2}]
      - [0.5, hron]
      - [2, speed]
    expect:
      horn_at_intersection: fail
      loaded_speed: passs
  - name: late horn
    simulate: {profile: speedr, seed: 3}
    expect: {loaded_speed: fail}
"""
    assert _check(tmp_path, text) == [
        "6:24: unknown signal 'lod' (did you mean 'load'?)",
        "7:10: t=0.5 is before the row above (t=1); write the rows in time order",
        "7:15: unknown event 'hron' (did you mean 'horn'?)",
        "8:13: 'speed' is a signal of scenario 'forklift-warehouse', not an event",
        "10:7: unknown criterion 'horn_at_intersection' (did you mean 'horn_at_intersections'?)",
        "11:21: expected one of pass, fail, pending, not_applicable, got 'passs' "
        "(did you mean 'pass'?)",
        "12:11: duplicate example name 'late horn' (first at line 3)",
        "13:25: unknown profile 'speedr' (did you mean 'speeder'?)",
    ]


HEAD = "examples:\n  - name: e\n"  # the example's other keys start at line 3

BAD = [
    pytest.param(
        HEAD + "    events:\n      - [zero, horn]\n    expect: {no_collisions: pass}\n",
        [
            "4:10: expected the time t in seconds (a number >= 0, or a duration such as "
            "1.5min), got 'zero'"
        ],
        id="time-not-a-number",
    ),
    pytest.param(
        HEAD + "    events:\n      - [1, horn, {speed: 1}, 4]\n    outcome: pass\n",
        [
            "4:9: a row is [t, event], [t, event, {signal: value}] or [t, {signal: value}]; "
            "got a list of 4"
        ],
        id="row-too-long",
    ),
    pytest.param(
        HEAD + "    events:\n      - horn\n    outcome: pass\n",
        [
            "4:9: a row is [t, event], [t, event, {signal: value}] or [t, {signal: value}]; "
            "got 'horn'"
        ],
        id="row-not-a-list",
    ),
    pytest.param(
        HEAD + "    events:\n      - [1, {speed: fast}]\n    outcome: pass\n",
        ["4:21: expected a number or null, got 'fast'"],
        id="signal-not-a-number",
    ),
    pytest.param(
        HEAD + "    events:\n      - [1, horn]\n",
        ["2:5: an example needs `expect`, `outcome` or `score`: what it checks"],
        id="nothing-expected",
    ),
    pytest.param(
        HEAD + "    outcome: pass\n",
        ["2:5: an example needs exactly one of `events` or `simulate`"],
        id="no-session",
    ),
    pytest.param(
        HEAD + "    simulate: {profile: speeder}\n    close: 10\n    outcome: pass\n",
        ["2:5: `close` goes with `events` (a simulated session closes itself)"],
        id="close-with-simulate",
    ),
    pytest.param(
        HEAD + "    events: [[5, horn]]\n    close: 2\n    outcome: pass\n",
        ["4:12: close t=2 is before the last row (t=5)"],
        id="close-before-last-row",
    ),
    pytest.param(
        HEAD + "    events: [[5, horn]]\n    expect: {no_collisions: pending}\n",
        [
            "4:29: 'no_collisions' is decided by the rubric, so it is never pending after the "
            "close; expect pass, fail or not_applicable"
        ],
        id="pending-machine-criterion",
    ),
    pytest.param(
        HEAD + "    events: [[5, horn]]\n    observations: {no_collisions: pass}\n"
        "    outcome: pass\n",
        [
            "4:20: 'no_collisions' is not an `observed` criterion: the rubric decides it, "
            "an assessor does not"
        ],
        id="observation-of-a-machine-criterion",
    ),
    pytest.param(
        HEAD + "    events: [[5, horn]]\n    expect: {no_collisions: pass}\n    outcom: pass\n",
        ["5:5: unknown key 'outcom' (did you mean 'outcome'?)"],
        id="unknown-key",
    ),
    pytest.param(
        "rubric: haul-truck-surface\n" + HEAD + "    events: [[5, horn]]\n    outcome: pass\n",
        [
            "1:9: these tests are for rubric 'haul-truck-surface', but the rubric beside them "
            "is 'forklift-load-handling'"
        ],
        id="other-rubric",
    ),
    pytest.param("examples: []\n", ["1:11: needs at least 1 item"], id="no-examples"),
    pytest.param(
        "",
        ["1:1: the file is empty; a test file starts with 'examples:'"],
        id="empty",
    ),
    pytest.param(
        HEAD + "    events: [[1, horn]\n",
        [
            "4:1: YAML syntax error: the '[' list opened at line 3 needs ',' between items "
            "and a closing ']'"
        ],
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_malformed_test_files_give_located_problems(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    assert _check(tmp_path, text) == expected


def test_the_tests_of_a_rubric_are_beside_it_and_each_rubric_is_named_once() -> None:
    rubric = Path("rubrics/a.yaml")
    tests = Path("rubrics/a.tests.yaml")
    assert path_of_tests(rubric) == tests
    assert rubric_of_tests(tests) == rubric
    other = Path("rubrics/b.yaml")
    assert files_for([rubric, tests, other]) == [
        (rubric, tests),
        (other, Path("rubrics/b.tests.yaml")),
    ]
    assert files_for([tests]) == [(rubric, tests)]


def test_the_schema_accepts_a_row_in_each_form() -> None:
    schema = RubricTests.model_json_schema()
    row = schema["$defs"]["Example"]["properties"]["events"]["anyOf"][0]["items"]
    assert row["prefixItems"][0]["anyOf"][0] == {"type": "number", "minimum": 0}
    expect = schema["$defs"]["Example"]["properties"]["expect"]
    (verdicts,) = expect["patternProperties"].values()
    assert {"$ref": "#/$defs/ExpectedVerdict"} in verdicts["anyOf"]


VALID = (REPO / "rubrics" / "forklift-load-handling.tests.yaml").read_text(encoding="utf-8")
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PIECES = ["[", "]", "{", "}", ",", ": ", "- ", "\n", "\n  ", "null", "-1", "1e400", "#", "'"]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = min(len(text), start + draw(st.integers(0, 30)))
        piece = draw(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)))
        text = text[:start] + piece + text[end:]
    return text


@FUZZ
@given(text=_mutated())
def test_fuzzed_test_files_give_a_parse_or_located_problems(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.tests.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_tests_file(path, RUBRIC, SCENARIO)
    assert all(isinstance(p, LocatedProblem) for p in result.problems)
    assert all(p.location.line >= 1 and p.location.column >= 1 for p in result.problems)
    assert (result.tests is not None) == (not result.problems)


@settings(max_examples=300, deadline=None)
@given(data=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                         lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                         max_leaves=20))  # fmt: skip
def test_any_data_validates_or_gives_problems(data: object) -> None:
    tests, problems = validate_tests({"examples": [{"name": "x", "events": data}]})
    assert (tests is None) == bool(problems)


def test_limits_of_a_test_file_are_located_problems() -> None:
    rows = [[0, "horn"]] * 100_001
    _, problems = validate_tests({"examples": [{"name": "x" * 201, "events": rows,
                                                "outcome": "pass"}]})  # fmt: skip
    assert [(p.path, p.message) for p in problems] == [
        (("examples", 0, "name"), "at most 200 characters, got 201"),
        (("examples", 0, "events"), "at most 100,000 items, got 100,001"),
    ]
