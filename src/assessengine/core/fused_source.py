"""Generate one fused numba step function per compiled rubric, as Python source (pure).

`fused_source(compiled)` returns the text of a module whose `step_rows` advances every
criterion of the rubric over a batch's rows in ONE pass: per row it loads the session's held
signals, updates them (sample-and-hold, the session extremes), evaluates every guard and
metric expression as scalar code on locals (each distinct sub-expression once), and steps
each still-pending criterion's automaton with straight-line code whose parameters, state
offsets and guard ids are constants. It replaces, for one step, `kernel.admit` (a check
pass over the batch first, then admit's updates row by row), `kernel.hold`,
`scorer.columns_for` (the condition program), `scorer._sparse_rows` and `kernel.advance`, on
the same state arrays and the same decision output (`kernel_types.Out`). Its `close_rows`
(`fused_close`) is the rubric's `kernel.close`, with the criteria's parameters as constants.

The module is self-contained (its helpers are generated with it): numba caches a compiled
function per source file and does not notice a change in another file, so a generated module
imports nothing of the package. Writing it and importing it (the I/O) is `runtime.fused`'s
job; this module only makes text.

Semantics are those of `kernel.py`'s templates, criterion by criterion, and of
`expr.evaluate` for conditions (three-valued: a comparison with a NaN operand is unknown; a
guard holds where its condition is TRUE; a metric indicator is 1.0 / 0.0 / NaN); no
fastmath. Criteria never interact, so advancing all of them row by row gives the decisions of
advancing them criterion by criterion, in another order (row-major here).

Shaped for rows whose sessions interleave (a time-ordered batch: consecutive rows belong to
different sessions, so a branch on a per-session flag or a signal guard mispredicts often):

- sample rows (event code 0, 99.5 % of a forklift batch) take a copy of the criteria in which
  every event guard is a constant (true only for a guard on ``sample`` itself): the compiler
  drops the event criteria's blocks there, and the event rows take the general copy;
- a criterion's gate is one test without short circuit, ``(guards) & (pending)``, taken only
  when there is work (a duration's started / expired / end tests likewise); a sequence's gate
  on sample rows is kept one branch, laid out as rarely taken (`_rare_branch`,
  `_Gen.sequence`);
- consecutive gated criteria whose guards share a comparison sit behind one test of it
  (`_Group`): on a row where it is false their gates are not evaluated;
- the hold is branch-free: every store unconditional, the NaN cases by selects, each
  operation over all signals in a row so that the SLP vectorizer the step is compiled with
  (`runtime.fused.compile_step`) makes vector operations of them;
- a session's pending criteria are bits of a local (`_Gen.pmask`), read from `verdict` once
  per session and batch: a gate tests a bit, not the criterion's verdict column;
- each row asks the cache for the batch's signals of a row further on (`_Gen.ahead`): the
  hardware's prefetchers lose their streams, and every guard waits for them.

`FusedUnsupportedError` is raised for what the generator does not cover; the caller then keeps
the table-driven kernel for that rubric.
"""

from __future__ import annotations

import math

import numpy as np

from . import expr
from .compiler import (
    AGGREGATE_CODES,
    ALL_BEFORE,
    COUNT,
    DURATION,
    FAIL,
    MACHINE,
    METRIC,
    NEVER,
    NOT_APPLICABLE,
    OBSERVED,
    PASS,
    PRECEDE,
    RESPONSE,
    SEQUENCE,
    TO_FAIL,
    TO_PASS,
    CompiledRubric,
)
from .fused_close import _float, close_source
from .fused_step import BAD_SLOT, NO_ROW
from .kernel import FIRST_SEQ, FIRST_T, HELD, LAST_SEQ, LAST_T, N_EVENTS, STAMP

# the session columns of kernel.py (its constants: a layout change there is one here too)
_FIRST_SEQ, _FIRST_T, _HELD = FIRST_SEQ, FIRST_T, HELD
_LAST_SEQ, _N_EVENTS, _STAMP, _LAST_T = LAST_SEQ, N_EVENTS, STAMP, LAST_T
_AGG = AGGREGATE_CODES

GENERATOR_VERSION = 12  # bump when the generated code's meaning changes (part of the cache key)


class FusedUnsupportedError(ValueError):
    """The rubric uses something the generator does not generate."""


