"""`rubric check`: every bad rubric gives exact FILE:LINE:COL: message lines; good ones pass.

Each bad fixture below is a whole rubric file; line numbers in the expectations are those of
the text as written (HEAD is lines 1-5, so the criteria start at line 6).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from assessengine.adapters.library import check_rubric_file, load_rubric
from assessengine.cli import main
from assessengine.core.check import check_rubric
from assessengine.core.scenario import Scenario
from assessengine.errors import RubricError

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
SHIPPED = REPO / "rubrics" / "forklift-load-handling.yaml"

HEAD = """\
rubric: t
version: 1
title: T
scenario: forklift-warehouse
criteria:
"""

MACHINE_HEAD = (
    HEAD
    + """\
  - id: m
    title: M
    machine:
"""
)  # the machine's keys start at line 9

COMPETENCIES = """\
rubric: t
version: 1
title: T
scenario: forklift-warehouse
competencies:
  - {code: MH-101, name: Inspection}
  - {code: MH-102, name: Travel}
criteria:
"""  # the criteria start at line 9


def _write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    folder = tmp_path / "rubrics"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str) -> list[str]:
    """'LINE:COL: message' for each problem of `text` checked as a rubric file."""
    result = check_rubric_file(_write(tmp_path, text), scenario_dirs=(SCENARIOS,))
    assert all(p.location.file.endswith("r.yaml") for p in result.problems)
    return [f"{p.location.line}:{p.location.column}: {p.message}" for p in result.problems]


BAD = [
    # ------------------------------------------------------------------ keys and types
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: speed > 8\n    fro: 1s\n",
        ["9:5: unknown key 'fro' (did you mean 'for'?)"],
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        "rubric: t\nversion: 1\ntitel: T\nscenario: forklift-warehouse\ncriteria:\n"
        "  - {id: c, title: C, never: speed > 8}\n",
        ["1:1: missing required key 'title'", "3:1: unknown key 'titel' (did you mean 'title'?)"],
        id="unknown-top-level-key-and-missing-key",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    count: {event: horn, min: 1, most: 2}\n",
        ["8:34: unknown key 'most' (allowed: event, when, min, max)"],
        id="unknown-key-allowed-list",
    ),
    pytest.param(
        HEAD.replace("version: 1", "version: abc") + "  - {id: c, title: C, never: speed > 8}\n",
        ["2:10: expected an integer, got 'abc'"],
        id="version-not-an-integer",
    ),
    pytest.param(
        HEAD + "  - id: c\n    never: speed > 8\n",
        ["6:5: missing required key 'title'"],
        id="criterion-missing-title",
    ),
    pytest.param(
        HEAD.replace("version: 1\n", "") + "  - {id: c, title: C, never: speed > 8}\n",
        ["1:1: missing required key 'version'"],
        id="rubric-missing-version",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: 2024\n    never: speed > 8\n",
        ["7:12: expected text, got 2024 (put it in quotes)"],
        id="title-is-a-number",
    ),
    pytest.param(
        HEAD.replace("rubric: t", "rubric: Forklift Test")
        + "  - {id: c, title: C, never: speed > 8}\n",
        ["1:9: 'Forklift Test' is not a valid id: use lowercase letters, digits and '-'"],
        id="rubric-id-pattern",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: speed > 8\n    allow: -1\n",
        ["9:12: must be at least 0, got -1"],
        id="allow-negative",
    ),
    pytest.param(
        HEAD + "  - {id: c, title: C, never: speed > 8}\npass:\n  min_score: 120\n",
        ["8:14: must be at most 100, got 120"],
        id="min-score-above-100",
    ),
    pytest.param(
        HEAD + "  - just a sentence\n",
        ["6:5: expected a mapping (key: value), got 'just a sentence'"],
        id="criterion-not-a-mapping",
    ),
    pytest.param(
        HEAD + "  []\n",
        ["6:3: needs at least 1 item"],
        id="no-criteria",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    all_before: {events: inspect_tyres, before: horn}\n",
        ["8:26: expected a list, got 'inspect_tyres' (for a list of one, write [inspect_tyres])"],
        id="list-expected-with-hint",
    ),
    # -------------------------------------------------------------- template shape
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: speed > 8\n    always: load < 9\n",
        [
            "6:5: a criterion needs exactly one template key (never, always, all_before, "
            "sequence, count, response, precede, duration, metric, observed, machine); "
            "found never, always"
        ],
        id="two-templates",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never:\n    for: 2s\n",
        ["8:5: 'never' has no value; write its condition or settings"],
        id="template-without-value",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    sequence: [seatbelt_on, seat belt off]\n",
        ["8:29: 'seat belt off' is not an event name (letters, digits, '_')"],
        id="step-not-an-event-name",
    ),
    pytest.param(
        MACHINE_HEAD
        + "      initial: idle\n      states:\n        idle:\n"
        + "          - {on: engine_start, to: pass}\n        car-park:\n"
        + "          - {on: collision, to: fail}\n",
        [
            "13:9: 'car-park' is not a valid name: use letters, digits and '_', "
            "not starting with a digit"
        ],
        id="state-name-pattern",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    critical: true\n    points: 5\n    never: speed > 8\n",
        [
            "9:5: a critical criterion has no points: remove `points` (a critical criterion is "
            "a gate, not a weight)"
        ],
        id="critical-with-points",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: speed > 8\n    for: 3 seconds\n",
        ["9:10: expected a duration such as 2s, 500ms, 1.5min or 1h, got '3 seconds'"],
        id="bad-duration",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    metric: {aggregate: average, of: speed, at_most: 3}\n",
        ["8:25: expected one of max, min, mean, sum, last, count, time_true, got 'average'"],
        id="enum-aggregate",
    ),
    pytest.param(
        MACHINE_HEAD
        + "      initial: idle\n      at_end: maybe\n      states:\n"
        + "        idle:\n          - {on: engine_start, to: pass}\n",
        ["10:15: expected pass or fail, got 'maybe'"],
        id="enum-at-end",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    sequence: [seatbelt_on, {when: speed > 1, for: 2s}]\n",
        [
            "8:47: unknown key 'for' in a step; a step is an event name or {when: CONDITION}",
        ],
        id="unknown-key-in-step",
    ),
    pytest.param(
        MACHINE_HEAD
        + "      initial: idle\n      states:\n        idle:\n          - {on: engine_start}\n",
        ["12:13: missing required key 'to'"],
        id="transition-without-to",
    ),
    # ------------------------------------------------------------------ conditions
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: speed > 8 && load > 0\n",
        ["8:22: bad condition: unexpected character '&' (use 'and', 'or', 'not')"],
        id="condition-plain",
    ),
    pytest.param(
        HEAD + '  - id: c\n    title: C\n    never: "speed >> 8"\n',
        ["8:20: bad condition: expected a value, found '>'"],
        id="condition-double-quoted",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: 'speed = 3'\n",
        ["8:19: bad condition: unexpected character '=' (use '==' to compare)"],
        id="condition-single-quoted",
    ),
    pytest.param(
        HEAD + '  - id: c\n    title: C\n    sequence: [seatbelt_on, {when: "speed >"}]\n',
        ["8:44: bad condition: expected a value, found the end of the condition"],
        id="condition-in-a-step",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: >-\n      speed > 8 and\n      load >> 1\n",
        ["10:13: bad condition: expected a value, found '>'"],
        id="condition-in-a-folded-block",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: speed + 1\n",
        ["8:12: bad condition: expected a condition such as 'speed > 8', got a number expression"],
        id="number-where-a-condition-is-needed",
    ),
    pytest.param(
        HEAD + '  - id: c\n    title: C\n    never: "sped > 8 and load > 0"\n',
        ["8:13: unknown signal 'sped' (did you mean 'speed'?)"],
        id="unknown-signal-did-you-mean",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    always: temperature < 90\n",
        ["8:13: unknown signal 'temperature': scenario 'forklift-warehouse' does not define it"],
        id="unknown-signal",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: collision > 0\n",
        [
            "8:12: 'collision' is an event, not a signal: events are not conditions; to count "
            "or forbid it, use `count: {event: collision, max: 0}` (or `min:`)"
        ],
        id="event-used-as-signal",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: speed > 8 or horn\n",
        [
            "8:25: 'horn' is an event, not a signal: events are not conditions; to count or "
            "forbid it, use `count: {event: horn, max: 0}` (or `min:`)"
        ],
        id="bare-event-in-never",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n"
        "    response: {after: horn, expect: {when: \"speed < 1 or collision\"}, within: 3s}\n",
        [
            "8:58: 'collision' is an event, not a signal: events are not conditions; write the "
            "step as the event itself, `collision`, not {when: ...}"
        ],
        id="bare-event-in-a-step",
    ),
    pytest.param(
        MACHINE_HEAD + "      initial: idle\n      states:\n        idle:\n"
        "          - {when: \"horn and speed > 1\", to: fail}\n",
        [
            "12:21: 'horn' is an event, not a signal: events are not conditions; to react to "
            "it, use `on: horn` in the transition (`when:` for the signals)"
        ],
        id="bare-event-in-a-machine",
    ),
    pytest.param(
        HEAD
        + "  - id: c\n    title: C\n    metric: {aggregate: max, of: abs(mast_tlt), at_most: 5}\n",
        ["8:38: unknown signal 'mast_tlt' (did you mean 'mast_tilt'?)"],
        id="unknown-signal-in-metric-expression",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    response:\n      after: intersection_entered\n"
        '      expect: {when: "speed < 1 or fork_hieght > 0"}\n      within: 5s\n',
        ["10:36: unknown signal 'fork_hieght' (did you mean 'fork_height'?)"],
        id="unknown-signal-in-response-step",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    count: {when: lod > 100, min: 1}\n",
        ["8:19: unknown signal 'lod' (did you mean 'load'?)"],
        id="unknown-signal-in-count",
    ),
    # ---------------------------------------------------------------------- events
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    sequence: [seat_belt_on, engine_start]\n",
        ["8:16: unknown event 'seat_belt_on' (did you mean 'seatbelt_on'?)"],
        id="unknown-event-in-sequence",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    all_before:\n"
        "      events: [inspect_tyres, inspect_mast]\n      before: engine_start\n",
        ["9:31: unknown event 'inspect_mast': scenario 'forklift-warehouse' does not define it"],
        id="unknown-event-in-all-before",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    count: {event: colision, max: 0}\n",
        ["8:20: unknown event 'colision' (did you mean 'collision'?)"],
        id="unknown-event-in-count",
    ),
    pytest.param(
        HEAD
        + "  - id: c\n    title: C\n    precede: {event: intersection, by: horn, within: 5s}\n",
        ["8:22: unknown event 'intersection' (did you mean 'intersection_entered'?)"],
        id="unknown-event-in-precede",
    ),
    pytest.param(
        MACHINE_HEAD
        + "      initial: idle\n      states:\n        idle:\n"
        + "          - {on: engine_started, to: pass}\n",
        ["12:18: unknown event 'engine_started' (did you mean 'engine_start'?)"],
        id="unknown-event-in-machine",
    ),
    pytest.param(
        HEAD
        + "  - id: c\n    title: C\n    duration: {from: pallet_picked, to: speed, max: 2min}\n",
        ["8:41: 'speed' is a signal, not an event"],
        id="signal-used-as-event",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    all_before:\n"
        "      events: [inspect_tyres, engine_start]\n      before: engine_start\n",
        ["9:31: 'engine_start' is also the `before` event: it cannot occur before itself"],
        id="all-before-lists-its-before-event",
    ),
    # ----------------------------------------------------------- ids and competencies
    pytest.param(
        HEAD + "  - {id: c, title: A, never: speed > 8}\n  - {id: c, title: B, never: load > 9}\n",
        ["7:10: duplicate criterion id 'c' (first at line 6)"],
        id="duplicate-criterion-id",
    ),
    pytest.param(
        COMPETENCIES + "  - {id: c, title: C, competency: MH-103, never: speed > 8}\n",
        ["9:35: unknown competency 'MH-103' (the rubric lists: MH-101, MH-102)"],
        id="unknown-competency",
    ),
    pytest.param(
        HEAD + "  - {id: c, title: C, competency: MH-101, never: speed > 8}\n",
        ["6:35: unknown competency 'MH-101'; list it under `competencies` first"],
        id="competency-without-competencies",
    ),
    pytest.param(
        COMPETENCIES.replace("code: MH-102", "code: MH-101")
        + "  - {id: c, title: C, never: speed > 8}\n",
        ["7:12: duplicate competency code 'MH-101' (first at line 6)"],
        id="duplicate-competency-code",
    ),
    # -------------------------------------------------------------------- machines
    pytest.param(
        MACHINE_HEAD
        + "      initial: start\n      states:\n        idle:\n"
        + "          - {on: engine_start, to: pass}\n",
        ["9:16: initial state 'start' is not defined under `states`"],
        id="machine-initial-undefined",
    ),
    pytest.param(
        MACHINE_HEAD
        + "      initial: idle\n      states:\n        idle:\n"
        + "          - {on: engine_start, to: runing}\n          - {on: collision, to: fail}\n",
        ["12:36: state 'runing' is not defined under `states` (nor pass or fail)"],
        id="machine-to-undefined-state",
    ),
    pytest.param(
        MACHINE_HEAD
        + "      initial: idle\n      states:\n        idle:\n"
        + "          - {on: engine_start, to: pass}\n        pass: []\n",
        ["13:9: 'pass' is a built-in terminal state; do not define it"],
        id="machine-defines-pass",
    ),
    pytest.param(
        MACHINE_HEAD
        + "      initial: idle\n      states:\n        idle:\n"
        + "          - {on: engine_start, to: pass}\n        parked:\n"
        + "          - {on: collision, to: fail}\n",
        ["13:9: state 'parked' cannot be reached from the initial state 'idle'"],
        id="machine-unreachable-state",
    ),
    pytest.param(
        MACHINE_HEAD
        + "      initial: idle\n      states:\n        idle:\n"
        + "          - {on: engine_start, to: running}\n          - {on: collision, to: fail}\n"
        + "        running:\n          - {after: 10s, to: running}\n",
        ["14:9: from state 'running' neither pass nor fail can be reached"],
        id="machine-dead-end-state",
    ),
    # ----------------------------------------------------------- scenario and files
    pytest.param(
        HEAD.replace("forklift-warehouse", "forklift-warehous")
        + "  - {id: c, title: C, never: speed > 8}\n",
        ["4:11: unknown scenario 'forklift-warehous' (did you mean 'forklift-warehouse'?)"],
        id="unknown-scenario",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C\n    never: speed > 8\n    never: load > 9\n",
        ["9:5: duplicate key 'never' (first at line 8)"],
        id="duplicate-key",
    ),
    pytest.param(
        HEAD + "  - id: c\n    title: C: the sequel\n    never: speed > 8\n",
        [
            "7:13: YAML syntax error: a ': ' is not allowed here; check the indentation, "
            "or quote text containing ': '"
        ],
        id="yaml-syntax-error",
    ),
    pytest.param(
        HEAD + "  - id: c\n\ttitle: C\n",
        ["7:1: YAML syntax error: a tab character; indent with spaces, not tabs"],
        id="yaml-tab",
    ),
    pytest.param(
        "- rubric: t\n- version: 1\n",
        ["1:1: expected a mapping of keys to values (rubric: ...), got a list"],
        id="top-level-list",
    ),
    pytest.param(
        "# nothing here yet\n",
        ["1:1: the file is empty; a rubric starts with 'rubric: <id>'"],
        id="empty-file",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_rubric_is_reported_at_its_exact_place(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    assert _problems(tmp_path, text) == expected


def test_there_are_at_least_30_distinct_bad_fixtures() -> None:
    assert len({p.values[0] for p in BAD}) == len(BAD) >= 30


def test_problems_are_sorted_by_position_across_kinds(tmp_path: Path) -> None:
    text = (
        HEAD
        + "  - id: c\n    title: C\n    never: sped > 8\n"
        + "  - id: d\n    title: D\n    never: speed > 8\n    fro: 2s\n"
        + "  - id: c\n    title: E\n    never: speed > 9\n    never: speed > 10\n"
    )
    assert _problems(tmp_path, text) == [
        "8:12: unknown signal 'sped' (did you mean 'speed'?)",
        "12:5: unknown key 'fro' (did you mean 'for'?)",
        "13:9: duplicate criterion id 'c' (first at line 6)",
        "16:5: duplicate key 'never' (first at line 15)",
    ]


def test_a_file_line_starts_with_the_path_given(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "  - {id: c, title: C, never: sped > 8}\n")
    result = check_rubric_file(path, scenario_dirs=(SCENARIOS,))
    assert [str(p) for p in result.problems] == [
        f"{path}:6:30: unknown signal 'sped' (did you mean 'speed'?)"
    ]


# ------------------------------------------------------------------------------ good rubrics


def test_shipped_rubric_is_valid() -> None:
    result = check_rubric_file(SHIPPED)
    assert result.problems == ()
    assert result.ok


def test_shipped_rubric_is_what_a_trainer_needs() -> None:
    rubric, scenario = load_rubric(SHIPPED)
    templates = {c.template for c in rubric.criteria}
    assert scenario.scenario == rubric.scenario == "forklift-warehouse"
    assert len(rubric.criteria) >= 8
    assert len(templates) >= 6
    assert {"machine", "observed"} <= templates
    assert any(c.critical for c in rubric.criteria)
    assert all(c.points for c in rubric.criteria if not c.critical)
    assert all(c.competency for c in rubric.criteria)
    assert rubric.pass_.min_score < 100


def test_example_from_the_language_contract_is_valid(tmp_path: Path) -> None:
    text = """\
