"""Generate a rubric's close as numba source (pure): `close_rows` of the fused module.

`close_source(compiled)` returns the text of one function, part of the module
`fused_source` generates (which supplies ``math``, ``np`` and ``njit``):

    close_rows(rows, close_t, names, sess_i, sess_f, si, sf, verdict, ri, rf, rc, nd)

It decides what `kernel.close(tables, state, out, rows, close_t, names)` decides, in the same
order, with the same state changes: `State`'s five arrays; ``ri``, ``rf``, ``rc``, ``nd`` are
`out.oi.T`, `out.of.T`, `out.oc.T` and `out.nd` of a close's output (`scorer._close_outputs`:
C-contiguous (decisions, fields) records, so a decision's fields are one record here too).
Where the kernel reads each criterion's template, state offsets, parameters and evidence
rows from the tables at every decision, this code has one block per criterion with them as
constants (no dispatch, no table loads, the evidence copied by straight-line stores); rows
and decisions are indexed unsigned (no negative-index fix-up at each access). Criteria that
never decide at the close (observed ones, an `all_before` whose end verdict is pending)
have no block.
"""

from __future__ import annotations

import math

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
    PENDING,
    PRECEDE,
    RESPONSE,
    SEQUENCE,
    TO_FAIL,
    TO_PASS,
    CompiledRubric,
)
from .kernel import FIRST_SEQ, FIRST_T, HELD, LAST_SEQ, LAST_T, N_EVENTS

_MEAN, _TIME_TRUE = AGGREGATE_CODES["mean"], AGGREGATE_CODES["time_true"]
_FROM_FIRST = ["seq0, t0 = first_seq, first_t"]


def _float(x: float) -> str:
    """A float literal that reads back as exactly `x`."""
    if math.isnan(x):
        return "math.nan"
    if math.isinf(x):
        return "math.inf" if x > 0 else "-math.inf"
    return repr(float(x))


def close_source(compiled: CompiledRubric) -> str:
    """The text of `close_rows` for this compiled rubric (see the module doc)."""
    lines = [
        "@njit(cache=True, nogil=True)",
        "def close_rows(rows, close_t, names, sess_i, sess_f, si, sf, verdict, ri, rf, rc, nd):",
        '    """`kernel.close` of this rubric, into decision records (see the generator)."""',
        "    d, r = np.uint32(nd[0]), np.uint32(nd[1])",
        "    for j in range(rows.shape[0]):",
        "        s = np.uint32(rows[j])",
        "        ct = close_t[j]",
        f"        last_t = sess_f[s, {LAST_T}]",
        "        if last_t == last_t and not (ct >= last_t):  # np.fmax(close_t, last_t)",
        "            ct = last_t",
        f"        seen = sess_i[s, {N_EVENTS}] > 0",
        f"        last = sess_i[s, {LAST_SEQ}] if seen else -1",
        f"        first_seq = sess_i[s, {FIRST_SEQ}] if seen else -1",
        f"        first_t = sess_f[s, {FIRST_T}]",
        "        name = names[j]",
    ]
    for c in range(compiled.n_criteria):
        lines += ["        " + x for x in _criterion(compiled, c)]
    lines.append("    nd[0], nd[1] = d, r")
    return "\n".join(lines) + "\n"


def _criterion(compiled: CompiledRubric, c: int) -> list[str]:
    """Criterion c's block: its end verdict when it is pending, and its decision record."""
    kind = int(compiled.tables.kind[c])
    if kind == OBSERVED or (kind == ALL_BEFORE and int(compiled.tables.pi[c, 1]) == PENDING):
        return []
    if kind == MACHINE:  # its end verdict may be pending: no decision then
        record = _record(compiled, c, "-1", "math.nan")
        return [f"if verdict[s, {c}] == {PENDING}:", *_indent(_machine(compiled, c)),
                f"    if v != {PENDING}:", *_indent(record, 2)]  # fmt: skip
    body, steps, measured = _end(compiled, c, kind)
    return [f"if verdict[s, {c}] == {PENDING}:",
            *_indent(body + _record(compiled, c, steps, measured))]  # fmt: skip


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    return ["    " * levels + x for x in lines]


