# mypy: allow-untyped-defs
# (numba kernels: argument types are fixed by the arrays the typed wrappers in scorer.py pass)
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
  si (cap, n_state_i)        int64 per-criterion state, at `state_i_off[c]`
  sf (cap, n_state_f)        float64 per-criterion state, at `state_f_off[c]`
  verdict (cap, C)           int8 verdict codes (compiler.PENDING ...)

Decisions are appended to `oi` (cap, 5) = slot, criterion, verdict, seq, seq_start and
`of` (cap, 3 + 2 * max_ev) = t, t_start, measured, values...; `nd[0]` counts them.
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
def advance(
    kind,
    pi,
    pf,
    lists,
    repeat,
    list_off,
    list_len,
    ev_rows,
    ev_off,
    ev_len,
    io_off,
    fo_off,
    state_first,
    state_count,
    tr_on,
    tr_when,
    tr_for,
    tr_after,
    tr_to,
    tr_slot,
    sess,
    seq,
    t,
    guards,
    values,
    sess_i,
    sess_f,
    si,
    sf,
    verdict,
    oi,
    of,
    nd,
    rows,
    rows_off,
    ordinal,
):
    """Advance every criterion over the batch (rows in seq order within each session).

    A criterion with rows_off[c, 0] >= 0 visits only rows[rows_off[c, 0]:rows_off[c, 1]] (the
    rows where one of its guards holds; see `compiler.sparse_guards`); the others visit every row.
    """
    every = np.arange(sess.shape[0])
    for c in range(kind.shape[0]):
        idx = every if rows_off[c, 0] < 0 else rows[rows_off[c, 0] : rows_off[c, 1]]
        k = kind[c]
        io = io_off[c]
        fo = fo_off[c]
        e0 = ev_off[c]
        ne = ev_len[c]
        if k == NEVER:
            never(
                c,
                idx,
                ordinal,
                pi[c, 0],
                pi[c, 1],
                pf[c, 0],
                io,
                fo,
                e0,
                ne,
                ev_rows,
                sess,
                seq,
                t,
                guards,
                values,
                si,
                sf,
                verdict,
                oi,
                of,
                nd,
            )
        elif k == ALL_BEFORE:
            all_before(
                c,
                idx,
                pi[c, 0],
                lists,
                list_off[c],
                list_len[c],
                e0,
                ne,
                ev_rows,
                sess,
                seq,
                t,
                guards,
                values,
                sess_i,
                sess_f,
                si,
                io,
                verdict,
                oi,
                of,
                nd,
            )
        elif k == SEQUENCE:
            sequence(
                c,
                idx,
                lists,
                repeat,
                list_off[c],
                list_len[c],
                pf[c, 0],
                io,
                fo,
                e0,
                ne,
                ev_rows,
                sess,
                seq,
                t,
                guards,
                values,
                sess_i,
                sess_f,
                si,
                sf,
                verdict,
                oi,
                of,
                nd,
            )
        elif k == COUNT:
            count(
                c,
                idx,
                ordinal,
                pi[c, 0],
                pi[c, 1],
                pi[c, 2],
                pi[c, 3],
                io,
                e0,
                ne,
                ev_rows,
                sess,
                seq,
                t,
                guards,
                values,
                sess_i,
                sess_f,
                si,
                verdict,
                oi,
                of,
                nd,
            )
        elif k == RESPONSE:
            response(
                c,
                idx,
                pi[c, 0],
                pi[c, 1],
                pf[c, 0],
                io,
                fo,
                e0,
                ne,
                ev_rows,
                sess,
                seq,
                t,
                guards,
                values,
                si,
                sf,
                verdict,
                oi,
                of,
                nd,
            )
        elif k == PRECEDE:
            precede(
                c,
                idx,
                pi[c, 0],
                pi[c, 1],
                pf[c, 0],
                io,
                fo,
                e0,
                ne,
                ev_rows,
                sess,
                seq,
                t,
                guards,
                values,
                si,
                sf,
                verdict,
                oi,
                of,
                nd,
            )
        elif k == DURATION:
            duration(
                c,
                idx,
                pi[c, 0],
                pi[c, 1],
                pf[c, 0],
                pf[c, 1],
                io,
                fo,
                e0,
                ne,
                ev_rows,
                sess,
                seq,
                t,
                guards,
                values,
                si,
                sf,
                verdict,
                oi,
                of,
                nd,
            )
        elif k == METRIC:
            metric(
                c,
                idx,
                pi[c, 0],
                pi[c, 1],
                pi[c, 2],
                io,
                fo,
                sess,
                t,
                guards,
                values,
                si,
                sf,
                verdict,
            )
        elif k == MACHINE:
            machine(
                c,
                idx,
                pi[c, 0],
                pi[c, 4],
                io,
                fo,
                e0,
                ne,
                ev_rows,
                state_first,
                state_count,
                tr_on,
                tr_when,
                tr_for,
                tr_after,
                tr_to,
                tr_slot,
                sess,
                seq,
                t,
                guards,
                values,
                sess_i,
                sess_f,
                si,
                sf,
                verdict,
                oi,
                of,
                nd,
            )


