"""The compiled condition program (core/masks.py) against the plain three-valued evaluator
(`expr.evaluate`): a guard holds where the condition is TRUE; an indicator is 1.0 where TRUE,
0.0 where FALSE and NaN where UNKNOWN."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.core import expr
from assessengine.core.masks import compile_masks

from .strategies import SIGNALS, conditions, numeric_exprs

VALUES = st.sampled_from([0.0, 1.0, 2.0, -1.0, 1.5, math.nan, math.inf])


@st.composite
def related_conditions(draw: st.DrawFn) -> list[str | None]:
    """A few conditions, some built from the others (shared sub-conditions), some repeated,
    and holes (guards the program does not fill)."""
    pool = draw(st.lists(conditions(), min_size=1, max_size=4))
    for _ in range(draw(st.integers(0, 4))):
        a, b = draw(st.sampled_from(pool)), draw(st.sampled_from(pool))
        form = draw(st.sampled_from(["and", "or", "not", "same"]))
        pool.append(a if form == "same" else f"not ({a})" if form == "not" else
                    f"({a}) {form} ({b})")  # fmt: skip
    return [None if draw(st.integers(0, 5)) == 0 else c for c in pool]


def _columns(values: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[k] for k, name in enumerate(SIGNALS)}


@settings(max_examples=500, deadline=None)
@given(
    guards=related_conditions(),
    value_texts=st.lists(st.one_of(conditions(), numeric_exprs()), max_size=3),
    data=st.data(),
)
def test_program_fills_each_guard_and_value_row_as_the_evaluator_does(
    guards: list[str | None], value_texts: list[str], data: st.DataObject
) -> None:
    n = data.draw(st.integers(1, 20))
    nodes = [None if g is None else expr.parse(g).root for g in guards]
    value_nodes = [expr.parse(v).root for v in value_texts]
    program = compile_masks(SIGNALS, nodes, value_nodes)
    values = np.full((len(SIGNALS) + len(value_nodes), n), -7.0)
    for k in range(len(SIGNALS)):
        values[k] = data.draw(st.lists(VALUES, min_size=n, max_size=n))
    masks = np.ones((program.n_masks, n), np.bool_)
    columns = _columns(values)

    program.run(values, masks)

    for g, node in enumerate(nodes):
        if node is None:  # left alone
            assert masks[g].all()
        else:
            np.testing.assert_array_equal(masks[g], expr.evaluate(node, columns, n) == expr.TRUE)
    for j, node in enumerate(value_nodes):
        result = expr.evaluate(node, columns, n)
        if expr.kind_of(node) == "num":
            expected = np.asarray(result, np.float64)
        else:
            truth = np.where(result == expr.FALSE, 0.0, np.nan)
            expected = np.where(result == expr.TRUE, 1.0, truth)
        np.testing.assert_array_equal(values[len(SIGNALS) + j], expected)


def test_a_shared_comparison_is_computed_once_into_the_guard_rows() -> None:
    nodes = [expr.parse(text).root for text in (
        "x > 1", "x > 1 and y < 2", "not (x <= 1 or y >= 2)", "y < 2 and x > 1",
    )]  # fmt: skip
    program = compile_masks(SIGNALS, nodes, [])
    # x > 1 (guard 0), y < 2 (work), and -> guard 1, copy -> guard 2 (same mask as guard 1:
    # "not (x <= 1 or y >= 2)" is true where x > 1 and y < 2), y < 2 and x > 1 -> guard 3
    ops = [getattr(fn, "__name__", "") for fn, *_ in program.steps]
    assert ops.count("greater") == 1
    assert ops.count("less") == 1
    assert ops.count("logical_and") == 2
    assert ops.count("_copy") == 1
    assert program.n_work == 1
