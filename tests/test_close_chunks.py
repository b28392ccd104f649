"""`close_chunks`: the close in parts of a bounded number of sessions, the same decisions as
one `close`; `score`'s and `rescore`'s closes hold one part's output at a time."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from assessengine.adapters.library import load_rubric
from assessengine.core import kernel, kernel_scorer
from assessengine.core.compiler import NEVER, CompiledRubric, compile_rubric
from assessengine.core.report import CONTRIB_MAX
from assessengine.core.scorer import Decisions, ScoringState, close, close_chunks, step
from assessengine.sim.generate import SimBatch, simulate

ROOT = Path(__file__).resolve().parents[1]


def _stepped(compiled: CompiledRubric, seed: int, sessions: int) -> tuple[ScoringState, SimBatch]:
    _, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    sim = simulate(scenario, "mixed", sessions, seed=seed)
    batch = sim.batch().take(np.argsort(sim.t, kind="stable"))
    state = ScoringState.new(compiled, capacity=sessions + 3)  # three never named
    state.open([f"s{k}" for k in range(sessions + 3)])
    for start in range(0, len(batch), 500):
        step(compiled, state, batch.take(slice(start, start + 500)))
    return state, sim


def _fields(compiled: CompiledRubric, d: Decisions) -> dict[str, list[object]]:
    """Every field of `d`, NaN as None (compared as lists); of `values` and `contrib` only
    what the kernel sets (a criterion's named signals; the contributing intervals counted)."""
    out: dict[str, list[object]] = {}
    for name in Decisions.__dataclass_fields__:
        if name not in ("values", "contrib", "contrib_row"):
            a = getattr(d, name)
            out[name] = [None if isinstance(x, float) and math.isnan(x) else x for x in a.tolist()]
    width = compiled.ev_len * np.where(compiled.kind == NEVER, 2, 1)
    out["values"] = [_listed(d.values[k, : width[c]]) for k, c in enumerate(d.criterion)]
    out["contrib"] = [
        _listed(d.contrib[r, : 1 + 2 * min(int(d.contrib[r, 0]), CONTRIB_MAX)]) if r >= 0 else None
        for r in d.contrib_row.tolist()
    ]
    return out


def _listed(a: NDArray[np.float64]) -> list[float | None]:
    return [None if math.isnan(x) else x for x in a.tolist()]


@pytest.fixture(scope="module")
def forklift() -> CompiledRubric:
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    return compile_rubric(rubric, scenario)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), part=st.integers(1, 9), order=st.permutations(range(15)))
def test_the_parts_concatenated_are_the_close(
    forklift: CompiledRubric, seed: int, part: int, order: list[int]
) -> None:
    """Sessions closed in any slot order (some never stepped), in parts of any size: the same
    decisions, in the same order, as one close, and the same state after."""
    whole, _ = _stepped(forklift, seed, 12)
    parted, sim = _stepped(forklift, seed, 12)
    slots = np.array(order, np.int32)
    close_t = np.concatenate([sim.close_t, [5.0, 6.0, 7.0]])[slots]
    one = close(forklift, whole, slots, close_t)
    parts = list(close_chunks(forklift, parted, slots, close_t, part))
    assert all(len(set(p.slot.tolist())) <= part for p in parts)
    joined = _fields(forklift, one)
    got = {name: [x for p in parts for x in _fields(forklift, p)[name]] for name in joined}
    assert got == joined
    assert len(one) > 0
    for a, b in zip(whole.arrays, parted.arrays, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def test_a_part_size_below_one_is_refused(forklift: CompiledRubric) -> None:
    state = ScoringState.new(forklift, capacity=2)
    with pytest.raises(ValueError, match="at least 1, not 0"):
        next(close_chunks(forklift, state, np.zeros(1, np.int32), np.zeros(1), 0))


class _Counted:
    """A scoring log that only counts (so that the close's own memory is what is traced)."""

    def __init__(self) -> None:
        self.decisions = 0

    def add(self, decisions: Decisions) -> None:
        self.decisions += len(decisions)


def test_a_close_of_many_sessions_holds_one_parts_output(forklift: CompiledRubric) -> None:
    """`score` / `rescore` (`kernel_scorer._run`) closing 40,000 sessions without events
    (every criterion but the observed decided at the close: 440,000 decisions, 136 bytes
    each): the traced peak beyond the state is a part's output, not the whole close's 60 MB
    (before)."""
    one = _Counted()
    kernel_scorer._run(forklift, [], ["s"], np.full(1, 9.0), one)
    n = 40_000
    log = _Counted()
    tracemalloc.start()
    try:
        state, _ = kernel_scorer._run(forklift, [], [f"s{k}" for k in range(n)],
                                      np.full(n, 9.0), log)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert one.decisions > 0
    assert log.decisions == n * one.decisions
    state_bytes = sum(a.nbytes for a in state.arrays)
    beyond = peak - state_bytes
    assert beyond < 24 * 2**20, f"{beyond / 2**20:.1f} MiB beyond the state's"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_pending_bounds_counts_the_pending_criteria_of_any_rows(
    data: st.DataObject,
) -> None:
    """What a close of `rows` decides at most (every pending criterion, a repeated row's
    each time) and how many of those contribute: rows that are a range (read as columns'
    runs) or not (gathered), with repeats (rows that span as many as they hold too)."""
    n_rows, n_crit = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 5))
    verdict = np.asfortranarray(
        np.array(data.draw(st.lists(st.integers(0, 3), min_size=n_rows * n_crit,
                                    max_size=n_rows * n_crit)), np.int8).reshape(n_rows, n_crit)
    )  # fmt: skip
    contributing = np.array(data.draw(st.lists(st.booleans(), min_size=n_crit,
                                               max_size=n_crit)))  # fmt: skip
    lo = data.draw(st.integers(0, n_rows - 1))
    hi = data.draw(st.integers(lo, n_rows))
    picked = data.draw(st.lists(st.integers(0, n_rows - 1), max_size=12))
    picked_rows = np.array(picked, np.int64)
    for rows in (np.arange(lo, hi), np.sort(picked_rows), picked_rows):
        pending = (verdict[rows] == 0).sum(axis=0)
        expected = (int(pending.sum()), int(pending[contributing].sum()))
        assert kernel.pending_bounds(verdict, rows.astype(np.int64), contributing) == expected


def test_pending_bounds_reads_a_run_only_for_consecutive_rows() -> None:
    """Rows 0, 0, 2 span three rows as a range would: row 1's pending verdict is not theirs."""
    verdict = np.asfortranarray(np.array([[1], [0], [1]], np.int8))
    rows = np.array([0, 0, 2], np.int64)
    assert kernel.pending_bounds(verdict, rows, np.array([True])) == (0, 0)
