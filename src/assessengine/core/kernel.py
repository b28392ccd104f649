# mypy: allow-untyped-defs
# (numba kernels: argument types are fixed by the named tuples of kernel_types.py)
"""The compiled kernel: advance every session's criteria over a batch, and close sessions.

One generic, table-driven set of numba loops serves every rubric (see `compiler.py` for the
tables). Guards arrive as a (n_guards, n) bool matrix computed with numpy; this module holds the
sequential parts: admitting events (order checks), sample-and-hold, and the per-criterion state
machines. Each criterion is advanced over the whole batch in its own tight loop; criteria never
interact, so criterion-major order gives the same results as event-major order.

State per session slot:
  sess_i (cap, 3)            FIRST_SEQ (-1 = no event yet), LAST_SEQ, N_EVENTS
  sess_f (cap, 2 + 3 n_sig)  FIRST_T, LAST_T, then per signal block: held values (NaN =
                             missing), session minimum, session maximum
  si (cap, n_state_i)        int64 per-criterion state, at `tables.io[c]`
  sf (cap, n_state_f)        float64 per-criterion state, at `tables.fo[c]`
  verdict (cap, C)           int8 verdict codes (compiler.PENDING ...)

Decisions are appended to `out.oi` (m, 5) = slot, criterion, verdict, seq, seq_start and
`out.of` (m, 3 + 2 * max_ev) = t, t_start, measured, values...; `out.nd[0]` counts them.
For never/always the values are (min, max) pairs, otherwise one value per named signal.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .automata import (
    all_before,
    count,
    duration,
    emit,
    machine,
    machine_close,
    metric,
    metric_close,
    never,
    precede,
    response,
    sequence,
)
from .compiler import (
    ALL_BEFORE,
    COUNT,
    DURATION,
    FAIL,
    MACHINE,
    METRIC,
    NEVER,
    NOT_APPLICABLE,
    PASS,
    PENDING,
    PRECEDE,
    RESPONSE,
    SEQUENCE,
)

FIRST_SEQ, LAST_SEQ, N_EVENTS = 0, 1, 2
FIRST_T, LAST_T, HELD = 0, 1, 2


@njit(cache=True)
def admit(sess, seq, t, sess_i, sess_f, ordinal):
    """Check order and advance each session's first/last event; all or nothing.

    ordinal[i] receives the row's position in its session (0 for the session's first event), so
    that sparse automata can tell whether two rows they visit are consecutive in the session.

    Returns -1 when every row is admitted, else the index of the first row whose seq does not
    increase, whose t goes backwards, or whose t is negative or not finite (state unchanged).
    """
    n = sess.shape[0]
    saved_i = np.empty((n, 3), np.int64)
    saved_f = np.empty((n, 2), np.float64)
    for i in range(n):
        s = sess[i]
        ti = t[i]
        bad = not (ti >= 0.0 and ti < math.inf)
        if sess_i[s, N_EVENTS] > 0 and (seq[i] <= sess_i[s, LAST_SEQ] or ti < sess_f[s, LAST_T]):
            bad = True
        if bad:
            for j in range(i - 1, -1, -1):
                r = sess[j]
                for k in range(3):
                    sess_i[r, k] = saved_i[j, k]
                sess_f[r, FIRST_T] = saved_f[j, 0]
                sess_f[r, LAST_T] = saved_f[j, 1]
            return i
        for k in range(3):
            saved_i[i, k] = sess_i[s, k]
        saved_f[i, 0] = sess_f[s, FIRST_T]
        saved_f[i, 1] = sess_f[s, LAST_T]
        ordinal[i] = sess_i[s, N_EVENTS]
        if sess_i[s, N_EVENTS] == 0:
            sess_i[s, FIRST_SEQ] = seq[i]
            sess_f[s, FIRST_T] = ti
        sess_i[s, LAST_SEQ] = seq[i]
        sess_i[s, N_EVENTS] += 1
        sess_f[s, LAST_T] = ti
    return -1


@njit(cache=True)
def hold(sess, raw, sess_f, held):
    """Sample-and-hold: held[k, i] = last non-NaN raw[k, j] of the session at or before i.
    Also keeps each signal's session minimum and maximum (of the values reported so far)."""
    n_sig, n = raw.shape
    for i in range(n):
        s = sess[i]
        for k in range(n_sig):
            x = raw[k, i]
            if x == x:
                sess_f[s, HELD + k] = x
                lo = HELD + n_sig + k
                hi = HELD + 2 * n_sig + k
                if not (sess_f[s, lo] <= x):
                    sess_f[s, lo] = x
                if not (sess_f[s, hi] >= x):
                    sess_f[s, hi] = x
            held[k, i] = sess_f[s, HELD + k]


