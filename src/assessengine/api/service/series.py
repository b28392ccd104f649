"""A session's stored events as columns, cut to a time range and, for plotting, downsampled to
the minimum and maximum of each signal per time bucket (so a one-sample spike survives)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ...core.codec import Columns

MAX_RAW_ROWS = 20_000
MAX_BUCKETS = 5_000
MAX_EVENTS = 5_000


def window(cols: Columns, t_from: float, t_to: float) -> Columns:
    """The rows with t_from <= t <= t_to (views)."""
    lo = int(np.searchsorted(cols.t, t_from, side="left"))
    hi = int(np.searchsorted(cols.t, t_to, side="right"))
    return Columns(cols.seq[lo:hi], cols.t[lo:hi], cols.event[lo:hi], cols.signals[:, lo:hi])


@dataclass(frozen=True, slots=True)
class Buckets:
    """Per-bucket extremes of each signal (NaN where a bucket has no sample of it).

    start, end:    NDArray[np.float64] (n_buckets,) bucket i covers [start[i], end[i])
                   (the last one includes its end)
    lo, hi:        NDArray[np.float64] (n_signals, n_buckets) minimum and maximum
    t_lo, t_hi:    NDArray[np.float64] (n_signals, n_buckets) when they occurred (first time)
    """

    start: NDArray[np.float64]
    end: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    t_lo: NDArray[np.float64]
    t_hi: NDArray[np.float64]


def downsample(
    t: NDArray[np.float64], signals: NDArray[np.float64], t_from: float, t_to: float, n: int,
    *, times: bool = True,
) -> Buckets:  # fmt: skip
    """Min and max of each signal row in `n` equal buckets over [t_from, t_to] (and, with
    `times`, when they first occurred; else those stay NaN: a plot does not need them).

    t: (n_rows,) sorted; signals: (n_signals, n_rows), NaN = not reported (ignored)."""
    width = (t_to - t_from) / n if t_to > t_from else 1.0
    edges = t_from + width * np.arange(n + 1, dtype=np.float64)
    edges[-1] = max(t_to, t_from)
    bucket = np.minimum(((t - t_from) / width).astype(np.int64), n - 1) if len(t) else (
        np.empty(0, np.int64)
    )
    shape = (signals.shape[0], n)
    lo, hi = np.full(shape, np.nan), np.full(shape, np.nan)
    t_lo, t_hi = np.full(shape, np.nan), np.full(shape, np.nan)
    for k in range(signals.shape[0]):
        ok = ~np.isnan(signals[k])
        values, where, at = signals[k][ok], bucket[ok], t[ok]
        if not len(values):
            continue
        # within each bucket, rows by value (ties: earliest first): first = min, last = max
        order = np.lexsort((at, values, where))
        where_sorted = where[order]
        first = np.flatnonzero(np.r_[True, where_sorted[1:] != where_sorted[:-1]])
        last = np.r_[first[1:] - 1, len(order) - 1]
        cells = where_sorted[first]
        lo[k, cells], t_lo[k, cells] = values[order[first]], at[order[first]]
        hi[k, cells] = values[order[last]]
        # the first time the maximum occurred: earliest row among those equal to it
        if times:
            top = _first_time_of_max(values, where, at, hi[k])
            t_hi[k, cells] = top[cells]
    return Buckets(edges[:-1], edges[1:], lo, hi, t_lo, t_hi)


def _first_time_of_max(
    values: NDArray[np.float64], where: NDArray[np.int64], times: NDArray[np.float64],
    hi: NDArray[np.float64],
) -> NDArray[np.float64]:  # fmt: skip
    at_max = values == hi[where]
    out = np.full(hi.shape[0], np.inf)
    np.minimum.at(out, where[at_max], times[at_max])
    return out


def held(cols: Columns) -> Columns:
    """Sample-and-hold (a signal keeps its last value until the next one, docs/protocol.md):
    each signal's NaN replaced by its last reported value before it (NaN before the first)."""
    signals = cols.signals.copy()
    positions = np.arange(signals.shape[1])
    for k in range(signals.shape[0]):
        row = signals[k]
        last = np.where(np.isnan(row), -1, positions)
        np.maximum.accumulate(last, out=last)
        signals[k] = np.where(last >= 0, row[np.maximum(last, 0)], np.nan)
    return Columns(cols.seq, cols.t, cols.event, signals)


def hold_buckets(b: Buckets, t: NDArray[np.float64], signals: NDArray[np.float64]) -> Buckets:
    """`b` with each bucket's extremes widened to the value held at its start: `t` and
    `signals` are the whole session's rows (held, see `held`), so a bucket with no row of its
    own shows the held value, and one whose first row changes the value shows the step."""
    before = np.searchsorted(t, b.start, side="left") - 1  # the last row before each bucket
    known = before >= 0
    lo, hi = b.lo.copy(), b.hi.copy()
    for k in range(signals.shape[0]):
        value = np.full(b.start.shape[0], np.nan)
        value[known] = signals[k, before[known]]
        lo[k] = np.fmin(lo[k], value)
        hi[k] = np.fmax(hi[k], value)
    return Buckets(b.start, b.end, lo, hi, b.t_lo, b.t_hi)


def plain(values: Sequence[float] | NDArray[np.float64]) -> list[float | None]:
    """Floats for JSON: NaN -> None."""
    return [None if math.isnan(v) else float(v) for v in np.asarray(values, np.float64).tolist()]