rubric: forklift-load-handling
version: 3
title: Counterbalance forklift - safe load handling
scenario: forklift-warehouse
competencies:
  - {code: MH-102, name: Safe travel with and without a load}
criteria:
  - id: seatbelt_before_motion
    title: Seatbelt fastened before the truck moves
    competency: MH-102
    critical: true
    sequence: [seatbelt_on, {when: "speed > 0.5"}]
  - id: loaded_speed
    title: Loaded travel at or under 8 km/h
    points: 20
    never: "load > 0 and speed > 8"
    for: 1s
pass:
  min_score: 70
"""
    assert _problems(tmp_path, text) == []


def test_machine_keys_on_and_states_named_like_yaml_booleans_are_text(tmp_path: Path) -> None:
    text = MACHINE_HEAD + (
        "      initial: off\n      at_end: pass\n      states:\n"
        "        off:\n          - {on: engine_start, to: on}\n"
        "        on:\n          - {on: collision, to: fail}\n"
        "          - {on: engine_stop, to: off}\n"
    )
    assert _problems(tmp_path, text) == []
    rubric, _ = load_rubric(_write(tmp_path, text), scenario_dirs=(SCENARIOS,))
    machine = rubric.criteria[0].machine
    assert machine is not None
    assert machine.initial == "off"
    assert machine.states["off"][0].on == "engine_start"


def test_load_rubric_raises_with_every_problem(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "  - {id: c, title: C, never: sped > 8, fro: 1s}\n")
    with pytest.raises(RubricError) as caught:
        load_rubric(path, scenario_dirs=(SCENARIOS,))
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:6:30: unknown signal 'sped' (did you mean 'speed'?)",
        f"{path}:6:40: unknown key 'fro' (did you mean 'for'?)",
    ]


# -------------------------------------------------------------------- core, without files


def _scenario(scenario_id: str) -> Scenario:
    return Scenario.model_validate(
        {
            "scenario": scenario_id,
            "title": "S",
            "signals": {"speed": {"unit": "km/h", "range": [0, 20]}},
            "events": {"horn": "Horn"},
        }
    )


def _data(scenario_id: str) -> dict[str, object]:
    return {
        "rubric": "r",
        "version": 1,
        "title": "R",
        "scenario": scenario_id,
        "criteria": [{"id": "c", "title": "C", "never": "speed > 1"}],
    }


def test_rubric_for_another_scenario_is_a_problem_at_its_scenario_key() -> None:
    rubric, problems = check_rubric(_data("forklift-warehouse"), _scenario("crane-yard"))
    assert rubric is not None
    assert [(p.path, p.message) for p in problems] == [
        (
            ("scenario",),
            "this rubric is for scenario 'forklift-warehouse', but the scenario found is "
            "'crane-yard'",
        )
    ]


def test_without_a_scenario_only_structure_and_rubric_rules_are_checked() -> None:
    data = _data("anything")
    data["criteria"] = [{"id": "c", "title": "C", "never": "nonsense > 1"}]
    assert check_rubric(data, None)[1] == []


def test_condition_problem_carries_the_offset_of_the_name() -> None:
    data = _data("crane-yard")
    data["criteria"] = [{"id": "c", "title": "C", "never": "speed > 1 and spede < 9"}]
    _, problems = check_rubric(data, _scenario("crane-yard"))
    assert [(p.path, p.offset) for p in problems] == [(("criteria", 0, "never"), 14)]


def test_valid_criteria_are_checked_even_when_another_is_malformed() -> None:
    data = _data("crane-yard")
    data["criteria"] = [
        {"id": "c", "title": "C", "never": "sped > 1"},
        {"id": "d", "never": "speed > 1"},
    ]
    rubric, problems = check_rubric(data, _scenario("crane-yard"))
    assert rubric is None
    assert [p.message for p in problems] == [
        "missing required key 'title'",
        "unknown signal 'sped' (did you mean 'speed'?)",
    ]


def test_every_independent_problem_is_reported_in_one_run_in_file_order(tmp_path: Path) -> None:
    text = HEAD + """\
  - id: a
    title: A
    never: "speed > 8"
    fro: 1s
  - id: a
    title: A2
    critical: true
    points: 5
    count: {event: colision, max: 0}
  - id: c
    title: C
    count: {when: "sped > 8", max: 1}
    within: 3s
    for: 1s
