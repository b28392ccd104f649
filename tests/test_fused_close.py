"""The generated close (`core.fused_close`, loaded with the fused step by `runtime.fused`)
decides what `kernel.close` decides, field by field, and leaves the state as it leaves it;
`scorer.close` uses it when the state has it, `kernel.close` otherwise."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from assessengine.core import kernel
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import SessionEvents
from assessengine.core.kernel_types import Out
from assessengine.core.offline import score_sessions
from assessengine.core.rubric import Rubric
from assessengine.core.scorer import (
    MIN_CAPACITY,
    ScoringState,
    _close_order,
    close,
    close_chunks,
    step,
)
from assessengine.core.scoring import DecisionLog
from assessengine.runtime import fused

from .strategies import SCENARIO, rubrics, session_sets
from .test_fused_kernel import FUSED, _data, _forklift_like, _opened_on_a_fused_state, _rubric
from .test_kernel_properties import interleaved_batch, interleavings


def _zeroed_output(compiled: Any, state: ScoringState, rows: Any) -> Out:
    """A close's output for `rows` (decision-major, as `scorer._close_outputs` lays it out),
    zero-filled: the contributing rows' unset tail compares equal."""
    pending = int((state.verdict[rows] == 0).sum())
    oi = np.zeros((pending, 8), np.int64).T
    of = np.zeros((pending, 3 + 2 * compiled.max_ev), np.float64).T
    oc = np.zeros((pending, 1 + 2 * 8), np.float64).T
    return Out(oi, of, oc, np.zeros(2, np.int64))


def _both_closes(
    rubric: Rubric, sessions: list[SessionEvents], order: list[int], close_t: Any
) -> tuple[list[Any], list[Any]]:
    """The sessions stepped in `order` on a state with the fused step and close ready, then
    closed at `close_t` by `kernel.close` and, from the same state, by the generated close:
    each one's output (used part) and state arrays after it."""
    compiled = compile_rubric(rubric, SCENARIO)
    state = ScoringState.new(compiled, capacity=4)
    generated = state.fused_close
    assert generated is not None
    slots = state.open([s.session for s in sessions])
    step(compiled, state, interleaved_batch(sessions, slots, order))
    rows, times, names = _close_order(state, slots, close_t)
    before = [a.copy(order="K") for a in state.arrays]
    results = []
    for by_kernel in (True, False):
        for array, was in zip(state.arrays, before, strict=True):
            array[...] = was
        out = _zeroed_output(compiled, state, rows)
        if by_kernel:
            kernel.close(compiled.tables, state.arrays, out, rows, times, names)
        else:
            generated(rows, times, names, state.sess_i, state.sess_f, state.si, state.sf,
                      state.verdict, out.oi.T, out.of.T, out.oc.T, out.nd)  # fmt: skip
        m, k = int(out.nd[0]), int(out.nd[1])
        results.append([out.oi[:, :m], out.of[:, :m], out.oc[:, :k], out.nd.copy(),
                        *(a.copy() for a in state.arrays)])  # fmt: skip
    return results[0], results[1]


def _assert_equal(a: list[Any], b: list[Any]) -> None:
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y, equal_nan=True)


@pytest.mark.slow
@FUSED
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_the_generated_close_decides_as_kernel_close(
    provider: fused.FusedProvider, rubric: Rubric, sessions: list[SessionEvents],
    data: st.DataObject,
) -> None:  # fmt: skip
    """Any rubric, sessions and interleaving; close times at, after or before the last event,
    or none (NaN): every field of every decision, the contributing intervals and the state."""
    order = data.draw(interleavings(sessions))
    ends = [s.events[-1].t if s.events else 0.0 for s in sessions]
    shifts = data.draw(st.lists(st.sampled_from([0.0, 2.5, -1.0, np.nan]),
                                min_size=len(sessions), max_size=len(sessions)))  # fmt: skip
    close_t = np.array(ends) + np.array(shifts)
    by_kernel, generated = _both_closes(rubric, sessions, order, close_t)
    _assert_equal(generated, by_kernel)


_AFTER = {  # a machine whose verdict at the close depends on how long it has been calm
    "machine": {
        "initial": "calm",
        "at_end": "fail",
        "states": {
            "calm": [
                {"after": 40, "to": "fail"},
                {"after": 35, "to": "pass"},
                {"when": "x > 100", "to": "busy"},
            ],
            "busy": [{"after": 1, "to": "pass"}],
        },
    }
}


