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
    TO_FAIL,
    TO_PASS,
)

FIRST_SEQ, LAST_SEQ, N_EVENTS = 0, 1, 2
FIRST_T, LAST_T, HELD = 0, 1, 2
# metric aggregate codes (compiler.AGGREGATE_CODES)
AGG_MAX, AGG_MIN, AGG_MEAN, AGG_SUM, AGG_LAST, AGG_COUNT, AGG_TIME_TRUE = range(7)


@njit(cache=True)
def admit(sess, seq, t, sess_i, sess_f):
    """Check order and advance each session's first/last event; all or nothing.

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
def _emit(oi, of, nd, s, c, v, seq, t, seq0, t0):
    d = nd[0]
    nd[0] = d + 1
    oi[d, 0] = s
    oi[d, 1] = c
    oi[d, 2] = v
    oi[d, 3] = seq
    oi[d, 4] = seq0
    of[d, 0] = t
    of[d, 1] = t0
    of[d, 2] = math.nan
    return d


@njit(cache=True)
def _values_at(of, d, rows, e0, ne, values, i):
    for k in range(ne):
        of[d, 3 + k] = values[rows[e0 + k], i]


@njit(cache=True)
def _lower(cur, x):
    return x if not (cur <= x) else cur


@njit(cache=True)
def _upper(cur, x):
    return x if not (cur >= x) else cur


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
            _never(
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
        elif k == ALL_BEFORE:
            _all_before(
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
            _sequence(
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
            _count(
                c,
                idx,
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
            _response(
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
            _precede(
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
            _duration(
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
            _metric(
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
            _machine(
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
def _never(
    c,
    idx,
    g,
    allow,
    dur,
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
):
    # si: active, counted, count, episode seq0;  sf: episode t0, then per signal
    # (episode min, episode max); session-wide extremes live in sess_f (see `hold`)
    for i in idx:
        s = sess[i]
        if not guards[g, i]:
            si[s, io] = 0
            continue
        if verdict[s, c] != PENDING:
            continue
        if si[s, io] == 0:
            si[s, io] = 1
            si[s, io + 1] = 0
            si[s, io + 3] = seq[i]
            sf[s, fo] = t[i]
            for k in range(ne):
                sf[s, fo + 1 + 2 * k] = math.nan
                sf[s, fo + 2 + 2 * k] = math.nan
        for k in range(ne):
            x = values[ev_rows[e0 + k], i]
            b = fo + 1 + 2 * k
            sf[s, b] = _lower(sf[s, b], x)
            sf[s, b + 1] = _upper(sf[s, b + 1], x)
        if si[s, io + 1] == 0 and t[i] - sf[s, fo] >= dur:
            si[s, io + 1] = 1
            si[s, io + 2] += 1
            if si[s, io + 2] > allow:
                verdict[s, c] = FAIL
                d = _emit(oi, of, nd, s, c, FAIL, seq[i], t[i], si[s, io + 3], sf[s, fo])
                for k in range(ne):
                    of[d, 3 + 2 * k] = sf[s, fo + 1 + 2 * k]
                    of[d, 4 + 2 * k] = sf[s, fo + 2 + 2 * k]


@njit(cache=True)
def _all_before(
    c,
    idx,
    before,
    lists,
    l0,
    ln,
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
):
    full = (np.int64(1) << ln) - 1
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        if guards[before, i]:
            v = PASS if si[s, io] == full else FAIL
            verdict[s, c] = v
            d = _emit(oi, of, nd, s, c, v, seq[i], t[i], sess_i[s, FIRST_SEQ], sess_f[s, FIRST_T])
            _values_at(of, d, ev_rows, e0, ne, values, i)
            continue
        for j in range(ln):
            if guards[lists[l0 + j], i]:
                si[s, io] |= np.int64(1) << j


@njit(cache=True)
def _sequence(
    c,
    idx,
    lists,
    repeat,
    l0,
    ln,
    within,
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
):
    # si: steps done, seq of S1;  sf: t of S1
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        done = si[s, io]
        v = PENDING
        if done > 0 and t[i] > sf[s, fo] + within:
            v = FAIL
        elif guards[lists[l0 + done], i]:
            done += 1
            si[s, io] = done
            if done == 1:
                si[s, io + 1] = seq[i]
                sf[s, fo] = t[i]
            if done == ln:
                v = PASS
        else:
            for j in range(done + 1, ln):
                if repeat[l0 + j] == 0 and guards[lists[l0 + j], i]:
                    v = FAIL
                    break
        if v != PENDING:
            verdict[s, c] = v
            if si[s, io] > 0:
                d = _emit(oi, of, nd, s, c, v, seq[i], t[i], si[s, io + 1], sf[s, fo])
            else:
                d = _emit(
                    oi, of, nd, s, c, v, seq[i], t[i], sess_i[s, FIRST_SEQ], sess_f[s, FIRST_T]
                )
            _values_at(of, d, ev_rows, e0, ne, values, i)


@njit(cache=True)
def _count(
    c,
    idx,
    g,
    episodes,
    lo,
    hi,
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
):
    # si: count, condition held at the previous event
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        holds = guards[g, i]
        occurs = holds and not (episodes == 1 and si[s, io + 1] == 1)
        si[s, io + 1] = 1 if holds else 0
        if not occurs:
            continue
        si[s, io] += 1
        v = PENDING
        if hi >= 0 and si[s, io] > hi:
            v = FAIL
        elif hi < 0 and si[s, io] >= lo:
            v = PASS
        if v != PENDING:
            verdict[s, c] = v
            d = _emit(oi, of, nd, s, c, v, seq[i], t[i], sess_i[s, FIRST_SEQ], sess_f[s, FIRST_T])
            _values_at(of, d, ev_rows, e0, ne, values, i)


@njit(cache=True)
def _response(
    c,
    idx,
    a,
    b,
    within,
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
):
    # si: waiting, seq of the oldest unanswered A;  sf: its t
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        if si[s, io] == 1 and t[i] > sf[s, fo] + within:
            verdict[s, c] = FAIL
            d = _emit(oi, of, nd, s, c, FAIL, seq[i], t[i], si[s, io + 1], sf[s, fo])
            _values_at(of, d, ev_rows, e0, ne, values, i)
            continue
        if guards[b, i]:
            si[s, io] = 0
        if guards[a, i] and si[s, io] == 0:
            si[s, io] = 1
            si[s, io + 1] = seq[i]
            sf[s, fo] = t[i]


@njit(cache=True)
def _precede(
    c,
    idx,
    a,
    b,
    within,
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
):
    # si: a B has occurred;  sf: t of the latest B
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        if guards[a, i] and (si[s, io] == 0 or t[i] - sf[s, fo] > within):
            verdict[s, c] = FAIL
            d = _emit(oi, of, nd, s, c, FAIL, seq[i], t[i], seq[i], t[i])
            _values_at(of, d, ev_rows, e0, ne, values, i)
            continue
        if guards[b, i]:
            si[s, io] = 1
            sf[s, fo] = t[i]


@njit(cache=True)
def _duration(
    c,
    idx,
    a,
    b,
    lo,
    hi,
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
):
    # si: the first A occurred, its seq;  sf: its t
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        if si[s, io] == 1:
            v = PENDING
            if t[i] > sf[s, fo] + hi:
                v = FAIL
            elif guards[b, i]:
                elapsed = t[i] - sf[s, fo]
                v = FAIL if (elapsed < lo or elapsed > hi) else PASS
            if v != PENDING:
                verdict[s, c] = v
                d = _emit(oi, of, nd, s, c, v, seq[i], t[i], si[s, io + 1], sf[s, fo])
                _values_at(of, d, ev_rows, e0, ne, values, i)
            continue
        if guards[a, i]:
            si[s, io] = 1
            si[s, io + 1] = seq[i]
            sf[s, fo] = t[i]


@njit(cache=True)
def _metric_weight(agg, io, fo, s, si, sf, w):
    """Add the previous kept event's contribution, now that its weight `w` is known."""
    v = sf[s, fo + 4]
    if agg == AGG_MEAN:
        sf[s, fo] += v * w
        sf[s, fo + 1] += w
    elif agg == AGG_TIME_TRUE and v == 1.0:
        sf[s, fo] += w