def _end(compiled: CompiledRubric, c: int, kind: int) -> tuple[list[str], str, str]:
    """The end of a template that always decides at the close: lines setting v, seq0 and t0,
    and the code of its steps done and measured value."""
    t = compiled.tables
    io, fo = int(t.io[c]), int(t.fo[c])
    if kind in (NEVER, PRECEDE):
        return [f"v = {PASS}", *_FROM_FIRST], "-1", "math.nan"
    if kind == ALL_BEFORE:
        return [f"v = {int(t.pi[c, 1])}", *_FROM_FIRST], "-1", "math.nan"
    if kind == SEQUENCE:
        return (
            [
                f"v = {FAIL}",
                f"steps = si[s, {io}]",
                "if steps > 0:",
                f"    seq0, t0 = si[s, {io + 1}], sf[s, {fo}]",
                "else:",
                *_indent(_FROM_FIRST),
            ],
            "steps",
            "math.nan",
        )
    if kind == COUNT:
        return (
            [
                f"n = si[s, {io}]",
                f"v = {PASS} if n >= {int(t.pi[c, 2])} else {FAIL}",
                *_FROM_FIRST,
            ],
            "-1",
            "float(n)",
        )
    if kind in (RESPONSE, DURATION):
        return (
            [
                f"if si[s, {io}] == 1:",
                f"    v = {FAIL}",
                f"    seq0, t0 = si[s, {io + 1}], sf[s, {fo}]",
                "else:",
                f"    v = {PASS if kind == RESPONSE else NOT_APPLICABLE}",
                *_indent(_FROM_FIRST),
            ],
            "-1",
            "math.nan",
        )
    if kind == METRIC:
        return _metric(compiled, c), "-1", "measured"
    raise ValueError(f"criterion {c}: no close for template {kind}")


def _metric(compiled: CompiledRubric, c: int) -> list[str]:
    """`kernel.metric_end` and the metric's verdict: a pending weighted event is weighted up
    to the close time (and recorded as contributing), then the aggregate is measured."""
    t = compiled.tables
    io, fo = int(t.io[c]), int(t.fo[c])
    agg, cap = int(t.pi[c, 2]), int(t.pi[c, 5])
    ni, fl = io + 2, fo + 5  # `kernel.contrib_slots_of(METRIC, io, fo)`
    lines = [f"if si[s, {io + 1}] == 1:", f"    a0 = sf[s, {fo + 3}]", "    w = ct - a0"]
    if agg == _MEAN:
        lines += [f"    sf[s, {fo}] += sf[s, {fo + 4}] * w", f"    sf[s, {fo + 1}] += w"]
    elif agg == _TIME_TRUE:
        lines += [f"    sf[s, {fo}] += w"]
    lines += [  # `kernel.contrib_add_at(si, sf, ni, fl, cap, s, a0, ct)`
        f"    n = si[s, {ni}]",
        f"    if n > 0 and sf[s, {fl}] == a0:",
        f"        if n <= {cap}:",
        f"            sf[s, {fl} + 2 * n] = ct",
        "    else:",
        f"        if n < {cap}:",
        f"            sf[s, {fl + 1} + 2 * n] = a0",
        f"            sf[s, {fl + 2} + 2 * n] = ct",
        f"        si[s, {ni}] = n + 1",
        f"    sf[s, {fl}] = ct",
        f"    si[s, {io + 1}] = 0",
        f"n = si[s, {io}]",
        "if n == 0:",
        "    measured = math.nan",
        f"    v = {NOT_APPLICABLE}",
        "else:",
    ]
    if agg == _MEAN:
        lines += [
            f"    w = sf[s, {fo + 1}]",
            f"    measured = sf[s, {fo + 2}] / n if w == 0.0 else sf[s, {fo}] / w",
        ]
    else:
        lines += [f"    measured = sf[s, {fo}]"]
    lo, hi = _float(float(t.pf[c, 0])), _float(float(t.pf[c, 1]))
    # a NaN aggregate is within no bounds: fail (docs/semantics.md 15)
    lines += [f"    v = {PASS} if {lo} <= measured <= {hi} else {FAIL}", *_FROM_FIRST]
    return lines


