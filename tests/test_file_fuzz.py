"""Fuzzing the readers of trainers' files: arbitrary text and mutations of the shipped rubric,
scenario and policy files (hypothesis). Whatever the text, the outcome is a parse or located
problems (`FILE:LINE:COL: message`), never another exception; a rubric that passes the check
also compiles. Conditions alone: a parse or an `ExprError` with an offset inside the text.

Example counts: 200 arbitrary texts + 200 mutated rubrics, 100 + 100 scenarios, 100 + 100
policies, 500 conditions.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import check_rubric_file, load_scenario
from assessengine.adapters.policies import check_policy_file
from assessengine.core.compiler import compile_rubric
from assessengine.core.expr import ExprError, parse
from assessengine.errors import LocatedProblem, ScenarioError

REPO = Path(__file__).resolve().parents[1]
RUBRIC = (REPO / "rubrics" / "forklift-load-handling.yaml").read_text(encoding="utf-8")
SCENARIO = (REPO / "scenarios" / "forklift-warehouse.yaml").read_text(encoding="utf-8")
POLICY = (REPO / "credentials" / "forklift-operator.yaml").read_text(encoding="utf-8")

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip

# pieces that YAML, the models and the condition language treat specially
PIECES = [
    "&a ", "*a", "<<: *a", "!!python/object ", "!!int ", "!!float ", "!!bool ", "!!timestamp ",
    "!!binary ", "!!str ", "!!null ", "!!set ", "? ", ": ", "- ", "[", "]", "{", "}",
    ",", "#", "'", '"', "|", ">", "\t", "\n", "\n  ", "\x00", "\x1f", "\ufeff", "~", "null",
    ".inf", "-.inf", ".nan", "1e400", "1.0e+400", "9223372036854775808", "9" * 400, "-1", "0",
    "1.5", "true", "on", "yes", "---\n", "...\n", "%YAML 1.2\n", "(" * 80, ")" * 80,
    "not " * 60, " and x > 1" * 60, "speed", "speed > 8", "between(", "abs(", "1s", "500ms",
    "4min", "90 days", "101 years", "[" * 60 + "]" * 60, "{a: " * 60 + "}" * 60,
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """`text` with one to four edits: a span deleted, duplicated or replaced by pieces and
    arbitrary characters, or two lines swapped."""
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "insert", "replace", "swap"]))
        start = draw(st.integers(0, len(text)))
        end = min(len(text), start + draw(st.integers(0, 40)))
        if kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        elif kind in ("insert", "replace"):
            piece = draw(st.one_of(st.sampled_from(PIECES), st.text(max_size=12)))
            text = text[:start] + piece + text[end if kind == "replace" else start :]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def arbitrary() -> st.SearchStrategy[str]:
    pieces = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=30)
    return st.one_of(st.text(max_size=300), pieces.map("".join))


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        (Path(name) / "rubrics").mkdir()
        yield Path(name)


def _located(problems: tuple[LocatedProblem, ...], path: Path, text: str) -> None:
    lines = max(1, len(text.splitlines()) + 1)
    for problem in problems:
        assert isinstance(problem, LocatedProblem)
        assert problem.message
        if problem.location.file == str(path):
            assert 1 <= problem.location.line <= lines, problem
            assert problem.location.column >= 1, problem


def _check_rubric(folder: Path, text: str) -> None:
    path = folder / "rubrics" / "r.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_rubric_file(path, scenario_dirs=(REPO / "scenarios",))
    _located(result.problems, path, text)
    if result.ok:
        assert result.rubric is not None
        assert result.scenario is not None
        compile_rubric(result.rubric, result.scenario)


def _check_scenario(folder: Path, text: str) -> None:
    path = folder / "forklift-warehouse.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_scenario(path)
    except ScenarioError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith(f"{path}:"), message[:200]


def _check_policy(folder: Path, text: str) -> None:
    path = folder / "forklift-operator.yaml"
    path.write_text(text, encoding="utf-8")
    result = check_policy_file(path)
    _located(result.problems, path, text)


@FUZZ
@given(text=mutated(RUBRIC))
def test_a_mutated_rubric_is_checked_or_located(folder: Path, text: str) -> None:
    _check_rubric(folder, text)


@FUZZ
@given(text=arbitrary())
def test_arbitrary_text_as_a_rubric_is_checked_or_located(folder: Path, text: str) -> None:
    _check_rubric(folder, text)


@settings(FUZZ, max_examples=100)
@given(text=mutated(SCENARIO))
def test_a_mutated_scenario_loads_or_is_located(folder: Path, text: str) -> None:
    _check_scenario(folder, text)


@settings(FUZZ, max_examples=100)
@given(text=arbitrary())
def test_arbitrary_text_as_a_scenario_loads_or_is_located(folder: Path, text: str) -> None:
    _check_scenario(folder, text)


@settings(FUZZ, max_examples=100)
@given(text=mutated(POLICY))
def test_a_mutated_policy_is_checked_or_located(folder: Path, text: str) -> None:
    _check_policy(folder, text)


@settings(FUZZ, max_examples=100)
@given(text=arbitrary())
def test_arbitrary_text_as_a_policy_is_checked_or_located(folder: Path, text: str) -> None:
    _check_policy(folder, text)


CONDITION_PIECES = ["(", ")", "not ", " and ", " or ", "+", "-", "*", "/", "<", "<=", "==", "!=",
                    ">", "speed", "load", "1", "1e400", "0.5", "abs(", "min(", "max(",
                    "between(", ",", " ", "&", "="]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=60),
                      st.lists(st.sampled_from(CONDITION_PIECES), max_size=120).map("".join)))
def test_a_condition_parses_or_is_an_error_inside_its_text(text: str) -> None:  # fmt: skip
    try:
        expr = parse(text)
    except ExprError as exc:
        offset = exc.offset
    else:
        assert parse(expr.text) == expr  # the canonical text reads back to the same tree
        return
    assert 0 <= offset <= len(text)