class _Exprs:
    """Scalar code for conditions (truth codes 0 false, 1 unknown, 2 true) and numbers (NaN =
    missing), each distinct sub-expression computed once into a local."""

    def __init__(self, signal_names: tuple[str, ...]) -> None:
        self.rows = {name: k for k, name in enumerate(signal_names)}
        self.lines: list[str] = []
        self.memo: dict[str, str] = {}
        self.by_code: dict[str, str] = {}  # code -> its local (the same code once)

    def _local(self, key: str, prefix: str, code: str) -> str:
        if key not in self.memo:
            name = self.by_code.get(code) or f"{prefix}{len(self.memo)}"
            if code not in self.by_code:
                self.lines.append(f"{name} = {code}")
                self.by_code[code] = name
            self.memo[key] = name
        return self.memo[key]

    def conjuncts(self, node: expr.Node, side: bool = True) -> frozenset[str]:
        """Locals (`truth`) that all hold where the condition `node` is TRUE (side) or FALSE
        (not side): the leaves of its top-level conjunction."""
        if isinstance(node, expr.Not):
            return self.conjuncts(node.operand, not side)
        if isinstance(node, expr.Logic) and (node.op == "and") == side:
            return self.conjuncts(node.left, side) | self.conjuncts(node.right, side)
        if isinstance(node, expr.Call) and node.fn == "between" and side:
            x, lo, hi = node.args
            return self.conjuncts(expr.Compare(">=", x, lo)) | self.conjuncts(
                expr.Compare("<=", x, hi)
            )
        return frozenset([self.truth(node, side)])

    def num(self, node: expr.Node) -> str:
        """A local (or literal) holding the number `node`."""
        if isinstance(node, expr.Num):
            return _float(node.value)
        if isinstance(node, expr.Name):
            return f"h{self.rows[node.name]}"
        key = "n:" + expr.unparse(node)
        if isinstance(node, expr.Neg):
            return self._local(key, "x", f"-({self.num(node.operand)})")
        if isinstance(node, expr.Arith):
            a, b = self.num(node.left), self.num(node.right)
            if node.op == "/":
                return self._local(key, "x", f"math.nan if {b} == 0.0 else {a} / {b}")
            return self._local(key, "x", f"{a} {node.op} {b}")
        if isinstance(node, expr.Call) and node.fn == "abs":
            return self._local(key, "x", f"abs({self.num(node.args[0])})")
        if isinstance(node, expr.Call) and node.fn in ("min", "max"):
            a, b = self.num(node.args[0]), self.num(node.args[1])
            # np.fmin / np.fmax of two known values, NaN where either is missing
            pick = "_fmin" if node.fn == "min" else "_fmax"
            return self._local(key, "x", f"{pick}({a}, {b})")
        raise FusedUnsupportedError(f"not a number expression: {expr.unparse(node)}")

    def truth(self, node: expr.Node, side: bool = True) -> str:
        """A local bool: whether the condition `node` is TRUE (side) or FALSE (not side); a
        comparison with a missing (NaN) operand is neither (masks.py's pair rule)."""
        key = ("t:" if side else "f:") + expr.unparse(node)
        if isinstance(node, expr.Compare):
            op = node.op if side else _NEGATED[node.op]
            a, b = self.num(node.left), self.num(node.right)
            code = f"{a} {op} {b}"
            if op == "!=":  # IEEE: NaN != x holds; the rubric language says unknown
                known = [f"{x} == {x}" for x in (a, b) if not _is_literal(x)]
                code = " and ".join([f"({code})", *known])
            return self._local(key, "q", code)
        if isinstance(node, expr.Not):
            return self.truth(node.operand, not side)
        if isinstance(node, expr.Logic):
            a, b = self.truth(node.left, side), self.truth(node.right, side)
            both = (node.op == "and") == side
            return self._local(key, "q", f"{a} {'&' if both else '|'} {b}")
        if isinstance(node, expr.Call) and node.fn == "between":
            x, lo, hi = node.args
            inside = expr.Logic("and", expr.Compare(">=", x, lo), expr.Compare("<=", x, hi))
            return self.truth(inside, side)
        raise FusedUnsupportedError(f"not a condition: {expr.unparse(node)}")


_NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


def _is_literal(code: str) -> bool:
    """Whether generated operand code is a number literal (never NaN)."""
    return not code.startswith(("h", "x")) and code != "math.nan"


_PRELUDE = '''\
"""Generated by assessengine.core.fused_source for one compiled rubric; do not edit."""
import math

import numpy as np
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

FAIL, PASS, NOT_APPLICABLE = {FAIL}, {PASS}, {NOT_APPLICABLE}


def _item_pointer(context, builder, sig, args):
    """The address of arr[at] for an intrinsic called as (arr, at), `at` an index tuple."""
    aty, ity = sig.args[:2]
    ary = context.make_array(aty)(context, builder, args[0])
    ind = [context.cast(builder, v, t, types.intp)
           for v, t in zip(cgutils.unpack_tuple(builder, args[1]), ity)]
    return cgutils.get_item_pointer(context, builder, aty, ary, ind, wraparound=False)


@intrinsic
def _prefetch(typingctx, arr, at):
    """Ask the cache for the line of arr[at] (an index tuple), for reading, kept close
    (`llvm.prefetch`): never a fault, nothing read or changed."""

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig, args)
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, at), codegen


@intrinsic
def _load(typingctx, arr, at):
    """arr[at] (an index tuple, in bounds) by a load the SLP vectorizer leaves scalar (atomic,
    unordered: a plain load on x86) where the array is aligned: the hold's signals as one
    gather were slower than as scalar loads, and a state value loaded so and stored back
    through a select is not made a masked store (`_Gen.hold`)."""

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig, args)
        aty = sig.args[0]
        if not aty.aligned:
            return builder.load(ptr)
        return builder.load_atomic(ptr, "unordered", aty.dtype.bitwidth // 8)

    return arr.dtype(arr, at), codegen


@intrinsic
def _rare_branch(typingctx, x):
    """`x` (a bool) for a branch that stays one branch and is laid out as rarely taken: `x`
    through LLVM's `freeze` (instruction selection splits a branch on an `and` / `or` of
    conditions into a branch each, not one on a frozen value), expected false
    (`llvm.expect`: the taken side goes out of the loop's straight line)."""

    def codegen(context, builder, sig, args):
        frozen = ir.Instruction(builder.block, args[0].type, "freeze", [args[0]])
        builder._insert(frozen)
        i1 = ir.IntType(1)
        fnty = ir.FunctionType(i1, [i1, i1])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.expect.i1")
        return builder.call(fn, [frozen, i1(0)])

    return types.boolean(types.boolean), codegen


@njit(cache=True, nogil=True, inline="always")
def _known(a, b):
    return a == a and b == b


@njit(cache=True, nogil=True, inline="always")
def _fmin(a, b):
    return np.fmin(a, b) if _known(a, b) else math.nan


@njit(cache=True, nogil=True, inline="always")
def _fmax(a, b):
    return np.fmax(a, b) if _known(a, b) else math.nan


@njit(cache=True, nogil=True, inline="always")
def _lower(cur, x):
    return x if not (cur <= x) else cur


@njit(cache=True, nogil=True, inline="always")
def _upper(cur, x):
    return x if not (cur >= x) else cur


@njit(cache=True, nogil=True, inline="always")
def _emit(oi, of, nd, s, c, v, seq, t, seq0, t0):
    d = nd[0]
    nd[0] = d + 1
    oi[0, d] = s
    oi[1, d] = c
    oi[2, d] = v
    oi[3, d] = seq
    oi[4, d] = seq0
    of[0, d] = t
    of[1, d] = t0
    of[2, d] = math.nan
    oi[5, d] = -1
    oi[6, d] = -1
    oi[7, d] = -1
    return d


@njit(cache=True, nogil=True, inline="always")
def _contrib_add(si, sf, ni, fl, cap, s, t0, t1):
    n = si[s, ni]
    if n > 0 and sf[s, fl] == t0:
        if n <= cap:
            sf[s, fl + 2 * n] = t1
    else:
        if n < cap:
            sf[s, fl + 1 + 2 * n] = t0
            sf[s, fl + 2 + 2 * n] = t1
        si[s, ni] = n + 1
    sf[s, fl] = t1


@njit(cache=True, nogil=True, inline="always")
def _contrib_set(si, sf, ni, fl, s, t):
    si[s, ni] = 1
    sf[s, fl] = t
    sf[s, fl + 1] = t
    sf[s, fl + 2] = t


@njit(cache=True, nogil=True, inline="always")
def _contrib_out(oi, oc, nd, d, n, cap, sf, s, fl):
    r = nd[1]
    nd[1] = r + 1
    oi[7, d] = r
    oc[0, r] = n
    for q in range(2 * min(n, cap)):
        oc[1 + q, r] = sf[s, fl + 1 + q]

'''