@njit(cache=True)
def _metric(c, idx, row, where, agg, io, fo, sess, t, guards, values, si, sf, verdict):
    # si: kept events, previous event kept, has a previous event
    # sf: acc a, acc b, acc c, previous t, previous value
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        if si[s, io + 2] == 1 and si[s, io + 1] == 1:
            _metric_weight(agg, io, fo, s, si, sf, t[i] - sf[s, fo + 3])
        x = values[row, i]
        kept = x == x and (where < 0 or guards[where, i])
        if kept:
            if si[s, io] == 0:
                sf[s, fo] = 0.0
                sf[s, fo + 1] = 0.0
                sf[s, fo + 2] = 0.0
                if agg == AGG_MAX or agg == AGG_MIN:
                    sf[s, fo] = x
            if agg == AGG_MAX:
                sf[s, fo] = _upper(sf[s, fo], x)
            elif agg == AGG_MIN:
                sf[s, fo] = _lower(sf[s, fo], x)
            elif agg == AGG_MEAN:
                sf[s, fo + 2] += x
            elif agg == AGG_SUM:
                sf[s, fo] += x
            elif agg == AGG_LAST:
                sf[s, fo] = x
            elif agg == AGG_COUNT and x == 1.0:
                sf[s, fo] += 1.0
            si[s, io] += 1
        si[s, io + 1] = 1 if kept else 0
        si[s, io + 2] = 1
        sf[s, fo + 3] = t[i]
        sf[s, fo + 4] = x