pass:
  min_scor: 3
"""
    assert _problems(tmp_path, text) == [
        "9:5: unknown key 'fro' (did you mean 'for'?)",
        "10:9: duplicate criterion id 'a' (first at line 6)",
        "13:5: a critical criterion has no points: remove `points` (a critical criterion is a "
        "gate, not a weight)",
        "14:20: unknown event 'colision' (did you mean 'collision'?)",
        "17:20: unknown signal 'sped' (did you mean 'speed'?)",
        "18:5: `within` at criterion level goes with `sequence` only",
        "19:5: `for` goes with `never` or `always` only",
        "21:3: unknown key 'min_scor' (did you mean 'min_score'?)",
    ]


# --------------------------------------------------------------------------------------- CLI


def test_cli_prints_ok_and_exits_0_for_valid_files() -> None:
    result = CliRunner().invoke(main, ["rubric", "check", str(SHIPPED)])
    assert result.exit_code == 0
    assert result.stdout == f"{SHIPPED}: ok (12 criteria)\n"


def test_cli_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    good = _write(tmp_path, HEAD + "  - {id: c, title: C, never: speed > 8}\n", "good.yaml")
    bad = _write(tmp_path, HEAD + "  - {id: c, title: C, never: sped > 8, fro: 1s}\n", "bad.yaml")
    args = ["rubric", "check", str(good), str(bad), "--scenarios", str(SCENARIOS)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        f"{good}: ok (1 criteria)",
        f"{bad}:6:30: unknown signal 'sped' (did you mean 'speed'?)",
        f"{bad}:6:40: unknown key 'fro' (did you mean 'for'?)",
    ]
    assert "1 of 2 rubric file(s) have problems" in result.stderr


def test_cli_reports_a_missing_file_and_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(main, ["rubric", "check", str(missing)])
    assert result.exit_code == 2
    assert result.stdout == f"{missing}:1:1: cannot read: No such file or directory\n"


def test_cli_needs_at_least_one_file() -> None:
    result = CliRunner().invoke(main, ["rubric", "check"])
    assert result.exit_code == 2
    assert "Missing argument 'FILES...'" in result.output


def test_cli_help_explains_the_output_and_the_scenario_search() -> None:
    result = CliRunner().invoke(main, ["rubric", "check", "--help"])
    assert result.exit_code == 0
    assert "FILE:LINE:COL: message" in result.stdout
    assert "--scenarios DIR" in result.stdout


def test_console_script_runs_in_a_real_process(tmp_path: Path) -> None:
    bad = _write(tmp_path, HEAD + "  - id: c\n    title: C\n    never: speed > 8\n    fro: 1s\n")
    script = Path(sys.executable).with_name("assessengine")
    ok = subprocess.run(
        [str(script), "rubric", "check", str(SHIPPED)], capture_output=True, text=True, check=False
    )
    assert (ok.returncode, ok.stdout) == (0, f"{SHIPPED}: ok (12 criteria)\n")
    failed = subprocess.run(
        [str(script), "rubric", "check", str(bad), "--scenarios", str(SCENARIOS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 2
    assert failed.stdout == f"{bad}:9:5: unknown key 'fro' (did you mean 'for'?)\n"


# ------------------------------------------------------------------- the trainers' guide


def _guide_examples() -> list[str]:
    """The YAML examples of docs/rubrics.md that are whole rubrics or criteria."""
    guide = (REPO / "docs" / "rubrics.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in guide.split("```yaml\n")[1:]]
    return [b for b in blocks if b.startswith(("rubric:", "- id:"))]


def test_the_guide_has_an_example_for_every_template() -> None:
    examples = "\n".join(_guide_examples())
    for template in ("never", "always", "all_before", "sequence", "count", "response"):
        assert f"  {template}:" in examples
    for template in ("precede", "duration", "metric", "observed", "machine"):
        assert f"  {template}:" in examples


@pytest.mark.parametrize("example", _guide_examples())
def test_every_example_in_the_guide_passes_the_check(tmp_path: Path, example: str) -> None:
    if example.startswith("- id:"):
        example = HEAD + "".join(f"  {line}\n" for line in example.splitlines())
    assert _problems(tmp_path, example) == []
