"""`rubric test`: examples run on the kernel and the reference scorer; a failed expectation
names the example, the criterion and its line (exit 1); a malformed file exits 2; coverage
lists what no example reaches."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_scenario, rubric_files
from assessengine.adapters.yaml_source import load_yaml
from assessengine.cli import main
from assessengine.core import kernel_scorer
from assessengine.core.report import SessionReport
from assessengine.core.rubric import Rubric
from assessengine.core.rubric_testing import run_tests
from assessengine.core.rubric_tests import check_tests, table_session
from assessengine.runtime.pipeline import RubricLibrary

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"

RUBRIC = """\
rubric: t
version: 1
title: T
scenario: forklift-warehouse
criteria:
  - id: horn_at_intersections
    title: Horn within 5 s before each intersection
    precede: {event: intersection_entered, by: horn, within: 5s}
  - id: loaded_speed
    title: Loaded at or under 8 km/h
    never: "load > 50 and speed > 8"
    for: 1s
  - id: give_way
    title: Gives way
    critical: true
    machine:
      initial: clear
      at_end: pass
      states:
        clear:
          - {when: "pedestrian_distance < 5", to: near}
        near:
          - {on: collision, to: fail}
          - {when: "pedestrian_distance >= 5", to: clear}
"""

TESTS = """\
rubric: t
examples:
  - name: late horn
    events:
      - [0, {speed: 0, load: 0}]
      - [1, horn]
      - [7, intersection_entered]
    expect:
      horn_at_intersections: {verdict: fail, t: 7, seq: 2}
      loaded_speed: pass
    outcome: fail
    score: 50
  - name: horn exactly 5 s before
    events:
      - [2, horn]
      - [7, intersection_entered]
    expect: {horn_at_intersections: pass, give_way: pass}
