"""The kernel's loops count no references.

numba reference-counts every array it passes around (an atomic add, each way). Where it cannot
prune the pairs, a named tuple handed to a helper inside a loop costs one per array the tuple
holds: `close` did that per decision (26 arrays of `Tables` and `State`, about 500 ns a
decision; 1 M decisions when 100,000 sessions close). These tests compile the functions afresh
(numba's cache keeps no IR) and look for reference counting in the function itself: none in
the close, none in a block of the automata that lies on a loop (the increfs before the loop
run once a call); the arrays are taken out of the tuples once, before the loops, and helpers
that run per row or per decision take arrays.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import pytest

from assessengine.core import kernel
from assessengine.core.compiler import compile_rubric
from assessengine.core.kernel_types import Rows
from assessengine.core.scorer import ScoringState, _outputs

from .strategies import SCENARIO
from .test_kernel_state import TEN_CRITERIA


def _body(fn: Callable[..., Any], sig: tuple[Any, ...]) -> str:
    """The LLVM IR of `fn` (a kernel function) compiled afresh for the numba types `sig`, its
    own body only (not the Python wrapper)."""
    fresh = numba.njit(nogil=True)(fn.py_func)  # type: ignore[attr-defined]
    fresh.compile(sig)
    name = fresh.overloads[sig].fndesc.mangled_name
    ir = fresh.inspect_llvm(sig)
    body = re.search(rf'^define [^@]*@"?{re.escape(name)}"?\(.*?^}}', ir, re.M | re.S)
    assert body is not None
    return body.group(0)


def _references(fn: Callable[..., Any], *args: Any) -> tuple[int, int]:
    """(increfs, decrefs) in the body of `fn` compiled for `args`."""
    body = _body(fn, tuple(numba.typeof(a) for a in args))
    return body.count("@NRT_incref("), body.count("@NRT_decref(")


def _references_in_loops(fn: Callable[..., Any], sig: tuple[Any, ...]) -> dict[str, int]:
    """The increfs in each basic block of `fn`'s body that lies on a cycle of its control
    flow graph (runs once a row or a decision, not once a call): {block label: increfs}."""
    blocks = re.split(r"\n(?=[A-Za-z0-9_.]+:)", _body(fn, sig))[1:]
    succ = {b.split(":")[0]: set(re.findall(r"label %([A-Za-z0-9_.]+)", b)) for b in blocks}
    increfs = {b.split(":")[0]: b.count("@NRT_incref(") for b in blocks}

    def on_cycle(start: str) -> bool:
        seen, todo = set(), list(succ[start])
        while todo:
            label = todo.pop()
            if label == start:
                return True
            if label not in seen and label in succ:
                seen.add(label)
                todo.extend(succ[label])
        return False

    return {label: n for label, n in increfs.items() if n and on_cycle(label)}


@pytest.fixture(scope="module")
def arrays() -> tuple[Any, ...]:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState(compiled, 4)
    return compiled.tables, state.arrays, _outputs(compiled, 4, 4)


def test_close_counts_no_references(arrays: tuple[Any, ...]) -> None:
    tables, state, out = arrays
    slots, close_t = np.zeros(1, np.int64), np.zeros(1, np.float64)
    assert _references(kernel.close, tables, state, out, slots, close_t, slots) == (0, 0)


@pytest.mark.parametrize(
    "template",
    ["never", "all_before", "sequence", "count", "response", "precede", "duration", "metric",
     "machine"],
)  # fmt: skip
def test_automata_count_no_references_in_their_loops(
    arrays: tuple[Any, ...], template: str
) -> None:
    tables, state, out = arrays
    n, n_guards, n_values = 4, 3, 3
    rows = Rows(
        np.zeros(n, np.uint32), np.zeros(n, np.int64), np.zeros(n, np.float64),
        np.zeros((n_guards, n), np.bool_), np.zeros((n_values, n), np.float64),
        np.zeros(n, np.int64),
    )  # fmt: skip
    types = [numba.typeof(a) for a in (tables, rows, state, out)]
    idx = np.zeros(n, np.int64)  # the rows visited: the first m, or idx[:m] (not dense)
    sig = (numba.typeof(0), numba.typeof(0), numba.typeof(True), numba.typeof(idx), *types)
    assert _references_in_loops(getattr(kernel, template), sig) == {}
