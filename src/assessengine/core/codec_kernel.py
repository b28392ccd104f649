"""The columns-v1 checks as one compiled pass (numba, cached, ``nogil``).

`decode_columns_v1` runs this on every binary batch the engine receives: one loop over the
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
