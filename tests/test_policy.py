"""Credential policies: the model, periods, the shipped files, and located problems."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from assessengine.adapters.policies import (
    check_policy_file,
    find_policy,
    list_policies,
    load_policy,
    shipped_rubric,
    shipped_rubrics,
)
from assessengine.core.policy import (
    Period,
    Policy,
    PolicyError,
    Requirement,
    describe_requirements,
    parse_period,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("forklift-operator", "haul-truck-operator", "lhd-operator", "network-technician")

GOOD = """\
policy: demo
achievement:
  name: Demo operator
  description: Operates the demo truck.
  competencies:
    - {code: MH-101, name: Pre-use inspection, url: "https://example.org/MH-101"}
requirements:
  - {rubric: forklift-load-handling, source: simulator, passes: 2, consecutive: true}
  - {rubric: forklift-load-handling, source: field, observed_by_assessor: true}
window: 90 days
valid_for: 3 years
"""


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ shipped


def test_one_policy_is_shipped_per_scenario() -> None:
    assert set(SHIPPED) <= set(list_policies())


@pytest.mark.parametrize("policy_id", SHIPPED)
def test_shipped_policy_is_valid_and_names_a_shipped_rubric(policy_id: str) -> None:
    result = check_policy_file(find_policy(policy_id))
    assert result.problems == ()
    assert result.policy is not None
    for rubric_id in result.policy.rubrics:
        assert shipped_rubric(rubric_id) is not None
    assert result.policy.achievement.achievement_type == "MicroCredential"
    assert {r.source for r in result.policy.requirements} == {"simulator", "field"}


@pytest.mark.parametrize("policy_id", SHIPPED)
def test_shipped_policy_certifies_only_competencies_its_rubric_assesses(policy_id: str) -> None:
    policy = load_policy(policy_id)
    assessed = {
        c.code
        for r in policy.rubrics
        for c in shipped_rubric(r).competencies  # type: ignore[union-attr]
    }
    assert {c.code for c in policy.achievement.competencies} <= assessed


def test_forklift_policy_says_what_the_issue_asks() -> None:
    policy = load_policy("forklift-operator")
    sim, field = policy.requirements
    assert (sim.rubric, sim.source, sim.passes, sim.consecutive) == (
        "forklift-load-handling", "simulator", 2, True,
    )  # fmt: skip
    assert (field.source, field.passes, field.observed_by_assessor) == ("field", 1, True)
    assert policy.window == Period(90, "days")
    assert policy.valid_for == Period(3, "years")


def test_a_policy_is_loaded_by_path_too(tmp_path: Path) -> None:
    assert load_policy(write(tmp_path, GOOD)).policy == "demo"


def test_an_unknown_policy_id_suggests_the_closest() -> None:
    with pytest.raises(PolicyError, match="did you mean 'forklift-operator'"):
        find_policy("forklift-operatr")


# ------------------------------------------------------------------------------ periods


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("90 days", Period(90, "days")),
        ("90d", Period(90, "days")),
        ("1 day", Period(1, "days")),
        ("2 weeks", Period(2, "weeks")),
        ("6 months", Period(6, "months")),
        ("3 years", Period(3, "years")),
        ("3Y", Period(3, "years")),
    ],
)
def test_periods_are_read_as_written(text: str, period: Period) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["0 days", "90", "3 decades", "-1 year", "1.5 years", 90, None])
def test_a_bad_period_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="period"):
        parse_period(text)


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        (
            Period(3, "years"),
            datetime(2025, 3, 1, 7, tzinfo=UTC),
            datetime(2028, 3, 1, 7, tzinfo=UTC),
        ),
        (Period(1, "years"), datetime(2024, 2, 29, tzinfo=UTC), datetime(2025, 2, 28, tzinfo=UTC)),
        (Period(1, "months"), datetime(2025, 1, 31, tzinfo=UTC), datetime(2025, 2, 28, tzinfo=UTC)),
        (
            Period(13, "months"),
            datetime(2025, 12, 15, tzinfo=UTC),
            datetime(2027, 1, 15, tzinfo=UTC),
        ),
        (Period(90, "days"), datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)),
        (Period(2, "weeks"), datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 15, tzinfo=UTC)),
    ],
)
def test_periods_move_the_calendar(period: Period, start: datetime, end: datetime) -> None:
    assert period.after(start) == end


def test_a_period_prints_as_written() -> None:
    assert (str(Period(1, "years")), str(Period(90, "days"))) == ("1 year", "90 days")


# ------------------------------------------------------------------------------ model


def test_requirements_describe_themselves() -> None:
    assert (
        Requirement(rubric="r", source="simulator", passes=2, consecutive=True).describe()
        == "pass rubric `r` (version 1 or later) in 2 consecutive simulator attempts"
    )
    assert Requirement(rubric="r", source="field", observed_by_assessor=True).describe() == (
        "pass rubric `r` (version 1 or later) in 1 in-field attempt, every observed item"
        " recorded by a named assessor"
    )


def test_without_a_narrative_the_criteria_are_the_requirements_in_words(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.criteria_narrative() == describe_requirements(policy)
    assert policy.criteria_narrative().endswith(
        "; all within 90 days. The credential is valid for 3 years."
    )


def test_policies_are_immutable(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, GOOD))
    with pytest.raises(ValueError, match="frozen"):
        policy.window = None  # type: ignore[misc]


def test_two_requirements_on_the_same_rubric_and_source_are_refused() -> None:
    data = {
        "policy": "p",
        "achievement": {"name": "n", "description": "d"},
        "requirements": [
            {"rubric": "r", "source": "field"},
            {"rubric": "r", "source": "field", "passes": 2},
        ],
    }
    with pytest.raises(ValueError, match="two requirements for rubric 'r' from the field"):
        Policy.model_validate(data)


# ------------------------------------------------------------------------------ problems


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("  name: Demo operator\n", "  nmae: Demo operator\n", (3, 3), "unknown key 'nmae'"),
        ("valid_for: 3 years", "valid_for: 3 decades", (11, 12), "expected a period"),
        ("source: simulator", "source: simulater", (8, 46), "expected simulator or field"),
        ("passes: 2", "passes: 0", (8, 65), "must be at least 1"),
        ("rubric: forklift-load-handling, source: simulator",
         "rubric: forklift-load-handlin, source: simulator", (8, 14),
         "unknown rubric 'forklift-load-handlin' (did you mean 'forklift-load-handling'?)"),
        ("source: field,", "source: field, min_version: 4,", (9, 66),
         "rubric 'forklift-load-handling' is at version 1: min_version 4 cannot be met"),
        ("code: MH-101", "code: MH-110", (6, 14),
         "competency 'MH-110' is not assessed by any required rubric"),
        ('url: "https://example.org/MH-101"', "url: example.org/MH-101", (6, 53),
         "expected an absolute URL"),
        ("policy: demo", "policy: other", (1, 9), "differs from the file name 'demo.yaml'"),
        ("  name: Demo operator\n", "  name: Demo operator\n  id: https://x.example/a#b\n", (3, 3),
         "must not have a fragment"),
        ("  name: Demo operator\n", "", (3, 3), "missing required key 'name'"),
    ],
)  # fmt: skip
def test_problems_are_located_in_the_file(
    tmp_path: Path, old: str, new: str, where: tuple[int, int], message: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    result = check_policy_file(path)
    assert not result.ok
    located = [(p.location.line, p.location.column, p.message) for p in result.problems]
    assert any((line, col) == where and message in text for line, col, text in located), located
    assert all(str(p).startswith(f"{path}:") for p in result.problems)


def test_a_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    result = check_policy_file(write(tmp_path, "policy: demo\nachievement: [\n"))
    assert result.policy is None
    assert "YAML syntax error" in result.problems[0].message


def test_an_empty_file_says_how_a_policy_starts(tmp_path: Path) -> None:
    result = check_policy_file(write(tmp_path, ""))
    assert [p.message for p in result.problems] == [
        "the file is empty; a policy starts with 'policy: <id>'"
    ]


def test_load_policy_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("passes: 2", "passes: 0").replace("90 days", "soon"))
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert len(raised.value.problems) == 2


def test_the_rubric_catalogue_lists_the_shipped_rubrics() -> None:
    assert {"forklift-load-handling", "network-lab"} <= set(shipped_rubrics())


def test_the_repository_copy_holds_the_shipped_policies() -> None:
    assert sorted(p.stem for p in (REPO / "credentials").glob("*.yaml")) == sorted(SHIPPED)
