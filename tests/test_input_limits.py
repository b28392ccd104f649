"""Rubric, scenario and policy files at and past the input limits (docs/operations.md, "Limits"):
every number the engine reads is finite and every integer fits where it is stored; anchors,
aliases and deep nesting are refused before anything expands. Each case is one located
problem, from `rubric check` (exit 2) and from an HTTP rubric upload (422) alike."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assessengine.adapters.library import check_rubric_file, load_rubric, load_scenario
from assessengine.adapters.policies import check_policy_file
from assessengine.adapters.yaml_source import MAX_DEPTH
from assessengine.cli import main
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import MAX_RECORD_DEPTH, parse_events_lines
from assessengine.core.expr import MAX_DEPTH as MAX_EXPR_DEPTH
from assessengine.core.offline import score_sessions
from assessengine.errors import EventsError, ScenarioError

from .test_api_support import Api, open_api
from .test_api_uploads import field_log
from .test_score_cli import good_session

REPO = Path(__file__).resolve().parents[1]
RUBRIC = (REPO / "rubrics" / "forklift-load-handling.yaml").read_text(encoding="utf-8")
SCENARIO = (REPO / "scenarios" / "forklift-warehouse.yaml").read_text(encoding="utf-8")
POLICY = (REPO / "credentials" / "forklift-operator.yaml").read_text(encoding="utf-8")

NOT_FINITE = "is not a finite number; write a number such as 100, or put text in quotes"
FINITE = "expected a finite number, got "
INT64 = "the integer is too large (at most 9223372036854775807)"
INT31 = "must be at most 2147483647, got "
VERSIONS = "must be at most 1000000, got "
ALIASES = "aliases and anchors ('*name', '&name') are not allowed; write the value out in full"
NESTING = f"lists and mappings nest more than {MAX_DEPTH} deep here; flatten the file"


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def _alias_bomb(levels: int) -> str:
    lines = ["x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


# (old, new, the new line's fragment, message start): each makes exactly one problem
RUBRIC_CASES = [
    pytest.param("points: 20", "points: .inf", "points: .inf", f"'.inf' {NOT_FINITE}",
                 id="points-inf"),
    pytest.param("points: 20", 'points: "1e400"', "1e400", f"{FINITE}'1e400'",
                 id="points-text-overflow"),
    pytest.param("points: 20", "points: -.inf", "-.inf", f"'-.inf' {NOT_FINITE}",
                 id="points-minus-inf"),
    pytest.param("points: 20", "points: 1.0e+308", "1.0e+308",
                 "must be at most 1000000, got 1e+308", id="points-past-their-bound"),
    pytest.param("min_score: 80", "min_score: .nan", ".nan", f"'.nan' {NOT_FINITE}",
                 id="min-score-nan"),
    pytest.param("min_score: 80", "min_score: 'inf'", "inf", f"{FINITE}'inf'",
                 id="min-score-text-inf"),
    pytest.param("at_most: 10", "at_most: 1.0e+999", "1.0e+999", f"'1.0e+999' {NOT_FINITE}",
                 id="metric-bound-overflow"),
    pytest.param("at_most: 10", "at_most: NaN", "NaN", f"{FINITE}'NaN'",
                 id="metric-bound-text-nan"),
    pytest.param("for: 1s ", "for: .inf ", "for: .inf", f"'.inf' {NOT_FINITE}",
                 id="for-inf"),
    pytest.param("max: 4min", "max: .Inf", ".Inf", f"'.Inf' {NOT_FINITE}",
                 id="duration-inf"),
    pytest.param("within: 5s", "within: 1e400", "1e400",
                 "expected a duration such as 2s, 500ms, 1.5min or 1h, got '1e400'",
                 id="within-text-overflow"),
    pytest.param('"load > 50 and speed > 8"', '"load > 50 and speed > 1e400"', "1e400",
                 "bad condition: number 1e400 is too large", id="condition-number-overflow"),
    pytest.param("version: 1", "version: 9223372036854775808", "version:", INT64,
                 id="version-past-int64"),
    pytest.param("version: 1", "version: 1000001", "version:", f"{VERSIONS}1000001",
                 id="version-past-the-api-s"),
    pytest.param("version: 1", 'version: "99999999999999999999"', "version:",
                 f"{VERSIONS}'99999999999999999999'", id="version-text-past-int64"),
    pytest.param("max: 0}", "max: 9223372036854775807}", "max: 92", f"{INT31}9223372036854775807",
                 id="count-max"),
    pytest.param("allow: 1 ", "allow: 2147483648 ", "allow:", f"{INT31}2147483648",
                 id="allow"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "fragment", "message"), RUBRIC_CASES)
def test_a_number_out_of_range_in_a_rubric_is_one_located_problem(
    tmp_path: Path, old: str, new: str, fragment: str, message: str
) -> None:
    text = _edit(RUBRIC, old, new)
    path = tmp_path / "rubrics" / "r.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    (problem,) = check_rubric_file(path, scenario_dirs=(REPO / "scenarios",)).problems
    assert problem.message.startswith(message), problem.message
    line = _line_of(text, fragment)
    assert problem.location.line == line
    assert 1 < problem.location.column <= len(text.splitlines()[line - 1])


SCENARIO_CASES = [
    pytest.param("range: [0, 20]", "range: [0, .inf]", f"'.inf' {NOT_FINITE}", id="range-inf"),
    pytest.param("range: [0, 20]", "range: [0, '-inf']", f"{FINITE}'-inf'", id="range-text"),
    pytest.param("rate: 10", "rate: .nan", f"'.nan' {NOT_FINITE}", id="rate-nan"),
    pytest.param("version: 1", "version: 1000001", f"{VERSIONS}1000001", id="version"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), SCENARIO_CASES)
def test_a_number_out_of_range_in_a_scenario_is_a_located_problem(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = _edit(SCENARIO, old, new)
    path = tmp_path / "forklift-warehouse.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    (line,) = str(caught.value).splitlines()
    where, found = line.split(": ", 1)
    assert found.startswith(message), found
    key = new.split(":", maxsplit=1)[0]
    assert where.startswith(f"{path}:{_line_of(text, key + ':')}:")


POLICY_CASES = [
    pytest.param("passes: 2", "passes: .inf", f"'.inf' {NOT_FINITE}", id="passes-inf"),
    pytest.param("min_version: 1", "min_version: 9223372036854775808", INT64,
                 id="min-version-past-int64"),
    pytest.param("min_version: 1", "min_version: 1000001", f"{VERSIONS}1000001",
                 id="min-version-past-the-api-s"),
    pytest.param("valid_for: 3 years", "valid_for: 101 years", "a period is at most 100 years",
                 id="valid-for"),
    pytest.param("window: 90 days", "window: 99999999999999999999999 days",
                 "a period is at most 100 years (36525 days)", id="window"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "message"), POLICY_CASES)
def test_a_number_out_of_range_in_a_policy_is_one_located_problem(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = _edit(POLICY, old, new)
    path = tmp_path / "forklift-operator.yaml"
    path.write_text(text, encoding="utf-8")
    (problem,) = check_policy_file(path).problems
    assert problem.message.startswith(message), problem.message
    assert problem.location.line == _line_of(text, new)


# ============================================================================ aliases, depth


def _rubric_with(extra: str) -> str:
    return _edit(RUBRIC, "version: 1\n", "version: 1\n" + extra)


_AFTER_VERSION = _line_of(RUBRIC, "version: 1") + 1  # where _rubric_with's lines start
REFUSED = [
    pytest.param(_rubric_with(_alias_bomb(6)), _AFTER_VERSION, 5, ALIASES, id="alias-bomb"),
    pytest.param(_rubric_with("x: " + "[" * 500 + "]" * 500 + "\n"), _AFTER_VERSION,
                 3 + MAX_DEPTH, NESTING, id="nested-500"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "column", "message"), REFUSED)
def test_rubric_check_refuses_aliases_and_deep_nesting_with_one_line_and_exit_2(
    tmp_path: Path, text: str, line: int, column: int, message: str
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["rubric", "check", str(path)])
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [f"{path}:{line}:{column}: {message}"]


@pytest.mark.parametrize("kind", ["scenario", "policy"])
def test_scenario_and_policy_files_refuse_aliases_too(tmp_path: Path, kind: str) -> None:
    if kind == "scenario":
        path = tmp_path / "forklift-warehouse.yaml"
        path.write_text(_edit(SCENARIO, "version: 1\n", "version: &v 1\n"), encoding="utf-8")
        with pytest.raises(ScenarioError) as caught:
            load_scenario(path)
        line = _line_of(SCENARIO, "version: 1")
        assert str(caught.value) == f"{path}:{line}:10: {ALIASES}"
    else:
        path = tmp_path / "forklift-operator.yaml"
        path.write_text(_edit(POLICY, "passes: 2", "passes: *two"), encoding="utf-8")
        (problem,) = check_policy_file(path).problems
        assert (problem.location.line, problem.message) == (_line_of(POLICY, "passes: 2"),
                                                            ALIASES)  # fmt: skip


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path_factory, tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(_rubric_with(_alias_bomb(6)), ALIASES, id="alias-bomb"),
        pytest.param(_edit(RUBRIC, "points: 20", "points: .inf"), f"'.inf' {NOT_FINITE}",
                     id="points-inf"),
        pytest.param(_edit(RUBRIC, "version: 1", "version: 9223372036854775808"), INT64,
                     id="version-past-int64"),
    ],
)  # fmt: skip
def test_an_uploaded_rubric_past_a_limit_is_refused_with_its_place(
    api: Api, text: str, message: str
) -> None:
    answer = api.post("/api/v1/rubrics", "trainer", files={"file": ("r.yaml", text.encode())})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert error["reason"] == message
    assert error["line"] > 1


# ================================================================================ events files

DEEP = "[" * 5000 + "]" * 5000
SEQ_RANGE = "'seq' must be an integer from 0 to 9223372036854775807, got "
EVENT = {"session": "S1", "seq": 9, "t": 0.5, "event": "sample"}
TOO_DEEP = f"the record nests more than {MAX_RECORD_DEPTH} levels deep"


def _record(**fields: object) -> str:
    return json.dumps({**EVENT, **fields})


JSONL_CASES = [
    pytest.param(_record(seq=2**64), f"{SEQ_RANGE}18446744073709551616", id="seq-past-64-bits"),
    pytest.param(_record(seq=2**63), f"{SEQ_RANGE}9223372036854775808", id="seq-past-int64"),
    pytest.param(_record(t=10**400), "'t' must be finite, got 1" + "0" * 36 + "...",
                 id="t-past-float"),
    pytest.param(_record(signals={"speed": 10**400}), "signal 'speed' is infinite",
                 id="signal-past-float"),
    pytest.param(_record().replace('"seq": 9', '"seq": ' + "9" * 5000),
                 "not valid JSON (Exceeds the limit (4300 digits)", id="seq-5000-digits"),
    pytest.param(_record()[:-1] + f', "signals": {{"speed": {DEEP}}}}}', TOO_DEEP,
                 id="value-5000-deep"),
    pytest.param(json.dumps({"session": "S1", "open": {"x": 0}}).replace("0", DEEP), TOO_DEEP,
                 id="open-5000-deep"),
    pytest.param(DEEP, TOO_DEEP, id="line-5000-deep"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "message"), JSONL_CASES)
def test_an_events_line_past_a_limit_is_named_and_score_exits_2(
    tmp_path: Path, bad: str, message: str
) -> None:
    lines = good_session()
    lines.insert(2, bad)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rubric = REPO / "rubrics" / "forklift-load-handling.yaml"
    result = CliRunner().invoke(main, ["score", "--rubric", str(rubric), str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}:3: {message}"), result.stderr[:300]
    assert len(result.stderr.splitlines()) == 1


def test_a_record_nested_up_to_the_limit_is_read_as_json() -> None:
    nested = "[" * (MAX_RECORD_DEPTH - 2) + "]" * (MAX_RECORD_DEPTH - 2)
    bad = _record()[:-1] + f', "signals": {{"speed": {nested}}}}}'
    with pytest.raises(EventsError) as caught:
        parse_events_lines([bad])
    assert str(caught.value) == (
        "<events>:1: signal 'speed' must be a number or null, got " + "[" * 37 + "..."
    )


def _log_lines() -> list[str]:
    return field_log(seed=11)[1].splitlines()


def _upload(api: Api, name: str, text: str) -> Any:
    return api.post("/api/v1/field-sessions", "assessor",
                    files={"file": (name, text.encode())},
                    data={"learner": "learner-x", "rubric": "forklift-load-handling"})  # fmt: skip


def test_an_uploaded_jsonl_log_past_a_limit_is_422_with_its_line(api: Api) -> None:
    lines = _log_lines()
    first = json.loads(lines[1])
    cases = {
        1: DEEP,  # the first line, which the upload reads for its `open` object too
        2: json.dumps({**first, "seq": 2**64}),
        3: json.dumps({**first, "signals": {"speed": 10**400}}),
    }
    for number, bad in cases.items():
        text = "\n".join([*lines[: number - 1], bad, *lines[number:]]) + "\n"
        answer = _upload(api, "log.jsonl", text)
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["errors"]
        assert error["line"] == number


CSV_HEAD = "t,seq,event,speed\n0,0,,1\n"


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        ("1,inf,,1", 2, "seq must be a whole number from 0 to 9223372036854775807, got 'inf'"),
        ("1,1e400,,1", 2, "seq must be a whole number from 0 to 9223372036854775807, got '1e400'"),
        ("1,-1,,1", 2, "seq must be a whole number from 0 to 9223372036854775807, got '-1'"),
        ("1,1.5,,1", 2, "seq must be a whole number from 0 to 9223372036854775807, got '1.5'"),
        ("1,1e19,,1", 2, "seq must be a whole number from 0 to 9223372036854775807, got '1e19'"),
        ("1e400,1,,1", 1, "t must be finite and >= 0, got inf"),
        ("1,1,,1e400", 4, "speed is infinite"),
    ],
)
def test_an_uploaded_csv_cell_out_of_range_is_422_with_line_and_column(
    api: Api, row: str, column: int, reason: str
) -> None:
    answer = _upload(api, "log.csv", CSV_HEAD + row + "\n")
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert (error["line"], error["column"], error["reason"]) == (3, column, reason)


def test_an_uploaded_csv_cell_past_the_csv_field_limit_is_422_with_its_line(api: Api) -> None:
    answer = _upload(api, "log.csv", CSV_HEAD + "1,1,," + "9" * 131_073 + "\n")
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert (error["line"], error["reason"]) == (3, "a cell is longer than 131072 characters")


# ================================================================= deepest accepted conditions


def _deepest_conditions() -> list[str]:
    """One condition per way of nesting, each exactly MAX_EXPR_DEPTH levels deep."""
    d = MAX_EXPR_DEPTH
    return [
        "(" * d + "speed > 1" + ")" * d,
        "not " * (d - 2) + "speed > 1",
        "-" * (d - 2) + "speed > 1",
        "abs(" * (d - 2) + "speed" + ")" * (d - 2) + " > 1",
        " and ".join(["speed > 1"] * (d - 1)),
        " or ".join(["load > 1"] * (d - 1)),
        " + ".join(["speed"] * (d - 1)) + " > 1",
        " * ".join(["load"] * (d - 1)) + " > 1",
    ]


def test_the_deepest_accepted_conditions_check_compile_and_score_on_both_engines(
    tmp_path: Path,
) -> None:
    """Every recursive walk (checker, compiler, masks, kernel and reference scorers) of the
    deepest trees the parser accepts stays inside the recursion limit, with room to spare: all
    of it runs here under a limit of 700 frames above this test's own."""
    criteria = "".join(
        f"  - id: deep_{k}\n    title: Deep {k}\n    never: \"{text}\"\n"
        for k, text in enumerate(_deepest_conditions())
    )
    text = (
        "rubric: deep\nversion: 1\ntitle: Deep\nscenario: forklift-warehouse\ncriteria:\n"
        + criteria
    )
    path = tmp_path / "rubrics" / "deep.yaml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    lines = good_session()
    parsed = parse_events_lines(lines)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 700)
    try:
        rubric, scenario = load_rubric(path, scenario_dirs=(REPO / "scenarios",))
        compile_rubric(rubric, scenario)
        kernel = score_sessions(rubric, scenario, list(parsed.sessions.values()))
        reference = score_sessions(rubric, scenario, list(parsed.sessions.values()),
                                   engine="reference")  # fmt: skip
    finally:
        sys.setrecursionlimit(limit)
    assert [r.to_data() for r in kernel] == [r.to_data() for r in reference]
    verdicts = {c.id: c.verdict for c in kernel[0].criteria}
    assert verdicts["deep_0"] == "fail"  # speed 5 > 1 at the samples
