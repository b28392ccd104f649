"""The cohort dashboard's numbers from the cohort index's session rows, vectorised (numpy):
no report parsed, no per-session Python work beyond factorising the columns.

`numbers(rows, titles, period)` takes the selected sessions' rows in open order (what
`CohortStore.cohort` reads in one query) and returns `CohortNumbers`. Each key column is
factorised once into integer codes; groups are counted with ``np.bincount`` over combined
codes; per-criterion verdicts come from each session's ``finals`` codes viewed as a
(sessions x criteria) byte matrix, one matrix per rubric version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

CODES: Final = {"pass": "P", "fail": "F", "pending": "A", "not_applicable": "N"}
"""A final verdict's one-character code in ``cohort_sessions.finals``."""

Row = tuple[Any, ...]
"""(key, learner, rubric, rubric_version, scenario, source, site, day, outcome, finals):
one selected session; `day` is YYYY-MM-DD, `outcome` the counted one, `finals` one `CODES`
character per criterion in rubric order."""
KEY, LEARNER, RUBRIC, VERSION, SCENARIO, SOURCE, SITE, DAY, OUTCOME, FINALS = range(10)


@dataclass(frozen=True, slots=True)
class PeriodRow:
    rubric: str
    rubric_version: int
    period: str
    sessions: int
    passed: int
    failed: int
    incomplete: int


@dataclass(frozen=True, slots=True)
class CriterionRow:
    """Final verdicts of one criterion of one rubric, on learners' first attempts and on
    their later ones."""

    rubric: str
    criterion: str
    title: str
    idx: int
    first_decided: int
    first_failed: int
    later_decided: int
    later_failed: int
    undecided: int  # pending or not applicable


@dataclass(frozen=True, slots=True)
class FirstPassRow:
    """`learners` of `rubric` who first passed on attempt `attempt` (None: not yet)."""

    rubric: str
    attempt: int | None
    learners: int


@dataclass(frozen=True, slots=True)
class GroupRow:
    scenario: str
    site: str | None
    source: str
    sessions: int
    passed: int
    failed: int
    incomplete: int


@dataclass(frozen=True, slots=True)
class CohortNumbers:
    sessions: int
    first_opened: str | None  # the first and last day a selected session was opened
    last_opened: str | None
    period: str
    periods: list[PeriodRow]
    criteria: list[CriterionRow]
    first_pass: list[FirstPassRow]
    groups: list[GroupRow]


Titles = Callable[[int], list[tuple[str, str]]]
"""A session key -> its criteria's (id, title) in rubric order (read for one session of each
rubric version)."""


@dataclass(frozen=True, slots=True)
class _Factor:
    """A column as integer codes into its distinct values (in first-seen order)."""

    codes: NDArray[np.int64]
    values: list[Any]


def _factor(column: Sequence[Any]) -> _Factor:
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in column), dtype=np.int64,
                        count=len(column))  # fmt: skip
    return _Factor(codes, list(index))


def _combine(*factors: _Factor) -> tuple[NDArray[np.int64], list[tuple[Any, ...]]]:
    """Codes of the combined key, and each code's parts (only the keys that occur)."""
    combined = np.zeros(len(factors[0].codes), dtype=np.int64)
    for f in factors:
        combined = combined * max(len(f.values), 1) + f.codes
    unique, inverse = np.unique(combined, return_inverse=True)
    parts = []
    for combined_code in unique.tolist():
        key, rest = [], combined_code
        for f in reversed(factors):
            rest, k = divmod(rest, max(len(f.values), 1))
            key.append(f.values[k])
        parts.append(tuple(reversed(key)))
    return inverse.astype(np.int64), parts


def numbers(rows: Sequence[Row], titles: Titles, period: str | None) -> CohortNumbers:
    """The dashboard's numbers over `rows` (open order). `period` None: by day when the
    sessions span at most 92 days, else by month."""
    if not rows:
        return CohortNumbers(0, None, None, period or "day", [], [], [], [])
    cols = list(zip(*rows, strict=True))
    first, last = min(cols[DAY]), max(cols[DAY])
    chosen = period or _auto_period(first, last)
    outcome = _factor(cols[OUTCOME])
    tallies = [np.isin(outcome.codes, [k for k, v in enumerate(outcome.values) if v == name])
               for name in ("pass", "fail", "incomplete")]  # fmt: skip
    rubric, version = _factor(cols[RUBRIC]), _factor(cols[VERSION])
    learner = _factor(cols[LEARNER])
    attempt = _attempts(_combine(learner, rubric)[0])
    when = _factor(cols[DAY] if chosen == "day" else [d[:7] for d in cols[DAY]])
    periods = [PeriodRow(k[0], int(k[1]), k[2], *c)
               for k, c in _grouped(_combine(rubric, version, when), tallies)]
    place = _combine(_factor(cols[SCENARIO]), _factor(cols[SITE]), _factor(cols[SOURCE]))
    groups = [GroupRow(k[0], k[1] or None, k[2], *c) for k, c in _grouped(place, tallies)]
    return CohortNumbers(
        len(rows), first, last, chosen, sorted(periods, key=lambda p: (p.rubric,
                                                                         p.rubric_version,
                                                                         p.period)),
        _criteria(cols, rubric, version, attempt, titles),
        _first_pass(rubric, learner, attempt, tallies[0]), groups,
    )  # fmt: skip


