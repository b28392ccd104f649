"""How many Dask tasks a cohort's partitions make: consecutive partitions grouped into fewer,
larger tasks when there are many small ones.

    groups = group(partitions, workers=2)      # [(p0, p1, p2, p3), (p4, ...), ...]

Every task costs the same few milliseconds outside its work, whatever its size: the
scheduler's and the client's bookkeeping (4-5 ms of the main process's CPU a task), the
worker's event loop between two tasks (3-12 ms from one task's end to the next one's start in
a one-thread worker at load), the task's own set-up (opening the file, the kernel's state). A
cohort archived in small files (an incremental export makes a file per run, `--file-rows`)
paid those per file. `group` makes ``max(TASKS_PER_WORKER x workers, ceil(events /
TASK_EVENTS))`` tasks of about equal events (cut at the partition boundaries nearest to equal
shares, in order), or one per partition when that is no fewer: enough tasks for every worker
to have several (the last ones end together) and for a progress bar to move, each at least
about `TASK_EVENTS / 2` events unless the cohort is small.

`cuts` is the packing both this and `split` (a file's row groups into tasks) use.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Final, Protocol, TypeVar

TASKS_PER_WORKER: Final = 3
"""Tasks aimed at per worker at least (balance at the end): `group`, and `split` for a cohort
of fewer files than that."""
TASK_EVENTS: Final = 1_000_000
"""Events a task aims at when a cohort has more than `TASKS_PER_WORKER` tasks per worker:
about 0.15 s of one worker's time, against some ms a task outside it."""


class Sized(Protocol):
    @property
    def events(self) -> int: ...


P = TypeVar("P", bound=Sized)


def group(partitions: Sequence[P], *, workers: int) -> list[tuple[P, ...]]:
    """See the module docstring: consecutive `partitions` (all of them, in order) in tasks. A
    partition's `events` (0 when unknown) weighs it (at least 1)."""
    sizes = [max(p.events, 1) for p in partitions]
    count = max(TASKS_PER_WORKER * max(workers, 1), math.ceil(sum(sizes) / TASK_EVENTS))
    if count >= len(partitions):
        return [(p,) for p in partitions]
    return [tuple(partitions[lo:hi]) for lo, hi in cuts(sizes, count)]


def cuts(sizes: Sequence[int], count: int) -> list[tuple[int, int]]:
    """Consecutive items of `sizes` in min(count, len(sizes)) pieces of about equal total size,
    as [lo, hi) index ranges covering them all in order: cut j at the item boundary nearest to
    j / count of the total (each piece at least one item). Empty for no items."""
    if not sizes:
        return []
    count = max(1, min(count, len(sizes)))
    ends = list(accumulate(sizes))  # total before boundary k + 1
    bounds = [0]
    for j in range(1, count):
        nearest = _nearest_boundary(ends, j * ends[-1] / count)
        bounds.append(min(max(nearest, bounds[-1] + 1), len(sizes) - (count - j)))
    bounds.append(len(sizes))
    return list(pairwise(bounds))


def _nearest_boundary(ends: Sequence[int], goal: float) -> int:
    """The boundary k in [1, len(ends)) whose total before it, ``ends[k - 1]``, is nearest
    to `goal`, the first such k on a tie (`ends`: running totals of sizes >= 0, so
    non-decreasing): by bisection, not a scan of every boundary for every cut."""
    last = len(ends) - 1  # boundaries 1 .. last: ends[0 .. last - 1]
    above = bisect_left(ends, goal, 0, last)  # the first total >= goal
    candidates = [above] if above < last else []
    if above > 0:  # the largest total below goal, at its first index
        candidates.append(bisect_left(ends, ends[above - 1], 0, above))
    return 1 + min(candidates, key=lambda i: (abs(ends[i] - goal), i))