def _ints(values: list[int]) -> str:
    """An int64 array literal of `values`."""
    return f"np.array([{', '.join(map(str, values))}], np.int64)"


# The fresh session state the first pass gives the rows it takes (`ScoringState._reset`): the
# session columns always; of the criteria's state, a row at or above the pristine bound is
# still all zero bytes (never given to a session), so only its fields that start non-zero
# are written (the zero ones' pages stay untouched); any other row gets every field, its
# verdicts too. Field by field over the taken rows: the criteria's state is field-major.
_FRESH = '''
_INIT_I = {init_i}
_INIT_F = np.array([{init_f}], np.float64)
_NONZERO_I, _ZERO_I = {nz_i}, {z_i}
_NONZERO_F, _ZERO_F = {nz_f}, {z_f}


@njit(cache=True, nogil=True)
def _untake(free, k, row_of, slot_of_row):
    """Give the first k of `free` back: their slots have no row again."""
    for j in range(k):
        row_of[slot_of_row[free[j]]] = -1


@njit(cache=True, nogil=True)
def _fresh_rows(free, k, pristine_from, sess_i, sess_f, si, sf, verdict):
    """A fresh session's state in rows free[:k] (their stamps kept); returns the pristine
    bound after them."""
    bound = pristine_from
    used = False  # whether one of them was given to a session before
    for j in range(k):
        r = free[j]
        sess_i[r, {FIRST_SEQ}] = -1
        sess_i[r, {LAST_SEQ}] = -1
        sess_i[r, {N_EVENTS}] = 0
        for q in range({n_sess_f}):
            sess_f[r, q] = math.nan
        if r < pristine_from:
            used = True
        elif r >= bound:
            bound = r + 1
    for c in _NONZERO_I:
        for j in range(k):
            si[free[j], c] = _INIT_I[c]
    for c in _NONZERO_F:
        for j in range(k):
            sf[free[j], c] = _INIT_F[c]
    if used:
        for c in _ZERO_I:
            for j in range(k):
                if free[j] < pristine_from:
                    si[free[j], c] = 0
        for c in _ZERO_F:
            for j in range(k):
                if free[j] < pristine_from:
                    sf[free[j], c] = 0.0
        for c in range(verdict.shape[1]):
            for j in range(k):
                if free[j] < pristine_from:
                    verdict[free[j], c] = 0
    return bound
'''


_AHEAD = 64  # rows between a row and the one whose signals it asks the cache for (`_Gen.ahead`)