def _grouped(
    found: tuple[NDArray[np.int64], list[tuple[Any, ...]]], tallies: list[NDArray[np.bool_]]
) -> list[tuple[tuple[Any, ...], list[int]]]:
    """Per key: its parts and [count, pass, fail, incomplete]."""
    inverse, parts = found
    count = np.bincount(inverse, minlength=len(parts))
    sums = [np.bincount(inverse, weights=t, minlength=len(parts)) for t in tallies]
    return [(p, [int(count[k]), *(int(s[k]) for s in sums)]) for k, p in enumerate(parts)]


def _attempts(group: NDArray[np.int64]) -> NDArray[np.int64]:
    """Each row's attempt number (1, 2, ...) within its group, in the rows' order."""
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_group)) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    attempt = np.empty(len(order), dtype=np.int64)
    attempt[order] = np.arange(len(order)) - np.repeat(starts, sizes) + 1
    return attempt


def _first_pass(
    rubric: _Factor, learner: _Factor, attempt: NDArray[np.int64], passed: NDArray[np.bool_]
) -> list[FirstPassRow]:
    """Learners per rubric by the attempt they first passed on (None: not yet)."""
    group, parts = _combine(rubric, learner)
    never = np.iinfo(np.int64).max
    first = np.full(len(parts), never, dtype=np.int64)
    np.minimum.at(first, group[passed], attempt[passed])
    counted: dict[tuple[str, int | None], int] = {}
    for (name, _), value in zip(parts, first.tolist(), strict=True):
        key = (name, None if value == never else int(value))
        counted[key] = counted.get(key, 0) + 1
    return [FirstPassRow(r, a, n) for (r, a), n in
            sorted(counted.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or 0))]


def _criteria(
    cols: list[tuple[Any, ...]], rubric: _Factor, version: _Factor, attempt: NDArray[np.int64],
    titles: Titles,
) -> list[CriterionRow]:  # fmt: skip
    """Per rubric and criterion: decided and failed on first and later attempts, undecided;
    one byte matrix per rubric version (a session whose codes do not fit its version's
    criteria is left out)."""
    group, parts = _combine(rubric, version)
    finals, keys = cols[FINALS], cols[KEY]
    totals: dict[tuple[str, str], list[Any]] = {}
    for g, (name, _) in enumerate(parts):
        members = np.flatnonzero(group == g)
        named = titles(int(keys[int(members[0])]))
        width = len(named)
        fits = [int(k) for k in members if len(finals[int(k)]) == width]
        if width == 0 or not fits:
            continue
        text = "".join(finals[k] for k in fits).encode("ascii", "replace")
        matrix = np.frombuffer(text, dtype="S1").reshape(-1, width)
        decided = (matrix == b"P") | (matrix == b"F")
        failed = matrix == b"F"
        first = (attempt[fits] == 1)[:, None]
        counts = np.stack([(decided & first).sum(0), (failed & first).sum(0),
                           (decided & ~first).sum(0), (failed & ~first).sum(0),
                           (~decided).sum(0)])  # fmt: skip
        for idx, (cid, title) in enumerate(named):
            entry = totals.setdefault((name, cid), [idx, title, 0, 0, 0, 0, 0])
            entry[0] = min(entry[0], idx)
            for k in range(5):
                entry[2 + k] += int(counts[k, idx])
    return [CriterionRow(r, c, e[1], e[0], *e[2:])
            for (r, c), e in sorted(totals.items(), key=lambda kv: (kv[0][0], kv[1][0],
                                                                     kv[0][1]))]  # fmt: skip


def _auto_period(first: str, last: str) -> str:
    span = date.fromisoformat(last) - date.fromisoformat(first)
    return "day" if span.days <= 92 else "month"
