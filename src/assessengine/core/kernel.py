# mypy: allow-untyped-defs
# (numba kernels: argument types are fixed by the named tuples of kernel_types.py)
"""The compiled kernel: advance every session's criteria over a batch, and close sessions.

One generic, table-driven set of numba loops serves every rubric (see `compiler.py` for the
tables). Guards arrive as a (n_guards, n) bool matrix computed with numpy; this module holds the
sequential parts: admitting events (order checks), sample-and-hold, and the per-criterion state
machines. Each criterion is advanced over the whole batch in its own tight loop; criteria never
interact, so criterion-major order gives the same results as event-major order.

State per session row (`scorer.ScoringState.rows`: a session's slot is not its row; every
kernel function takes rows, as `sess`, `slots` or `touched`):
  sess_i (cap, 4)            FIRST_SEQ (-1 = no event yet), LAST_SEQ, N_EVENTS, STAMP (the
                             last `admit` call that touched the session)
  sess_f (cap, 2 + 3 n_sig)  FIRST_T, LAST_T, then per signal block: held values (NaN =
                             missing), session minimum, session maximum (kept only for the
                             signals that never/always criteria name, else NaN)
  si (cap, n_state_i)        int64 per-criterion state, at `tables.io[c]`
  sf (cap, n_state_f)        float64 per-criterion state, at `tables.fo[c]`
  verdict (cap, C)           int8 verdict codes (compiler.PENDING ...)
si, sf and verdict are field-major (Fortran order; see `scorer.ScoringState._grow`): the
loops index them the same way whatever the layout.

Decisions are appended, field-major (decision d is column d), to `out.oi` (8, m) = slot,
criterion, verdict, seq, seq_start, steps done, step out of order (sequences; else -1), row of
`out.oc` (-1 = none) and `out.of` (3 + 2 * max_ev, m) = t, t_start, measured, values...;
`out.nd[0]` counts them. Count and metric decisions have a row r in `out.oc`
(1 + 2 * CONTRIB_MAX, k): the number of contributing intervals, then the first CONTRIB_MAX of
them as (start, end) pairs (unset beyond); `out.nd[1]` counts those rows. A close's arrays
are indexed the same way but lie decision-major in memory (`scorer._close_outputs`). A
decision writes as few bytes as possible (100,000 sessions closed decide a million criteria).
For never/always the values are (min, max) pairs, otherwise one value per named signal.

Every template `X(c, m, dense, idx, tables, batch, state, out)` advances criterion `c` over m
batch rows, the first m when `dense`, else idx[:m] (ascending), given the compiled tables, the
batch, the session state and the decision output (the named tuples of `kernel_types`); each
documents its own state layout and parameters. The rows are one type whether dense or not, so
numba compiles each template once, not once for a range and once for an index array.

All numba code lives in this one module on purpose: numba caches compiled functions per source
file and does not notice when a function they call, defined in another file, changes; a split
would let a stale cache run old code. For the same reason the code constants imported from
`compiler.py` (kinds, verdicts) must never change meaning.

Every function is compiled with ``nogil=True``: the live engine scores in one thread while
another ingests and commits, and the kernel touches only the arrays it is given.
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
    VISIT_ALL,
)

FIRST_SEQ, LAST_SEQ, N_EVENTS, STAMP = 0, 1, 2, 3
FIRST_T, LAST_T, HELD = 0, 1, 2


# metric aggregate codes (compiler.AGGREGATE_CODES)
AGG_MAX, AGG_MIN, AGG_MEAN, AGG_SUM, AGG_LAST, AGG_COUNT, AGG_TIME_TRUE = range(7)


@njit(cache=True, nogil=True)
def admit(
    sess, seq, t, event, sess_i, sess_f, stamp, ordinal, nonsample, touched, saved_i, saved_f
):
    """Check order and advance each session's first/last event; all or nothing.

    ordinal[i] receives the row's position in its session (0 for the session's first event), so
    that sparse automata can tell whether two rows they visit are consecutive in the session;
    nonsample[:m] the rows whose event code is not 0 (sample), in order; touched[:u] the
    sessions the batch touches, in the order of their first row. `stamp` must differ from every
    earlier call's (it marks, in sess_i[:, STAMP], the sessions already touched by this batch);
    saved_i (4, at least u) and saved_f (2, at least u) keep their columns as they were: the
    scratch is sized by the batch, never by the number of sessions.

    Returns (-1, m, u) when every row is admitted, else (the index of the first row whose seq
    does not increase, whose t goes backwards, or whose t is negative or not finite, 0, 0), the
    state unchanged (each touched session's columns are restored).
    """
    n = sess.shape[0]
    m = 0
    u = 0
    for i in range(n):
        s = sess[i]
        ti = t[i]
        n_events = sess_i[s, N_EVENTS]
        if not (ti >= 0.0 and ti < math.inf) or (
            n_events > 0 and (seq[i] <= sess_i[s, LAST_SEQ] or ti < sess_f[s, LAST_T])
        ):
            for j in range(u):
                r = touched[j]
                for k in range(4):
                    sess_i[r, k] = saved_i[k, j]
                sess_f[r, FIRST_T] = saved_f[0, j]
                sess_f[r, LAST_T] = saved_f[1, j]
            return i, 0, 0
        if sess_i[s, STAMP] != stamp:
            touched[u] = s
            for k in range(4):
                saved_i[k, u] = sess_i[s, k]
            sess_i[s, STAMP] = stamp
            saved_f[0, u] = sess_f[s, FIRST_T]
            saved_f[1, u] = sess_f[s, LAST_T]
            u += 1
        ordinal[i] = n_events
        if n_events == 0:
            sess_i[s, FIRST_SEQ] = seq[i]
            sess_f[s, FIRST_T] = ti
        sess_i[s, LAST_SEQ] = seq[i]
        sess_i[s, N_EVENTS] = n_events + 1
        sess_f[s, LAST_T] = ti
        nonsample[m] = i  # branch-free: kept only where the row is not a sample
        m += event[i] != 0
    return -1, m, u


@njit(cache=True, nogil=True)
def rows_of(slots, row_of, slot_of_row, rows, free):
    """rows[i] = row_of[slots[i]], in one pass: a slot without a row (-1) takes the next of
    the free rows `free` (in the order they are to be taken) at its first occurrence, and
    row_of / slot_of_row are updated. Returns k, how many of `free` were taken (free[:k]: the
    caller resets them and drops them from its free rows). `free` must hold at least as many
    rows as there are distinct slots without one."""
    k = 0
    for i in range(slots.shape[0]):
        s = slots[i]
        r = row_of[s]
        if r < 0:
            r = free[k]
            k += 1
            row_of[s] = r
            slot_of_row[r] = s
        rows[i] = r
    return k


@njit(cache=True, nogil=True)
def hold(sess, raw, sess_f, held, extremes):
    """Sample-and-hold: held[k, i] = last non-NaN raw[k, j] of the session at or before i.
    Also keeps the session minimum and maximum (of the values reported so far) of each signal
    k with extremes[k] (the others' stay NaN). Row by row: a session's columns are touched
    once per row (signal by signal took fewer instructions but missed the cache more)."""
    n_sig, n = raw.shape
    lo0 = HELD + n_sig
    hi0 = HELD + 2 * n_sig
    for i in range(n):
        s = sess[i]
        for k in range(n_sig):
            x = raw[k, i]
            if x == x:
                sess_f[s, HELD + k] = x
                if extremes[k]:
                    if not (sess_f[s, lo0 + k] <= x):
                        sess_f[s, lo0 + k] = x
                    if not (sess_f[s, hi0 + k] >= x):
                        sess_f[s, hi0 + k] = x
            else:
                x = sess_f[s, HELD + k]
            held[k, i] = x


@njit(cache=True, nogil=True)
def set_event_guards(event, nonsample, named, table, masks, clean):
    """Fill the guard rows `named` (the guards on named events) of `masks`: guard named[q]
    holds on row i where table[event[i], q]. Those guards are false on sample rows (event 0),
    so only the non-sample rows `nonsample` are written, after the rows are cleared unless
    they are `clean` (all false, see `clear_event_guards`)."""
    if not clean:
        for q in range(named.shape[0]):
            masks[named[q]] = False
    for j in range(nonsample.shape[0]):
        i = nonsample[j]
        code = event[i]
        if code < 0 or code >= table.shape[0]:  # not a code of the scenario: no event guard
            continue
        for q in range(named.shape[0]):
            masks[named[q], i] = table[code, q]


@njit(cache=True, nogil=True)
def clear_event_guards(nonsample, named, masks):
    """Make the guard rows `named` of `masks` all false again after `set_event_guards` filled
    them for these non-sample rows (cheaper than clearing whole rows at the next step)."""
    for j in range(nonsample.shape[0]):
        i = nonsample[j]
        for q in range(named.shape[0]):
            masks[named[q], i] = False


# comparison codes of `indicator_const` and `indicator_rows`
COMPARE_CODES = {"<": 0, "<=": 1, ">": 2, ">=": 3, "==": 4, "!=": 5}


@njit(cache=True, nogil=True, inline="always")
def compare_holds(op, x, y):
    """x op y for the COMPARE_CODES (both known: not NaN)."""
    if op == 0:
        return x < y
    if op == 1:
        return x <= y
    if op == 2:
        return x > y
    if op == 3:
        return x >= y
    if op == 4:
        return x == y
    return x != y


@njit(cache=True, nogil=True)
def indicator_const(op, a, c, out):
    """out[i] = 1.0 where `a[i] op c` holds, 0.0 where it does not, NaN where a[i] or c is
    NaN (unknown): a metric condition's indicator in one pass over its column."""
    if c != c:
        out[:] = math.nan
        return
    for i in range(a.shape[0]):
        x = a[i]
        out[i] = math.nan if x != x else (1.0 if compare_holds(op, x, c) else 0.0)


@njit(cache=True, nogil=True)
def indicator_rows(op, a, b, out):
    """`indicator_const` against a row `b` instead of a constant."""
    for i in range(a.shape[0]):
        x = a[i]
        y = b[i]
        out[i] = math.nan if (x != x or y != y) else (1.0 if compare_holds(op, x, y) else 0.0)


@njit(cache=True, nogil=True)
def pending_counts(verdict, touched, counts):
    """counts[c] += the number of sessions among `touched` in which criterion c is pending
    (the first counts.shape[0] columns of `verdict`: the rubric's criteria)."""
    for c in range(counts.shape[0]):
        for j in range(touched.shape[0]):
            counts[c] += verdict[touched[j], c] == PENDING


@njit(cache=True, nogil=True)
def pending_bounds(verdict, rows, contributing):
    """(decisions, contributing rows) a close of the sessions in `rows` writes at most: how
    many of their criteria are pending (a repeated row counted each time), and how many of
    those are `contributing` (count and metric criteria). When the rows are consecutive (a
    close's part, usually), each criterion's verdicts are read as one contiguous run (a
    vectorised count, 10x faster than the gather)."""
    n_rows = rows.shape[0]
    if n_rows == 0:
        return 0, 0
    lo = rows[0]
    run = True
    for j in range(1, n_rows):
        run &= rows[j] == lo + j
    m = k = 0
    for c in range(contributing.shape[0]):  # the rubric's criteria (`verdict` may be wider)
        n = 0
        if run:
            column = verdict[lo : lo + n_rows, c]
            for j in range(n_rows):
                n += column[j] == PENDING
        else:
            for j in range(n_rows):
                n += verdict[rows[j], c] == PENDING
        m += n
        if contributing[c]:
            k += n
    return m, k


@njit(cache=True, nogil=True)
def visit_rows(guards, pending, visit_key, key_off, key_guards, nonsample, share, any_row,
               visit, offsets, placed):  # fmt: skip
    """The rows each criterion visits (see `compiler.CompiledRubric.visit_key`), in one call.

    offsets[c] receives criterion c's [start, end) in `visit` (room for K * n + m rows, K row
    lists, n rows, m = len(nonsample)): (0, 0) where pending[c] == 0 (decided in every
    session the batch touches: no row), (-1, -1) where it visits every row (VISIT_ALL, or
    its guards hold on more than 1/share of the rows: a long list costs more to build and to
    walk than the rows it skips). Each list is built once, for the first pending criterion
    that names it: the non-sample rows, or the rows where one of its guards holds (OR-ed
    into the bool scratch `any_row` when there are several). placed (K, 2) is scratch.
    Returns the number of rows written to `visit`."""
    n = guards.shape[1]
    for k in range(placed.shape[0]):
        placed[k, 0] = -2  # not built yet
    total = 0
    for c in range(visit_key.shape[0]):
        key = visit_key[c]
        if pending[c] == 0:
            offsets[c, 0] = 0
            offsets[c, 1] = 0
            continue
        if key == VISIT_ALL:
            offsets[c, 0] = -1
            offsets[c, 1] = -1
            continue
        if placed[key, 0] == -2:
            g0, g1 = key_off[key], key_off[key + 1]
            placed[key, 0] = total
            if g0 == g1:
                for j in range(nonsample.shape[0]):
                    visit[total + j] = nonsample[j]
                total += nonsample.shape[0]
            else:
                row = guards[key_guards[g0]]
                if g1 - g0 > 1:  # 1-D slices as bytes: vectorised loops (as bools: not)
                    acc = any_row.view(np.uint8)
                    first = row.view(np.uint8)
                    for i in range(n):
                        acc[i] = first[i]
                    for q in range(g0 + 1, g1):
                        other = guards[key_guards[q]].view(np.uint8)
                        for i in range(n):
                            acc[i] |= other[i]
                    row = any_row
                held = 0
                for b in row.view(np.uint8):
                    held += b
                if held * share > n:
                    placed[key, 0] = -1
                elif held > 0:
                    total = true_rows(row, visit, total)
            placed[key, 1] = total if placed[key, 0] >= 0 else -1
        offsets[c, 0] = placed[key, 0]
        offsets[c, 1] = placed[key, 1]
    return total


@njit(cache=True, nogil=True, inline="always")
def true_rows(row, visit, total):
    """Append to visit[total:] the indices where the bool array `row` is true; the new total.
    Read eight rows at a time as one word, skipped when zero (the lists are sparse): half
    the time of a row-by-row scan, and of `np.flatnonzero`."""
    n = row.shape[0]
    tail = n - n % 8
    words = row.view(np.uint8)[:tail].view(np.uint64)
    for k in range(words.shape[0]):
        if words[k] != 0:
            for q in range(8 * k, 8 * k + 8):
                if row[q]:
                    visit[total] = q
                    total += 1
    for q in range(tail, n):
        if row[q]:
            visit[total] = q
            total += 1
    return total


@njit(cache=True, nogil=True)
def advance(tables, batch, state, out, visit, visit_off):
    """Advance every criterion over the batch (rows in seq order within each session).

    A criterion with visit_off[c, 0] >= 0 visits only visit[visit_off[c, 0]:visit_off[c, 1]] (the
    rows where one of its guards may hold; see `compiler.sparse_guards`); the others visit every
    row (`scorer._sparse_rows` also sends there the criteria whose guards hold on many rows).
    Criteria never interact, so advancing them one after the other over the whole batch
    gives the same results as advancing all of them event by event.
    """
    n = batch.sess.shape[0]
    for c in range(tables.kind.shape[0]):
        lo, hi = visit_off[c, 0], visit_off[c, 1]
        dense = lo < 0  # every row, counted: no index array to read, one stream less a row
        idx = visit[0:0] if dense else visit[lo:hi]
        advance_over(c, n if dense else hi - lo, dense, idx, tables, batch, state, out)


@njit(cache=True, nogil=True)
def advance_over(c, m, dense, idx, tables, batch, state, out):
    """Advance criterion `c` over m rows: the first m when `dense`, else idx[:m]."""
    k = tables.kind[c]
    if k == NEVER:
        never(c, m, dense, idx, tables, batch, state, out)
    elif k == ALL_BEFORE:
        all_before(c, m, dense, idx, tables, batch, state, out)
    elif k == SEQUENCE:
        sequence(c, m, dense, idx, tables, batch, state, out)
    elif k == COUNT:
        count(c, m, dense, idx, tables, batch, state, out)
    elif k == RESPONSE:
        response(c, m, dense, idx, tables, batch, state, out)
    elif k == PRECEDE:
        precede(c, m, dense, idx, tables, batch, state, out)
    elif k == DURATION:
        duration(c, m, dense, idx, tables, batch, state, out)
    elif k == METRIC:
        metric(c, m, dense, idx, tables, batch, state, out)
    elif k == MACHINE:
        machine(c, m, dense, idx, tables, batch, state, out)


@njit(cache=True, nogil=True)
def row_order(rows, order):
    """How to walk `rows` in increasing order: 0 when they already are (non-decreasing;
    `order` untouched); 1 when they are a permutation of consecutive rows, `order` now holding
    the positions in increasing row order (what a stable argsort gives, in two linear passes
    instead of a sort); 2 otherwise (`order` unusable: sort)."""
    n = rows.shape[0]
    if n == 0:
        return 0
    lo = hi = rows[0]
    ordered = True
    for j in range(1, n):
        r = rows[j]
        ordered = ordered and r >= rows[j - 1]
        lo = min(lo, r)
        hi = max(hi, r)
    if ordered:
        return 0
    if hi - lo + 1 != n:
        return 2
    order[:] = -1
    for j in range(n):
        k = rows[j] - lo
        if order[k] >= 0:
            return 2
        order[k] = j
    return 1


@njit(cache=True, nogil=True)
def close(tables, state, out, slots, close_t, names):
    """Decide every pending criterion of the sessions in rows `slots` "at end" (observed ones
    stay pending); their decisions name them `names` (out.oi[0]: the caller's slots). The
    decision has the last event's seq (-1 when there was none) and t = the close time:
    close_t[j], or the session's last event's t when that is later or close_t[j] is NaN.
    Every pass at end is anchored at the session's first event.

    One loop, every template's end inline, over arrays taken out of the named tuples once: a
    named tuple handed to a helper costs, where numba cannot prune them, an atomic reference
    count per array it holds, each way (about 500 ns a decision for the 26 arrays of `tables`
    and `state`), so the helpers called per decision (`metric_end`, `machine_end`,
    `contrib_*_at`, `record`) take arrays and numbers only. Each output field is written
    once, the decision and contributing-row counts kept in locals: writing the output is
    most of a close's time (`scorer._close_outputs`). Rows, decisions and the tables' offsets
    are indexed unsigned (no negative-index fix-up at each access: 147 -> 124 instructions a
    decision)."""
    kind, io_, fo_, pi, pf = tables.kind, tables.io, tables.fo, tables.pi, tables.pf
    ev_off, ev_len, ev_rows = tables.ev_off, tables.ev_len, tables.ev_rows
    st_first, st_count = tables.state_first, tables.state_count
    tr_on, tr_when, tr_after, tr_to = tables.tr_on, tables.tr_when, tables.tr_after, tables.tr_to
    sess_i, sess_f, si, sf, verdict = state.sess_i, state.sess_f, state.si, state.sf, state.verdict
    oi, of, oc, nd = out.oi, out.of, out.oc, out.nd
    n_sig = (sess_f.shape[1] - HELD) // 3
    d, r = np.uint32(nd[0]), np.uint32(nd[1])
    for j in range(slots.shape[0]):
        s = np.uint32(slots[j])
        ct = close_t[j]
        last_t = sess_f[s, LAST_T]
        if last_t == last_t and not (ct >= last_t):  # np.fmax(close_t, last_t)
            ct = last_t
        seen = sess_i[s, N_EVENTS] > 0
        last = sess_i[s, LAST_SEQ] if seen else -1
        first_seq = sess_i[s, FIRST_SEQ] if seen else -1
        first_t = sess_f[s, FIRST_T]
        name = names[j]
        for c in range(kind.shape[0]):
            if verdict[s, c] != PENDING:
                continue
            k, io, fo = kind[c], np.uint32(io_[c]), np.uint32(fo_[c])
            v = PENDING
            seq0, t0 = first_seq, first_t  # unless the template's state says otherwise
            measured = math.nan
            steps = -1
            if k == NEVER or k == PRECEDE:
                v = PASS
            elif k == ALL_BEFORE:
                v = pi[c, 1]
            elif k == SEQUENCE:
                v = FAIL
                steps = si[s, io]
                if steps > 0:
                    seq0, t0 = si[s, io + 1], sf[s, fo]
            elif k == COUNT:
                v = PASS if si[s, io] >= pi[c, 2] else FAIL
                measured = float(si[s, io])
            elif k == RESPONSE or k == DURATION:
                if si[s, io] == 1:
                    v = FAIL
                    seq0, t0 = si[s, io + 1], sf[s, fo]
                else:
                    v = PASS if k == RESPONSE else NOT_APPLICABLE
            elif k == METRIC:
                measured = metric_end(s, ct, io, fo, pi[c, 2], pi[c, 5], si, sf)
                if si[s, io] == 0:
                    v = NOT_APPLICABLE
                elif pf[c, 0] <= measured <= pf[c, 1]:  # NaN: outside (docs/semantics.md 15)
                    v = PASS
                else:
                    v = FAIL
            elif k == MACHINE:
                v = machine_end(
                    pi[c, 0] + si[s, io], ct - sf[s, fo], pi[c, 3],
                    st_first, st_count, tr_on, tr_when, tr_after, tr_to,
                )  # fmt: skip
                if si[s, io + 1] >= 0:
                    seq0, t0 = si[s, io + 1], sf[s, fo]
            if v == PENDING:
                continue
            if v == PASS:
                seq0, t0 = first_seq, first_t
            verdict[s, c] = v
            record(oi, of, d, name, c, v, last, seq0, steps, ct, t0, measured)
            if k == COUNT or k == METRIC:
                ni, fl = contrib_slots_of(k, io, fo)
                oi[7, d] = r
                contrib_row_at(oc, r, si[s, ni], pi[c, 5], sf, s, fl)
                r = np.uint32(r + 1)
            else:
                oi[7, d] = -1
            e0, ne = np.uint32(ev_off[c]), ev_len[c]
            if k == NEVER:
                for q in range(ne):
                    row = np.uint32(ev_rows[e0 + q])
                    of[3 + 2 * q, d] = sess_f[s, HELD + n_sig + row]
                    of[4 + 2 * q, d] = sess_f[s, HELD + 2 * n_sig + row]
            else:
                for q in range(ne):
                    of[3 + q, d] = sess_f[s, HELD + np.uint32(ev_rows[e0 + q])]
            d = np.uint32(d + 1)
    nd[0], nd[1] = d, r


@njit(cache=True, nogil=True, inline="always")
def record(oi, of, d, s, c, v, seq, seq0, steps, t, t0, measured):
    """Write decision `d`: `emit_at`'s fields, steps done and the measured value, each once;
    the step out of order is -1 (the row of `out.oc` is the caller's)."""
    oi[0, d] = s
    oi[1, d] = c
    oi[2, d] = v
    oi[3, d] = seq
    oi[4, d] = seq0
    oi[5, d] = steps
    oi[6, d] = -1
    of[0, d] = t
    of[1, d] = t0
    of[2, d] = measured


@njit(cache=True, nogil=True, inline="always")
def metric_end(s, ct, io, fo, agg, cap, si, sf):
    """The aggregate of the metric whose state is at (io, fo) of session slot `s`, at the close
    time `ct` (NaN when no event was kept); a pending weighted event is weighted up to `ct`
    (`cap`: how many contributing intervals are kept)."""
    if si[s, io + 1] == 1:
        metric_weight(agg, fo, s, sf, ct - sf[s, fo + 3])
        ni, fl = contrib_slots_of(METRIC, io, fo)
        contrib_add_at(si, sf, ni, fl, cap, s, sf[s, fo + 3], ct)
        si[s, io + 1] = 0
    n = si[s, io]
    if n == 0:
        return math.nan
    if agg == AGG_MEAN:
        if sf[s, fo + 1] == 0.0:
            return sf[s, fo + 2] / n
        return sf[s, fo] / sf[s, fo + 1]
    return sf[s, fo]


@njit(cache=True, nogil=True, inline="always")
def machine_end(gs, since, at_end, st_first, st_count, tr_on, tr_when, tr_after, tr_to):
    """The verdict of a machine in global state `gs`, entered `since` seconds before the close:
    a pure `after` transition of that state whose time has come may lead to pass/fail;
    otherwise the machine's `at_end` verdict."""
    r0 = st_first[gs]
    for r in range(r0, r0 + st_count[gs]):
        after = tr_after[r]
        if tr_on[r] >= 0 or tr_when[r] >= 0 or after != after:
            continue
        if since >= after:
            if tr_to[r] == TO_PASS:
                return PASS
            if tr_to[r] == TO_FAIL:
                return FAIL
            return at_end
    return at_end


# ------------------------------------------------------------------ per-template automata


@njit(cache=True, nogil=True, inline="always")
def emit(out, s, c, v, seq, t, seq0, t0):
    """Append a decision (slot, criterion, verdict, deciding seq/t, interval start); its row."""
    return emit_at(out.oi, out.of, out.nd, s, c, v, seq, t, seq0, t0)


@njit(cache=True, nogil=True, inline="always")
def emit_at(oi, of, nd, s, c, v, seq, t, seq0, t0):
    """`emit` into the arrays of `Out`: no steps, measured value or contributing row."""
    d = nd[0]
    nd[0] = d + 1
    record(oi, of, d, s, c, v, seq, seq0, -1, t, t0, math.nan)
    oi[7, d] = -1
    return d


@njit(cache=True, nogil=True, inline="always")
def contrib_slots_of(kind, io, fo):
    """Where a count or metric criterion whose state is at (io, fo) keeps its contributing
    intervals: the int slot that counts them, the float slot of the last one's end (the
    (start, end) pairs follow it)."""
    if kind == METRIC:
        return io + 2, fo + 5
    return io + 2, fo


@njit(cache=True, nogil=True, inline="always")
def contrib_add_at(si, sf, ni, fl, cap, s, t0, t1):
    """Record [t0, t1] as contributing, given the slots of `contrib_slots_of`: an interval that
    starts where the last one ended extends it; only the first `cap` are kept, all are
    counted."""
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
def contrib_set_at(si, sf, ni, fl, s, t):
    """Make the instant `t` the only one contributing (a metric's best or last value), given
    the slots of `contrib_slots_of`."""
    si[s, ni] = 1
    sf[s, fl] = t
    sf[s, fl + 1] = t
    sf[s, fl + 2] = t


@njit(cache=True, nogil=True, inline="always")
def contrib_out_at(oi, oc, nd, d, n, cap, sf, s, fl):
    """`contrib_out` into the arrays of `Out`: `n` intervals counted, the first `cap` kept in
    sf[s, fl + 1:]."""
    r = nd[1]
    nd[1] = r + 1
    oi[7, d] = r
    contrib_row_at(oc, r, n, cap, sf, s, fl)


@njit(cache=True, nogil=True, inline="always")
def contrib_row_at(oc, r, n, cap, sf, s, fl):
    """Row r of `out.oc`: `n` intervals counted, the first `cap` kept in sf[s, fl + 1:]."""
    oc[0, r] = n
    for q in range(2 * min(n, cap)):
        oc[1 + q, r] = sf[s, fl + 1 + q]


@njit(cache=True, nogil=True, inline="always")
def decide(c, i, v, seq0, t0, tables, batch, state, out):
    """Decide criterion `c` at row `i` with the held values of its signals as evidence."""
    return decide_at(
        c, i, v, seq0, t0, tables.ev_rows, tables.ev_off[c], tables.ev_len[c], batch.sess,
        batch.seq, batch.t, batch.values, state.verdict, out.oi, out.of, out.nd,
    )  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def decide_at(c, i, v, seq0, t0, ev_rows, e0, ne, sess, seq, t, values, verdict, oi, of, nd):
    """`decide` on arrays (see "No reference counting in a loop" in docs/architecture.md):
    criterion `c`'s evidence rows are ev_rows[e0:e0 + ne]."""
    s = sess[i]
    verdict[s, c] = v
    d = emit_at(oi, of, nd, s, c, v, seq[i], t[i], seq0, t0)
    for k in range(ne):
        of[3 + k, d] = values[ev_rows[e0 + k], i]
    return d


@njit(cache=True, nogil=True, inline="always")
def decide_from_start(c, i, v, tables, batch, state, out):
    """`decide`, with the interval starting at the session's first event."""
    s = batch.sess[i]
    return decide(
        c, i, v, state.sess_i[s, FIRST_SEQ], state.sess_f[s, FIRST_T], tables, batch, state, out
    )


@njit(cache=True, nogil=True, inline="always")
def lower(cur, x):
    return x if not (cur <= x) else cur


@njit(cache=True, nogil=True, inline="always")
def upper(cur, x):
    return x if not (cur >= x) else cur


@njit(cache=True, nogil=True)
def never(c, m, dense, idx, tables, batch, state, out):
    """never/always. Parameters: pi[0] guard, pi[1] allow; pf[0] for.

    si: ordinal of the last row where the condition held (-2 = none), counted, count,
        episode seq0;  sf: episode t0, then per signal (episode min, episode max).
    Visits rows where the condition may hold: an episode goes on only while those rows are
    consecutive in the session (`batch.ordinal`). Session-wide extremes live in state.sess_f.
    """
    io, fo, g = tables.io[c], tables.fo[c], tables.pi[c, 0]
    allow, dur = tables.pi[c, 1], tables.pf[c, 0]
    e0, ne = tables.ev_off[c], tables.ev_len[c]
    si, sf = state.si, state.sf
    for at in range(m):
        i = at if dense else idx[at]
        if not batch.guards[g, i]:
            continue
        s = batch.sess[i]
        if state.verdict[s, c] != PENDING:
            continue
        o = batch.ordinal[i]
        fresh = si[s, io] != o - 1
        si[s, io] = o
        if fresh:
            si[s, io + 1] = 0
            si[s, io + 3] = batch.seq[i]
            sf[s, fo] = batch.t[i]
            for k in range(ne):
                sf[s, fo + 1 + 2 * k] = math.nan
                sf[s, fo + 2 + 2 * k] = math.nan
        for k in range(ne):
            x = batch.values[tables.ev_rows[e0 + k], i]
            b = fo + 1 + 2 * k
            sf[s, b] = lower(sf[s, b], x)
            sf[s, b + 1] = upper(sf[s, b + 1], x)
        if si[s, io + 1] == 0 and batch.t[i] - sf[s, fo] >= dur:
            si[s, io + 1] = 1
            si[s, io + 2] += 1
            if si[s, io + 2] > allow:
                state.verdict[s, c] = FAIL
                d = emit(out, s, c, FAIL, batch.seq[i], batch.t[i], si[s, io + 3], sf[s, fo])
                for k in range(ne):
                    out.of[3 + 2 * k, d] = sf[s, fo + 1 + 2 * k]
                    out.of[4 + 2 * k, d] = sf[s, fo + 2 + 2 * k]


@njit(cache=True, nogil=True)
def all_before(c, m, dense, idx, tables, batch, state, out):
    """all_before. Parameters: pi[0] the `before` guard; list = the listed events' guards.

    si: bit mask of the listed events seen so far.
    """
    io, before = tables.io[c], tables.pi[c, 0]
    l0, ln = tables.list_off[c], tables.list_len[c]
    full = (np.int64(1) << ln) - 1
    for at in range(m):
        i = at if dense else idx[at]
        s = batch.sess[i]
        if state.verdict[s, c] != PENDING:
            continue
        if batch.guards[before, i]:
            decide_from_start(
                c, i, PASS if state.si[s, io] == full else FAIL, tables, batch, state, out
            )
            continue
        for j in range(ln):
            if batch.guards[tables.lists[l0 + j], i]:
                state.si[s, io] |= np.int64(1) << j


@njit(cache=True, nogil=True)
def sequence(c, m, dense, idx, tables, batch, state, out):
    """sequence. Parameters: list = step guards (+ repeat flags); pf[0] within (inf if none).

    si: steps done, seq of S1;  sf: t of S1. A decision carries the steps done and, when a later
    step came before the next one, that step's number (from 1).
    """
    io, fo, within = tables.io[c], tables.fo[c], tables.pf[c, 0]
    l0, ln = tables.list_off[c], tables.list_len[c]
    si, sf = state.si, state.sf
    ev_rows, e0, ne = tables.ev_rows, tables.ev_off[c], tables.ev_len[c]
    rsess, rseq, rt, rvalues = batch.sess, batch.seq, batch.t, batch.values
    verdict, oi, of, nd = state.verdict, out.oi, out.of, out.nd
    for at in range(m):
        i = at if dense else idx[at]
        s = batch.sess[i]
        if state.verdict[s, c] != PENDING:
            continue
        done = si[s, io]
        v = PENDING
        early = -1
        if done > 0 and batch.t[i] > sf[s, fo] + within:
            v = FAIL
        elif batch.guards[tables.lists[l0 + done], i]:
            done += 1
            si[s, io] = done
            if done == 1:
                si[s, io + 1] = batch.seq[i]
                sf[s, fo] = batch.t[i]
            if done == ln:
                v = PASS
        else:
            for j in range(done + 1, ln):
                if tables.repeat[l0 + j] == 0 and batch.guards[tables.lists[l0 + j], i]:
                    v = FAIL
                    early = j + 1
                    break
        if v == PENDING:
            continue
        if si[s, io] > 0:
            seq0, t0 = si[s, io + 1], sf[s, fo]
        else:
            seq0, t0 = state.sess_i[s, FIRST_SEQ], state.sess_f[s, FIRST_T]
        d = decide_at(
            c, i, v, seq0, t0, ev_rows, e0, ne, rsess, rseq, rt, rvalues, verdict, oi, of, nd
        )
        oi[5, d] = si[s, io]
        oi[6, d] = early


@njit(cache=True, nogil=True)
def count(c, m, dense, idx, tables, batch, state, out):
    """count. Parameters: pi[0] guard, pi[1] 1 if episodes of a condition, pi[2] min,
    pi[3] max (-1 = none).

    si: count, ordinal of the last row where the guard held (-2 = none), contributing instants;
    sf: the last instant, then the first pi[5] instants (t, t) counted. Visits rows where the
    guard may hold; with episodes, a row starts one unless it directly follows (in the session)
    a row where the condition held. A decision's `measured` is the count.
    """
    io, g, episodes = tables.io[c], tables.pi[c, 0], tables.pi[c, 1]
    lo, hi = tables.pi[c, 2], tables.pi[c, 3]
    si, sf = state.si, state.sf
    ni, fl = contrib_slots_of(COUNT, io, tables.fo[c])
    cap = tables.pi[c, 5]
    ev_rows, e0, ne = tables.ev_rows, tables.ev_off[c], tables.ev_len[c]
    rsess, rseq, rt, rvalues = batch.sess, batch.seq, batch.t, batch.values
    verdict, oi, of, nd = state.verdict, out.oi, out.of, out.nd
    for at in range(m):
        i = at if dense else idx[at]
        if not batch.guards[g, i]:
            continue
        s = batch.sess[i]
        if state.verdict[s, c] != PENDING:
            continue
        o = batch.ordinal[i]
        occurs = episodes == 0 or si[s, io + 1] != o - 1
        si[s, io + 1] = o
        if not occurs:
            continue
        si[s, io] += 1
        contrib_add_at(si, sf, ni, fl, cap, s, batch.t[i], batch.t[i])
        v = PENDING
        if hi >= 0 and si[s, io] > hi:
            v = FAIL
        elif hi < 0 and si[s, io] >= lo:
            v = PASS
        if v != PENDING:
            seq0, t0 = state.sess_i[s, FIRST_SEQ], state.sess_f[s, FIRST_T]
            d = decide_at(
                c, i, v, seq0, t0, ev_rows, e0, ne, rsess, rseq, rt, rvalues, verdict, oi, of, nd
            )
            of[2, d] = si[s, io]
            contrib_out_at(oi, out.oc, nd, d, si[s, ni], cap, sf, s, fl)


@njit(cache=True, nogil=True)
def response(c, m, dense, idx, tables, batch, state, out):
    """response. Parameters: pi[0] after guard, pi[1] expect guard; pf[0] within.

    si: waiting, seq of the oldest unanswered A;  sf: its t.
    At each row: expiry, then B, then A.
    """
    io, fo, a, b, within = (
        tables.io[c],
        tables.fo[c],
        tables.pi[c, 0],
        tables.pi[c, 1],
        tables.pf[c, 0],
    )
    si, sf = state.si, state.sf
    for at in range(m):
        i = at if dense else idx[at]
        s = batch.sess[i]
        if state.verdict[s, c] != PENDING:
            continue
        if si[s, io] == 1 and batch.t[i] > sf[s, fo] + within:
            decide(c, i, FAIL, si[s, io + 1], sf[s, fo], tables, batch, state, out)
            continue
        if batch.guards[b, i]:
            si[s, io] = 0
        if batch.guards[a, i] and si[s, io] == 0:
            si[s, io] = 1
            si[s, io + 1] = batch.seq[i]
            sf[s, fo] = batch.t[i]


@njit(cache=True, nogil=True)
def precede(c, m, dense, idx, tables, batch, state, out):
    """precede. Parameters: pi[0] event guard, pi[1] by guard; pf[0] within (inf if none).

    si: a B has occurred;  sf: t of the latest B.
    """
    io, fo, a, b, within = (
        tables.io[c],
        tables.fo[c],
        tables.pi[c, 0],
        tables.pi[c, 1],
        tables.pf[c, 0],
    )
    si, sf = state.si, state.sf
    for at in range(m):
        i = at if dense else idx[at]
        s = batch.sess[i]
        if state.verdict[s, c] != PENDING:
            continue
        if batch.guards[a, i] and (si[s, io] == 0 or batch.t[i] - sf[s, fo] > within):
            decide(c, i, FAIL, batch.seq[i], batch.t[i], tables, batch, state, out)
            continue
        if batch.guards[b, i]:
            si[s, io] = 1
            sf[s, fo] = batch.t[i]


@njit(cache=True, nogil=True)
def duration(c, m, dense, idx, tables, batch, state, out):
    """duration. Parameters: pi[0] from guard, pi[1] to guard; pf[0] min, pf[1] max.

    si: the first A occurred, its seq;  sf: its t. At each row: expiry, then B, then A.
    """
    io, fo, a, b = tables.io[c], tables.fo[c], tables.pi[c, 0], tables.pi[c, 1]
    lo, hi = tables.pf[c, 0], tables.pf[c, 1]
    si, sf = state.si, state.sf
    for at in range(m):
        i = at if dense else idx[at]
        s = batch.sess[i]
        if si[s, io] == 0:  # waiting for A (never decided): only an A row matters
            if batch.guards[a, i] and state.verdict[s, c] == PENDING:
                si[s, io] = 1
                si[s, io + 1] = batch.seq[i]
                sf[s, fo] = batch.t[i]
            continue
        if state.verdict[s, c] == PENDING:
            v = PENDING
            if batch.t[i] > sf[s, fo] + hi:
                v = FAIL
            elif batch.guards[b, i]:
                elapsed = batch.t[i] - sf[s, fo]
                v = FAIL if (elapsed < lo or elapsed > hi) else PASS
            if v != PENDING:
                decide(c, i, v, si[s, io + 1], sf[s, fo], tables, batch, state, out)


@njit(cache=True, nogil=True, inline="always")
def metric_weight(agg, fo, s, sf, w):
    """Add the pending kept event's contribution, now that its weight `w` is known."""
    v = sf[s, fo + 4]
    if agg == AGG_MEAN:
        sf[s, fo] += v * w
        sf[s, fo + 1] += w
    elif agg == AGG_TIME_TRUE:
        sf[s, fo] += w


@njit(cache=True, nogil=True)
def metric(c, m, dense, idx, tables, batch, state, out):
    """metric. Parameters: pi[0] value row, pi[1] where guard (-1), pi[2] aggregate;
    pf[0] at_least, pf[1] at_most. Decided at the close (`metric_end`).

    si: kept events, a weighted contribution is pending, contributing intervals;
    sf: acc a, acc b, acc c, pending event's t, pending event's value, the last contributing
    interval's end, then the first pi[5] of them as (start, end).
    `mean` and `time_true` weight a kept event by the time to the session's next event, so its
    contribution (and its interval, from the event to the next) waits (pending) until that event,
    or the close. Contributing: the intervals of `mean` and `time_true`, the instants of the
    events `sum` and `count` add up, the instant where `max`/`min` first took its final value,
    the instant of the `last` value.
    """
    io, fo, row, where, agg = (
        tables.io[c],
        tables.fo[c],
        tables.pi[c, 0],
        tables.pi[c, 1],
        tables.pi[c, 2],
    )
    weighted = agg == AGG_MEAN or agg == AGG_TIME_TRUE
    si, sf = state.si, state.sf
    ni, fl = contrib_slots_of(METRIC, io, fo)
    cap = tables.pi[c, 5]
    for at in range(m):
        i = at if dense else idx[at]
        s = batch.sess[i]
        t = batch.t[i]
        if si[s, io + 1] == 1:
            metric_weight(agg, fo, s, sf, t - sf[s, fo + 3])
            contrib_add_at(si, sf, ni, fl, cap, s, sf[s, fo + 3], t)
            si[s, io + 1] = 0
        x = batch.values[row, i]
        if not (x == x and (where < 0 or batch.guards[where, i])):
            continue
        first = si[s, io] == 0
        if first:
            sf[s, fo] = 0.0
            sf[s, fo + 1] = 0.0
            sf[s, fo + 2] = 0.0
            if agg == AGG_MAX or agg == AGG_MIN:
                sf[s, fo] = x
        if agg == AGG_MAX:
            if first or x > sf[s, fo]:
                contrib_set_at(si, sf, ni, fl, s, t)
            sf[s, fo] = upper(sf[s, fo], x)
        elif agg == AGG_MIN:
            if first or x < sf[s, fo]:
                contrib_set_at(si, sf, ni, fl, s, t)
            sf[s, fo] = lower(sf[s, fo], x)
        elif agg == AGG_MEAN:
            sf[s, fo + 2] += x
        elif agg == AGG_SUM:
            sf[s, fo] += x
            contrib_add_at(si, sf, ni, fl, cap, s, t, t)
        elif agg == AGG_LAST:
            sf[s, fo] = x
            contrib_set_at(si, sf, ni, fl, s, t)
        elif agg == AGG_COUNT and x == 1.0:
            sf[s, fo] += 1.0
            contrib_add_at(si, sf, ni, fl, cap, s, t, t)
        si[s, io] += 1
        if weighted and (agg == AGG_MEAN or x == 1.0):
            si[s, io + 1] = 1
            sf[s, fo + 3] = batch.t[i]
            sf[s, fo + 4] = x


@njit(cache=True, nogil=True)
def machine(c, m, dense, idx, tables, batch, state, out):
    """machine. Parameters: pi[0] first state (global), pi[1] n states, pi[2] initial,
    pi[3] at_end verdict, pi[4] number of `for` run slots.

    si: current state (local), seq of entry (-1: the initial state);
    sf: t of entry, then the start t of each `for` run (NaN = no run).
    list = the wake guards: a row where none holds leaves a session in a quiet state as it is.
    """
    io, fo, base, n_slots = tables.io[c], tables.fo[c], tables.pi[c, 0], tables.pi[c, 4]
    l0, ln = tables.list_off[c], tables.list_len[c]
    wake0 = tables.lists[l0] if ln > 0 else 0
    si, sf = state.si, state.sf
    ev_rows, e0, ne = tables.ev_rows, tables.ev_off[c], tables.ev_len[c]
    rsess, rseq, rt, rvalues = batch.sess, batch.seq, batch.t, batch.values
    verdict, oi, of, nd = state.verdict, out.oi, out.of, out.nd
    for at in range(m):
        i = at if dense else idx[at]
        s = batch.sess[i]
        if tables.state_quiet[base + si[s, io]] and not (ln > 0 and batch.guards[wake0, i]):
            woken = False
            for j in range(1, ln):
                if batch.guards[tables.lists[l0 + j], i]:
                    woken = True
                    break
            if not woken:
                continue
        if state.verdict[s, c] != PENDING:
            continue
        t = batch.t[i]
        r0 = tables.state_first[base + si[s, io]]
        r1 = r0 + tables.state_count[base + si[s, io]]
        for r in range(r0, r1):
            slot = tables.tr_slot[r]
            if slot >= 0:
                if not batch.guards[tables.tr_when[r], i]:
                    sf[s, fo + 1 + slot] = math.nan
                elif sf[s, fo + 1 + slot] != sf[s, fo + 1 + slot]:
                    sf[s, fo + 1 + slot] = t
        for r in range(r0, r1):
            if tables.tr_on[r] >= 0 and not batch.guards[tables.tr_on[r], i]:
                continue
            if tables.tr_when[r] >= 0 and not batch.guards[tables.tr_when[r], i]:
                continue
            slot = tables.tr_slot[r]
            if slot >= 0 and not (t - sf[s, fo + 1 + slot] >= tables.tr_for[r]):
                continue
            after = tables.tr_after[r]
            if after == after and not (t - sf[s, fo] >= after):
                continue
            to = tables.tr_to[r]
            if to == TO_PASS or to == TO_FAIL:
                v = PASS if to == TO_PASS else FAIL
                if si[s, io + 1] < 0:
                    seq0, t0 = state.sess_i[s, FIRST_SEQ], state.sess_f[s, FIRST_T]
                else:
                    seq0, t0 = si[s, io + 1], sf[s, fo]
                decide_at(
                    c,
                    i,
                    v,
                    seq0,
                    t0,
                    ev_rows,
                    e0,
                    ne,
                    rsess,
                    rseq,
                    rt,
                    rvalues,
                    verdict,
                    oi,
                    of,
                    nd,
                )
            else:
                si[s, io] = to
                si[s, io + 1] = batch.seq[i]
                sf[s, fo] = t
                for slot in range(n_slots):
                    sf[s, fo + 1 + slot] = math.nan
            break
