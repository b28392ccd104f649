"""The kernel's loops count no references.

numba reference-counts every array it passes around (an atomic add, each way). Where it cannot
prune the pairs, a named tuple handed to a helper inside a loop costs one per array the tuple
holds: `close` did that per decision (26 arrays of `Tables` and `State`, about 500 ns a
decision; 1 M decisions when 100,000 sessions close). These tests compile the functions afresh
(numba's cache keeps no IR) and look for reference counting in the function itself; the
arrays are taken out of the tuples once, before the loops, and helpers take arrays.
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
from assessengine.core.scorer import ScoringState, _outputs

from .strategies import SCENARIO
from .test_kernel_state import TEN_CRITERIA


def _references(fn: Callable[..., Any], *args: Any) -> tuple[int, int]:
    """(increfs, decrefs) in the LLVM IR of `fn` (a kernel function) compiled for `args`, its
    own body only (not the Python wrapper)."""
    fresh = numba.njit(nogil=True)(fn.py_func)  # type: ignore[attr-defined]
    sig = tuple(numba.typeof(a) for a in args)
    fresh.compile(sig)
    name = fresh.overloads[sig].fndesc.mangled_name
    ir = fresh.inspect_llvm(sig)
    body = re.search(rf'^define [^@]*@"?{re.escape(name)}"?\(.*?^}}', ir, re.M | re.S)
    assert body is not None
    return body.group(0).count("@NRT_incref("), body.group(0).count("@NRT_decref(")


@pytest.fixture(scope="module")
def arrays() -> tuple[Any, ...]:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState(compiled, 4)
    return compiled.tables, state.arrays, _outputs(compiled, 4, 4)


def test_close_counts_no_references(arrays: tuple[Any, ...]) -> None:
    tables, state, out = arrays
    slots, close_t = np.zeros(1, np.int64), np.zeros(1, np.float64)
    assert _references(kernel.close, tables, state, out, slots, close_t) == (0, 0)
