"""Named behaviours of the rubric language (RUBRIC-LANGUAGE.md + docs/semantics.md).

Every test that takes `engine` runs through `core.offline.score_sessions(..., engine=...)`, so the
same cases hold every scorer to the contract: each runs on every engine in `ENGINES`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from assessengine.core.events import Event, SessionEvents
from assessengine.core.expr import parse
from assessengine.core.offline import Engine, score_sessions
from assessengine.core.reference import ReferenceSession, number, score_session, truth
from assessengine.core.report import CriterionResult, SessionReport, Verdict
from assessengine.core.rubric import Rubric
from assessengine.core.scenario import Scenario
from assessengine.errors import ScoringError

ENGINES: tuple[Engine, ...] = ("reference", "kernel")
SCENARIO_FILE = Path(__file__).resolve().parents[1] / "scenarios" / "forklift-warehouse.yaml"
NAN = math.nan


@cache
def forklift() -> Scenario:
    return Scenario.model_validate(yaml.safe_load(SCENARIO_FILE.read_text()))


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    value: Engine = request.param
    return value


# ------------------------------------------------------------------------------------ helpers


def ev(t: float, event: str = "sample", **signals: float) -> tuple[float, str, dict[str, float]]:
    """An event; `run` numbers events 0, 1, 2, ... as their seq."""
    return (t, event, signals)


EventSpec = tuple[float, str, dict[str, float]] | Event


def crit(id: str = "c", **template: Any) -> dict[str, Any]:
    """A criterion; keyword `for_` stands for `for`."""
    if "for_" in template:
        template["for"] = template.pop("for_")
    return {"id": id, "title": f"criterion {id}", **template}


def rubric(*criteria: Mapping[str, Any], min_score: float | None = None) -> Rubric:
    data: dict[str, Any] = {
        "rubric": "test-rubric",
        "version": 3,
        "title": "Test rubric",
        "scenario": "forklift-warehouse",
        "criteria": list(criteria),
    }
    if min_score is not None:
        data["pass"] = {"min_score": min_score}
    return Rubric.model_validate(data)


def session(events: Iterable[EventSpec], close_t: float | None = None) -> SessionEvents:
    built = [
        e if isinstance(e, Event) else Event(seq=i, t=e[0], event=e[1], signals=e[2])
        for i, e in enumerate(events)
    ]
    return SessionEvents("S1", built, close_t=close_t)


def run(
    engine: Engine,
    model: Rubric | Mapping[str, Any],
    events: Iterable[EventSpec],
    close_t: float | None = None,
    *,
    observations: Mapping[str, Verdict] | None = None,
) -> SessionReport:
    """Score one session with `engine`; `model` is a rubric or a single criterion."""
    r = model if isinstance(model, Rubric) else rubric(model)
    obs = {"S1": observations} if observations else None
    [report] = score_sessions(
        r, forklift(), [session(events, close_t)], engine=engine, observations=obs
    )
    return report


def one(
    engine: Engine,
    criterion: Mapping[str, Any],
    events: Iterable[EventSpec],
    close_t: float | None = None,
) -> CriterionResult:
    """The result of a one-criterion rubric."""
    return run(engine, criterion, events, close_t).criteria[0]


def at(r: CriterionResult) -> tuple[str, int | None, float | None]:
    """Verdict and the deciding (seq, t)."""
    return (r.verdict, r.evidence.seq, r.evidence.t)


def span(r: CriterionResult) -> tuple[float | None, int | None, float | None, int | None]:
    """The evidence interval: (t_start, seq_start, t_end, seq_end)."""
    e = r.evidence
    return (e.t_start, e.seq_start, e.t_end, e.seq_end)


def extremes(low: float | None, high: float | None) -> dict[str, float | None]:
    return {"min": low, "max": high}


# --------------------------------------------------------------------- held values (1, 2)


def test_signal_value_is_held_until_reported_again(engine: Engine) -> None:
    r = one(engine, crit(never="speed > 8 and load > 0"), [ev(0, speed=9), ev(1, load=100)])
    assert at(r) == ("fail", 1, 1.0)


def test_nan_report_keeps_the_previous_value(engine: Engine) -> None:
    events = [ev(0, speed=9), ev(0.5, speed=NAN), ev(1.0)]
    r = one(engine, crit(never="speed > 8", for_="1s"), events)
    assert at(r) == ("fail", 2, 1.0)


def test_condition_on_unreported_signal_does_not_hold(engine: Engine) -> None:
    r = one(engine, crit(always="speed < 10"), [ev(0, load=5), ev(1, "horn")], close_t=4)
    assert at(r) == ("pass", 1, 4.0)
    assert r.evidence.values == {"speed": extremes(None, None)}


def test_missing_signal_is_null_in_evidence_values(engine: Engine) -> None:
    r = one(engine, crit(count={"when": "load > 0 or speed > 8", "max": 0}), [ev(0, load=5)])
    assert at(r) == ("fail", 0, 0.0)
    assert r.evidence.values == {"load": 5.0, "speed": None}


def test_division_by_zero_is_missing(engine: Engine) -> None:
    criterion = crit(metric={"aggregate": "count", "of": "speed / load > 1", "at_most": 0})
    r = one(engine, criterion, [ev(0, speed=5, load=0), ev(1, load=1)])
    assert r.verdict == "fail"
    assert r.evidence.measured == 1.0  # the event with load = 0 was unknown, so not kept


def test_infinity_stays_a_number(engine: Engine) -> None:
    r = one(engine, crit(never="speed * 1e308 > 1e308"), [ev(0, speed=10)])
    assert at(r) == ("fail", 0, 0.0)


def test_infinity_minus_infinity_is_missing(engine: Engine) -> None:
    r = one(engine, crit(never="speed * 1e308 - load * 1e308 != 0"), [ev(0, speed=10, load=10)])
    assert r.verdict == "pass"


# -------------------------------------------------------------------- three-valued logic


def test_true_or_unknown_holds(engine: Engine) -> None:
    r = one(engine, crit(never="load > 0 or speed > 8"), [ev(0, load=5)])
    assert at(r) == ("fail", 0, 0.0)


def test_false_and_unknown_is_false(engine: Engine) -> None:
    r = one(engine, crit(always="load > 0 and speed > 8"), [ev(0, load=0)])
    assert at(r) == ("fail", 0, 0.0)


def test_true_and_unknown_is_unknown(engine: Engine) -> None:
    assert one(engine, crit(never="load > 0 and speed > 8"), [ev(0, load=5)]).verdict == "pass"


def test_false_or_unknown_is_unknown(engine: Engine) -> None:
    assert one(engine, crit(always="load > 0 or speed > 8"), [ev(0, load=0)]).verdict == "pass"


def test_not_unknown_is_unknown(engine: Engine) -> None:
    assert one(engine, crit(never="not (speed > 8)"), [ev(0, load=1)]).verdict == "pass"
    assert one(engine, crit(always="not (speed > 8)"), [ev(0, load=1)]).verdict == "pass"


@pytest.mark.parametrize(
    "cond", ["max(speed, load) > 5", "min(speed, load) < 50", "abs(load) >= 0"]
)
def test_function_of_a_missing_value_is_missing(engine: Engine, cond: str) -> None:
    assert one(engine, crit(never=cond), [ev(0, speed=10)]).verdict == "pass"


def test_abs_of_negative_value(engine: Engine) -> None:
    r = one(engine, crit(never="abs(mast_tilt) > 5"), [ev(0, mast_tilt=-4), ev(1, mast_tilt=-6)])
    assert at(r) == ("fail", 1, 1.0)


@pytest.mark.parametrize(
    ("speed", "verdict"),
    [(2.0, "fail"), (4.0, "fail"), (3.0, "fail"), (1.99, "pass"), (4.01, "pass")],
)
def test_between_is_inclusive(engine: Engine, speed: float, verdict: str) -> None:
    assert one(engine, crit(never="between(speed, 2, 4)"), [ev(0, speed=speed)]).verdict == verdict


def test_scalar_evaluator_kleene_tables() -> None:
    held = {"a": 1.0, "z": 0.0}
    assert truth(parse("a > 0 and b > 0").root, held) is None
    assert truth(parse("a < 0 and b > 0").root, held) is False
    assert truth(parse("a > 0 or b > 0").root, held) is True
    assert truth(parse("not (b > 0)").root, held) is None
    assert truth(parse("between(a, b, 2)").root, held) is None
    assert truth(parse("between(a, b, 0)").root, held) is False
    assert number(parse("a / z").root, held) is None
    assert number(parse("-(a + b)").root, held) is None
    assert number(parse("max(a, 3) - min(a, 3)").root, held) == 2.0


# ------------------------------------------------------------------------ never/always (8)


def test_never_fails_at_first_event_where_condition_holds(engine: Engine) -> None:
    r = one(engine, crit(never="speed > 8"), [ev(0, speed=5), ev(1, speed=9), ev(2, speed=10)])
    assert at(r) == ("fail", 1, 1.0)
    assert span(r) == (1.0, 1, 1.0, 1)
    assert r.evidence.values == {"speed": extremes(9.0, 9.0)}


def test_never_passes_at_end_with_whole_session_extremes(engine: Engine) -> None:
    r = one(engine, crit(never="speed > 8"), [ev(1, speed=5), ev(2, speed=7)], close_t=10)
    assert at(r) == ("pass", 1, 10.0)
    assert span(r) == (1.0, 0, 10.0, 1)
    assert r.evidence.values == {"speed": extremes(5.0, 7.0)}


def test_episode_shorter_than_for_is_not_a_violation(engine: Engine) -> None:
    events = [ev(0, speed=9), ev(0.5, speed=9), ev(0.9, speed=9), ev(1.0, speed=5)]
    assert one(engine, crit(never="speed > 8", for_="1s"), events).verdict == "pass"


def test_episode_reaching_exactly_for_counts(engine: Engine) -> None:
    events = [ev(0, speed=5), ev(1, speed=9), ev(1.5, speed=9), ev(2.0, speed=9.5)]
    r = one(engine, crit(never="speed > 8", for_="1s"), events)
    assert at(r) == ("fail", 3, 2.0)
    assert span(r) == (1.0, 1, 2.0, 3)
    assert r.evidence.values == {"speed": extremes(9.0, 9.5)}


def test_durations_are_differences_of_the_times_as_doubles(engine: Engine) -> None:
    """Decision 7a: 0.3 - 0.1 is 0.19999999999999998 in doubles, short of `for: 200ms`."""
    events = [ev(0.1, speed=9), ev(0.3, speed=9)]
    assert one(engine, crit(never="speed > 8", for_="200ms"), events).verdict == "pass"
    events = [ev(0.25, speed=9), ev(0.45, speed=9)]  # 0.2 exactly in doubles
    assert one(engine, crit(never="speed > 8", for_="200ms"), events).verdict == "fail"


def test_episode_is_broken_by_an_event_where_condition_does_not_hold(engine: Engine) -> None:
    events = [ev(0, speed=9), ev(0.5, speed=5), ev(0.6, speed=9), ev(1.2, speed=9)]
    assert one(engine, crit(never="speed > 8", for_="1s"), events).verdict == "pass"


def test_episode_continues_over_events_without_reports(engine: Engine) -> None:
    r = one(engine, crit(never="speed > 8", for_="1s"), [ev(0, speed=9), ev(1.0, "horn")])
    assert at(r) == ("fail", 1, 1.0)


def test_episode_still_open_at_close_does_not_count(engine: Engine) -> None:
    r = one(engine, crit(never="speed > 8", for_="1s"), [ev(0, speed=9), ev(0.5)], close_t=5)
    assert at(r) == ("pass", 1, 5.0)


def test_allow_tolerates_that_many_counting_episodes(engine: Engine) -> None:
    events = [ev(0, speed=9), ev(1, speed=5), ev(2, speed=9), ev(3, speed=5)]
    assert one(engine, crit(never="speed > 8", allow=2), events).verdict == "pass"


def test_allow_fails_at_the_next_counting_episode(engine: Engine) -> None:
    speeds = [9, 5, 9, 5, 9]
    r = one(
        engine, crit(never="speed > 8", allow=2), [ev(i, speed=s) for i, s in enumerate(speeds)]
    )
    assert at(r) == ("fail", 4, 4.0)


def test_long_episode_counts_once(engine: Engine) -> None:
    criterion = crit(never="speed > 8", for_="1s", allow=1)
    events = [ev(t, speed=9) for t in range(4)]
    assert one(engine, criterion, events).verdict == "pass"
    events += [ev(4, speed=5), ev(5, speed=9), ev(6, speed=9)]
    r = one(engine, criterion, events)
    assert at(r) == ("fail", 6, 6.0)
    assert span(r) == (5.0, 5, 6.0, 6)


def test_never_extremes_cover_only_the_failing_episode(engine: Engine) -> None:
    events = [ev(0, speed=30, load=0), ev(1, speed=9, load=10), ev(2, speed=12)]
    r = one(engine, crit(never="speed > 8 and load > 0", for_="1s"), events)
    assert at(r) == ("fail", 2, 2.0)
    assert r.evidence.values == {"load": extremes(10.0, 10.0), "speed": extremes(9.0, 12.0)}


def test_always_fails_where_condition_is_false(engine: Engine) -> None:
    events = [ev(0, fork_height=0.2), ev(1, fork_height=0.7)]
    r = one(engine, crit(always="fork_height < 0.5"), events)
    assert at(r) == ("fail", 1, 1.0)
    assert r.evidence.values == {"fork_height": extremes(0.7, 0.7)}


def test_always_with_for_counts_false_episodes(engine: Engine) -> None:
    events = [ev(0, fork_height=0.7), ev(1, fork_height=0.2), ev(2, fork_height=0.7), ev(4.5)]
    r = one(engine, crit(always="fork_height < 0.5", for_="2s"), events)
    assert at(r) == ("fail", 3, 4.5)
    assert span(r) == (2.0, 2, 4.5, 3)


# --------------------------------------------------------------------------- all_before (9)

ALL_BEFORE = crit(
    all_before={"events": ["inspect_tyres", "inspect_forks"], "before": "engine_start"}
)


def test_all_before_passes_at_first_before_event(engine: Engine) -> None:
    events = [ev(0), ev(1, "inspect_forks"), ev(2, "inspect_tyres"), ev(3, "engine_start")]
    r = one(engine, ALL_BEFORE, events)
    assert at(r) == ("pass", 3, 3.0)
    assert span(r) == (0.0, 0, 3.0, 3)
    assert r.evidence.values == {}


def test_all_before_fails_when_a_listed_event_is_missing(engine: Engine) -> None:
    r = one(engine, ALL_BEFORE, [ev(0, "inspect_tyres"), ev(1, "engine_start")])
    assert at(r) == ("fail", 1, 1.0)


def test_all_before_is_decided_by_the_first_before_event_only(engine: Engine) -> None:
    events = [
        ev(0, "inspect_tyres"),
        ev(1, "engine_start"),
        ev(2, "inspect_forks"),
        ev(3, "engine_start"),
    ]
    assert at(one(engine, ALL_BEFORE, events)) == ("fail", 1, 1.0)


def test_all_before_counts_an_earlier_event_at_the_same_time(engine: Engine) -> None:
    events = [ev(5, "inspect_tyres"), ev(5, "inspect_forks"), ev(5, "engine_start")]
    assert at(one(engine, ALL_BEFORE, events)) == ("pass", 2, 5.0)


def test_all_before_without_before_event_fails_at_end(engine: Engine) -> None:
    r = one(engine, ALL_BEFORE, [ev(0, "inspect_tyres"), ev(1)], close_t=8)
    assert at(r) == ("fail", 1, 8.0)
    assert span(r) == (0.0, 0, 8.0, 1)


@pytest.mark.parametrize("if_never", ["pass", "not_applicable"])
def test_all_before_if_never_sets_the_end_verdict(engine: Engine, if_never: str) -> None:
    criterion = crit(
        all_before={"events": ["inspect_tyres"], "before": "engine_start", "if_never": if_never}
    )
    assert at(one(engine, criterion, [ev(0)], close_t=3)) == (if_never, 0, 3.0)


# ----------------------------------------------------------------------------- sequence (10)

SEQUENCE = crit(sequence=["seatbelt_on", "engine_start", {"when": "speed > 0.5"}])


def test_sequence_in_order_passes_at_last_step(engine: Engine) -> None:
    events = [
        ev(0, speed=0),
        ev(1, "seatbelt_on"),
        ev(2, "horn"),
        ev(3, "engine_start"),
        ev(4, speed=1),
    ]
    r = one(engine, SEQUENCE, events)
    assert at(r) == ("pass", 4, 4.0)
    assert span(r) == (1.0, 1, 4.0, 4)
    assert r.evidence.values == {"speed": 1.0}


def test_sequence_fails_when_a_later_step_matches_first(engine: Engine) -> None:
    r = one(engine, SEQUENCE, [ev(0, "seatbelt_on"), ev(1, speed=1), ev(2, "engine_start")])
    assert at(r) == ("fail", 1, 1.0)
    assert span(r) == (0.0, 0, 1.0, 1)


def test_sequence_failing_before_first_step_is_anchored_at_session_start(engine: Engine) -> None:
    r = one(engine, SEQUENCE, [ev(0.5), ev(2, "engine_start")])
    assert at(r) == ("fail", 1, 2.0)
    assert span(r) == (0.5, 0, 2.0, 1)


def test_sequence_repeated_step_matching_early_is_not_a_failure(engine: Engine) -> None:
    criterion = crit(sequence=["seatbelt_on", "engine_start", "seatbelt_on"])
    events = [
        ev(0, "seatbelt_on"),
        ev(1, "seatbelt_on"),
        ev(2, "engine_start"),
        ev(3, "seatbelt_on"),
    ]
    assert at(one(engine, criterion, events)) == ("pass", 3, 3.0)


def test_sequence_repeated_condition_compares_canonical_text(engine: Engine) -> None:
    criterion = crit(sequence=[{"when": "speed>1"}, "horn", {"when": "(speed) > 1.0"}])
    events = [ev(0, speed=2), ev(1, speed=2), ev(2, "horn"), ev(3)]
    assert at(one(engine, criterion, events)) == ("pass", 3, 3.0)


def test_sequence_does_one_step_per_event(engine: Engine) -> None:
    criterion = crit(sequence=["engine_start", {"when": "speed > 0.5"}])
    r = one(engine, criterion, [ev(0, "engine_start", speed=1), ev(1)])
    assert at(r) == ("pass", 1, 1.0)
    assert span(r) == (0.0, 0, 1.0, 1)


def test_one_step_sequence_passes_at_first_match(engine: Engine) -> None:
    r = one(engine, crit(sequence=["horn"]), [ev(0), ev(1, "collision"), ev(2, "horn")])
    assert at(r) == ("pass", 2, 2.0)


def test_sequence_last_step_exactly_within_is_in_time(engine: Engine) -> None:
    criterion = crit(sequence=["engine_start", "horn"], within="10s")
    assert at(one(engine, criterion, [ev(2, "engine_start"), ev(12, "horn")])) == ("pass", 1, 12.0)


def test_sequence_within_expiry_is_checked_before_matching(engine: Engine) -> None:
    criterion = crit(sequence=["engine_start", "horn"], within="10s")
    r = one(engine, criterion, [ev(2, "engine_start"), ev(12.5, "horn")])
    assert at(r) == ("fail", 1, 12.5)
    assert span(r) == (2.0, 0, 12.5, 1)


def test_sequence_within_expires_at_any_event(engine: Engine) -> None:
    criterion = crit(sequence=["engine_start", "horn"], within="10s")
    r = one(engine, criterion, [ev(2, "engine_start"), ev(12), ev(12.1), ev(13, "horn")])
    assert at(r) == ("fail", 2, 12.1)


def test_sequence_within_starts_at_first_step(engine: Engine) -> None:
    criterion = crit(sequence=["engine_start", "horn"], within="10s")
    events = [ev(0), ev(100, "engine_start"), ev(105, "horn")]
    assert at(one(engine, criterion, events)) == ("pass", 2, 105.0)


def test_unfinished_sequence_fails_at_end_anchored_at_first_step(engine: Engine) -> None:
    r = one(engine, SEQUENCE, [ev(0), ev(1, "seatbelt_on"), ev(3)], close_t=9)
    assert at(r) == ("fail", 2, 9.0)
    assert span(r) == (1.0, 1, 9.0, 2)


def test_decided_sequence_never_changes(engine: Engine) -> None:
    criterion = crit(sequence=["engine_start", "horn"])
    events = [ev(0, "engine_start"), ev(1, "horn"), ev(2, "horn"), ev(3, "engine_start")]
    assert at(one(engine, criterion, events)) == ("pass", 1, 1.0)


# -------------------------------------------------------------------------------- count (11)


def test_count_fails_where_the_count_exceeds_max(engine: Engine) -> None:
    criterion = crit(count={"event": "collision", "max": 1})
    r = one(engine, criterion, [ev(0, "collision"), ev(1, "horn"), ev(2, "collision"), ev(3)])
    assert at(r) == ("fail", 2, 2.0)
    assert span(r) == (0.0, 0, 2.0, 2)


def test_count_without_max_passes_as_soon_as_min_is_reached(engine: Engine) -> None:
    criterion = crit(count={"event": "horn", "min": 2})
    assert at(one(engine, criterion, [ev(0, "horn"), ev(1, "horn"), ev(2, "horn")])) == (
        "pass",
        1,
        1.0,
    )


def test_count_with_max_is_decided_at_end(engine: Engine) -> None:
    criterion = crit(count={"event": "horn", "min": 1, "max": 3})
    assert at(one(engine, criterion, [ev(0, "horn"), ev(1)], close_t=5)) == ("pass", 1, 5.0)


def test_count_below_min_fails_at_end(engine: Engine) -> None:
    criterion = crit(count={"event": "horn", "min": 2, "max": 5})
    assert at(one(engine, criterion, [ev(0, "horn"), ev(1)], close_t=5)) == ("fail", 1, 5.0)


def test_count_max_zero_fails_at_first_occurrence(engine: Engine) -> None:
    criterion = crit(count={"event": "collision", "max": 0})
    assert at(one(engine, criterion, [ev(0), ev(3, "collision")])) == ("fail", 1, 3.0)


def test_count_when_counts_episodes_not_events(engine: Engine) -> None:
    criterion = crit(count={"when": "speed > 8", "max": 1})
    assert (
        one(engine, criterion, [ev(0, speed=9), ev(1, speed=9), ev(2, speed=9)]).verdict == "pass"
    )
    events = [ev(0, speed=9), ev(1, speed=9), ev(2, speed=5), ev(3, speed=9)]
    assert at(one(engine, criterion, events)) == ("fail", 3, 3.0)


def test_count_when_episode_counts_at_its_first_event(engine: Engine) -> None:
    criterion = crit(count={"when": "speed > 8", "min": 1})
    r = one(engine, criterion, [ev(0, speed=3), ev(1, speed=9), ev(2, speed=10)])
    assert at(r) == ("pass", 1, 1.0)
    assert r.evidence.values == {"speed": 9.0}


# ----------------------------------------------------------------------------- response (12)

RESPONSE = crit(response={"after": "intersection_entered", "expect": "horn", "within": "3s"})


def test_answered_response_passes_at_end(engine: Engine) -> None:
    events = [ev(0), ev(1, "intersection_entered"), ev(2, "horn")]
    r = one(engine, RESPONSE, events, close_t=10)
    assert at(r) == ("pass", 2, 10.0)
    assert span(r) == (0.0, 0, 10.0, 2)


def test_response_exactly_within_is_in_time(engine: Engine) -> None:
    events = [ev(1, "intersection_entered"), ev(4, "horn"), ev(20)]
    assert one(engine, RESPONSE, events).verdict == "pass"


def test_unanswered_response_fails_at_first_event_past_the_deadline(engine: Engine) -> None:
    events = [ev(0), ev(1, "intersection_entered"), ev(3.9), ev(4.5), ev(5, "horn")]
    r = one(engine, RESPONSE, events)
    assert at(r) == ("fail", 3, 4.5)
    assert span(r) == (1.0, 1, 4.5, 3)


def test_response_expiry_is_checked_before_the_answer(engine: Engine) -> None:
    r = one(engine, RESPONSE, [ev(1, "intersection_entered"), ev(4.5, "horn")])
    assert at(r) == ("fail", 1, 4.5)


def test_one_answer_serves_every_waiting_trigger(engine: Engine) -> None:
    events = [ev(1, "intersection_entered"), ev(2, "intersection_entered"), ev(3.5, "horn"), ev(9)]
    assert one(engine, RESPONSE, events).verdict == "pass"


def test_oldest_unanswered_trigger_expires_first(engine: Engine) -> None:
    events = [ev(1, "intersection_entered"), ev(3, "intersection_entered"), ev(4.5, "horn")]
    r = one(engine, RESPONSE, events)
    assert at(r) == ("fail", 2, 4.5)
    assert span(r) == (1.0, 0, 4.5, 2)


def test_event_that_is_trigger_and_answer_does_not_answer_itself(engine: Engine) -> None:
    criterion = crit(
        response={"after": "intersection_entered", "expect": {"when": "speed < 1"}, "within": 3}
    )
    events = [ev(0, "intersection_entered", speed=5), ev(1, "intersection_entered", speed=0)]
    r = one(engine, criterion, events, close_t=2)
    assert at(r) == ("fail", 1, 2.0)
    assert span(r) == (1.0, 1, 2.0, 1)
    assert r.evidence.values == {"speed": 0.0}


def test_unanswered_trigger_fails_at_end_before_its_time_runs_out(engine: Engine) -> None:
    r = one(engine, RESPONSE, [ev(0), ev(1, "intersection_entered")], close_t=2)
    assert at(r) == ("fail", 1, 2.0)
    assert span(r) == (1.0, 1, 2.0, 1)


def test_answer_before_the_trigger_does_not_count(engine: Engine) -> None:
    r = one(engine, RESPONSE, [ev(0, "horn"), ev(1, "intersection_entered")], close_t=10)
    assert at(r) == ("fail", 1, 10.0)


def test_answer_at_same_time_later_seq_counts(engine: Engine) -> None:
    events = [ev(1, "intersection_entered"), ev(1, "horn")]
    assert one(engine, RESPONSE, events, close_t=10).verdict == "pass"


def test_response_with_conditions(engine: Engine) -> None:
    criterion = crit(
        response={
            "after": {"when": "pedestrian_distance < 5"},
            "expect": {"when": "speed < 1"},
            "within": 2,
        }
    )
    events = [
        ev(0, speed=6, pedestrian_distance=10),
        ev(1, pedestrian_distance=4),
        ev(2, speed=3),
        ev(3.5),
    ]
    r = one(engine, criterion, events)
    # Each event with pedestrian_distance < 5 is a trigger: seq 1, 2 and 3; none is answered.
    assert at(r) == ("fail", 3, 3.5)
    assert span(r) == (1.0, 1, 3.5, 3)
    assert r.evidence.values == {"pedestrian_distance": 4.0, "speed": 3.0}


# ------------------------------------------------------------------------------ precede (13)

PRECEDE = crit(precede={"event": "pallet_picked", "by": "horn", "within": "2s"})


def test_precede_passes_at_end_when_every_trigger_had_one(engine: Engine) -> None:
    r = one(engine, PRECEDE, [ev(0, "horn"), ev(1, "pallet_picked")], close_t=6)
    assert at(r) == ("pass", 1, 6.0)
    assert span(r) == (0.0, 0, 6.0, 1)


def test_precede_fails_at_trigger_without_earlier_b(engine: Engine) -> None:
    r = one(engine, PRECEDE, [ev(0), ev(1, "pallet_picked"), ev(2, "horn")])
    assert at(r) == ("fail", 1, 1.0)
    assert span(r) == (1.0, 1, 1.0, 1)


@pytest.mark.parametrize(("t_a", "verdict"), [(2.0, "pass"), (2.5, "fail")])
def test_precede_window_includes_its_bound(engine: Engine, t_a: float, verdict: str) -> None:
    assert one(engine, PRECEDE, [ev(0, "horn"), ev(t_a, "pallet_picked")]).verdict == verdict


def test_precede_b_at_the_same_event_does_not_count(engine: Engine) -> None:
    criterion = crit(precede={"event": "pallet_picked", "by": {"when": "fork_height < 0.2"}})
    r = one(engine, criterion, [ev(0, "pallet_picked", fork_height=0.1)])
    assert at(r) == ("fail", 0, 0.0)
    assert r.evidence.values == {"fork_height": 0.1}


def test_precede_b_at_same_time_earlier_seq_counts(engine: Engine) -> None:
    assert one(engine, PRECEDE, [ev(3, "horn"), ev(3, "pallet_picked")]).verdict == "pass"


def test_precede_without_within_accepts_any_earlier_b(engine: Engine) -> None:
    criterion = crit(precede={"event": "pallet_picked", "by": "horn"})
    assert one(engine, criterion, [ev(0, "horn"), ev(100, "pallet_picked")]).verdict == "pass"


def test_precede_checks_every_trigger(engine: Engine) -> None:
    events = [ev(0, "horn"), ev(1, "pallet_picked"), ev(5, "pallet_picked")]
    assert at(one(engine, PRECEDE, events)) == ("fail", 2, 5.0)


# ----------------------------------------------------------------------------- duration (14)

DURATION = crit(duration={"from": "engine_start", "to": "engine_stop", "min": "2s", "max": "10s"})


def test_duration_passes_when_b_arrives_in_range(engine: Engine) -> None:
    r = one(engine, DURATION, [ev(0), ev(1, "engine_start"), ev(5, "engine_stop")])
    assert at(r) == ("pass", 2, 5.0)
    assert span(r) == (1.0, 1, 5.0, 2)


@pytest.mark.parametrize(("t_b", "verdict"), [(3.0, "pass"), (11.0, "pass"), (2.9, "fail")])
def test_duration_bounds_are_inclusive(engine: Engine, t_b: float, verdict: str) -> None:
    r = one(engine, DURATION, [ev(1, "engine_start"), ev(t_b, "engine_stop")])
    assert at(r) == (verdict, 1, t_b)


def test_duration_fails_when_max_passes_without_b(engine: Engine) -> None:
    r = one(engine, DURATION, [ev(1, "engine_start"), ev(11), ev(11.5), ev(12, "engine_stop")])
    assert at(r) == ("fail", 2, 11.5)
    assert span(r) == (1.0, 0, 11.5, 2)


def test_duration_expiry_is_checked_before_b(engine: Engine) -> None:
    r = one(engine, DURATION, [ev(1, "engine_start"), ev(11.5, "engine_stop")])
    assert at(r) == ("fail", 1, 11.5)


def test_duration_only_the_first_a_matters(engine: Engine) -> None:
    events = [ev(1, "engine_start"), ev(8, "engine_start"), ev(12, "engine_stop")]
    r = one(engine, DURATION, events)
    assert at(r) == ("fail", 2, 12.0)
    assert span(r) == (1.0, 0, 12.0, 2)


def test_duration_b_must_be_at_a_later_event_than_a(engine: Engine) -> None:
    criterion = crit(
        duration={"from": {"when": "speed > 0"}, "to": {"when": "speed > 0"}, "max": 5}
    )
    r = one(engine, criterion, [ev(0, speed=1), ev(2, speed=1)])
    assert at(r) == ("pass", 1, 2.0)
    assert span(r) == (0.0, 0, 2.0, 1)


def test_duration_b_before_a_is_ignored(engine: Engine) -> None:
    criterion = crit(duration={"from": "engine_start", "to": "engine_stop", "min": 2})
    r = one(engine, criterion, [ev(0, "engine_stop"), ev(1, "engine_start")], close_t=3)
    assert at(r) == ("fail", 1, 3.0)
    assert span(r) == (1.0, 1, 3.0, 1)


def test_duration_without_a_is_not_applicable(engine: Engine) -> None:
    r = one(engine, DURATION, [ev(0.5, "engine_stop"), ev(2)], close_t=4)
    assert at(r) == ("not_applicable", 1, 4.0)
    assert span(r) == (0.5, 0, 4.0, 1)


# ------------------------------------------------------------------------------- metric (15)


def metric(aggregate: str, of: str, **bounds: Any) -> dict[str, Any]:
    return crit(metric={"aggregate": aggregate, "of": of, **bounds})


def test_metric_max_fails_above_at_most(engine: Engine) -> None:
    r = one(
        engine,
        metric("max", "speed", at_most=10),
        [ev(0, speed=3), ev(1, speed=12), ev(2, speed=5)],
        7,
    )
    assert at(r) == ("fail", 2, 7.0)
    assert span(r) == (0.0, 0, 7.0, 2)
    assert r.evidence.measured == 12.0
    assert r.evidence.values == {"speed": 5.0}


def test_metric_min_fails_below_at_least(engine: Engine) -> None:
    r = one(
        engine,
        metric("min", "speed", at_least=2),
        [ev(0, speed=3), ev(1, speed=1.5), ev(2, speed=5)],
    )
    assert (r.verdict, r.evidence.measured) == ("fail", 1.5)


def test_metric_sum_adds_held_values_of_every_event(engine: Engine) -> None:
    r = one(engine, metric("sum", "load", at_most=100), [ev(0, load=30), ev(1, load=40), ev(2)])
    assert (r.verdict, r.evidence.measured) == ("fail", 110.0)


def test_metric_last_is_the_last_kept_value(engine: Engine) -> None:
    criterion = crit(metric={"aggregate": "last", "of": "speed", "where": "load > 0", "at_most": 5})
    r = one(engine, criterion, [ev(0, speed=3, load=1), ev(1, speed=7, load=0)])
    assert (r.verdict, r.evidence.measured) == ("pass", 3.0)
    assert r.evidence.values == {"load": 0.0, "speed": 7.0}


def test_metric_mean_weights_by_time_to_next_event_and_close(engine: Engine) -> None:
    events = [ev(0, speed=2), ev(1, speed=4), ev(4, speed=10)]
    r = one(engine, metric("mean", "speed", at_most=5), events, close_t=5)
    assert (r.verdict, r.evidence.measured) == ("pass", (2 * 1 + 4 * 3 + 10 * 1) / 5)


def test_metric_mean_with_zero_weights_is_the_plain_mean(engine: Engine) -> None:
    events = [ev(3, speed=1), ev(3, speed=2), ev(3, speed=6)]
    r = one(engine, metric("mean", "speed", at_least=3.5), events)
    assert (r.verdict, r.evidence.measured) == ("fail", 3.0)


NOT_A_NUMBER = [
    # speed * load: inf, then -inf (load held): the sum is inf + -inf
    (metric("sum", "speed * load", at_most=1e300), [ev(0, speed=1e308, load=10),
                                                    ev(1, speed=-1e308)]),
    # 1 / 5e-324 is inf, weighed by the 0 s to the next event: inf x 0 in the mean
    (metric("mean", "abs(speed / load)", at_most=1e300), [ev(0, speed=1, load=5e-324),
                                                          ev(0, load=1), ev(0.1, speed=0)]),
]  # fmt: skip


@pytest.mark.parametrize(("criterion", "events"), NOT_A_NUMBER)
def test_metric_whose_aggregate_is_not_a_number_fails(
    engine: Engine, criterion: dict[str, Any], events: list[EventSpec]
) -> None:
    """Decision 15: an aggregate that is not a number is within no bounds (it passed before)."""
    r = one(engine, criterion, events)
    assert (r.verdict, r.evidence.measured) == ("fail", None)


@pytest.mark.parametrize(("criterion", "events"), NOT_A_NUMBER)
def test_the_fused_close_fails_a_metric_whose_aggregate_is_not_a_number(
    provider: object, criterion: dict[str, Any], events: list[EventSpec]
) -> None:
    """The same decision in the close generated per rubric (`core.fused_close`)."""
    r = one("kernel", criterion, events)
    assert (r.verdict, r.evidence.measured) == ("fail", None)


def test_metric_weight_runs_to_the_next_event_kept_or_not(engine: Engine) -> None:
    criterion = crit(metric={"aggregate": "mean", "of": "speed", "where": "load > 0", "at_most": 9})
    events = [ev(0, speed=2, load=1), ev(1, speed=100, load=0), ev(3, speed=4, load=1)]
    r = one(engine, criterion, events, close_t=4)
    assert (r.verdict, r.evidence.measured) == ("pass", (2 * 1 + 4 * 1) / 2)


def test_metric_count_counts_events_where_condition_is_true(engine: Engine) -> None:
    events = [ev(i, speed=s) for i, s in enumerate([9, 9, 5, 9])]
    r = one(engine, metric("count", "speed > 8", at_most=2), events)
    assert (r.verdict, r.evidence.measured) == ("fail", 3.0)


def test_metric_count_keeps_false_events_but_not_unknown(engine: Engine) -> None:
    r = one(engine, metric("count", "speed > 8", at_most=0), [ev(0, load=1), ev(1, speed=3)])
    assert (r.verdict, r.evidence.measured) == ("pass", 0.0)
    r = one(engine, metric("count", "speed > 8", at_most=0), [ev(0, load=1)])
    assert r.verdict == "not_applicable"


def test_metric_time_true_sums_weights_where_true(engine: Engine) -> None:
    events = [ev(0, speed=9), ev(1.5, speed=5), ev(2, speed=9)]
    r = one(engine, metric("time_true", "speed > 8", at_most=2), events, close_t=3.25)
    assert (r.verdict, r.evidence.measured) == ("fail", 2.75)


def test_metric_where_unknown_does_not_keep(engine: Engine) -> None:
    criterion = crit(metric={"aggregate": "max", "of": "speed", "where": "load > 0", "at_most": 5})
    r = one(engine, criterion, [ev(0, speed=50), ev(1, speed=3, load=2)])
    assert (r.verdict, r.evidence.measured) == ("pass", 3.0)


def test_metric_without_kept_events_is_not_applicable(engine: Engine) -> None:
    r = one(engine, metric("max", "speed", at_most=5), [ev(0, load=1), ev(1)], close_t=2)
    assert at(r) == ("not_applicable", 1, 2.0)
    assert r.evidence.measured is None
    assert r.evidence.values == {"speed": None}


@pytest.mark.parametrize(
    "bounds", [{"at_most": 12}, {"at_least": 12}, {"at_most": 12, "at_least": 12}]
)
def test_metric_bounds_are_inclusive(engine: Engine, bounds: dict[str, float]) -> None:
    assert one(engine, metric("max", "speed", **bounds), [ev(0, speed=12)]).verdict == "pass"


# ----------------------------------------------------------------------------- observed (16)

OBSERVED = crit("obs", observed={"item": "Checks mirrors before reversing"})


def test_observed_without_record_is_pending_and_session_incomplete(engine: Engine) -> None:
    report = run(engine, OBSERVED, [ev(0), ev(1)])
    assert report.criteria[0].verdict == "pending"
    assert report.criteria[0].evidence.to_data() == {
        "seq": None,
        "t": None,
        "t_start": None,
        "t_end": None,
        "seq_start": None,
        "seq_end": None,
        "values": {},
    }
    assert report.outcome == "incomplete"
    assert report.score == 0.0


@pytest.mark.parametrize(("verdict", "outcome"), [("pass", "pass"), ("fail", "fail")])
def test_observation_decides_at_the_close(engine: Engine, verdict: Verdict, outcome: str) -> None:
    report = run(engine, OBSERVED, [ev(2), ev(3)], close_t=9, observations={"obs": verdict})
    r = report.criteria[0]
    assert at(r) == (verdict, 1, 9.0)
    assert span(r) == (2.0, 0, 9.0, 1)
    assert r.evidence.values == {}
    assert report.outcome == outcome


@pytest.mark.parametrize("verdict", ["pending", "not_applicable"])
def test_only_pass_or_fail_records_an_observation(engine: Engine, verdict: Verdict) -> None:
    report = run(engine, OBSERVED, [ev(0)], observations={"obs": verdict})
    assert report.criteria[0].verdict == "pending"


def test_observation_for_a_machine_criterion_is_ignored(engine: Engine) -> None:
    report = run(engine, crit(never="speed > 8"), [ev(0, speed=9)], observations={"c": "pass"})
    assert at(report.criteria[0]) == ("fail", 0, 0.0)


def test_critical_observed_pending_keeps_session_incomplete(engine: Engine) -> None:
    model = rubric(crit("obs", critical=True, observed={"item": "x"}), crit(never="speed > 8"))
    report = run(engine, model, [ev(0, speed=3)])
    assert (report.outcome, report.score) == ("incomplete", 100.0)


# ------------------------------------------------------------------------------ machine (17)

MACHINE: dict[str, Any] = {
    "initial": "idle",
    "states": {
        "idle": [{"on": "engine_start", "to": "running"}],
        "running": [{"on": "collision", "to": "fail"}, {"on": "engine_stop", "to": "pass"}],
    },
}


def machine(initial: str = "idle", at_end: str | None = None, **states: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"initial": initial, "states": states}
    if at_end is not None:
        spec["at_end"] = at_end
    return crit(machine=spec)


def test_machine_passes_on_entering_pass_anchored_at_state_entry(engine: Engine) -> None:
    r = one(engine, crit(machine=MACHINE), [ev(0), ev(1, "engine_start"), ev(5, "engine_stop")])
    assert at(r) == ("pass", 2, 5.0)
    assert span(r) == (1.0, 1, 5.0, 2)


def test_machine_fails_on_entering_fail(engine: Engine) -> None:
    r = one(engine, crit(machine=MACHINE), [ev(0, "engine_start"), ev(2, "collision")])
    assert at(r) == ("fail", 1, 2.0)
    assert span(r) == (0.0, 0, 2.0, 1)


def test_machine_at_end_defaults_to_fail(engine: Engine) -> None:
    r = one(engine, crit(machine=MACHINE), [ev(0), ev(2, "engine_start")], close_t=10)
    assert at(r) == ("fail", 1, 10.0)
    assert span(r) == (2.0, 1, 10.0, 1)


def test_machine_at_end_pass_is_anchored_at_session_start(engine: Engine) -> None:
    r = one(
        engine, crit(machine={**MACHINE, "at_end": "pass"}), [ev(0.5), ev(2, "engine_start")], 10
    )
    assert at(r) == ("pass", 1, 10.0)
    assert span(r) == (0.5, 0, 10.0, 1)


def test_entered_state_is_in_force_from_the_next_event(engine: Engine) -> None:
    criterion = machine(
        idle=[{"on": "engine_start", "to": "running"}],
        running=[{"on": "engine_start", "to": "fail"}],
    )
    assert one(engine, criterion, [ev(0, "engine_start")], 3).verdict == "fail"  # at end
    r = one(engine, criterion, [ev(0, "engine_start"), ev(1, "engine_start")])
    assert at(r) == ("fail", 1, 1.0)
    assert span(r) == (0.0, 0, 1.0, 1)


def test_first_listed_matching_transition_fires(engine: Engine) -> None:
    criterion = machine(
        idle=[{"when": "speed > 15", "to": "fail"}, {"on": "engine_stop", "to": "pass"}]
    )
    r = one(engine, criterion, [ev(0, speed=3), ev(1, "engine_stop", speed=16)])
    assert at(r) == ("fail", 1, 1.0)
    assert r.evidence.values == {"speed": 16.0}


FOR_MACHINE = machine(
    idle=[{"on": "engine_start", "to": "running"}],
    running=[
        {"when": "speed > 15", "for": "3s", "to": "fail"},
        {"on": "engine_stop", "to": "pass"},
    ],
)


def test_machine_for_fires_when_run_reaches_exactly_for(engine: Engine) -> None:
    events = [ev(0, "engine_start"), ev(1, speed=16), ev(2), ev(4)]
    r = one(engine, FOR_MACHINE, events)
    assert at(r) == ("fail", 3, 4.0)
    assert span(r) == (0.0, 0, 4.0, 3)


def test_machine_for_run_shorter_than_for_does_not_fire(engine: Engine) -> None:
    events = [ev(0, "engine_start"), ev(1, speed=16), ev(3.9, "engine_stop")]
    assert at(one(engine, FOR_MACHINE, events)) == ("pass", 2, 3.9)


def test_machine_for_run_is_broken_when_condition_lapses(engine: Engine) -> None:
    events = [ev(0, "engine_start"), ev(1, speed=16), ev(2, speed=10), ev(3, speed=16), ev(5)]
    r = one(engine, FOR_MACHINE, events, close_t=6)
    assert at(r) == ("fail", 4, 6.0)  # the machine's at_end, not the `for` transition


def test_machine_for_run_starts_inside_the_state(engine: Engine) -> None:
    events = [ev(0, speed=16), ev(2, "engine_start"), ev(3), ev(5), ev(6)]
    r = one(engine, FOR_MACHINE, events)
    assert at(r) == ("fail", 4, 6.0)
    assert span(r) == (2.0, 1, 6.0, 4)


def test_machine_for_run_is_kept_while_other_events_pass(engine: Engine) -> None:
    criterion = machine(
        idle=[{"on": "horn", "to": "fail"}, {"when": "load > 0", "for": 2, "to": "pass"}],
    )
    events = [ev(0, load=5), ev(1, "intersection_entered"), ev(2, "pallet_picked")]
    assert at(one(engine, criterion, events)) == ("pass", 2, 2.0)


def test_initial_state_is_entered_at_time_zero(engine: Engine) -> None:
    criterion = machine(idle=[{"after": 5, "to": "fail"}, {"on": "engine_start", "to": "pass"}])
    r = one(engine, criterion, [ev(3), ev(5), ev(6, "engine_start")])
    assert at(r) == ("fail", 1, 5.0)
    assert span(r) == (3.0, 0, 5.0, 1)


def test_after_counts_from_the_event_that_entered_the_state(engine: Engine) -> None:
    criterion = machine(
        idle=[{"on": "engine_start", "to": "running"}], running=[{"after": 10, "to": "pass"}]
    )
    events = [ev(0), ev(2, "engine_start"), ev(11.9), ev(12)]
    assert at(one(engine, criterion, events)) == ("pass", 3, 12.0)


def test_self_transition_restarts_the_state_timers(engine: Engine) -> None:
    criterion = machine(
        idle=[{"on": "engine_start", "to": "running"}],
        running=[{"on": "horn", "to": "running"}, {"after": 5, "to": "fail"}],
    )
    events = [ev(0, "engine_start"), ev(4, "horn"), ev(8), ev(9), ev(10)]
    r = one(engine, criterion, events)
    assert at(r) == ("fail", 3, 9.0)
    assert span(r) == (4.0, 1, 9.0, 3)


def test_self_transition_restarts_for_runs(engine: Engine) -> None:
    criterion = machine(
        running=[{"on": "horn", "to": "running"}, {"when": "speed > 15", "for": 2, "to": "fail"}],
        initial="running",
    )
    events = [ev(0, speed=16), ev(1.5, "horn"), ev(2.5), ev(3.5), ev(4.5)]
    r = one(engine, criterion, events)
    assert at(r) == ("fail", 4, 4.5)  # the run restarts at t=2.5, the event after re-entry
    assert span(r) == (1.5, 1, 4.5, 4)


AFTER_AT_CLOSE = machine(
    idle=[{"on": "engine_start", "to": "running"}],
    running=[{"on": "engine_stop", "to": "fail"}, {"after": 10, "to": "pass"}],
)


def test_after_fires_at_the_close_when_its_time_has_come(engine: Engine) -> None:
    r = one(engine, AFTER_AT_CLOSE, [ev(0), ev(2, "engine_start"), ev(5)], close_t=12)
    assert at(r) == ("pass", 2, 12.0)
    assert span(r) == (0.0, 0, 12.0, 2)


def test_after_not_due_at_the_close_leaves_at_end(engine: Engine) -> None:
    r = one(engine, AFTER_AT_CLOSE, [ev(0), ev(2, "engine_start"), ev(5)], close_t=11.9)
    assert at(r) == ("fail", 2, 11.9)
    assert span(r) == (2.0, 1, 11.9, 2)


def test_after_at_close_into_a_plain_state_gives_at_end(engine: Engine) -> None:
    criterion = machine(
        at_end="pass",
        idle=[{"after": 1, "to": "waiting"}],
        waiting=[{"after": 1, "to": "fail"}],
    )
    assert at(one(engine, criterion, [ev(0.5)], close_t=50)) == ("pass", 0, 50.0)


def test_at_end_after_close_transition_is_anchored_at_the_last_entered_state(
    engine: Engine,
) -> None:
    criterion = machine(
        idle=[{"on": "engine_start", "to": "running"}],
        running=[{"after": 5, "to": "waiting"}],
        waiting=[{"on": "engine_stop", "to": "pass"}],
    )
    r = one(engine, criterion, [ev(0), ev(2, "engine_start"), ev(3)], close_t=20)
    assert at(r) == ("fail", 2, 20.0)
    assert span(r) == (2.0, 1, 20.0, 2)  # the close is not an event: no state entered there


def test_after_at_close_counts_from_entry_at_the_last_event(engine: Engine) -> None:
    criterion = machine(
        idle=[{"on": "engine_stop", "to": "stopping"}], stopping=[{"after": 0, "to": "pass"}]
    )
    assert at(one(engine, criterion, [ev(0), ev(5, "engine_stop")])) == ("pass", 1, 5.0)


def test_after_with_an_event_cannot_fire_at_the_close(engine: Engine) -> None:
    criterion = machine(at_end="pass", idle=[{"on": "horn", "after": 1, "to": "fail"}])
    assert one(engine, criterion, [ev(0)], close_t=20).verdict == "pass"


# ------------------------------------------------------------------ score and outcome (18-21)

PASSES = {"never": "speed > 100"}
FAILS = {"count": {"event": "collision", "max": 0}}
NOT_APPLICABLE = {"duration": {"from": "parked", "to": "engine_stop", "max": 1}}
SCORING_EVENTS = [ev(0, speed=3), ev(1, "collision")]


def test_score_is_passed_points_over_scorable_points(engine: Engine) -> None:
    model = rubric(
        crit("a", points=20, **PASSES),
        crit("b", points=10, **FAILS),
        crit("c", points=50, **NOT_APPLICABLE),
        min_score=60,
    )
    report = run(engine, model, SCORING_EVENTS)
    assert [c.verdict for c in report.criteria] == ["pass", "fail", "not_applicable"]
    assert report.score == 100.0 * 20 / 30
    assert report.outcome == "pass"


def test_score_below_min_score_fails(engine: Engine) -> None:
    model = rubric(crit("a", **PASSES), crit("b", **FAILS), min_score=60)
    report = run(engine, model, SCORING_EVENTS)
    assert (report.score, report.outcome) == (50.0, "fail")


def test_score_equal_to_min_score_passes(engine: Engine) -> None:
    model = rubric(crit("a", **PASSES), crit("b", **FAILS), min_score=50)
    assert run(engine, model, SCORING_EVENTS).outcome == "pass"


def test_default_min_score_is_100(engine: Engine) -> None:
    model = rubric(crit("a", points=99, **PASSES), crit("b", **FAILS))
    assert run(engine, model, SCORING_EVENTS).outcome == "fail"


def test_score_is_100_without_scorable_points(engine: Engine) -> None:
    model = rubric(crit("a", critical=True, **PASSES), crit("b", points=0, **FAILS))
    report = run(engine, model, SCORING_EVENTS)
    assert (report.score, report.outcome) == (100.0, "pass")


def test_failed_critical_criterion_fails_the_session(engine: Engine) -> None:
    model = rubric(crit("a", **PASSES), crit("b", critical=True, **FAILS))
    report = run(engine, model, SCORING_EVENTS)
    assert (report.score, report.outcome) == (100.0, "fail")


def test_not_applicable_critical_criterion_does_not_block_a_pass(engine: Engine) -> None:
    model = rubric(crit("a", **PASSES), crit("b", critical=True, **NOT_APPLICABLE))
    assert run(engine, model, SCORING_EVENTS).outcome == "pass"


def test_pending_counts_in_the_score_denominator(engine: Engine) -> None:
    model = rubric(crit("a", **PASSES), crit("obs", observed={"item": "x"}), min_score=50)
    report = run(engine, model, SCORING_EVENTS)
    assert report.score == 50.0


def test_pending_observation_blocks_a_pass_even_above_min_score(engine: Engine) -> None:
    model = rubric(crit("a", **PASSES), crit("obs", observed={"item": "x"}), min_score=50)
    assert run(engine, model, SCORING_EVENTS).outcome == "incomplete"
    recorded = run(engine, model, SCORING_EVENTS, observations={"obs": "fail"})
    assert (recorded.score, recorded.outcome) == (50.0, "pass")


def test_unreachable_min_score_fails_despite_pending_observation(engine: Engine) -> None:
    model = rubric(crit("b", **FAILS), crit("obs", observed={"item": "x"}), min_score=60)
    report = run(engine, model, SCORING_EVENTS)
    assert (report.score, report.outcome) == (0.0, "fail")


def test_reachable_min_score_with_pending_observation_is_incomplete(engine: Engine) -> None:
    model = rubric(crit("b", **FAILS), crit("obs", observed={"item": "x"}), min_score=50)
    assert run(engine, model, SCORING_EVENTS).outcome == "incomplete"


def test_report_carries_rubric_identity_and_points(engine: Engine) -> None:
    model = rubric(
        crit("z", points=20, **PASSES), crit("a", critical=True, **PASSES), crit("m", **PASSES)
    )
    report = run(engine, model, [ev(0)])
    assert (report.session, report.rubric, report.rubric_version) == ("S1", "test-rubric", 3)
    assert report.rubric_sha256 == model.sha256()
    assert [(c.id, c.critical, c.points) for c in report.criteria] == [
        ("z", False, 20.0),
        ("a", True, 0.0),
        ("m", False, 1.0),
    ]
    assert report.criteria[0].title == "criterion z"


# ------------------------------------------------------------------------ sessions (4, 7)


def test_close_defaults_to_the_last_event_time(engine: Engine) -> None:
    assert at(one(engine, crit(never="speed > 8"), [ev(0), ev(4.5)])) == ("pass", 1, 4.5)


def test_evidence_uses_the_events_own_seq_numbers(engine: Engine) -> None:
    events = [Event(10, 0.0, "sample", {"speed": 1}), Event(17, 2.0, "sample", {"speed": 9})]
    r = one(engine, crit(never="speed > 8"), events)
    assert at(r) == ("fail", 17, 2.0)
    assert span(r) == (2.0, 17, 2.0, 17)


def test_empty_session_decides_at_the_close_without_seq(engine: Engine) -> None:
    model = rubric(
        crit("nv", never="speed > 8"),
        crit("sq", sequence=["engine_start"]),
        crit("mt", metric={"aggregate": "max", "of": "speed", "at_most": 1}),
        crit("du", **NOT_APPLICABLE),
        crit("cn", count={"event": "horn", "min": 1, "max": 2}),
        crit("ob", observed={"item": "x"}),
    )
    report = run(engine, model, [], close_t=30)
    results = {c.id: c for c in report.criteria}
    assert {k: at(r) for k, r in results.items()} == {
        "nv": ("pass", None, 30.0),
        "sq": ("fail", None, 30.0),
        "mt": ("not_applicable", None, 30.0),
        "du": ("not_applicable", None, 30.0),
        "cn": ("fail", None, 30.0),
        "ob": ("pending", None, None),
    }
    assert span(results["nv"]) == (None, None, 30.0, None)
    assert results["nv"].evidence.values == {"speed": extremes(None, None)}
    assert results["mt"].evidence.values == {"speed": None}


def test_empty_session_machine_can_time_out_at_the_close(engine: Engine) -> None:
    criterion = machine(idle=[{"after": 10, "to": "pass"}])
    assert at(one(engine, criterion, [], close_t=10)) == ("pass", None, 10.0)
    assert at(one(engine, criterion, [])) == ("fail", None, 0.0)


def test_values_are_sorted_by_signal_name(engine: Engine) -> None:
    criterion = crit(count={"when": "speed > 8 and load > 0 and fork_height < 1", "max": 0})
    r = one(engine, criterion, [ev(0, speed=9, load=1, fork_height=0.5)])
    assert list(r.evidence.values or {}) == ["fork_height", "load", "speed"]


# --------------------------------------------------------------------- the reference itself


def test_incremental_session_matches_whole_session_scoring() -> None:
    model = rubric(
        {**SEQUENCE, "id": "a"}, crit("b", never="speed > 8", for_=1), {**DURATION, "id": "d"}
    )
    events = [ev(0, "seatbelt_on"), ev(1, "engine_start"), ev(2, speed=9), ev(3.5, "engine_stop")]
    whole = score_session(model, forklift(), session(events, close_t=5))
    scorer = ReferenceSession(model, "S1")
    for e in session(events).events:
        scorer.step(e)
    mid = scorer.report()
    assert [c.verdict for c in mid.criteria] == ["pass", "fail", "pass"]
    assert scorer.close(5) == whole


def test_report_before_close_leaves_undecided_criteria_pending() -> None:
    scorer = ReferenceSession(rubric(crit(never="speed > 8")), "S1")
    scorer.step(Event(0, 0.0, "sample", {"speed": 3}))
    report = scorer.report()
    assert report.criteria[0].verdict == "pending"
    assert report.outcome == "incomplete"


@pytest.mark.parametrize(
    ("second", "message"),
    [(Event(0, 2.0, "sample"), "does not increase"), (Event(2, 0.5, "sample"), "backwards")],
)
def test_out_of_order_event_is_refused(second: Event, message: str) -> None:
    scorer = ReferenceSession(rubric(crit(never="speed > 8")), "S1")
    scorer.step(Event(1, 1.0, "sample"))
    with pytest.raises(ScoringError, match=message):
        scorer.step(second)


def test_close_before_last_event_or_twice_is_refused() -> None:
    scorer = ReferenceSession(rubric(crit(never="speed > 8")), "S1")
    scorer.step(Event(1, 1.0, "sample"))
    with pytest.raises(ScoringError, match="before the last event"):
        scorer.close(0.5)
    scorer.close(1.0)
    with pytest.raises(ScoringError, match="already closed"):
        scorer.close(2.0)
    with pytest.raises(ScoringError, match="closed"):
        scorer.step(Event(2, 2.0, "sample"))
