# mypy: allow-untyped-defs
# (numba kernels: argument types are fixed by the arrays the typed wrappers in scorer.py pass)
"""The per-template state machines of the kernel, one tight numba loop each.

Each `X(c, idx, ...)` advances criterion `c` over the batch rows `idx` (in seq order within
each session) and appends its decisions with `emit`. State layouts per template are described
at the top of each function; `compiler.py` documents the parameters. `metric_close` and
`machine_close` give the at-end results used by `kernel.close`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .compiler import (
    FAIL,
    PASS,
    PENDING,
    TO_FAIL,
    TO_PASS,
)

FIRST_SEQ, LAST_SEQ, N_EVENTS = 0, 1, 2
FIRST_T, LAST_T, HELD = 0, 1, 2

# metric aggregate codes (compiler.AGGREGATE_CODES)
AGG_MAX, AGG_MIN, AGG_MEAN, AGG_SUM, AGG_LAST, AGG_COUNT, AGG_TIME_TRUE = range(7)
# session state columns (kernel.py): sess_i[:, FIRST_SEQ], sess_f[:, FIRST_T]
FIRST_SEQ = 0
FIRST_T = 0


@njit(cache=True)
def emit(oi, of, nd, s, c, v, seq, t, seq0, t0):
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
def values_at(of, d, rows, e0, ne, values, i):
    for k in range(ne):
        of[d, 3 + k] = values[rows[e0 + k], i]


@njit(cache=True)
def lower(cur, x):
    return x if not (cur <= x) else cur


@njit(cache=True)
def upper(cur, x):
    return x if not (cur >= x) else cur


@njit(cache=True)
def never(
    c,
    idx,
    ordinal,
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
    # si: ordinal of the last row where the condition held (-2 = none), counted, count,
    # episode seq0;  sf: episode t0, then per signal (episode min, episode max); session-wide
    # extremes live in sess_f (see `hold`). Visits rows where the condition may hold: an
    # episode goes on only while those rows are consecutive in the session (`ordinal`).
    for i in idx:
        if not guards[g, i]:
            continue
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        o = ordinal[i]
        fresh = si[s, io] != o - 1
        si[s, io] = o
        if fresh:
            si[s, io + 1] = 0
            si[s, io + 3] = seq[i]
            sf[s, fo] = t[i]
            for k in range(ne):
                sf[s, fo + 1 + 2 * k] = math.nan
                sf[s, fo + 2 + 2 * k] = math.nan
        for k in range(ne):
            x = values[ev_rows[e0 + k], i]
            b = fo + 1 + 2 * k
            sf[s, b] = lower(sf[s, b], x)
            sf[s, b + 1] = upper(sf[s, b + 1], x)
        if si[s, io + 1] == 0 and t[i] - sf[s, fo] >= dur:
            si[s, io + 1] = 1
            si[s, io + 2] += 1
            if si[s, io + 2] > allow:
                verdict[s, c] = FAIL
                d = emit(oi, of, nd, s, c, FAIL, seq[i], t[i], si[s, io + 3], sf[s, fo])
                for k in range(ne):
                    of[d, 3 + 2 * k] = sf[s, fo + 1 + 2 * k]
                    of[d, 4 + 2 * k] = sf[s, fo + 2 + 2 * k]


@njit(cache=True)
def all_before(
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
            d = emit(oi, of, nd, s, c, v, seq[i], t[i], sess_i[s, FIRST_SEQ], sess_f[s, FIRST_T])
            values_at(of, d, ev_rows, e0, ne, values, i)
            continue
        for j in range(ln):
            if guards[lists[l0 + j], i]:
                si[s, io] |= np.int64(1) << j


@njit(cache=True)
def sequence(
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
                d = emit(oi, of, nd, s, c, v, seq[i], t[i], si[s, io + 1], sf[s, fo])
            else:
                d = emit(
                    oi, of, nd, s, c, v, seq[i], t[i], sess_i[s, FIRST_SEQ], sess_f[s, FIRST_T]
                )
            values_at(of, d, ev_rows, e0, ne, values, i)


@njit(cache=True)
def count(
    c,
    idx,
    ordinal,
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
    # si: count, ordinal of the last row where the guard held (-2 = none). Visits rows where
    # the guard may hold; with `episodes`, a row starts an episode unless it directly follows
    # (in the session) a row where the condition held.
    for i in idx:
        if not guards[g, i]:
            continue
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        o = ordinal[i]
        occurs = episodes == 0 or si[s, io + 1] != o - 1
        si[s, io + 1] = o
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
            d = emit(oi, of, nd, s, c, v, seq[i], t[i], sess_i[s, FIRST_SEQ], sess_f[s, FIRST_T])
            values_at(of, d, ev_rows, e0, ne, values, i)


@njit(cache=True)
def response(
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
            d = emit(oi, of, nd, s, c, FAIL, seq[i], t[i], si[s, io + 1], sf[s, fo])
            values_at(of, d, ev_rows, e0, ne, values, i)
            continue
        if guards[b, i]:
            si[s, io] = 0
        if guards[a, i] and si[s, io] == 0:
            si[s, io] = 1
            si[s, io + 1] = seq[i]
            sf[s, fo] = t[i]


@njit(cache=True)
def precede(
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
            d = emit(oi, of, nd, s, c, FAIL, seq[i], t[i], seq[i], t[i])
            values_at(of, d, ev_rows, e0, ne, values, i)
            continue
        if guards[b, i]:
            si[s, io] = 1
            sf[s, fo] = t[i]


@njit(cache=True)
def duration(
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
                d = emit(oi, of, nd, s, c, v, seq[i], t[i], si[s, io + 1], sf[s, fo])
                values_at(of, d, ev_rows, e0, ne, values, i)
            continue
        if guards[a, i]:
            si[s, io] = 1
            si[s, io + 1] = seq[i]
            sf[s, fo] = t[i]


@njit(cache=True)
def metric_weight(agg, io, fo, s, si, sf, w):
    """Add the previous kept event's contribution, now that its weight `w` is known."""
    v = sf[s, fo + 4]
    if agg == AGG_MEAN:
        sf[s, fo] += v * w
        sf[s, fo + 1] += w
    elif agg == AGG_TIME_TRUE and v == 1.0:
        sf[s, fo] += w