@njit(cache=True)
def _machine(
    c,
    idx,
    base,
    n_slots,
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
):
    # si: current state (local), seq of entry (-1: initial);  sf: t of entry, then run starts
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        gs = base + si[s, io]
        r0 = state_first[gs]
        r1 = r0 + state_count[gs]
        for r in range(r0, r1):
            slot = tr_slot[r]
            if slot >= 0:
                if guards[tr_when[r], i]:
                    if sf[s, fo + 1 + slot] != sf[s, fo + 1 + slot]:
                        sf[s, fo + 1 + slot] = t[i]
                else:
                    sf[s, fo + 1 + slot] = math.nan
        for r in range(r0, r1):
            if tr_on[r] >= 0 and not guards[tr_on[r], i]:
                continue
            if tr_when[r] >= 0 and not guards[tr_when[r], i]:
                continue
            slot = tr_slot[r]
            if slot >= 0 and not (t[i] - sf[s, fo + 1 + slot] >= tr_for[r]):
                continue
            if tr_after[r] == tr_after[r] and not (t[i] - sf[s, fo] >= tr_after[r]):
                continue
            to = tr_to[r]
            if to == TO_PASS or to == TO_FAIL:
                v = PASS if to == TO_PASS else FAIL
                verdict[s, c] = v
                d = _machine_emit(oi, of, nd, s, c, v, seq[i], t[i], io, fo, si, sf, sess_i, sess_f)
                _values_at(of, d, ev_rows, e0, ne, values, i)
            else:
                si[s, io] = to
                si[s, io + 1] = seq[i]
                sf[s, fo] = t[i]
                for slot in range(n_slots):
                    sf[s, fo + 1 + slot] = math.nan
            break


@njit(cache=True)
def _machine_emit(oi, of, nd, s, c, v, seq, t, io, fo, si, sf, sess_i, sess_f):
    if si[s, io + 1] < 0:
        return _emit(oi, of, nd, s, c, v, seq, t, sess_i[s, FIRST_SEQ], sess_f[s, FIRST_T])
    return _emit(oi, of, nd, s, c, v, seq, t, si[s, io + 1], sf[s, fo])


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
                measured = _metric_close(pi[c, 2], io, fo, s, si, sf, ct)
                if si[s, io] == 0:
                    v = NOT_APPLICABLE
                elif measured < pf[c, 0] or measured > pf[c, 1]:
                    v = FAIL
                else:
                    v = PASS
            elif k == MACHINE:
                v = _machine_close(
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
            d = _emit(oi, of, nd, s, c, v, last, ct, seq0, t0)
            of[d, 2] = measured
            n_sig = (sess_f.shape[1] - HELD) // 3
            for q in range(ne):
                if k == NEVER:
                    row = ev_rows[e0 + q]
                    of[d, 3 + 2 * q] = sess_f[s, HELD + n_sig + row]
                    of[d, 4 + 2 * q] = sess_f[s, HELD + 2 * n_sig + row]
                else:
                    of[d, 3 + q] = sess_f[s, HELD + ev_rows[e0 + q]]


@njit(cache=True)
def _metric_close(agg, io, fo, s, si, sf, ct):
    if si[s, io + 2] == 1 and si[s, io + 1] == 1:
        _metric_weight(agg, io, fo, s, si, sf, ct - sf[s, fo + 3])
    n = si[s, io]
    if n == 0:
        return math.nan
    if agg == AGG_MEAN:
        if sf[s, fo + 1] == 0.0:
            return sf[s, fo + 2] / n
        return sf[s, fo] / sf[s, fo + 1]
    return sf[s, fo]


@njit(cache=True)
def _machine_close(
    base,
    at_end,
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
):
    gs = base + si[s, io]
    r0 = state_first[gs]
    for r in range(r0, r0 + state_count[gs]):
        if tr_on[r] >= 0 or tr_when[r] >= 0 or tr_after[r] != tr_after[r]:
            continue
        if ct - sf[s, fo] >= tr_after[r]:
            if tr_to[r] == TO_PASS:
                return PASS
            if tr_to[r] == TO_FAIL:
                return FAIL
            return at_end
    return at_end
