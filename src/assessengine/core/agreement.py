"""Agreement and correlation statistics for calibration (pure functions, no I/O).

- `percent_agreement` and `cohen_kappa`: two raters' nominal labels of the same items
  (an assessor against the engine, per criterion).
- `pearson`, `spearman` and `point_biserial`: the relation of two measures of the same learners
  (simulator score against field outcome or score).
- `confusion`: a contingency table of two labellings.

Every function takes paired sequences of equal length and returns None where the statistic is
undefined (no pairs, or a constant series: kappa when the chance agreement is 1, a correlation
when either side has no variance). Results are plain floats, not rounded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import TypeVar

L = TypeVar("L", bound=Hashable)


def _check(a: Sequence[object], b: Sequence[object]) -> None:
    if len(a) != len(b):
        raise ValueError(f"paired sequences differ in length: {len(a)} and {len(b)}")


def percent_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """The fraction (0..1) of pairs whose labels are equal; None without pairs."""
    _check(a, b)
    if not a:
        return None
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' nominal labels: (po - pe) / (1 - pe), po the observed and
    pe the chance agreement from each rater's marginal frequencies. In [-1, 1]; 1 for identical
    labellings; symmetric in the two raters. None without pairs or when pe is 1 (both raters
    gave one and the same label to every item: agreement cannot be told from chance)."""
    _check(a, b)
    n = len(a)
    if n == 0:
        return None
    po = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if math.isclose(pe, 1.0):
        return None
    return max(-1.0, min(1.0, (po - pe) / (1.0 - pe)))


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's product-moment correlation, in [-1, 1]; None with fewer than 2 pairs or when
    either series is constant."""
    _check(x, y)
    n = len(x)
    if n < 2:
        return None
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    dx = [v - mx for v in x]
    dy = [v - my for v in y]
    sxx = math.fsum(d * d for d in dx)
    syy = math.fsum(d * d for d in dy)
    if sxx <= 0.0 or syy <= 0.0:
        return None
    r = math.fsum(p * q for p, q in zip(dx, dy, strict=True)) / math.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given their average rank (as `scipy.stats.rankdata`)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's on average ranks); None as `pearson`."""
    _check(x, y)
    return pearson(ranks(x), ranks(y))


def point_biserial(scores: Sequence[float], passed: Sequence[bool]) -> float | None:
    """The point-biserial correlation of a continuous measure with a dichotomy (Pearson's
    with the dichotomy as 0/1): positive when higher scores go with True. None as `pearson`."""
    _check(scores, passed)
    return pearson(scores, [1.0 if p else 0.0 for p in passed])


def confusion(
    a: Sequence[L], b: Sequence[L], labels: Sequence[L]
) -> list[list[int]]:  # fmt: skip
    """The contingency table of two labellings: row i, column j counts the pairs with
    ``a == labels[i]`` and ``b == labels[j]`` (pairs with another label are not counted)."""
    _check(a, b)
    at = {label: i for i, label in enumerate(labels)}
    table = [[0] * len(labels) for _ in labels]
    for x, y in zip(a, b, strict=True):
        if x in at and y in at:
            table[at[x]][at[y]] += 1
    return table
