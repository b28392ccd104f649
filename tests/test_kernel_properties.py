"""Property tests: the compiled kernel equals the reference scorer, and its results do not
depend on how a stream is split into batches or how sessions are interleaved."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assessengine.core import scorer
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import Event, EventBatch, SessionEvents, batch_from_events
from assessengine.core.kernel_scorer import spans
from assessengine.core.offline import score_sessions
from assessengine.core.rubric import Rubric
from assessengine.core.scorer import ScoringState, close, step
from assessengine.core.scoring import DecisionLog

from .strategies import SCENARIO, rubrics, session_sets

PROPERTY = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _data(reports: list[Any]) -> list[dict[str, Any]]:
    return [r.to_data() for r in reports]


def interleaved_batch(
    sessions: list[SessionEvents], slots: Any, order: list[int]
) -> EventBatch:
    """One batch of the sessions' events in `order` (session indices; each session's own
    events stay in seq order), on their `slots`."""
    cursor = [0] * len(sessions)
    rows: list[tuple[int, Event]] = []
    for k in order:
        rows.append((int(slots[k]), sessions[k].events[cursor[k]]))
        cursor[k] += 1
    return batch_from_events(SCENARIO, rows)


def score_in_pieces(
    rubric: Rubric, sessions: list[SessionEvents], order: list[int], cuts: list[int]
) -> list[dict[str, Any]]:
    """Kernel reports when the rows arrive in `order` (session indices; each session's own
    events stay in seq order) and are cut into batches at the positions in `cuts`."""
    compiled = compile_rubric(rubric, SCENARIO)
    state = ScoringState.new(compiled, capacity=1)
    slots = state.open([s.session for s in sessions])
    batch = interleaved_batch(sessions, slots, order)
    log = DecisionLog(compiled)
    bounds = [0, *sorted(set(cuts)), len(batch)]
    for lo, hi in itertools.pairwise(bounds):
        log.add(step(compiled, state, batch.take(slice(lo, hi))))
    log.add(close(compiled, state, slots, np.array([s.end_t for s in sessions])))
    return [
        log.pop_report(int(slot), s.session).to_data()
        for s, slot in zip(sessions, slots, strict=True)
    ]


@st.composite
def interleavings(draw: st.DrawFn, sessions: list[SessionEvents]) -> list[int]:
    labels = [k for k, s in enumerate(sessions) for _ in s.events]
    return draw(st.permutations(labels))


@PROPERTY
@given(rubric=rubrics(), sessions=session_sets())
def test_kernel_equals_reference(rubric: Rubric, sessions: list[SessionEvents]) -> None:
    kernel = score_sessions(rubric, SCENARIO, sessions, engine="kernel")
    reference = score_sessions(rubric, SCENARIO, sessions, engine="reference")
    assert _data(kernel) == _data(reference)


@PROPERTY
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_any_batch_split_gives_the_same_reports(
    rubric: Rubric, sessions: list[SessionEvents], data: st.DataObject
) -> None:
    order = [k for k, s in enumerate(sessions) for _ in s.events]
    whole = score_in_pieces(rubric, sessions, order, [])
    cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=6))
    assert score_in_pieces(rubric, sessions, order, cuts) == whole


@PROPERTY
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_any_interleaving_of_sessions_gives_the_same_reports(
    rubric: Rubric, sessions: list[SessionEvents], data: st.DataObject
) -> None:
    order = [k for k, s in enumerate(sessions) for _ in s.events]
    whole = score_in_pieces(rubric, sessions, order, [])
    shuffled = data.draw(interleavings(sessions))
    cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=3))
    assert score_in_pieces(rubric, sessions, shuffled, cuts) == whole


@contextmanager
def dense_share(share: int) -> Iterator[None]:
    """Criteria with sparse guards visit every row (share huge) or only their guards' rows
    (share 0), whatever the guards' density."""
    saved = scorer.DENSE_SHARE
    scorer.DENSE_SHARE = share
    try:
        yield
    finally:
        scorer.DENSE_SHARE = saved


@PROPERTY
@given(rubric=rubrics(), sessions=session_sets())
def test_visiting_every_row_or_only_the_guards_rows_gives_the_same_reports(
    rubric: Rubric, sessions: list[SessionEvents]
) -> None:
    with dense_share(0):
        sparse = score_sessions(rubric, SCENARIO, sessions, engine="kernel")
    with dense_share(10**9):
        dense = score_sessions(rubric, SCENARIO, sessions, engine="kernel")
    assert _data(sparse) == _data(dense)
    assert _data(dense) == _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))


@contextmanager
def scratch_rows(rows: int) -> Iterator[None]:
    """Steps of more than `rows` rows are scored in sub-steps of at most `rows`."""
    saved = scorer.SCRATCH_ROWS
    scorer.SCRATCH_ROWS = rows
    try:
        yield
    finally:
        scorer.SCRATCH_ROWS = saved


SUB_STEPS = settings(PROPERTY, max_examples=100)


@SUB_STEPS
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_sub_steps_give_the_same_reports(
    rubric: Rubric, sessions: list[SessionEvents], data: st.DataObject
) -> None:
    shuffled = data.draw(interleavings(sessions))
    whole = score_in_pieces(rubric, sessions, shuffled, [])
    cuts = data.draw(st.lists(st.integers(0, len(shuffled)), max_size=2))
    with scratch_rows(data.draw(st.integers(1, 8))):
        assert score_in_pieces(rubric, sessions, shuffled, cuts) == whole


