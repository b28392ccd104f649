"""The evidence that lets a page show *where* a count, a metric or a sequence was decided:
contributing intervals (bounded by `CONTRIB_MAX`), a count's value, a sequence's steps.

Each case runs on the kernel and on the reference scorer (`engine`): both must give the same.
"""

from __future__ import annotations

import pytest

from assessengine.core.offline import Engine
from assessengine.core.report import CONTRIB_MAX, Evidence

from .test_semantics import ENGINES, crit, ev, metric, one


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    value: Engine = request.param
    return value


def intervals(e: Evidence) -> tuple[tuple[tuple[float, float], ...] | None, int | None]:
    return e.contributing, e.contributing_total


def test_time_true_lists_the_spans_where_the_condition_held(engine: Engine) -> None:
    events = [ev(0, speed=3), ev(1, speed=13), ev(2, speed=14), ev(4, speed=5), ev(6, speed=15)]
    r = one(engine, metric("time_true", "speed > 12", at_most=2), events, close_t=7)
    assert (r.verdict, r.evidence.measured) == ("fail", 4.0)
    assert intervals(r.evidence) == (((1.0, 4.0), (6.0, 7.0)), 2)


def test_mean_lists_the_spans_its_kept_events_weigh(engine: Engine) -> None:
    criterion = crit(metric={"aggregate": "mean", "of": "speed", "where": "load > 0", "at_most": 9})
    events = [ev(0, speed=2, load=1), ev(1, speed=100, load=0), ev(3, speed=4, load=1)]
    r = one(engine, criterion, events, close_t=4)
    assert intervals(r.evidence) == (((0.0, 1.0), (3.0, 4.0)), 2)


def test_max_points_at_the_first_instant_of_its_value(engine: Engine) -> None:
    events = [ev(0, speed=3), ev(1, speed=12), ev(2, speed=12), ev(3, speed=5)]
    r = one(engine, metric("max", "speed", at_most=10), events, close_t=4)
    assert intervals(r.evidence) == (((1.0, 1.0),), 1)


def test_count_metric_lists_the_instants_it_counted(engine: Engine) -> None:
    events = [ev(i, speed=s) for i, s in enumerate([9, 9, 5, 9])]
    r = one(engine, metric("count", "speed > 8", at_most=2), events)
    # instants at 0 and 1 are not adjoining (an instant ends where it starts)
    assert intervals(r.evidence) == (((0.0, 0.0), (1.0, 1.0), (3.0, 3.0)), 3)


def test_count_criterion_carries_its_count_and_occurrences(engine: Engine) -> None:
    criterion = crit(count={"event": "horn", "max": 1})
    events = [ev(0), ev(2, "horn"), ev(3), ev(5, "horn"), ev(6, "horn")]
    r = one(engine, criterion, events)
    assert (r.verdict, r.evidence.measured, r.evidence.t) == ("fail", 2.0, 5.0)
    assert intervals(r.evidence) == (((2.0, 2.0), (5.0, 5.0)), 2)


def test_count_of_episodes_at_the_close_lists_each_episode_start(engine: Engine) -> None:
    criterion = crit(count={"when": "speed > 8", "min": 3})
    events = [ev(0, speed=9), ev(1, speed=9), ev(2, speed=1), ev(3, speed=9)]
    r = one(engine, criterion, events, close_t=5)
    assert (r.verdict, r.evidence.measured) == ("fail", 2.0)
    assert intervals(r.evidence) == (((0.0, 0.0), (3.0, 3.0)), 2)


def test_contributing_intervals_are_bounded_and_all_counted(engine: Engine) -> None:
    n = CONTRIB_MAX + 5
    events = [ev(2 * k, speed=20 if k % 2 == 0 else 1) for k in range(2 * n)]
    r = one(engine, metric("time_true", "speed > 12", at_most=1), events)
    listed, total = intervals(r.evidence)
    assert total == n
    assert listed is not None
    assert len(listed) == CONTRIB_MAX
    assert listed[:2] == ((0.0, 2.0), (4.0, 6.0))
    assert r.evidence.to_data()["contributing_total"] == n


def test_sequence_names_the_step_that_came_out_of_order(engine: Engine) -> None:
    criterion = crit(sequence=["horn", "pallet_picked", "pallet_placed"])
    events = [ev(0, "horn"), ev(1, "pallet_placed")]
    r = one(engine, criterion, events)
    assert (r.verdict, r.evidence.steps_done, r.evidence.out_of_order) == ("fail", 1, 3)


def test_sequence_not_finished_at_the_close_says_how_far_it_got(engine: Engine) -> None:
    criterion = crit(sequence=["horn", "pallet_picked", "pallet_placed"])
    r = one(engine, criterion, [ev(0, "horn"), ev(1, "pallet_picked")], close_t=3)
    assert (r.verdict, r.evidence.steps_done, r.evidence.out_of_order) == ("fail", 2, None)


def test_other_templates_leave_the_new_fields_out_of_the_json(engine: Engine) -> None:
    r = one(engine, crit(never="speed > 8"), [ev(0, speed=9)])
    data = r.evidence.to_data()
    assert not {"contributing", "contributing_total", "steps_done", "out_of_order"} & set(data)