@pytest.mark.parametrize("shift", [0.0, 7.0, 30.0, -5.0, np.nan])
def test_the_generated_close_decides_as_kernel_close_on_a_rubric_of_every_template(
    provider: fused.FusedProvider, shift: float
) -> None:
    """Every template (and a machine with `after` transitions) over sessions with missing
    and NaN signals, closed at, after or before their last event, or with no close time."""
    rubric, sessions = _forklift_like()
    rubric = _rubric([*(c.model_dump(by_alias=True, exclude_none=True, exclude={"id", "title"})
                        for c in rubric.criteria), _AFTER])  # fmt: skip
    order = [k for k, s in enumerate(sessions) for _ in s.events]
    close_t = np.array([s.events[-1].t + shift for s in sessions])
    by_kernel, generated = _both_closes(rubric, sessions, order, close_t)
    assert int(by_kernel[3][0]) > 0
    _assert_equal(generated, by_kernel)


def test_a_state_with_the_fused_step_ready_closes_by_the_generated_close(
    provider: fused.FusedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`close` and `close_chunks` call the generated close, not `kernel.close`, and give the
    reference's reports."""
    rubric, sessions, compiled, _, _, _ = _opened_on_a_fused_state()

    def refused(*args: object) -> None:
        raise AssertionError("kernel.close was called")

    monkeypatch.setattr(kernel, "close", refused)
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    for closing in ("close", "close_chunks"):
        state = ScoringState.new(compiled, capacity=4)
        slots = state.open([s.session for s in sessions])
        log = DecisionLog(compiled)
        batch = interleaved_batch(sessions, slots, [k for k, s in enumerate(sessions)
                                                    for _ in s.events])  # fmt: skip
        log.add(step(compiled, state, batch))
        close_t = np.array([s.end_t for s in sessions])
        if closing == "close":
            log.add(close(compiled, state, slots, close_t))
        else:
            for part in close_chunks(compiled, state, slots, close_t, sessions=1):
                log.add(part)
        got = [log.pop_report(int(slot), s.session).to_data()
               for s, slot in zip(sessions, slots, strict=True)]  # fmt: skip
        assert got == reference


def test_a_close_the_generated_close_refuses_is_closed_by_kernel_close(
    provider: fused.FusedProvider,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Arrays the generated close has no compiled variant for (numba refuses the call
    before it runs: a TypeError) are closed by `kernel.close`, with the same reports."""
    rubric, sessions, compiled, state, slots, _ = _opened_on_a_fused_state()
    pending = state.fused_pending
    assert pending is not None

    def no_variant(*args: object) -> None:
        raise TypeError("No matching definition for argument type(s)")

    # the step is the rubric's, shared by its later states: undone after the test
    monkeypatch.setattr(pending, "close", no_variant)
    log = DecisionLog(compiled)
    batch = interleaved_batch(sessions, slots, [k for k, s in enumerate(sessions)
                                                for _ in s.events])  # fmt: skip
    log.add(step(compiled, state, batch))
    with caplog.at_level(logging.WARNING):
        log.add(close(compiled, state, slots, np.array([s.end_t for s in sessions])))
    assert "kernel.close closes them" in caplog.text
    got = [log.pop_report(int(slot), s.session).to_data()
           for s, slot in zip(sessions, slots, strict=True)]  # fmt: skip
    assert got == _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))


def test_a_state_asked_for_one_slot_steps_and_closes_by_the_fused_functions(
    provider: fused.FusedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state holds at least two slots (`MIN_CAPACITY`): with one, its field-major arrays
    are contiguous both ways, a layout numba types as row-major, which neither the fused
    functions nor the warmed-up table-driven kernel are compiled for. One session scored
    alone (a field upload, an audit) is stepped and closed by the fused step and close, with
    the reference's report."""
    rubric, sessions, *_ = _opened_on_a_fused_state()
    state = ScoringState.new(compile_rubric(rubric, SCENARIO), capacity=1)
    assert state.capacity == MIN_CAPACITY == 2
    assert state.steps_fused
    assert state.fused_close is not None

    def refused(*args: object) -> None:
        raise AssertionError("the table-driven kernel was called")

    for name in ("advance", "close"):
        monkeypatch.setattr(kernel, name, refused)
    alone = sessions[:1]
    assert _data(score_sessions(rubric, SCENARIO, alone)) == _data(
        score_sessions(rubric, SCENARIO, alone, engine="reference")
    )
