"""JSON Schemas for editors: generated from the models, shipped equal to what they generate,
named by every shipped YAML file, and checked with an independent validator (jsonschema)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from assessengine.adapters.yaml_source import load_yaml
from assessengine.cli import main
from assessengine.core.json_schema import file_schema, kinds, schema_filename, schema_text
from assessengine.core.rubric import OPTION_TEMPLATES, TEMPLATES, Criterion
from assessengine.core.rubric_tests import Example

from .test_rubric_check import BAD, HEAD

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "schemas"
FIRST_LINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")
KIND_OF_DIR = {"rubrics": "rubric", "scenarios": "scenario", "credentials": "policy"}


def _shipped_yaml() -> list[Path]:
    return sorted(p for folder in KIND_OF_DIR for p in (REPO / folder).glob("*.yaml"))


def _kind_of(path: Path) -> str:
    return "tests" if path.name.endswith(".tests.yaml") else KIND_OF_DIR[path.parent.name]


def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / schema_filename(kind)).read_text()))


def _errors(kind: str, data: Any) -> list[str]:
    return [e.message for e in _validator(kind).iter_errors(data)]


# ------------------------------------------------------------------------ generated, shipped


@pytest.mark.parametrize("kind", kinds())
def test_shipped_schema_is_what_the_models_generate(kind: str) -> None:
    shipped = SCHEMAS / schema_filename(kind)
    assert shipped.read_text(encoding="utf-8") == schema_text(kind), (
        f"regenerate it: assessengine schema {kind} -o schemas/{schema_filename(kind)}"
    )


@pytest.mark.parametrize("kind", kinds())
def test_schema_is_a_valid_draft_2020_12_schema(kind: str) -> None:
    Draft202012Validator.check_schema(file_schema(kind))


def test_every_kind_has_a_shipped_file_and_nothing_else_is_shipped() -> None:
    assert sorted(p.name for p in SCHEMAS.iterdir()) == sorted(map(schema_filename, kinds()))


def test_the_wheel_ships_the_schemas_beside_the_files_that_name_them() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    for folder in [*KIND_OF_DIR, "schemas"]:
        assert f'"{folder}" = "assessengine/_data/{folder}"' in pyproject


# ------------------------------------------------------------------------ every shipped file


@pytest.mark.parametrize("path", _shipped_yaml(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_file_names_its_schema_on_its_first_line(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = FIRST_LINE.match(first)
    assert match is not None, f"{path.name} starts with {first!r}"
    assert match.group(1) == f"../schemas/{schema_filename(_kind_of(path))}"
    assert (path.parent / match.group(1)).resolve().is_file()


@pytest.mark.parametrize("path", _shipped_yaml(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_file_is_valid_under_its_schema(path: Path) -> None:
    doc = load_yaml(path.read_text(encoding="utf-8"))
    assert not doc.problems
    assert _errors(_kind_of(path), doc.data) == []


def test_every_kind_of_shipped_file_is_covered() -> None:
    assert {_kind_of(p) for p in _shipped_yaml()} >= {"rubric", "scenario", "policy"}


# ------------------------------------------------------------- the checker's planted mistakes

SCHEMA_SEES = {
    "unknown-key-did-you-mean", "unknown-top-level-key-and-missing-key",
    "unknown-key-allowed-list", "version-not-an-integer", "criterion-missing-title",
    "rubric-missing-version", "title-is-a-number", "rubric-id-pattern", "allow-negative",
    "min-score-above-100", "criterion-not-a-mapping", "no-criteria", "list-expected-with-hint",
    "two-templates", "template-without-value", "step-not-an-event-name", "state-name-pattern",
    "critical-with-points", "bad-duration", "enum-aggregate", "enum-at-end",
    "unknown-key-in-step", "transition-without-to", "machine-defines-pass", "top-level-list",
    "empty-file",
}  # fmt: skip
"""Planted mistakes of tests/test_rubric_check.py that the rubric schema rejects."""

SCHEMA_BLIND = {
    # what a condition means, and which names the scenario defines
    "condition-plain", "condition-double-quoted", "condition-single-quoted",
    "condition-in-a-step", "condition-in-a-folded-block", "number-where-a-condition-is-needed",
    "unknown-signal-did-you-mean", "unknown-signal", "event-used-as-signal",
    "unknown-signal-in-metric-expression", "unknown-signal-in-response-step",
    "unknown-signal-in-count", "unknown-event-in-sequence", "unknown-event-in-all-before",
    "unknown-event-in-count", "unknown-event-in-precede", "unknown-event-in-machine",
    "signal-used-as-event", "all-before-lists-its-before-event", "unknown-scenario",
    # relations between parts of the file
    "duplicate-criterion-id", "unknown-competency", "competency-without-competencies",
    "duplicate-competency-code", "machine-initial-undefined", "machine-to-undefined-state",
    "machine-unreachable-state", "machine-dead-end-state",
    # the YAML text itself (a YAML language server reports these on its own)
    "duplicate-key",
}  # fmt: skip
"""Planted mistakes that only the checker can see: the schema accepts them."""

_BY_ID = {p.id: p.values[0] for p in BAD}


def test_every_named_fixture_exists() -> None:
    assert (SCHEMA_SEES | SCHEMA_BLIND) - set(_BY_ID) == set()


@pytest.mark.parametrize("fixture", sorted(SCHEMA_SEES))
def test_planted_mistake_is_rejected_by_the_schema(fixture: str) -> None:
    data = load_yaml(str(_BY_ID[fixture])).data
    assert _errors("rubric", data) != []


@pytest.mark.parametrize("fixture", sorted(SCHEMA_BLIND))
def test_mistake_only_the_checker_sees_passes_the_schema(fixture: str) -> None:
    data = load_yaml(str(_BY_ID[fixture])).data
    assert _errors("rubric", data) == []


def _criterion(**keys: object) -> dict[str, Any]:
    return {"rubric": "t", "version": 1, "title": "T", "scenario": "s",
            "criteria": [{"id": "c", "title": "C", **keys}]}  # fmt: skip


TEMPLATE_VALUES: dict[str, object] = {
    "never": "speed > 8", "always": "speed < 8",
    "all_before": {"events": ["a"], "before": "b"}, "sequence": ["a", "b"],
    "count": {"event": "a", "max": 0}, "response": {"after": "a", "expect": "b", "within": 2},
    "precede": {"event": "a", "by": "b"}, "duration": {"from": "a", "to": "b", "max": "2s"},
    "metric": {"aggregate": "max", "of": "speed", "at_most": 3}, "observed": {"item": "x"},
    "machine": {"initial": "i", "states": {"i": [{"on": "a", "to": "pass"}]}},
}  # fmt: skip
OPTION_VALUES: dict[str, object] = {"for": "1s", "allow": 1, "within": "5s"}


def test_every_template_has_a_value_here() -> None:
    assert set(TEMPLATE_VALUES) == set(TEMPLATES)
    assert set(OPTION_VALUES) == set(OPTION_TEMPLATES)


@pytest.mark.parametrize("option", sorted(OPTION_TEMPLATES))
@pytest.mark.parametrize("template", TEMPLATES)
def test_schema_and_model_agree_on_which_options_go_with_a_template(
    template: str, option: str
) -> None:
    keys = {template: TEMPLATE_VALUES[template], option: OPTION_VALUES[option]}
    allowed = template in OPTION_TEMPLATES[option]
    try:
        Criterion.model_validate({"id": "c", "title": "C", **keys})
        model_ok = True
    except ValidationError:
        model_ok = False
    assert model_ok is allowed
    assert (_errors("rubric", _criterion(**keys)) == []) is allowed


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        pytest.param("policy", {"policy": "p", "achievement": {"name": "N", "description": "D"},
                                "requirements": [{"rubric": "r", "source": "sim"}]},
                     id="policy-source-enum"),
        pytest.param("policy", {"policy": "p", "achievement": {"name": "N", "description": "D"},
                                "requirements": [{"rubric": "r", "source": "field"}],
                                "window": "ninety days"}, id="policy-period"),
        pytest.param("policy", {"policy": "p", "achievement": {
            "name": "N", "description": "D",
            "competencies": [{"code": "C", "name": "N", "url": "training/C"}]},
            "requirements": [{"rubric": "r", "source": "field"}]}, id="policy-relative-url"),
        pytest.param("scenario", {"scenario": "s", "title": "S", "events": {},
                                  "signals": {"fork-height": {"unit": "m", "range": [0, 1]}}},
                     id="scenario-signal-name"),
        pytest.param("scenario", {"scenario": "s", "title": "S", "events": {},
                                  "signals": {"speed": {"unit": "m", "range": [0]}}},
                     id="scenario-range-of-one"),
        pytest.param("tests", {"examples": [{"name": "a", "events": [[0, "horn"]],
                                             "expect": {"c": "passed"}}]}, id="tests-verdict"),
        pytest.param("tests", {"examples": [{"name": "a", "events": [[0, "horn"]],
                                             "expec": {"c": "pass"}}]}, id="tests-unknown-key"),
        pytest.param("tests", {"examples": [{"name": "a", "events": [["soon", "horn"]]}]},
                     id="tests-row-time"),
    ],
)  # fmt: skip
def test_policy_and_scenario_mistakes_are_rejected(kind: str, data: dict[str, Any]) -> None:
    assert _errors(kind, data) != []


@pytest.mark.parametrize(
    "example",
    [
        pytest.param({"name": "a", "events": [[0, "horn"]], "simulate": {"profile": "speeder"},
                      "expect": {"c": "pass"}}, id="events-and-simulate"),
        pytest.param({"name": "a", "expect": {"c": "pass"}}, id="neither-events-nor-simulate"),
        pytest.param({"name": "a", "simulate": {"profile": "speeder"}, "close": 30,
                      "expect": {"c": "pass"}}, id="close-with-simulate"),
        pytest.param({"name": "a", "events": [[0, "horn"]]}, id="nothing-expected"),
    ],
)  # fmt: skip
def test_an_example_the_model_refuses_is_refused_by_the_schema(example: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Example.model_validate(example)
    assert _errors("tests", {"examples": [example]}) != []


def test_a_well_formed_test_file_passes_its_schema() -> None:
    data = {"rubric": "r", "examples": [
        {"name": "a", "events": [[0, "horn"], ["1.5s", {"speed": 3}], [2, "horn", {"speed": None}]],
         "expect": {"c": "pass", "d": {"verdict": "fail", "t": 2, "seq": 2}}, "outcome": "fail"},
        {"name": "b", "simulate": {"profile": "speeder", "seed": 3}, "expect": {"c": "fail"}}]}
    assert _errors("tests", data) == []  # fmt: skip


def test_a_period_in_any_letter_case_is_accepted_as_the_policy_reads_it() -> None:
    data = {"policy": "p", "achievement": {"name": "N", "description": "D"},
            "requirements": [{"rubric": "r", "source": "field"}], "window": "90 Days"}  # fmt: skip
    assert _errors("policy", data) == []


def test_critical_yes_is_a_gate_in_the_schema_as_in_the_model() -> None:
    text = HEAD + "  - {id: c, title: C, critical: yes, points: 5, never: speed > 8}\n"
    assert _errors("rubric", load_yaml(text).data) != []
    text = HEAD + "  - {id: c, title: C, critical: no, points: 5, never: speed > 8}\n"
    assert _errors("rubric", load_yaml(text).data) == []


# ----------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("kind", kinds())
def test_cli_prints_the_shipped_schema(kind: str) -> None:
    result = CliRunner().invoke(main, ["schema", kind])
    assert result.exit_code == 0
    assert result.stdout == (SCHEMAS / schema_filename(kind)).read_text(encoding="utf-8")


def test_cli_writes_the_schema_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "rubric.schema.json"
    result = CliRunner().invoke(main, ["schema", "rubric", "-o", str(out)])
    assert (result.exit_code, result.stdout) == (0, "")
    assert out.read_text(encoding="utf-8") == schema_text("rubric")


def test_cli_refuses_an_unknown_kind_with_exit_2() -> None:
    result = CliRunner().invoke(main, ["schema", "rubrics"])
    assert result.exit_code == 2
    assert "'rubrics' is not one of 'rubric', 'scenario', 'policy'" in result.stderr


def test_cli_unwritable_output_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "rubric.schema.json"
    result = CliRunner().invoke(main, ["schema", "rubric", "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot write {out}: ")
    assert len(result.stderr.splitlines()) == 1
