"""The eligibility decision: table tests for each rule, and properties against a brute-force
oracle that tries every choice of sessions."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.core.eligibility import Attempt, CriterionVerdict, Decision, decide
from assessengine.core.policy import Period, Policy, Requirement

T0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
RUBRIC = "forklift-load-handling"
NINETY_DAYS = Period(90, "days")


def attempt(
    session: str,
    day: float,
    outcome: str = "pass",
    *,
    source: str = "simulator",
    version: int = 1,
    rubric: str = RUBRIC,
    assessor: str | None = None,
    observed: str | None = None,
) -> Attempt:
    """An attempt `day` days after T0; `observed` is the verdict of its one observed criterion
    (default: pass, or pending for an incomplete attempt)."""
    seen = observed or ("pending" if outcome == "incomplete" else "pass")
    verdict: Any = "fail" if outcome == "fail" else "pass"
    criteria = (
        CriterionVerdict("pre_use_checks", "Pre-use checks", verdict, critical=True),
        CriterionVerdict(
            "looks_before_reversing", "Looks before", seen, points=10.0, observed=True
        ),  # type: ignore[arg-type]
    )
    return Attempt(
        session=session,
        rubric=rubric,
        rubric_version=version,
        source=source,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        score=100.0 if outcome == "pass" else 50.0,
        ended_at=T0 + timedelta(days=day),
        chain_head="ab" * 32,
        criteria=criteria,
        assessor=assessor,
    )


def field(session: str, day: float, outcome: str = "pass", **kw: Any) -> Attempt:
    kw.setdefault("assessor", "A-7")
    return attempt(session, day, outcome, source="field", **kw)


def policy(
    *,
    sim: int = 2,
    consecutive: bool = True,
    field_passes: int = 1,
    observed: bool = True,
    min_version: int = 1,
    window: Period | None = NINETY_DAYS,
) -> Policy:
    requirements = [
        Requirement(rubric=RUBRIC, source="simulator", passes=sim, consecutive=consecutive,
                    min_version=min_version),
        Requirement(rubric=RUBRIC, source="field", passes=field_passes,
                    observed_by_assessor=observed, min_version=min_version),
    ]  # fmt: skip
    return Policy.model_validate(
        {
            "policy": "forklift-operator",
            "achievement": {"name": "Forklift operator", "description": "Handles loads."},
            "requirements": [r.model_dump() for r in requirements],
            "window": None if window is None else str(window),
        }
    )


def sessions(decision: Decision) -> list[str]:
    return [a.session for a in decision.qualifying]


# ============================================================================ table tests


def test_two_consecutive_simulator_passes_and_an_observed_field_pass_are_eligible() -> None:
    decision = decide(policy(), [attempt("S1", 0), attempt("S2", 1), field("F1", 10)])
    assert decision.eligible
    assert sessions(decision) == ["S1", "S2", "F1"]
    assert decision.reasons == ()
    assert [r.met for r in decision.requirements] == [True, True]


def test_the_history_may_come_in_any_order() -> None:
    history = [field("F1", 10), attempt("S2", 1), attempt("S1", 0)]
    assert sessions(decide(policy(), history)) == ["S1", "S2", "F1"]


def test_a_failure_between_two_passes_breaks_the_run() -> None:
    decision = decide(policy(), [attempt("S1", 0), attempt("S2", 1, "fail"), attempt("S3", 2),
                                 field("F1", 10)])  # fmt: skip
    assert not decision.eligible
    (reason,) = decision.reasons
    assert reason.startswith(
        "Pass rubric `forklift-load-handling` (version 1 or later) in 2 consecutive simulator"
        " attempts: the longest run so far is 1 (needed: 2)"
    )
    assert "S2 (2025-01-02) failed on pre_use_checks" in reason


def test_a_run_after_a_failure_counts() -> None:
    history = [attempt("S1", 0), attempt("S2", 1, "fail"), attempt("S3", 2), attempt("S4", 3),
               field("F1", 10)]  # fmt: skip
    assert sessions(decide(policy(), history)) == ["S3", "S4", "F1"]


def test_an_incomplete_attempt_breaks_the_run_and_says_what_is_pending() -> None:
    history = [attempt("S1", 0), attempt("S2", 1, "incomplete"), attempt("S3", 2),
               field("F1", 10)]  # fmt: skip
    decision = decide(policy(), history)
    assert not decision.eligible
    assert "S2 (2025-01-02) is incomplete (pending: looks_before_reversing)" in decision.reasons[0]


def test_without_consecutive_any_passes_count() -> None:
    history = [attempt("S1", 0), attempt("S2", 1, "fail"), attempt("S3", 2), field("F1", 10)]
    decision = decide(policy(consecutive=False), history)
    assert sessions(decision) == ["S1", "S3", "F1"]


def test_the_most_recent_qualifying_sessions_are_kept() -> None:
    history = [attempt(f"S{i}", i) for i in range(5)] + [field("F1", 8), field("F2", 9)]
    assert sessions(decide(policy(), history)) == ["S3", "S4", "F2"]


def test_older_rubric_versions_neither_count_nor_break_a_run() -> None:
    history = [attempt("S1", 0, version=2), attempt("S2", 1, "fail", version=1),
               attempt("S3", 2, version=2), field("F1", 10, version=2)]  # fmt: skip
    assert sessions(decide(policy(min_version=2), history)) == ["S1", "S3", "F1"]


def test_attempts_on_an_older_version_are_named_in_the_reasons() -> None:
    history = [attempt("S1", 0), attempt("S2", 1), field("F1", 10, version=2)]
    decision = decide(policy(min_version=2), history)
    assert "attempts on rubric version 1 do not count" in decision.reasons[0]


def test_other_rubrics_and_other_sources_do_not_count() -> None:
    history = [attempt("S1", 0), attempt("X1", 1, rubric="haul-truck-surface"),
               attempt("S2", 2), field("F1", 3, rubric="haul-truck-surface")]  # fmt: skip
    decision = decide(policy(), history)
    assert [r.met for r in decision.requirements] == [True, False]
    (reason,) = decision.reasons
    assert reason.endswith("in-field attempt, every observed item recorded by a named assessor:"
                           " 0 so far (needed: 1); no attempt yet.")  # fmt: skip


def test_a_field_pass_must_name_its_assessor() -> None:
    decision = decide(
        policy(), [attempt("S1", 0), attempt("S2", 1), field("F1", 10, assessor=None)]
    )
    assert not decision.eligible
    assert "F1 (2025-01-11) passed but names no assessor" in decision.reasons[0]


def test_every_observed_item_must_carry_the_assessors_verdict() -> None:
    history = [attempt("S1", 0), attempt("S2", 1), field("F1", 10, observed="not_applicable")]
    decision = decide(policy(), history)
    assert not decision.eligible
    assert (
        "F1 (2025-01-11) has no assessor's verdict on looks_before_reversing" in decision.reasons[0]
    )


def test_without_observed_by_assessor_an_unnamed_assessor_is_fine() -> None:
    history = [attempt("S1", 0), attempt("S2", 1), field("F1", 10, assessor=None)]
    assert decide(policy(observed=False), history).eligible


def test_sessions_too_far_apart_are_not_within_the_window() -> None:
    decision = decide(policy(), [attempt("S1", 0), attempt("S2", 1), field("F1", 100)])
    assert not decision.eligible
    assert [r.met for r in decision.requirements] == [True, True]
    assert decision.reasons == (
        "every requirement is met on its own, but never all within 90 days: the qualifying"
        " sessions are too far apart",
    )


def test_the_window_is_inclusive() -> None:
    assert decide(policy(), [attempt("S1", 0), attempt("S2", 1), field("F1", 90)]).eligible
    late = field("F1", 90 + 1 / 86_400)
    assert not decide(policy(), [attempt("S1", 0), attempt("S2", 1), late]).eligible


def test_a_window_is_found_among_older_and_newer_sessions() -> None:
    history = [attempt("S1", 0), attempt("S2", 1), field("F1", 100), attempt("S3", 150),
               attempt("S4", 151), field("F2", 400)]  # fmt: skip
    assert sessions(decide(policy(), history)) == ["S3", "S4", "F1"]


def test_without_a_window_any_span_will_do() -> None:
    history = [attempt("S1", 0), attempt("S2", 1), field("F1", 1000)]
    assert decide(policy(window=None), history).eligible


def test_nothing_done_yet_lists_every_requirement() -> None:
    decision = decide(policy(), [])
    assert not decision.eligible
    assert len(decision.reasons) == 2
    assert all(r.endswith("no attempt yet.") for r in decision.reasons)


def test_a_session_listed_twice_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        decide(policy(), [attempt("S1", 0), attempt("S1", 1)])


# ============================================================================ properties

OUTCOMES = ("pass", "pass", "fail", "incomplete")


@st.composite
def histories(draw: st.DrawFn) -> list[Attempt]:
    count = draw(st.integers(0, 7))
    result = []
    for i in range(count):
        outcome = draw(st.sampled_from(OUTCOMES))
        make = field if draw(st.booleans()) else attempt
        result.append(
            make(
                f"S{i}",
                draw(st.integers(0, 200)),
                outcome,
                version=draw(st.sampled_from((1, 2))),
                rubric=draw(st.sampled_from((RUBRIC, RUBRIC, "network-lab"))),
                assessor=draw(st.sampled_from(("A-7", None))),
            )
        )
    return result


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    return policy(
        sim=draw(st.integers(1, 3)),
        consecutive=draw(st.booleans()),
        field_passes=draw(st.integers(1, 2)),
        observed=draw(st.booleans()),
        min_version=draw(st.sampled_from((1, 2))),
        window=draw(st.sampled_from((None, Period(30, "days"), Period(90, "days")))),
    )


def _counts(requirement: Requirement, a: Attempt) -> bool:
    if a.outcome != "pass":
        return False
    if requirement.observed_by_assessor:
        recorded = all(c.verdict in ("pass", "fail") for c in a.criteria if c.observed)
        return recorded and a.assessor is not None
    return True


def _options(requirement: Requirement, history: Sequence[Attempt]) -> list[tuple[Attempt, ...]]:
    """Every set of sessions that meets `requirement` on its own (the oracle's reading)."""
    matching = [
        a for a in sorted(history, key=lambda a: (a.ended_at, a.session))
        if a.rubric == requirement.rubric and a.source == requirement.source
        and a.rubric_version >= requirement.min_version
    ]  # fmt: skip
    n = requirement.passes
    if requirement.consecutive:
        runs = [tuple(matching[i : i + n]) for i in range(len(matching) - n + 1)]
        return [run for run in runs if all(_counts(requirement, a) for a in run)]
    return list(itertools.combinations([a for a in matching if _counts(requirement, a)], n))


def _fits(rule: Policy, chosen: Sequence[tuple[Attempt, ...]]) -> bool:
    flat = [a for group in chosen for a in group]
    if len({a.session for a in flat}) != len(flat):
        return False
    if rule.window is None:
        return True
    times = [a.ended_at for a in flat]
    return max(times) <= rule.window.after(min(times))


def oracle(rule: Policy, history: Sequence[Attempt]) -> bool:
    options = [_options(r, history) for r in rule.requirements]
    return any(_fits(rule, chosen) for chosen in itertools.product(*options))


@settings(max_examples=200, deadline=None)
@given(policies(), histories())
def test_the_decision_agrees_with_trying_every_choice(rule: Policy, history: list[Attempt]) -> None:
    assert decide(rule, history).eligible == oracle(rule, history)


@settings(max_examples=100, deadline=None)
@given(policies(), histories())
def test_the_qualifying_sessions_meet_the_policy(rule: Policy, history: list[Attempt]) -> None:
    decision = decide(rule, history)
    if not decision.eligible:
        assert decision.reasons
        assert not decision.qualifying
        return
    assert decision.reasons == ()
    chosen = [result.sessions for result in decision.requirements]
    assert _fits(rule, chosen)
    for requirement, group in zip(rule.requirements, chosen, strict=True):
        assert group in _options(requirement, history)
    assert decision.qualifying == tuple(a for group in chosen for a in group)


@settings(max_examples=100, deadline=None)
@given(policies(), histories(), st.randoms(use_true_random=False))
def test_the_order_of_the_history_does_not_matter(
    rule: Policy, history: list[Attempt], rng: random.Random
) -> None:
    shuffled = list(history)
    rng.shuffle(shuffled)
    assert decide(rule, shuffled) == decide(rule, history)


@settings(max_examples=100, deadline=None)
@given(policies(), histories(), st.sampled_from(OUTCOMES), st.booleans())
def test_a_later_attempt_never_takes_eligibility_away(
    rule: Policy, history: list[Attempt], outcome: str, in_field: bool
) -> None:
    later = (field if in_field else attempt)("LATER", 10_000, outcome)
    if decide(rule, history).eligible:
        assert decide(rule, [*history, later]).eligible