class _Gen:
    """Builds the row loop's body: hold, expressions, guards, then one block per criterion."""

    def __init__(self, compiled: CompiledRubric, event: int | None = None) -> None:
        self.c = compiled
        self.event = event  # the row's event code when known (a specialised copy), else None
        self.n_sig = compiled.n_signals
        self.ex = _Exprs(compiled.scenario.signal_names)
        self.guard: dict[int, str] = {}  # guard id -> local bool
        self.value: dict[int, str] = {}  # value row -> local float
        self.conj: dict[str, frozenset[str]] = {}  # guard local -> locals true where it holds
        self.gated: dict[str, frozenset[str]] = {}  # a gate's `if` line -> locals it needs
        self.body: list[str] = []
        # the criteria whose pending bit is kept in `pmask` (all that test whether they are
        # pending: not the observed ones, not a metric, decided at the close only)
        self.masked = [
            c for c in range(min(compiled.n_criteria, 63))
            if int(compiled.kind[c]) not in (OBSERVED, METRIC)
        ]  # fmt: skip

    # ------------------------------------------------------------------ operands
    def g(self, gid: int) -> str:
        """The local bool of guard `gid` (computed at first use, once per row)."""
        if gid not in self.guard:
            guard = self.c.guards[gid]
            name = f"g{gid}"
            if guard.condition is None and self.event is not None:
                return str(int(guard.event_code) == self.event)
            if guard.condition is None:
                self.ex.lines.append(f"{name} = ev == {int(guard.event_code)}")
                self.conj[name] = frozenset([name])
            else:
                self.ex.lines.append(f"{name} = {self.ex.truth(guard.condition)}")
                self.conj[name] = self.ex.conjuncts(guard.condition)
            self.guard[gid] = name
        return self.guard[gid]

    def v(self, row: int) -> str:
        """The local float of value row `row` (a held signal or a metric expression)."""
        if row < self.n_sig:
            return f"h{row}"
        if row not in self.value:
            node = self.c.value_exprs[row - self.n_sig]
            if expr.kind_of(node) == "num":
                code = self.ex.num(node)
            else:
                true, false = self.ex.truth(node), self.ex.truth(node, False)
                code = f"1.0 if {true} else (0.0 if {false} else math.nan)"
            name = f"v{row}"
            self.ex.lines.append(f"{name} = {code}")
            self.value[row] = name
        return self.value[row]

    def ev_rows(self, c: int) -> list[int]:
        e0, ne = int(self.c.ev_off[c]), int(self.c.ev_len[c])
        return [int(r) for r in self.c.ev_rows[e0 : e0 + ne]]

    def decide(self, c: int, v: str, seq0: str, t0: str, pad: str) -> list[str]:
        """Decide criterion c at this row (kernel.decide_at); leaves the decision in `d`."""
        lines = [*self.decided(c, v),
                 f"d = _emit(oi, of, nd, s, {c}, {v}, sq, ti, {seq0}, {t0})"]  # fmt: skip
        for k, row in enumerate(self.ev_rows(c)):
            lines.append(f"of[{3 + k}, d] = {self.v(row)}")
        return [pad + line for line in lines]

    def pending(self, c: int) -> str:
        """Whether criterion c is still pending in the row's session."""
        if c in self.masked:
            return f"(pmask & {1 << c}) != 0"
        return f"verdict[s, {c}] == 0"

    def decided(self, c: int, v: str) -> list[str]:
        """Lines that record criterion c's verdict `v` (its pending bit cleared too)."""
        lines = [f"verdict[s, {c}] = {v}"]
        if c in self.masked:
            lines += [f"pmask &= {~(1 << c)}", "last_seq[s] = pmask"]
        return lines

    def gate(self, guards: list[str], pend: str, rare: bool = False) -> str:
        """One test, no short circuit: whether any of `guards` holds and the criterion is
        pending (taken only when there is work); `rare`: kept one branch, laid out as rarely
        taken (`_rare_branch`), else LLVM may test the pending bit and the guards in
        branches of their own."""
        known = [x for x in dict.fromkeys(guards) if x != "False"]
        if "True" in known:
            return f"({pend})"
        if not known:
            return "False"
        test = f"({' | '.join(known)}) & ({pend})"
        test = f"_rare_branch({test})" if rare else test
        self.gated[f"if {test}:"] = frozenset.intersection(*(self.conj[x] for x in known))
        return test

    # ------------------------------------------------------------------ templates
    def criterion(self, c: int) -> list[str]:
        kind = int(self.c.kind[c])
        io, fo = int(self.c.state_i_off[c]), int(self.c.state_f_off[c])
        pi, pf = self.c.params_i[c], self.c.params_f[c]
        l0, ln = int(self.c.list_off[c]), int(self.c.list_len[c])
        listed = [int(g) for g in self.c.lists[l0 : l0 + ln]]
        pend = self.pending(c)
        if kind == OBSERVED:
            return []
        if kind == NEVER:
            return self.never(c, io, fo, int(pi[0]), int(pi[1]), float(pf[0]), pend)
        if kind == ALL_BEFORE:
            return self.all_before(c, io, int(pi[0]), listed, pend)
        if kind == SEQUENCE:
            repeat = [int(x) for x in self.c.repeat[l0 : l0 + ln]]
            return self.sequence(c, io, fo, float(pf[0]), listed, repeat, pend)
        if kind == COUNT:
            return self.count(c, io, fo, pi, pend)
        if kind == RESPONSE:
            return self.response(c, io, fo, int(pi[0]), int(pi[1]), float(pf[0]), pend)
        if kind == PRECEDE:
            return self.precede(c, io, fo, int(pi[0]), int(pi[1]), float(pf[0]), pend)
        if kind == DURATION:
            return self.duration(c, io, fo, pi, pf, pend)
        if kind == METRIC:
            return self.metric(c, io, fo, pi, pend)
        if kind == MACHINE:
            return self.machine(c, io, fo, pi, pend)
        raise FusedUnsupportedError(f"criterion kind {kind}")

    def never(self, c: int, io: int, fo: int, g: int, allow: int, dur: float,
              pend: str) -> list[str]:  # fmt: skip
        rows = self.ev_rows(c)
        out = [f"if {self.gate([self.g(g)], pend)}:",
               f"    fresh = si[s, {io}] != o - 1",
               f"    si[s, {io}] = o",
               "    if fresh:",
               f"        si[s, {io + 1}] = 0",
               f"        si[s, {io + 3}] = sq",
               f"        sf[s, {fo}] = ti"]  # fmt: skip
        for k in range(len(rows)):
            out += [f"        sf[s, {fo + 1 + 2 * k}] = math.nan",
                    f"        sf[s, {fo + 2 + 2 * k}] = math.nan"]  # fmt: skip
        for k, row in enumerate(rows):
            b = fo + 1 + 2 * k
            out += [f"    sf[s, {b}] = _lower(sf[s, {b}], {self.v(row)})",
                    f"    sf[s, {b + 1}] = _upper(sf[s, {b + 1}], {self.v(row)})"]  # fmt: skip
        out += [f"    if si[s, {io + 1}] == 0 and ti - sf[s, {fo}] >= {_float(dur)}:",
                f"        si[s, {io + 1}] = 1",
                f"        si[s, {io + 2}] += 1",
                f"        if si[s, {io + 2}] > {allow}:",
                *("            " + x for x in self.decided(c, "FAIL")),
                f"            d = _emit(oi, of, nd, s, {c}, FAIL, sq, ti, si[s, {io + 3}], "
                f"sf[s, {fo}])"]  # fmt: skip
        for k in range(len(rows)):
            out += [f"            of[{3 + 2 * k}, d] = sf[s, {fo + 1 + 2 * k}]",
                    f"            of[{4 + 2 * k}, d] = sf[s, {fo + 2 + 2 * k}]"]  # fmt: skip
        return out

    def all_before(self, c: int, io: int, before: int, listed: list[int],
                   pend: str) -> list[str]:  # fmt: skip
        full = (1 << len(listed)) - 1
        out = [f"if {self.gate([self.g(before), *(self.g(x) for x in listed)], pend)}:",
               f"    if {self.g(before)}:",
               f"        v = PASS if si[s, {io}] == {full} else FAIL"]  # fmt: skip
        out += self.decide(c, "v", f"sess_i[s, {_FIRST_SEQ}]", f"sess_f[s, {_FIRST_T}]", " " * 8)
        out.append("    else:")
        for j, gid in enumerate(listed):
            out += [f"        if {self.g(gid)}:", f"            si[s, {io}] |= {1 << j}"]
        return out

    def sequence(self, c: int, io: int, fo: int, within: float, listed: list[int],
                 repeat: list[int], pend: str) -> list[str]:  # fmt: skip
        ln = len(listed)
        # without `within` a row where no step guard holds changes nothing (the kernel's
        # sparse visit); `ti > t1 + inf` never holds, so the expiry test is left out. On
        # sample rows the gate opens where a step guard on the signals holds while pending,
        # which mostly advances or decides the sequence (the forklift's seatbelt: once a
        # session): kept one branch, rarely taken (split, its pending test mispredicts where
        # sessions interleave and stay pending for long, and its body sat in the loop's
        # straight line). The event rows' copy is left as it was: weighting it too undid
        # the gain (docs/performance.md)
        gate = (
            pend
            if not math.isinf(within)
            else self.gate([self.g(x) for x in listed], pend, rare=self.event is not None)
        )
        out = [f"if {gate}:",
               f"    done = si[s, {io}]",
               "    v = 0",
               "    early = -1",
               "    hit = False"]  # fmt: skip
        for j, gid in enumerate(listed):
            out.append(f"    {'if' if j == 0 else 'elif'} done == {j}:")
            out.append(f"        hit = {self.g(gid)}")
        expiry = (
            "False" if math.isinf(within) else f"done > 0 and ti > sf[s, {fo}] + {_float(within)}"
        )
        out += [f"    if {expiry}:",
                "        v = FAIL",
                "    elif hit:",
                "        done += 1",
                f"        si[s, {io}] = done",
                "        if done == 1:",
                f"            si[s, {io + 1}] = sq",
                f"            sf[s, {fo}] = ti",
                f"        if done == {ln}:",
                "            v = PASS",
                "    else:"]  # fmt: skip
        later = [j for j in range(1, ln) if repeat[j] == 0]
        for j in later:
            out += [f"        if early < 0 and done < {j} and {self.g(listed[j])}:",
                    "            v = FAIL",
                    f"            early = {j + 1}"]  # fmt: skip
        if not later:
            out.append("        pass")
        out += ["    if v != 0:",
                f"        if si[s, {io}] > 0:",
                f"            seq0 = si[s, {io + 1}]",
                f"            t0 = sf[s, {fo}]",
                "        else:",
                f"            seq0 = sess_i[s, {_FIRST_SEQ}]",
                f"            t0 = sess_f[s, {_FIRST_T}]"]  # fmt: skip
        out += self.decide(c, "v", "seq0", "t0", " " * 8)
        out += [f"        oi[5, d] = si[s, {io}]", "        oi[6, d] = early"]
        return out

    def count(self, c: int, io: int, fo: int, pi: np.ndarray, pend: str) -> list[str]:
        g, episodes, lo, hi, cap = (int(x) for x in (pi[0], pi[1], pi[2], pi[3], pi[5]))
        ni, fl = io + 2, fo
        out = [f"if {self.gate([self.g(g)], pend)}:"]
        if episodes:
            out += [f"    occurs = si[s, {io + 1}] != o - 1", f"    si[s, {io + 1}] = o"]
        else:
            out += ["    occurs = True", f"    si[s, {io + 1}] = o"]
        out += ["    if occurs:",
                f"        si[s, {io}] += 1",
                f"        _contrib_add(si, sf, {ni}, {fl}, {cap}, s, ti, ti)",
                "        v = 0"]  # fmt: skip
        if hi >= 0:
            out += [f"        if si[s, {io}] > {hi}:", "            v = FAIL"]
        else:
            out += [f"        if si[s, {io}] >= {lo}:", "            v = PASS"]
        out.append("        if v != 0:")
        out += self.decide(c, "v", f"sess_i[s, {_FIRST_SEQ}]", f"sess_f[s, {_FIRST_T}]",
                           " " * 12)  # fmt: skip
        out += [f"            of[2, d] = si[s, {io}]",
                f"            _contrib_out(oi, oc, nd, d, si[s, {ni}], {cap}, sf, s, "
                f"{fl})"]  # fmt: skip
        return out

    def response(self, c: int, io: int, fo: int, a: int, b: int, within: float,
                 pend: str) -> list[str]:  # fmt: skip
        out = [f"if {pend}:",
               f"    if si[s, {io}] == 1 and ti > sf[s, {fo}] + {_float(within)}:"]  # fmt: skip
        out += self.decide(c, "FAIL", f"si[s, {io + 1}]", f"sf[s, {fo}]", " " * 8)
        out += ["    else:",
                f"        if {self.g(b)}:",
                f"            si[s, {io}] = 0",
                f"        if {self.g(a)} and si[s, {io}] == 0:",
                f"            si[s, {io}] = 1",
                f"            si[s, {io + 1}] = sq",
                f"            sf[s, {fo}] = ti"]  # fmt: skip
        return out

    def precede(self, c: int, io: int, fo: int, a: int, b: int, within: float,
                pend: str) -> list[str]:  # fmt: skip
        out = [f"if {self.gate([self.g(a), self.g(b)], pend)}:",
               f"    if {self.g(a)} and (si[s, {io}] == 0"
               + ("" if math.isinf(within) else f" or ti - sf[s, {fo}] > {_float(within)}")
               + "):"]  # fmt: skip
        out += self.decide(c, "FAIL", "sq", "ti", " " * 8)
        out += [f"    elif {self.g(b)}:", f"        si[s, {io}] = 1", f"        sf[s, {fo}] = ti"]
        return out

    def duration(self, c: int, io: int, fo: int, pi: np.ndarray, pf: np.ndarray,
                 pend: str) -> list[str]:  # fmt: skip
        a, b = int(pi[0]), int(pi[1])
        lo, hi = _float(float(pf[0])), _float(float(pf[1]))
        # one branch a row, taken only when there is work: the started flag is per session,
        # so it flips from row to row when sessions interleave (a branch on it mispredicts)
        expired = "False" if math.isinf(pf[1]) else f"(ti > sf[s, {fo}] + {hi})"
        out = [f"if {pend}:",
               f"    started = si[s, {io}] != 0",
               f"    if started & ({expired} | {self.g(b)}):",
               "        v = FAIL",
               f"        if not {expired}:",
               f"            elapsed = ti - sf[s, {fo}]",
               f"            v = FAIL if (elapsed < {lo} or elapsed > {hi}) else PASS"]  # fmt: skip
        out += self.decide(c, "v", f"si[s, {io + 1}]", f"sf[s, {fo}]", " " * 8)
        out += [f"    elif (not started) & {self.g(a)}:",
                f"        si[s, {io}] = 1",
                f"        si[s, {io + 1}] = sq",
                f"        sf[s, {fo}] = ti"]  # fmt: skip
        return out

    def metric(self, c: int, io: int, fo: int, pi: np.ndarray, pend: str) -> list[str]:
        row, where, agg, cap = int(pi[0]), int(pi[1]), int(pi[2]), int(pi[5])
        ni, fl = io + 2, fo + 5
        weighted = agg in (_AGG["mean"], _AGG["time_true"])
        del pend  # a metric is decided at the close only; its rows are visited regardless
        out: list[str] = []
        if weighted:
            out += [f"if si[s, {io + 1}] == 1:",
                    f"    w = ti - sf[s, {fo + 3}]"]  # fmt: skip
            if agg == _AGG["mean"]:
                out += [f"    sf[s, {fo}] += sf[s, {fo + 4}] * w", f"    sf[s, {fo + 1}] += w"]
            else:
                out.append(f"    sf[s, {fo}] += w")
            out += [f"    _contrib_add(si, sf, {ni}, {fl}, {cap}, s, sf[s, {fo + 3}], ti)",
                    f"    si[s, {io + 1}] = 0"]  # fmt: skip
        x = self.v(row)
        cond = f"{x} == {x}" + (f" and {self.g(where)}" if where >= 0 else "")
        out += [f"if {cond}:",
                f"    first = si[s, {io}] == 0",
                "    if first:",
                f"        sf[s, {fo}] = 0.0",
                f"        sf[s, {fo + 1}] = 0.0",
                f"        sf[s, {fo + 2}] = 0.0"]  # fmt: skip
        if agg in (_AGG["max"], _AGG["min"]):
            better, keep = (">", "_upper") if agg == _AGG["max"] else ("<", "_lower")
            out += [f"        sf[s, {fo}] = {x}",
                    f"    if first or {x} {better} sf[s, {fo}]:",
                    f"        _contrib_set(si, sf, {ni}, {fl}, s, ti)",
                    f"    sf[s, {fo}] = {keep}(sf[s, {fo}], {x})"]  # fmt: skip
        elif agg == _AGG["mean"]:
            out.append(f"    sf[s, {fo + 2}] += {x}")
        elif agg == _AGG["sum"]:
            out += [f"    sf[s, {fo}] += {x}",
                    f"    _contrib_add(si, sf, {ni}, {fl}, {cap}, s, ti, ti)"]  # fmt: skip
        elif agg == _AGG["last"]:
            out += [f"    sf[s, {fo}] = {x}", f"    _contrib_set(si, sf, {ni}, {fl}, s, ti)"]
        elif agg == _AGG["count"]:
            out += [f"    if {x} == 1.0:",
                    f"        sf[s, {fo}] += 1.0",
                    f"        _contrib_add(si, sf, {ni}, {fl}, {cap}, s, ti, ti)"]  # fmt: skip
        out.append(f"    si[s, {io}] += 1")
        if weighted:
            test = "True" if agg == _AGG["mean"] else f"{x} == 1.0"
            out += [f"    if {test}:",
                    f"        si[s, {io + 1}] = 1",
                    f"        sf[s, {fo + 3}] = ti",
                    f"        sf[s, {fo + 4}] = {x}"]  # fmt: skip
        return out

    def machine(self, c: int, io: int, fo: int, pi: np.ndarray, pend: str) -> list[str]:
        base, n_states, n_slots = int(pi[0]), int(pi[1]), int(pi[4])
        cc = self.c
        out = [f"if {pend}:", f"    cur = si[s, {io}]"]
        for st in range(n_states):
            r0 = int(cc.state_first[base + st])
            r1 = r0 + int(cc.state_count[base + st])
            out.append(f"    {'if' if st == 0 else 'elif'} cur == {st}:")
            body: list[str] = []
            for r in range(r0, r1):
                slot = int(cc.tr_slot[r])
                if slot >= 0:
                    at = f"sf[s, {fo + 1 + slot}]"
                    # a select, stored every row: the guard flips from row to row
                    when = self.g(int(cc.tr_when[r]))
                    body += [f"sl = {at}",
                             f"{at} = (ti if sl != sl else sl) if {when} else math.nan"]
            for k, r in enumerate(range(r0, r1)):
                tests: list[str] = []
                if int(cc.tr_on[r]) >= 0:
                    tests.append(self.g(int(cc.tr_on[r])))
                if int(cc.tr_when[r]) >= 0:
                    tests.append(self.g(int(cc.tr_when[r])))
                slot = int(cc.tr_slot[r])
                if slot >= 0:
                    tests.append(f"ti - sf[s, {fo + 1 + slot}] >= {_float(float(cc.tr_for[r]))}")
                after = float(cc.tr_after[r])
                if not math.isnan(after):
                    tests.append(f"ti - sf[s, {fo}] >= {_float(after)}")
                body.append(f"{'if' if k == 0 else 'elif'} {' and '.join(tests) or 'True'}:")
                to = int(cc.tr_to[r])
                if to in (TO_PASS, TO_FAIL):
                    v = "PASS" if to == TO_PASS else "FAIL"
                    body += [f"    if si[s, {io + 1}] < 0:",
                             f"        seq0 = sess_i[s, {_FIRST_SEQ}]",
                             f"        t0 = sess_f[s, {_FIRST_T}]",
                             "    else:",
                             f"        seq0 = si[s, {io + 1}]",
                             f"        t0 = sf[s, {fo}]"]  # fmt: skip
                    body += self.decide(c, v, "seq0", "t0", " " * 4)
                else:
                    body += [f"    si[s, {io}] = {to}",
                             f"    si[s, {io + 1}] = sq",
                             f"    sf[s, {fo}] = ti"]  # fmt: skip
                    body += [f"    sf[s, {fo + 1 + q}] = math.nan" for q in range(n_slots)]
            out += ["        " + line for line in (body or ["pass"])]
        return out

    # ------------------------------------------------------------------ the module
    def hold(self) -> list[str]:
        """Sample-and-hold and the session extremes, branch-free and grouped by operation:
        the signals' loads, the held values' loads, the selects (a missing value keeps the
        held one), the stores, then each extreme's load, select and store, so that numba's
        SLP vectorizer (`runtime.fused.compile_step`) makes the runs over the session's
        adjacent columns vector operations; the signals are loaded one by one (`_load`: not
        one gather), and so are the held values and extremes: a select of a value loaded from
        the address it is stored to becomes a masked store on AVX2 targets, microcoded on AMD
        Zen (tests/test_fused_codegen.py). The extremes already hold the held value, so the
        min / max of it changes nothing, and stay NaN while nothing was held."""
        n = self.n_sig
        held, ext = range(_HELD, _HELD + n), [k for k in range(n) if self.c.extremes[k]]
        lo0, hi0 = _HELD + n, _HELD + 2 * n
        return [*(f"sig{k} = _load(signals, ({k}, i))" for k in range(n)),
                *(f"was{k} = _load(sess_f, (s, {held[k]}))" for k in range(n)),
                *(f"h{k} = sig{k} if sig{k} == sig{k} else was{k}" for k in range(n)),
                *(f"sess_f[s, {held[k]}] = h{k}" for k in range(n)),
                *(f"lo{k} = _load(sess_f, (s, {lo0 + k}))" for k in ext),
                *(f"hi{k} = _load(sess_f, (s, {hi0 + k}))" for k in ext),
                *(f"sess_f[s, {lo0 + k}] = _lower(lo{k}, h{k})" for k in ext),
                *(f"sess_f[s, {hi0 + k}] = _upper(hi{k}, h{k})" for k in ext)]  # fmt: skip

    def pmask(self) -> list[str]:
        """The session's pending bits (`pmask`, bit c for criterion c of `masked`): read from
        `verdict` at the session's first row of the batch (marked by negating the stamp the
        check pass left there), then carried in `last_seq[s]` (the check pass's scratch, not
        read after it); a decision clears its bit there too. A gate then tests a bit of a
        local instead of loading the criterion's verdict column (another cache line and
        base address a row)."""
        masked = self.masked
        if not masked:
            return []
        out = [f"if sess_i[s, {_STAMP}] == stamp:",
               f"    sess_i[s, {_STAMP}] = -stamp",
               "    pmask = 0"]  # fmt: skip
        for c in masked:
            out += [f"    if verdict[s, {c}] == 0:", f"        pmask |= {1 << c}"]
        out += ["    last_seq[s] = pmask", "else:", "    pmask = last_seq[s]"]
        return out

    def criteria(self) -> list[str]:
        """The guards and expressions the criteria use, then one block per criterion; gated
        blocks in a row whose guards share a conjunct go behind one test of it (`_Group`)."""
        blocks: list[str] = []
        group = _Group()
        for c in range(self.c.n_criteria):
            lines = self.criterion(c)
            if not lines or lines[0] == "if False:":  # a gate that never opens here
                continue
            block = [f"# criterion {c}: {self.c.rubric.criteria[c].id}", *lines]
            body_only = all(x.startswith("    ") for x in lines[1:])
            needs = self.gated.get(lines[0], frozenset()) if body_only else frozenset()
            if needs and group.joins(needs):
                group.add(block, needs)
            elif needs:
                blocks += group.flush()
                group.add(block, needs)
            elif int(self.c.kind[c]) == METRIC and group.blocks:
                group.later += block  # decides at the close only: its place is free
            else:
                blocks += [*group.flush(), *block]
        blocks += group.flush()
        return [*self.ex.lines, *blocks]  # ex.lines filled while the criteria asked for them

    def fresh(self) -> str:
        """`_fresh_rows` and its constants: a fresh session's state (`compiled.init_i` /
        `init_f`, as `ScoringState._reset` writes it)."""
        init_i, init_f = self.c.init_i, self.c.init_f
        nonzero_f = init_f.view(np.int64) != 0  # by the bits: -0.0 and NaN are written
        return _FRESH.format(
            n_sess_f=2 + 3 * self.n_sig,
            init_i=_ints(init_i.tolist()),
            init_f=", ".join(_float(x) for x in init_f.tolist()),
            nz_i=_ints(np.flatnonzero(init_i != 0).tolist()),
            z_i=_ints(np.flatnonzero(init_i == 0).tolist()),
            nz_f=_ints(np.flatnonzero(nonzero_f).tolist()),
            z_f=_ints(np.flatnonzero(~nonzero_f).tolist()),
            FIRST_SEQ=_FIRST_SEQ, LAST_SEQ=_LAST_SEQ, N_EVENTS=_N_EVENTS,
        )  # fmt: skip

    def ahead(self) -> tuple[list[str], list[str]]:
        """Lines before the row loop and at the top of each row that ask the cache for the
        batch's signals `_AHEAD` rows on: the hardware's prefetchers lose the signals'
        streams among the loop's other accesses, and a row's hold then waits for memory.
        Where a row's signals share a line or two (Fortran order, records read in place)
        the first signal's address fetches them all; else (a signal a row of the array)
        each row fetches one signal's line, the signals in turn (i & 7: every signal's
        stream of 8-byte values once in 8 rows while there are at most 8)."""
        if self.n_sig == 0:
            return [], []
        setup = ["n_rows = slots.shape[0]",
                 "last_sig = signals.shape[0] - 1",
                 "turn = 0 if signals.strides[0] * last_sig < 64 else 7"]  # fmt: skip
        row = [f"_prefetch(signals, (min(i & turn, last_sig), min(i + {_AHEAD}, n_rows - 1)))"]
        return setup, row

    def module(self) -> str:
        setup, fetch = self.ahead()
        body = ["s = rows[i]", *fetch, "ti = t[i]", "sq = seq[i]", "ev = event[i]", *_ADMIT,
                *self.pmask(), *self.hold()]  # fmt: skip
        general = self.criteria()
        if any(g.condition is None for g in self.c.guards):
            sample = _Gen(self.c, event=0).criteria()
            body += ["if ev == 0:", *("    " + x for x in sample or ["pass"]),
                     "else:", *("    " + x for x in general or ["pass"])]
        else:
            body += general
        head = _PRELUDE.format(FAIL=FAIL, PASS=PASS, NOT_APPLICABLE=NOT_APPLICABLE)
        head += self.fresh()
        fn = ["@njit(cache=True, nogil=True, error_model=\"numpy\")",
              "def step_rows(slots, seq, t, event, signals, row_of, slot_of_row, free, took, "
              "rows, last_seq, last_t, stamp, sess_i, sess_f, si, sf, verdict, oi, of, oc, nd):",
              '    """Check the batch\'s slots and order, taking free rows for slots without '
              'one (its state rows to `rows`), then admit, hold and advance every criterion '
              'over rows 0..n-1 (see the generator): -1, the first row out of order, or '
              'BAD_SLOT / NO_ROW (`fused_step`)."""',
              *_CHECK,
              *("    " + line for line in setup),
              "    for i in range(slots.shape[0]):"]  # fmt: skip
        fn += ["        " + line for line in body]
        fn += ["    return -1"]
        return head + "\n" + "\n".join(fn) + "\n\n\n" + close_source(self.c)


