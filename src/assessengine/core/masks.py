"""A rubric's conditions as one straight-line numpy program over a batch's columns.

At compile time every guard condition and metric indicator is broken into comparisons and
and/or steps; each distinct step is computed once per batch ("load > 50" named by three
criteria costs one comparison), straight into the guard rows or into a few reused work rows.
At run time there is no tree walk and no temporary array, only one numpy call per step.

The results are exactly those of `expr.evaluate` (tests/test_masks.py): a guard holds where
its condition is TRUE; a metric condition's row is 1.0 where TRUE, 0.0 where FALSE, NaN where
UNKNOWN (a comparison with a missing, NaN, operand is neither true nor false).

Each node is computed as the pair (is true, is false): `not` swaps them, `a and b` is
(true a & true b, false a | false b), `a or b` the dual, and "x op y is false" is the
comparison with the negated operator (with the `!=` NaN rule, see `_not_equal`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import expr

_NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}

# keys: an operand is ("col", row) | ("const", x) | ("num", node); a mask is
# ("cmp", op, operand, operand) | ("and" | "or", mask, mask)
Key = tuple[Any, ...]
StepFn = Callable[[Any, Any, Any], object]


def _not_equal(a: Any, b: Any, out: NDArray[np.bool_]) -> None:
    """a != b, false where either side is missing (IEEE says NaN != x)."""
    np.not_equal(a, b, out=out)
    out &= ~(np.isnan(a) | np.isnan(b))


def _copy(a: Any, _: Any, out: NDArray[Any]) -> None:
    np.copyto(out, a)


def _indicator(true: NDArray[np.bool_], false: NDArray[np.bool_], out: NDArray[Any]) -> None:
    """1.0 where true, 0.0 where false, NaN where neither (unknown): `true` cast to 1.0 / 0.0,
    then NaN where unknown (usually nowhere). Two masked copies over the whole row cost 2-9
    times as much (a branch per value where the condition flips often)."""
    np.copyto(out, true)
    known = np.logical_or(true, false)
    if not known.all():
        np.copyto(out, np.nan, where=~known)


_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _indicator_of_compare(op: str) -> StepFn:
    """The step "indicator of `a op b`": 1.0 where it holds, 0.0 where not, NaN where an
    operand is NaN (unknown), in one compiled pass (`kernel.indicator_const` /
    `indicator_rows`) instead of two comparisons, a cast, an `or` and an `all` (3-4x
    faster on a 64 K-row step). An operand is a row or a constant."""
    from . import kernel  # noqa: PLC0415 (kernel imports compiler, which imports masks)

    code, mirrored = kernel.COMPARE_CODES[op], kernel.COMPARE_CODES[_MIRRORED[op]]

    def step(a: Any, b: Any, out: NDArray[np.float64]) -> None:
        if np.ndim(a) == 1 and np.ndim(b) == 1:
            kernel.indicator_rows(code, np.asarray(a, np.float64), np.asarray(b, np.float64), out)
        elif np.ndim(a) == 1:
            kernel.indicator_const(code, np.asarray(a, np.float64), float(b), out)
        elif np.ndim(b) == 1:
            kernel.indicator_const(mirrored, np.asarray(b, np.float64), float(a), out)
        else:  # two constants
            kernel.indicator_const(code, np.full(out.shape, float(a)), float(b), out)

    return step


_STEP_FN: dict[str, StepFn] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": _not_equal,
    "and": np.logical_and,
    "or": np.logical_or,
    "copy": _copy,
    "indicator": _indicator,
}


@dataclass(frozen=True, slots=True)
class MaskProgram:
    """Steps over a slot list [values rows..., mask rows..., numeric sub-expressions...,
    constants...]; mask rows are the guard rows, then `n_work` work rows.

    Fill with `run(values, masks)`: `values` (n_signals + n_value_exprs, n) holds the held
    signals in its first rows and receives the value expressions; `masks` (n_guards + n_work,
    n) receives the guards in its first rows.
    """

    signal_names: tuple[str, ...]
    n_guards: int
    n_work: int
    nums: tuple[expr.Node, ...]  # numeric sub-expressions, computed by expr.evaluate
    consts: tuple[float, ...]
    steps: tuple[tuple[StepFn, int, int, int], ...]  # (fn, out slot, a slot, b slot)

    @property
    def n_masks(self) -> int:
        return self.n_guards + self.n_work

    def run(self, values: NDArray[np.float64], masks: NDArray[np.bool_]) -> None:
        n = values.shape[1]
        nums: list[Any] = []
        if self.nums:
            columns = {name: values[k] for k, name in enumerate(self.signal_names)}
            nums = [np.asarray(expr.evaluate(node, columns, n)) for node in self.nums]
        slots: list[Any] = [*values, *masks, *nums, *self.consts]
        with np.errstate(invalid="ignore"):
            for fn, out, a, b in self.steps:
                fn(slots[a], slots[b], slots[out])  # ufunc(a, b, out)


def compile_masks(
    signal_names: Sequence[str],
    conditions: Sequence[expr.Node | None],
    value_exprs: Sequence[expr.Node],
) -> MaskProgram:
    """The program that fills guard g with `conditions[g]` (None: a guard filled elsewhere,
    e.g. an event guard) and value row len(signal_names) + j with `value_exprs[j]` (a number
    expression as is, a condition as its indicator)."""
    return _Planner(tuple(signal_names), conditions, value_exprs).program()


class _Planner:
    """Plans steps over symbolic places: ("col" | "value", row), ("guard", g), ("work", v),
    ("num", node), ("const", x); `assemble` turns them into slot numbers."""

    def __init__(
        self,
        names: tuple[str, ...],
        conditions: Sequence[expr.Node | None],
        value_exprs: Sequence[expr.Node],
    ) -> None:
        self.names = names
        self.rows = {name: k for k, name in enumerate(names)}
        self.conditions = conditions
        self.value_exprs = value_exprs
        self.plan: list[tuple[str, Key, Key, Key | None]] = []  # (op, out, a, b)
        self.home: dict[Key, Key] = {}  # where each planned mask is computed
        self.roots: dict[Key, int] = {}  # each guard condition -> the first guard with it
        self.n_virtual = 0

    # --- keys: the canonical name of "node is true" (side) or "node is false" (not side)
    def operand(self, node: expr.Node, other: expr.Node) -> Key:
        if isinstance(node, expr.Name):
            return ("col", self.rows[node.name])
        if isinstance(node, expr.Num) and not isinstance(other, expr.Num):
            return ("const", node.value)
        return ("num", node)

    def key(self, node: expr.Node, side: bool) -> Key:
        if isinstance(node, expr.Compare):
            op = node.op if side else _NEGATED[node.op]
            return ("cmp", op, self.operand(node.left, node.right),
                    self.operand(node.right, node.left))  # fmt: skip
        if isinstance(node, expr.Not):
            return self.key(node.operand, not side)
        if isinstance(node, expr.Logic):
            both = (node.op == "and") == side  # true of an `and`, false of an `or`
            return ("and" if both else "or", self.key(node.left, side),
                    self.key(node.right, side))  # fmt: skip
        if isinstance(node, expr.Call) and node.fn == "between":
            x, lo, hi = node.args
            low, high = expr.Compare(">=", x, lo), expr.Compare("<=", x, hi)
            return self.key(expr.Logic("and", low, high), side)
        raise TypeError(f"not a condition: {expr.unparse(node)}")

    def compute(self, key: Key) -> Key:
        """Plan the steps for `key` (once); where it will be: its guard row if it is a guard's
        condition, else a work row."""
        if key in self.home:
            return self.home[key]
        if key[0] == "cmp":
            op, a, b = key[1], key[2], key[3]
        else:
            op, a, b = key[0], self.compute(key[1]), self.compute(key[2])
        if key in self.roots:
            out: Key = ("guard", self.roots[key])
        else:
            out = ("work", self.n_virtual)
            self.n_virtual += 1
        self.plan.append((op, out, a, b))
        self.home[key] = out
        return out

    def program(self) -> MaskProgram:
        keys = [None if c is None else self.key(c, True) for c in self.conditions]
        for g, key in enumerate(keys):
            if key is not None:
                self.roots.setdefault(key, g)
        for g, key in enumerate(keys):
            if key is not None and self.compute(key) != ("guard", g):  # the same condition
                self.plan.append(("copy", ("guard", g), self.home[key], None))
        for j, node in enumerate(self.value_exprs):
            row = ("value", len(self.names) + j)
            if expr.kind_of(node) == "num":
                self.plan.append(("copy", row, ("num", node), None))
            elif (key := self.key(node, True))[0] == "cmp":  # one comparison: one pass
                self.plan.append(("indicator" + key[1], row, key[2], key[3]))
            else:
                true = self.compute(key)
                false = self.compute(self.key(node, False))
                self.plan.append(("indicator", row, true, false))
        return self.assemble()

    def assemble(self) -> MaskProgram:
        """Slots: values rows, mask rows (guards, then work rows), nums, then constants."""
        work = _allocate_work_rows(self.plan)
        n_work = max(work.values(), default=-1) + 1
        nums: dict[expr.Node, int] = {}
        consts: dict[float, int] = {}
        for _, _, a, b in self.plan:
            for ref in (a, b):
                if ref is not None and ref[0] == "num":
                    nums.setdefault(ref[1], len(nums))
                elif ref is not None and ref[0] == "const":
                    consts.setdefault(ref[1], len(consts))
        n_values = len(self.names) + len(self.value_exprs)
        base = {
            "col": 0,
            "value": 0,
            "guard": n_values,
            "work": n_values + len(self.conditions),
            "num": n_values + len(self.conditions) + n_work,
            "const": n_values + len(self.conditions) + n_work + len(nums),
        }

        def slot(ref: Key | None) -> int:
            if ref is None:
                return 0
            kind, x = ref
            if kind == "work":
                return base[kind] + work[x]
            if kind == "num":
                return base[kind] + nums[x]
            if kind == "const":
                return base[kind] + consts[x]
            return base[kind] + int(x)

        steps = tuple((_step_fn(op), slot(out), slot(a), slot(b)) for op, out, a, b in self.plan)
        return MaskProgram(
            signal_names=self.names,
            n_guards=len(self.conditions),
            n_work=n_work,
            nums=tuple(nums),
            consts=tuple(float(x) for x in consts),
            steps=steps,
        )


def _step_fn(op: str) -> StepFn:
    """The function of a planned step ("indicator<" ...: the indicator of one comparison)."""
    if op.startswith("indicator") and op != "indicator":
        return _indicator_of_compare(op.removeprefix("indicator"))
    return _STEP_FN[op]


def _allocate_work_rows(plan: list[tuple[str, Key, Key, Key | None]]) -> dict[int, int]:
    """Map each virtual work mask to a physical work row, reusing a row once the last step
    that reads it has run (numpy's element-wise steps may write over their own input)."""
    last_read: dict[int, int] = {}
    for i, (_, _, a, b) in enumerate(plan):
        for ref in (a, b):
            if ref is not None and ref[0] == "work":
                last_read[ref[1]] = i
    free: list[int] = []
    rows: dict[int, int] = {}
    n_rows = 0
    for i, (_, out, a, b) in enumerate(plan):
        read = dict.fromkeys((a, b))  # `c and c` reads one row twice: free it once
        free += [rows[r[1]] for r in read if r and r[0] == "work" and last_read[r[1]] == i]
        if out[0] == "work":
            if not free:
                free.append(n_rows)
                n_rows += 1
            rows[out[1]] = free.pop()
    return rows