def _machine(compiled: CompiledRubric, c: int) -> list[str]:
    """`kernel.machine_end` for each local state that has a pure `after` transition (the first
    one whose time has come decides), else the machine's `at_end`; v, seq0, t0 as the kernel
    sets them when v is not pending."""
    t = compiled.tables
    io, fo = int(t.io[c]), int(t.fo[c])
    first_state, n_states, at_end = int(t.pi[c, 0]), int(t.pi[c, 1]), int(t.pi[c, 3])
    lines = [f"since = ct - sf[s, {fo}]", f"local = si[s, {io}]", f"v = {at_end}"]
    cases: list[list[str]] = []
    for local in range(n_states):
        g = first_state + local
        tests: list[str] = []
        r0 = int(t.state_first[g])
        for row in range(r0, r0 + int(t.state_count[g])):
            after = float(t.tr_after[row])
            if t.tr_on[row] >= 0 or t.tr_when[row] >= 0 or math.isnan(after):
                continue
            to = int(t.tr_to[row])
            verdict = PASS if to == TO_PASS else FAIL if to == TO_FAIL else at_end
            tests += [f"{'elif' if tests else 'if'} since >= {_float(after)}:",
                      f"    v = {verdict}"]  # fmt: skip
        if tests:
            cases.append([f"{'elif' if cases else 'if'} local == {local}:", *_indent(tests)])
    lines += [x for case in cases for x in case]
    return [
        *lines,
        f"if v == {PASS} or si[s, {io + 1}] < 0:",
        *_indent(_FROM_FIRST),
        "else:",
        f"    seq0, t0 = si[s, {io + 1}], sf[s, {fo}]",
    ]


def _record(compiled: CompiledRubric, c: int, steps: str, measured: str) -> list[str]:
    """Decision d of criterion c (verdict v), each field written once (`kernel.record`), its
    evidence, its contributing intervals (count and metric criteria); d (and r) advanced."""
    t = compiled.tables
    kind, io, fo = int(t.kind[c]), int(t.io[c]), int(t.fo[c])
    n_sig = compiled.n_signals
    lines = [
        f"verdict[s, {c}] = v",
        "ri[d, 0] = name",
        f"ri[d, 1] = {c}",
        "ri[d, 2] = v",
        "ri[d, 3] = last",
        "ri[d, 4] = seq0",
        f"ri[d, 5] = {steps}",
        "ri[d, 6] = -1",
        "rf[d, 0] = ct",
        "rf[d, 1] = t0",
        f"rf[d, 2] = {measured}",
    ]
    e0, ne = int(t.ev_off[c]), int(t.ev_len[c])
    for q, row in enumerate(t.ev_rows[e0 : e0 + ne].tolist()):
        if kind == NEVER:  # the session's (min, max) of each signal
            lines += [f"rf[d, {3 + 2 * q}] = sess_f[s, {HELD + n_sig + row}]",
                      f"rf[d, {4 + 2 * q}] = sess_f[s, {HELD + 2 * n_sig + row}]"]  # fmt: skip
        else:  # its held value
            lines.append(f"rf[d, {3 + q}] = sess_f[s, {HELD + row}]")
    if kind in (COUNT, METRIC):  # `kernel.contrib_row_at`
        ni, fl = io + 2, (fo + 5 if kind == METRIC else fo)
        lines += [
            "ri[d, 7] = r",
            f"nc = si[s, {ni}]",
            "rc[r, 0] = nc",
            f"for q in range(2 * min(nc, {int(t.pi[c, 5])})):",
            f"    rc[r, 1 + q] = sf[s, {fl + 1} + q]",
            "r = np.uint32(r + 1)",
        ]
    else:
        lines.append("ri[d, 7] = -1")
    lines.append("d = np.uint32(d + 1)")
    return lines
