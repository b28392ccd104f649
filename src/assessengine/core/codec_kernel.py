"""The columns-v1 checks as one compiled pass, and the copy of decoded columns into a scoring
step (numba, cached, ``nogil``).

`decode_columns_v1` runs `columns_ok` on every binary batch the engine receives: one loop over the
records instead of a dozen numpy calls per batch (whose fixed cost dominated at 64 KiB
frames), and it releases the GIL so the engine's scoring thread runs meanwhile. It only says
whether a batch is valid; on failure the numpy checks run to name the problem.

Self-contained on purpose: these functions call no numba function of another file (numba's
cache would not notice such a callee change; see `kernel.py`).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray


@njit(cache=True, nogil=True)
def columns_ok(
    seq: NDArray[np.int64],
    t: NDArray[np.float64],
    event: NDArray[np.int32],
    signals: NDArray[np.float64],
    first_seq: int,
    min_t: float,
    n_events: int,
) -> bool:  # pragma: no cover (compiled)
    """True when every row passes: seq == first_seq + row; t finite and >= min_t (row 0) or
    >= the previous row's t; 0 <= event < n_events; no infinite signal (NaN = not reported).
    Says only whether; `codec._check_columns` names the problem (it runs only on failure)."""
    prev = min_t
    for j in range(seq.shape[0]):
        x = t[j]
        if seq[j] != first_seq + j or not np.isfinite(x) or x < prev:
            return False
        prev = x
        e = event[j]
        if e < 0 or e >= n_events:
            return False
        for k in range(signals.shape[0]):
            if np.isinf(signals[k, j]):
                return False
    return True


@njit(cache=True, nogil=True)
def gather_columns(
    seq: NDArray[np.int64],
    t: NDArray[np.float64],
    event: NDArray[np.int32],
    signals: NDArray[np.float64],
    out_seq: NDArray[np.int64],
    out_t: NDArray[np.float64],
    out_event: NDArray[np.int32],
    out_signals: NDArray[np.float64],
    start: int,
) -> None:  # pragma: no cover (compiled)
    """Copy one batch's columns into rows start .. start + n of the `out_` columns. Decoded
    columns-v1 columns are unaligned strided views of the payload, which numpy copies slowly
    and a value at a time; this is one loop per column, without the GIL."""
    n = seq.shape[0]
    for j in range(n):
        out_seq[start + j] = seq[j]
        out_t[start + j] = t[j]
        out_event[start + j] = event[j]
    for k in range(signals.shape[0]):
        for j in range(n):
            out_signals[k, start + j] = signals[k, j]
