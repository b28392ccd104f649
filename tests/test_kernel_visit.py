"""The rows each criterion visits (`kernel.visit_rows`, one compiled call a step) against the
plain numpy construction, and the one-pass indicator of a metric condition."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_rubric
from assessengine.core import expr, kernel
from assessengine.core.compiler import VISIT_ALL, compile_rubric
from assessengine.core.masks import compile_masks

from .strategies import SIGNALS


def _expected(
    guards: np.ndarray, pending: np.ndarray, visit_key: np.ndarray, keys: list[tuple[int, ...]],
    nonsample: np.ndarray, share: int,
) -> list[list[int] | None]:  # fmt: skip
    """Per criterion: the rows it visits (None: every row), built with numpy."""
    out: list[list[int] | None] = []
    n = guards.shape[1]
    for c, key in enumerate(visit_key):
        if pending[c] == 0:
            out.append([])
        elif key == VISIT_ALL:
            out.append(None)
        elif not keys[key]:
            out.append(nonsample.tolist())
        else:
            held = np.logical_or.reduce(guards[list(keys[key])], axis=0)
            dense = np.count_nonzero(held) * share > n
            out.append(None if dense else np.flatnonzero(held).tolist())
    return out


@st.composite
def plans(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(1, 70))  # across the 8-row words and their tail
    n_guards = draw(st.integers(1, 4))
    density = draw(st.sampled_from([0.0, 0.02, 0.2, 0.9]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    guards = rng.random((n_guards, n)) < density
    keys = draw(st.lists(st.lists(st.integers(0, n_guards - 1), min_size=0, max_size=3,
                                  unique=True).map(tuple), min_size=1, max_size=3))  # fmt: skip
    n_crit = draw(st.integers(1, 6))
    visit_key = np.array(draw(st.lists(st.integers(-1, len(keys) - 1), min_size=n_crit,
                                       max_size=n_crit)), np.int64)  # fmt: skip
    pending = np.array(draw(st.lists(st.integers(0, 2), min_size=n_crit, max_size=n_crit)))
    nonsample = np.flatnonzero(rng.random(n) < 0.3).astype(np.int64)
    return guards, pending.astype(np.int64), visit_key, keys, nonsample


@settings(max_examples=300, deadline=None)
@given(plan=plans(), share=st.sampled_from([0, 1, 8, 10**9]), offset=st.integers(0, 3))
def test_visit_rows_are_the_rows_numpy_finds(
    plan: tuple[np.ndarray, ...], share: int, offset: int
) -> None:
    guards, pending, visit_key, keys, nonsample = plan
    # the guard rows of a step are a slice of a larger work matrix: rows start anywhere
    work = np.zeros((guards.shape[0] + offset, guards.shape[1] + offset), np.bool_)
    work[offset:, offset:] = guards
    rows = work[offset:, offset:]
    key_off = np.zeros(len(keys) + 1, np.int64)
    key_off[1:] = np.cumsum([len(k) for k in keys])
    key_guards = np.array([g for k in keys for g in k], np.int64)
    n = guards.shape[1]
    visit = np.full((len(keys) + 1) * n, -7, np.int64)
    offsets = np.full((len(visit_key), 2), -7, np.int64)
    placed = np.empty((len(keys), 2), np.int64)
    any_row = np.empty(n, np.bool_)

    total = kernel.visit_rows(np.ascontiguousarray(rows) if offset % 2 else rows, pending,
                              visit_key, key_off, key_guards, nonsample, share, any_row, visit,
                              offsets, placed)  # fmt: skip

    got = [None if o[0] < 0 else visit[o[0] : o[1]].tolist() for o in offsets]
    assert got == _expected(guards, pending, visit_key, keys, nonsample, share)
    assert all(o[1] <= total for o in offsets)
    assert all(tuple(o) == (-1, -1) for o in offsets if o[0] < 0)


def test_a_criterion_decided_everywhere_or_dense_builds_no_list() -> None:
    guards = np.zeros((2, 16), np.bool_)
    guards[0, ::2] = True  # half the rows: dense at share 8
    guards[1, 5] = True
    pending = np.array([1, 0, 1, 1], np.int64)
    visit_key = np.array([0, 1, 1, VISIT_ALL], np.int64)
    key_off = np.array([0, 1, 2], np.int64)
    key_guards = np.array([0, 1], np.int64)
    visit = np.full(48, -7, np.int64)
    offsets = np.zeros((4, 2), np.int64)
    total = kernel.visit_rows(guards, pending, visit_key, key_off, key_guards,
                              np.zeros(0, np.int64), 8, np.empty(16, np.bool_), visit, offsets,
                              np.empty((2, 2), np.int64))  # fmt: skip
    assert offsets.tolist() == [[-1, -1], [0, 0], [0, 1], [-1, -1]]
    assert total == 1
    assert visit[0] == 5


def test_criteria_with_the_same_guards_share_one_visit_list() -> None:
    root = Path(__file__).resolve().parents[1]
    compiled = compile_rubric(*load_rubric(root / "rubrics" / "forklift-load-handling.yaml"))
    key = dict(zip((c.id for c in compiled.rubric.criteria), compiled.visit_key, strict=True))
    # guards that are all named events: the batch's non-sample rows, one list for all of them
    events = {key[c] for c in ("pre_use_checks", "no_collisions", "horn_at_intersections",
                               "safe_shutdown")}  # fmt: skip
    assert len(events) == 1
    (k,) = events
    assert compiled.key_off[k] == compiled.key_off[k + 1]
    # timers and metrics visit every row; conditions their own guards' rows
    for c in ("empty_speed", "pallet_delivered_in_time", "give_way_to_pedestrians"):
        assert key[c] == VISIT_ALL
    own = [key[c] for c in ("seatbelt_before_motion", "loaded_speed",
                            "forks_low_when_travelling", "mast_tilted_back")]  # fmt: skip
    assert len(set(own)) == 4
    assert k not in own


def _indicator(text: str, values: np.ndarray) -> np.ndarray:
    node = expr.parse(text).root
    program = compile_masks(SIGNALS, [], [node])
    rows = np.vstack([values, np.full((1, values.shape[1]), -7.0)])
    program.run(rows, np.zeros((program.n_masks, values.shape[1]), np.bool_))
    return rows[len(SIGNALS)]


def test_the_indicator_of_one_comparison_is_one_step() -> None:
    for text in ("x > 1", "1 < x", "not (x <= y)", "x + 1 == 2"):
        program = compile_masks(SIGNALS, [], [expr.parse(text).root])
        assert len(program.steps) == 1, text
        assert program.n_work == 0


def test_the_indicator_of_one_comparison_is_unknown_where_an_operand_is_missing() -> None:
    nan = math.nan
    values = np.array([[0.0, 1.0, 2.0, nan, math.inf], [1.0, nan, 1.0, 1.0, 1.0], [0.0] * 5])
    np.testing.assert_array_equal(_indicator("x > 1", values), [0.0, 0.0, 1.0, nan, 1.0])
    np.testing.assert_array_equal(_indicator("1 < x", values), [0.0, 0.0, 1.0, nan, 1.0])
    np.testing.assert_array_equal(_indicator("x >= y", values), [0.0, nan, 1.0, nan, 1.0])
    np.testing.assert_array_equal(_indicator("not (x >= y)", values), [1.0, nan, 0.0, nan, 0.0])
    np.testing.assert_array_equal(_indicator("x != 1", values), [1.0, 0.0, 1.0, nan, 1.0])
    np.testing.assert_array_equal(_indicator("2 > 1", values), [1.0] * 5)