@njit(cache=True)
def metric(c, idx, row, where, agg, io, fo, sess, t, guards, values, si, sf, verdict):
    # si: kept events, previous event kept, has a previous event
    # sf: acc a, acc b, acc c, previous t, previous value
    for i in idx:
        s = sess[i]
        if verdict[s, c] != PENDING:
            continue
        if si[s, io + 2] == 1 and si[s, io + 1] == 1:
            metric_weight(agg, io, fo, s, si, sf, t[i] - sf[s, fo + 3])
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
                sf[s, fo] = upper(sf[s, fo], x)
            elif agg == AGG_MIN:
                sf[s, fo] = lower(sf[s, fo], x)
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
def machine(
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
                d = machine_emit(oi, of, nd, s, c, v, seq[i], t[i], io, fo, si, sf, sess_i, sess_f)
                values_at(of, d, ev_rows, e0, ne, values, i)
            else:
                si[s, io] = to
                si[s, io + 1] = seq[i]
                sf[s, fo] = t[i]
                for slot in range(n_slots):
                    sf[s, fo + 1 + slot] = math.nan
            break


@njit(cache=True)
def machine_emit(oi, of, nd, s, c, v, seq, t, io, fo, si, sf, sess_i, sess_f):
    if si[s, io + 1] < 0:
        return emit(oi, of, nd, s, c, v, seq, t, sess_i[s, FIRST_SEQ], sess_f[s, FIRST_T])
    return emit(oi, of, nd, s, c, v, seq, t, si[s, io + 1], sf[s, fo])


@njit(cache=True)
def metric_close(agg, io, fo, s, si, sf, ct):
    if si[s, io + 2] == 1 and si[s, io + 1] == 1:
        metric_weight(agg, io, fo, s, si, sf, ct - sf[s, fo + 3])
    n = si[s, io]
    if n == 0:
        return math.nan
    if agg == AGG_MEAN:
        if sf[s, fo + 1] == 0.0:
            return sf[s, fo + 2] / n
        return sf[s, fo] / sf[s, fo + 1]
    return sf[s, fo]


@njit(cache=True)
def machine_close(
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