def score_among_many(
    rubric: Rubric, sessions: list[SessionEvents], others: int, close_order: list[int]
) -> list[dict[str, Any]]:
    """Kernel reports of `sessions` scored in one batch while `others` idle sessions hold
    slots around theirs (the state grows past them), closed one call per session in
    `close_order`."""
    compiled = compile_rubric(rubric, SCENARIO)
    state = ScoringState.new(compiled, capacity=1)
    state.open([f"idle-{k}" for k in range(others)])
    slots = state.open([s.session for s in sessions])
    state.open([f"idle-after-{k}" for k in range(others)])
    rows = [(int(slot), e) for s, slot in zip(sessions, slots, strict=True) for e in s.events]
    log = DecisionLog(compiled)
    log.add(step(compiled, state, batch_from_events(SCENARIO, rows)))
    close_t = np.array([s.end_t for s in sessions])
    for k in close_order:
        log.add(close(compiled, state, slots[k : k + 1], close_t[k : k + 1]))
    return [
        log.pop_report(int(slot), s.session, span=span).to_data()
        for s, slot, span in zip(sessions, slots, spans(state, slots, close_t), strict=True)
    ]


@SUB_STEPS
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_many_idle_sessions_and_closing_one_by_one_give_the_reference_reports(
    rubric: Rubric, sessions: list[SessionEvents], data: st.DataObject
) -> None:
    others = data.draw(st.sampled_from([0, 3, 300]))
    close_order = data.draw(st.permutations(range(len(sessions))))
    kernel = score_among_many(rubric, sessions, others, close_order)
    reference = score_sessions(rubric, SCENARIO, sessions, engine="reference")
    assert kernel == _data(reference)


@SUB_STEPS
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_steps_of_equal_size_give_the_same_reports(
    rubric: Rubric, sessions: list[SessionEvents], data: st.DataObject
) -> None:
    """Steps of one size reuse one work buffer, whose event-guard rows a step leaves all false
    (`kernel.clear_event_guards`): an event of one step must not hold in the next."""
    shuffled = data.draw(interleavings(sessions))
    whole = score_in_pieces(rubric, sessions, shuffled, [])
    size = data.draw(st.integers(1, 6))
    cuts = list(range(size, len(shuffled), size))
    assert score_in_pieces(rubric, sessions, shuffled, cuts) == whole


@contextmanager
def nothing_skipped() -> Iterator[None]:
    """Every criterion visits its rows, even where it is decided in every session a batch
    touches."""
    saved = scorer.pending_sessions

    def all_pending(state: ScoringState, touched: np.ndarray) -> np.ndarray:
        return np.full(state.compiled.n_criteria, touched.shape[0], np.int64)

    scorer.pending_sessions = all_pending
    try:
        yield
    finally:
        scorer.pending_sessions = saved


@SUB_STEPS
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_skipping_criteria_decided_in_every_touched_session_gives_the_same_reports(
    rubric: Rubric, sessions: list[SessionEvents], data: st.DataObject
) -> None:
    order = [k for k, s in enumerate(sessions) for _ in s.events]  # session after session
    cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=6))
    skipping = score_in_pieces(rubric, sessions, order, cuts)
    with nothing_skipped():
        assert score_in_pieces(rubric, sessions, order, cuts) == skipping


def _metric_rubric(aggregate: str, of: str) -> Rubric:
    return Rubric.model_validate({
        "rubric": "nan-metric", "version": 1, "title": "A metric whose aggregate is NaN",
        "scenario": "prop", "pass": {"min_score": 0},
        "criteria": [{"id": "m", "title": "m", "metric": {"aggregate": aggregate, "of": of,
                                                          "at_most": 0}}],
    })  # fmt: skip


def test_a_metric_whose_aggregate_is_nan_fails_with_no_measured_value_in_either_engine(
) -> None:
    """Finite signals can make a metric's value infinite (1 / 5e-324, 1e308 * 10), and its
    aggregate then NaN: a `mean` weighs an infinite value by 0 s (inf * 0), a `sum` adds inf
    and -inf. The kernel keeps NaN as "no measured value" (its decision columns' None); the
    reference scorer reported `measured: NaN` (found by fuzzing with extreme values). Both
    record no measured value, and both fail the criterion: an undefined aggregate is within
    no bounds (docs/semantics.md 15; both passed it before)."""
    cases = [
        ("mean", "abs(x / y)", [(0.0, {"x": 1.0, "y": 5e-324}), (0.0, {"y": 1.0}),
                                (0.1, {"x": 0.0})]),
        ("sum", "x * y", [(0.0, {"x": 1e308, "y": 10.0}), (1.0, {"x": -1e308})]),
    ]  # fmt: skip
    for aggregate, of, rows in cases:
        rubric = _metric_rubric(aggregate, of)
        events = [Event(seq=k, t=t, event="sample", signals=sig) for k, (t, sig) in enumerate(rows)]
        sessions = [SessionEvents(session="S0", events=events, close_t=None)]
        reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
        assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference
        evidence = reference[0]["criteria"][0]["evidence"]
        assert reference[0]["criteria"][0]["verdict"] == "fail"
        assert "measured" not in evidence, (aggregate, evidence)