"""


def _project(tmp_path: Path, tests: str = TESTS, rubric: str = RUBRIC) -> Path:
    folder = tmp_path / "rubrics"
    folder.mkdir(exist_ok=True)
    (folder / "t.yaml").write_text(rubric, encoding="utf-8")
    (folder / "t.tests.yaml").write_text(tests, encoding="utf-8")
    return folder / "t.yaml"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rubric", "test", *args, "--scenarios", str(SCENARIOS)])
    return result.exit_code, result.stdout


def test_examples_that_hold_on_both_scorers_pass(tmp_path: Path) -> None:
    rubric = _project(tmp_path)
    code, out = _run(str(rubric))
    assert code == 0, out
    assert out.splitlines()[0] == (
        f"{rubric.with_name('t.tests.yaml')}: ok (2 examples, 6 expectations, on the kernel "
        "and the reference scorer)"
    )


def test_a_wrong_expectation_exits_1_naming_example_criterion_and_line(tmp_path: Path) -> None:
    planted = TESTS.replace("{horn_at_intersections: pass,", "{horn_at_intersections: fail,")
    rubric = _project(tmp_path, planted)
    code, out = _run(str(rubric), str(rubric.with_name("t.tests.yaml")))
    assert code == 1
    assert out.splitlines() == [
        f"{rubric.with_name('t.tests.yaml')}:17:37: example 'horn exactly 5 s before': "
        "horn_at_intersections expected fail, got pass (decided at t=7 s, seq 1)"
    ]


def test_a_wrong_time_seq_outcome_and_score_are_each_reported(tmp_path: Path) -> None:
    planted = (
        TESTS.replace("{verdict: fail, t: 7, seq: 2}", "{verdict: fail, t: 6, seq: 1}")
        .replace("outcome: fail", "outcome: pass")
        .replace("score: 50", "score: 100")
    )
    tests = _project(tmp_path, planted).with_name("t.tests.yaml")
    code, out = _run(str(tests))
    assert code == 1
    assert out.splitlines() == [
        f"{tests}:9:30: example 'late horn': horn_at_intersections expected fail at t=6 s, "
        "seq 1, got fail (decided at t=7 s, seq 2)",
        f"{tests}:11:14: example 'late horn': outcome expected pass, got fail (score 50.0; "
        "failed: horn_at_intersections)",
        f"{tests}:12:12: example 'late horn': score expected 100, got 50.0",
    ]


def test_a_scorer_disagreement_names_both_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = kernel_scorer.score_sessions

    def wrong_kernel(*args: object) -> list[SessionReport]:
        reports = real(*args)  # type: ignore[arg-type]
        flipped = [
            dataclasses.replace(c, verdict="fail") if c.id == "loaded_speed" else c
            for c in reports[0].criteria
        ]
        return [dataclasses.replace(reports[0], criteria=tuple(flipped)), *reports[1:]]

    monkeypatch.setattr(kernel_scorer, "score_sessions", wrong_kernel)
    rubric = _project(tmp_path)
    code, out = _run(str(rubric))
    assert code == 1
    assert out.splitlines() == [
        f"{rubric.with_name('t.tests.yaml')}:10:21: example 'late horn': loaded_speed expected "
        "pass, got fail (decided at t=7 s, seq 2) on the kernel but pass (decided at t=7 s, "
        "seq 2) on the reference"
    ]


def test_a_malformed_test_file_exits_2_with_located_problems(tmp_path: Path) -> None:
    rubric = _project(tmp_path, TESTS.replace("loaded_speed: pass", "loaded_sped: pass"))
    code, out = _run(str(rubric))
    assert code == 2
    assert out.splitlines() == [
        f"{rubric.with_name('t.tests.yaml')}:10:7: unknown criterion 'loaded_sped' "
        "(did you mean 'loaded_speed'?)"
    ]


def test_a_malformed_file_wins_over_a_failed_one(tmp_path: Path) -> None:
    failing = _project(tmp_path, TESTS.replace("score: 50", "score: 10"))
    other = tmp_path / "rubrics" / "u.yaml"
    other.write_text(RUBRIC.replace("rubric: t", "rubric: u"), encoding="utf-8")
    other.with_name("u.tests.yaml").write_text("examples: 3\n", encoding="utf-8")
    code, out = _run(str(failing), str(other))
    assert code == 2
    assert "score expected 10, got 50.0" in out
    assert f"{other.with_name('u.tests.yaml')}:1:11: expected a list, got 3" in out


def test_a_bad_rubric_is_reported_as_the_checker_does(tmp_path: Path) -> None:
    rubric = _project(tmp_path, rubric=RUBRIC.replace("for: 1s", "fro: 1s"))
    code, out = _run(str(rubric))
    assert code == 2
    assert out.splitlines() == [f"{rubric}:12:5: unknown key 'fro' (did you mean 'for'?)"]


def test_a_rubric_without_tests_is_named_and_not_a_failure(tmp_path: Path) -> None:
    rubric = _project(tmp_path)
    rubric.with_name("t.tests.yaml").unlink()
    code, out = _run(str(rubric))
    assert code == 0
    assert out.splitlines() == [f"{rubric}: no tests (write {rubric.with_name('t.tests.yaml')})"]


def test_coverage_lists_verdicts_states_and_transitions_no_example_reaches(
    tmp_path: Path,
) -> None:
    rubric = _project(tmp_path)
    code, out = _run(str(rubric), "--coverage")
    assert code == 0
    assert out.splitlines()[1:] == [
        f"{rubric}: coverage: pass/fail verdicts 4/6, machine states 1/2, transitions 0/3",
        f"{rubric}:9:9: 'loaded_speed' fails in no example",
        f"{rubric}:13:9: 'give_way' fails in no example",
        f"{rubric}:21:13: 'give_way': transition clear -> near (when pedestrian_distance < 5) "
        "fires in no example",
        f"{rubric}:22:9: 'give_way': state 'near' is entered in no example",
        f"{rubric}:23:13: 'give_way': transition near -> fail (on collision) fires in no example",
        f"{rubric}:24:13: 'give_way': transition near -> clear (when pedestrian_distance >= 5) "
        "fires in no example",
    ]


def test_the_rubrics_of_a_directory_leave_out_their_test_files(tmp_path: Path) -> None:
    rubric = _project(tmp_path)
    assert rubric_files(rubric.parent) == [rubric]
    library, skipped = RubricLibrary.load([rubric.parent], scenario_dirs=[SCENARIOS])
    assert skipped == []
    assert len(library) == 1


def test_a_test_file_named_but_missing_is_a_problem(tmp_path: Path) -> None:
    rubric = _project(tmp_path)
    tests = rubric.with_name("t.tests.yaml")
    tests.unlink()
    code, out = _run(str(tests))
    assert code == 2
    assert out.splitlines() == [f"{tests}:1:1: cannot read: no such file"]


# ================================================================ random tables, both scorers

_SIGNALS = st.dictionaries(
    st.sampled_from(["speed", "load", "pedestrian_distance"]),
    st.one_of(st.none(), st.sampled_from([0, 0.5, 1.5, 3, 4.9, 5, 8, 8.5, 13, 400])),
    max_size=3,
)
_ROWS = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0.5, 1, 1, 2, 5, 7, 12.4]),
        st.sampled_from(["sample", "horn", "intersection_entered", "collision"]),
        _SIGNALS,
    ),
    max_size=12,
)


@settings(max_examples=30, deadline=None)
@given(rows=_ROWS, close_after=st.sampled_from([None, 0, 3]))
def test_random_tables_run_and_both_scorers_agree(
    rows: list[tuple[float, str, dict[str, float | None]]], close_after: float | None
) -> None:
    rubric = Rubric.model_validate(load_yaml(RUBRIC).data)
    scenario = load_scenario("forklift-warehouse", scenario_dirs=[SCENARIOS])
    table = [[t, event, signals] for t, event, signals in sorted(rows, key=lambda r: r[0])]
    close = None if close_after is None or not table else table[-1][0] + close_after
    data = {"examples": [{"name": "random", "events": table, "close": close,
                          "expect": {c.id: "pass" for c in rubric.criteria}}]}  # fmt: skip
    tests, problems = check_tests(data, rubric, scenario)
    assert problems == []
    assert tests is not None
    run = run_tests(rubric, scenario, tests, [table_session(tests.examples[0], "s")])
    assert run.expectations == len(rubric.criteria)
    assert all(" on the kernel " not in f.message for f in run.failures)
