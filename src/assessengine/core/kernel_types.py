"""The arrays the numba kernel works on, grouped into named tuples (numba reads their fields).

Shapes: C criteria, n rows in the batch, cap session slots.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]


class Tables(NamedTuple):
    """A compiled rubric's tables (see `compiler.CompiledRubric` for their meaning)."""

    kind: Ints  # (C,)
    pi: Ints  # (C, N_PARAMS) integer parameters
    pf: Floats  # (C, N_PARAMS) float parameters
    lists: Ints  # flat guard ids of sequences and all_before lists
    repeat: Ints  # aligned with lists
    list_off: Ints  # (C,)
    list_len: Ints  # (C,)
    ev_rows: Ints  # flat signal rows named by each criterion
    ev_off: Ints  # (C,)
    ev_len: Ints  # (C,)
    io: Ints  # (C,) offset of each criterion's int state
    fo: Ints  # (C,) offset of each criterion's float state
    state_first: Ints  # machines: first transition of each state
    state_count: Ints  # machines: transitions of each state
    state_quiet: Ints  # machines: 1 if only the machine's wake guards can move the state
    tr_on: Ints  # transitions: event guard or -1
    tr_when: Ints  # condition guard or -1
    tr_for: Floats  # seconds or NaN
    tr_after: Floats  # seconds or NaN
    tr_to: Ints  # local state, TO_PASS or TO_FAIL
    tr_slot: Ints  # `for` run slot or -1


class Rows(NamedTuple):
    """One batch, as the automata see it."""

    sess: NDArray[np.uint32]  # (n,) session slot
    seq: Ints  # (n,)
    t: Floats  # (n,)
    guards: NDArray[np.bool_]  # (n_guards, n)
    values: Floats  # (n_signals + n_exprs, n) held signals, then metric expressions
    ordinal: Ints  # (n,) position of the row in its session (0 = first event)


class State(NamedTuple):
    """Per-session state, one row per slot (see kernel.py for the session columns)."""

    sess_i: Ints  # (cap, 4) FIRST_SEQ, LAST_SEQ, N_EVENTS, STAMP
    sess_f: Floats  # (cap, 2 + 3 n_sig) FIRST_T, LAST_T, held, session min, session max
    si: Ints  # (cap, n_state_i)
    sf: Floats  # (cap, n_state_f)
    verdict: NDArray[np.int8]  # (cap, C)


class Out(NamedTuple):
    """Decisions appended by the automata, field-major (see kernel.py)."""

    oi: Ints  # (8, m) slot, criterion, verdict, seq, seq_start, steps done, out of order, oc row
    of: Floats  # (3 + 2 max_ev, m) t, t_start, measured, values...
    oc: Floats  # (1 + 2 CONTRIB_MAX, k) count and metric decisions' contributing intervals
    nd: Ints  # (2,) decisions, oc rows