@njit(cache=True)
def advance(tables, batch, state, out, visit, visit_off):
    """Advance every criterion over the batch (rows in seq order within each session).

    A criterion with visit_off[c, 0] >= 0 visits only visit[visit_off[c, 0]:visit_off[c, 1]] (the
    rows where one of its guards may hold; see `compiler.sparse_guards`); the others visit every
    row. Criteria never interact, so advancing them one after the other over the whole batch
    gives the same results as advancing all of them event by event.
    """
    every = np.arange(batch.sess.shape[0])
    for c in range(tables.kind.shape[0]):
        idx = every if visit_off[c, 0] < 0 else visit[visit_off[c, 0] : visit_off[c, 1]]
        k = tables.kind[c]
        if k == NEVER:
            never(c, idx, tables, batch, state, out)
        elif k == ALL_BEFORE:
            all_before(c, idx, tables, batch, state, out)
        elif k == SEQUENCE:
            sequence(c, idx, tables, batch, state, out)
        elif k == COUNT:
            count(c, idx, tables, batch, state, out)
        elif k == RESPONSE:
            response(c, idx, tables, batch, state, out)
        elif k == PRECEDE:
            precede(c, idx, tables, batch, state, out)
        elif k == DURATION:
            duration(c, idx, tables, batch, state, out)
        elif k == METRIC:
            metric(c, idx, tables, batch, state, out)
        elif k == MACHINE:
            machine(c, idx, tables, batch, state, out)


@njit(cache=True)
def close(tables, state, out, slots, close_t):
    """Decide every pending criterion of the given sessions "at end" (observed ones stay
    pending). The decision has the last event's seq (-1 when there was none) and t = close_t;
    every pass at end is anchored at the session's first event."""
    n_sig = (state.sess_f.shape[1] - HELD) // 3
    for j in range(slots.shape[0]):
        s = slots[j]
        ct = close_t[j]
        seen = state.sess_i[s, N_EVENTS] > 0
        last = state.sess_i[s, LAST_SEQ] if seen else -1
        for c in range(tables.kind.shape[0]):
            if state.verdict[s, c] != PENDING:
                continue
            v, seq0, t0, measured = _at_end(c, s, ct, tables, state)
            if v == PENDING:
                continue
            if v == PASS or seq0 == -2:
                seq0 = state.sess_i[s, FIRST_SEQ] if seen else -1
                t0 = state.sess_f[s, FIRST_T]
            state.verdict[s, c] = v
            d = emit(out, s, c, v, last, ct, seq0, t0)
            out.of[d, 2] = measured
            e0 = tables.ev_off[c]
            for q in range(tables.ev_len[c]):
                row = tables.ev_rows[e0 + q]
                if tables.kind[c] == NEVER:
                    out.of[d, 3 + 2 * q] = state.sess_f[s, HELD + n_sig + row]
                    out.of[d, 4 + 2 * q] = state.sess_f[s, HELD + 2 * n_sig + row]
                else:
                    out.of[d, 3 + q] = state.sess_f[s, HELD + row]


@njit(cache=True)
def _at_end(c, s, ct, tables, state):
    """(verdict, interval start seq, its t, measured) of criterion `c` at the close; a start seq
    of -2 means the session's first event."""
    k, io, fo = tables.kind[c], tables.io[c], tables.fo[c]
    si, sf = state.si, state.sf
    if k == NEVER or k == PRECEDE:
        return PASS, -2, math.nan, math.nan
    if k == ALL_BEFORE:
        return tables.pi[c, 1], -2, math.nan, math.nan
    if k == SEQUENCE:
        if si[s, io] > 0:
            return FAIL, si[s, io + 1], sf[s, fo], math.nan
        return FAIL, -2, math.nan, math.nan
    if k == COUNT:
        return (PASS if si[s, io] >= tables.pi[c, 2] else FAIL), -2, math.nan, math.nan
    if k == RESPONSE or k == DURATION:
        if si[s, io] == 1:
            return FAIL, si[s, io + 1], sf[s, fo], math.nan
        return (PASS if k == RESPONSE else NOT_APPLICABLE), -2, math.nan, math.nan
    if k == METRIC:
        measured = metric_close(c, s, ct, tables, state)
        if si[s, io] == 0:
            return NOT_APPLICABLE, -2, math.nan, measured
        if measured < tables.pf[c, 0] or measured > tables.pf[c, 1]:
            return FAIL, -2, math.nan, measured
        return PASS, -2, math.nan, measured
    if k == MACHINE:
        v = machine_close(c, s, ct, tables, state)
        if si[s, io + 1] >= 0:
            return v, si[s, io + 1], sf[s, fo], math.nan
        return v, -2, math.nan, math.nan
    return PENDING, -2, math.nan, math.nan