class _Group:
    """Consecutive gated criterion blocks whose gates all need one local (a conjunct of
    each one's guards): on a row where it is false one test skips them all (on a sample row
    most gates are closed; their guards' comparisons then mostly go unevaluated). Metric
    blocks met on the way (`later`) follow the group: they emit nothing in a step, so their
    order among the criteria is free."""

    def __init__(self) -> None:
        self.blocks: list[list[str]] = []
        self.common: frozenset[str] = frozenset()
        self.later: list[str] = []

    def joins(self, needs: frozenset[str]) -> bool:
        return bool(self.blocks) and bool(self.common & needs)

    def add(self, block: list[str], needs: frozenset[str]) -> None:
        self.common = self.common & needs if self.blocks else needs
        self.blocks.append(block)

    def flush(self) -> list[str]:
        """The group's lines (and the moved blocks after them); the group empty again."""
        out = [x for b in self.blocks for x in b]
        if len(self.blocks) > 1:
            out = [f"if {min(self.common)}:", *("    " + x for x in out)]
        out += self.later
        self.blocks, self.common, self.later = [], frozenset(), []
        return out


# The first pass, read-only on the state but for the batch's stamp (a mark; the pass after
# it negates the stamp at each session's first row, `_Gen.pmask`) and the rows it takes:
# each row's slot is checked against the state's bounds, then its session's order
# (`kernel.admit`'s check): each session's last seq and t as of the batch's previous row go
# to the per-row scratch `last_seq` / `last_t` (taken from the state at the session's first
# row in the batch). A slot without a state row takes the next free one (`free`, in order:
# what `ScoringState.rows` would give) at its first occurrence, `row_of` / `slot_of_row` set;
# its session has nothing before that row. A refused batch gives the rows back (`_untake`)
# and returns before any column or criterion moved: BAD_SLOT for a slot out of bounds before
# the first row out of order, else that row (`scorer` checks the whole batch's bounds on any
# refusal: a slot out of bounds anywhere is the error). Else the taken rows get a fresh
# session's state (`_fresh_rows`) and `took` says how many were taken and the new pristine
# bound. Rows are indexed unsigned (no negative-index fix-up at each access).
# A t is refused where it is not finite or negative (`kernel.admit`): at a session's first
# row by that test; at a later row by the order test, `ti >= last_t[s]` (false for NaN, and
# for a negative t since every admitted t, the one before included, is finite and >= 0)
# and `ti < inf`. The one test at every row compiled to about fifteen integer instructions
# (LLVM makes `0 <= ti < inf` a test of the float's class).
_REFUSE_T = [
    "            if not (ti >= 0.0 and ti < math.inf):",
    "                _untake(free, k, row_of, slot_of_row)",
    "                return i",
]
_CHECK = [
    # int64 from the start: from a literal 0 numba's type inference also compiled `_untake`
    # and `_fresh_rows` for Literal[int](0), a second variant never run (a first run's 1 s a
    # rubric); the step's machine code is the same
    "    k = np.int64(0)",
    "    n_slots = row_of.shape[0]",
    "    for i in range(slots.shape[0]):",
    "        slot = np.uint32(slots[i])  # a negative slot is above every bound",
    "        if slot >= n_slots:",
    "            _untake(free, k, row_of, slot_of_row)",
    f"            return {BAD_SLOT}",
    "        r = row_of[slot]",
    "        ti = t[i]",
    "        sq = seq[i]",
    "        if r < 0:  # no state row yet: the next free one, for a fresh session",
    *_REFUSE_T,
    "            if k >= free.shape[0]:",
    "                _untake(free, k, row_of, slot_of_row)",
    f"                return {NO_ROW}",
    "            s = np.uint32(free[k])",
    "            k += 1",
    "            row_of[slot] = s",
    "            slot_of_row[s] = slot",
    "            rows[i] = s",
    f"            sess_i[s, {_STAMP}] = stamp",
    "            last_seq[s] = sq",
    "            last_t[s] = ti",
    "            continue",
    "        s = np.uint32(r)",
    "        rows[i] = s",
    f"        if sess_i[s, {_STAMP}] != stamp:",
    f"            sess_i[s, {_STAMP}] = stamp",
    f"            if sess_i[s, {_N_EVENTS}] == 0:  # the session's first row: nothing before",
    *("    " + line for line in _REFUSE_T),
    "                last_seq[s] = sq",
    "                last_t[s] = ti",
    "                continue",
    f"            last_seq[s] = sess_i[s, {_LAST_SEQ}]",
    f"            last_t[s] = sess_f[s, {_LAST_T}]",
    "        if sq <= last_seq[s] or not (ti >= last_t[s] and ti < math.inf):",
    "            _untake(free, k, row_of, slot_of_row)",
    "            return i",
    "        last_seq[s] = sq",
    "        last_t[s] = ti",
    "    took[1] = _fresh_rows(free, k, took[1], sess_i, sess_f, si, sf, verdict)",
    "    took[0] = k",
]

# `kernel.admit`'s updates of the session columns, row by row (`o`: the row's ordinal in its
# session, which the criteria read); nothing the criteria read changes meaning: they read
# FIRST_SEQ / FIRST_T only, set at the session's first row before any criterion runs on it
_ADMIT = [
    f"o = sess_i[s, {_N_EVENTS}]",
    "if o == 0:",
    f"    sess_i[s, {_FIRST_SEQ}] = sq",
    f"    sess_f[s, {_FIRST_T}] = ti",
    f"sess_i[s, {_LAST_SEQ}] = sq",
    f"sess_i[s, {_N_EVENTS}] = o + 1",
    f"sess_f[s, {_LAST_T}] = ti",
]


def fused_source(compiled: CompiledRubric) -> str:
    """The source of the fused step module for this compiled rubric (see the module doc).
    Raises FusedUnsupportedError for what is not generated."""
    return _Gen(compiled).module()