@njit(cache=True)
def close(
    kind,
    pi,
    pf,
    ev_rows,
    ev_off,
    ev_len,
    io_off,
    fo_off,
    state_first,
    state_count,
    tr_on,
    tr_when,
    tr_after,
    tr_to,
    slots,
    close_t,
    sess_i,
    sess_f,
    si,
    sf,
    verdict,
    oi,
    of,
    nd,
):
    """Decide every pending criterion of the given sessions "at end" (observed ones stay
    pending). The decision has the last event's seq (-1 when there was none) and t = close_t."""
    for j in range(slots.shape[0]):
        s = slots[j]
        ct = close_t[j]
        last = sess_i[s, LAST_SEQ] if sess_i[s, N_EVENTS] > 0 else -1
        first_seq = sess_i[s, FIRST_SEQ] if sess_i[s, N_EVENTS] > 0 else -1
        first_t = sess_f[s, FIRST_T]
        for c in range(kind.shape[0]):
            if verdict[s, c] != PENDING:
                continue
            k = kind[c]
            io = io_off[c]
            fo = fo_off[c]
            e0 = ev_off[c]
            ne = ev_len[c]
            v = PENDING
            seq0 = first_seq
            t0 = first_t
            measured = math.nan
            if k == NEVER:
                v = PASS
            elif k == ALL_BEFORE:
                v = pi[c, 1]
            elif k == SEQUENCE:
                v = FAIL
                if si[s, io] > 0:
                    seq0 = si[s, io + 1]
                    t0 = sf[s, fo]
            elif k == COUNT:
                v = PASS if si[s, io] >= pi[c, 2] else FAIL
            elif k == RESPONSE or k == DURATION:
                if si[s, io] == 1:
                    v = FAIL
                    seq0 = si[s, io + 1]
                    t0 = sf[s, fo]
                else:
                    v = PASS if k == RESPONSE else NOT_APPLICABLE
            elif k == PRECEDE:
                v = PASS
            elif k == METRIC:
                measured = metric_close(pi[c, 2], io, fo, s, si, sf, ct)
                if si[s, io] == 0:
                    v = NOT_APPLICABLE
                elif measured < pf[c, 0] or measured > pf[c, 1]:
                    v = FAIL
                else:
                    v = PASS
            elif k == MACHINE:
                v = machine_close(
                    pi[c, 0],
                    pi[c, 3],
                    io,
                    fo,
                    s,
                    si,
                    sf,
                    ct,
                    state_first,
                    state_count,
                    tr_on,
                    tr_when,
                    tr_after,
                    tr_to,
                )
                if si[s, io + 1] >= 0:
                    seq0 = si[s, io + 1]
                    t0 = sf[s, fo]
            if v == PENDING:
                continue
            if v == PASS:  # every pass at end is anchored at the session's first event
                seq0 = first_seq
                t0 = first_t
            verdict[s, c] = v
            d = emit(oi, of, nd, s, c, v, last, ct, seq0, t0)
            of[d, 2] = measured
            n_sig = (sess_f.shape[1] - HELD) // 3
            for q in range(ne):
                if k == NEVER:
                    row = ev_rows[e0 + q]
                    of[d, 3 + 2 * q] = sess_f[s, HELD + n_sig + row]
                    of[d, 4 + 2 * q] = sess_f[s, HELD + 2 * n_sig + row]
                else:
                    of[d, 3 + q] = sess_f[s, HELD + ev_rows[e0 + q]]
