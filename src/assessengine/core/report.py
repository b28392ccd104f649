"""Session reports: what a scorer returns for each session (verdicts, evidence, score, outcome).

Both the kernel and the reference scorer produce these; `to_data()` is the JSON shape of
``assessengine score --json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["pass", "fail", "pending", "not_applicable"]
Outcome = Literal["pass", "fail", "incomplete"]
Extremes = Mapping[str, float | None]
CONTRIB_MAX = 8
"""Evidence of count and metric criteria lists at most this many contributing intervals (and
counts them all); docs/operations.md "Limits". The kernel keeps them in each session's scoring
state (16 bytes each per count or metric criterion), which must stay small: 8 keeps the
shipped forklift rubric within its 1 KiB per session (tests/test_kernel_state.py)."""
Value = float | None | Extremes


def finite(value: object) -> float | None:
    """A number read back from a stored report, or None when it is missing or not a finite
    number (null, NaN, an infinity: a report saved before non-finite numbers were refused).
    Whatever reads stored reports for people goes through this, so no page or answer depends
    on a stored value being finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a decision was taken and what the signals showed there.

    seq, t:             the deciding event (at end: the last event's seq and the close time)
    t_start, t_end,
    seq_start, seq_end: the episode or window concerned (see docs/semantics.md)
    values:             signal name -> held value at the deciding event; for never/always
                        signal name -> {"min": x, "max": y} over the window
    measured:           metric criteria: the aggregate's value; count criteria: the count
    contributing:       count and metric criteria: the first `CONTRIB_MAX` intervals
                        (start, end) that contributed, in time order: a count's occurrences and a
                        metric's kept events as instants (start = end), the spans a `mean` or
                        `time_true` weighs (each kept event to the next, adjoining ones merged),
                        the instant a `max`/`min` first took its value, the `last` value's
    contributing_total: how many there were in all (more than listed when the list is full)
    steps_done:         sequence criteria: the steps done when decided
    out_of_order:       sequence criteria: the step (from 1) that came before the next one
    Fields that do not apply are None and left out of `to_data()` (except the first seven),
    so reports stored before they existed read the same.
    """

    seq: int | None = None
    t: float | None = None
    t_start: float | None = None
    t_end: float | None = None
    seq_start: int | None = None
    seq_end: int | None = None
    values: Mapping[str, Value] | None = None
    measured: float | None = None
    contributing: tuple[tuple[float, float], ...] | None = None
    contributing_total: int | None = None
    steps_done: int | None = None
    out_of_order: int | None = None
    _data: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def to_data(self) -> dict[str, Any]:
        """The JSON shape, built on the first call and shared by later ones (the live engine
        writes each decision's evidence twice: in its decision row and in the final report):
        read or serialise it, never change it."""
        data = self._data
        if data is None:
            data = self._build_data()
            object.__setattr__(self, "_data", data)
        return data

    def _build_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seq": self.seq,
            "t": self.t,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "seq_start": self.seq_start,
            "seq_end": self.seq_end,
            "values": {k: _plain(v) for k, v in sorted((self.values or {}).items())},
        }
        if self.measured is not None:
            data["measured"] = self.measured
        if self.contributing is not None:
            data["contributing"] = [[a, b] for a, b in self.contributing]
            data["contributing_total"] = self.contributing_total
        if self.steps_done is not None:
            data["steps_done"] = self.steps_done
        if self.out_of_order is not None:
            data["out_of_order"] = self.out_of_order
        return data


def _plain(value: Value) -> Any:
    if value is None or type(value) is float:  # the common cases, before the slower ABC check
        return value
    if type(value) is dict or isinstance(value, Mapping):
        return {"min": value["min"], "max": value["max"]}
    return value


PENDING = Evidence()


@dataclass(frozen=True, slots=True)
class CriterionResult:
    id: str
    title: str
    critical: bool
    points: float
    verdict: Verdict
    evidence: Evidence

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "critical": self.critical,
            "points": self.points,
            "verdict": self.verdict,
            "evidence": self.evidence.to_data(),
        }


@dataclass(frozen=True, slots=True)
class SessionReport:
    session: str
    rubric: str
    rubric_version: int
    rubric_sha256: str
    outcome: Outcome
    score: float
    criteria: tuple[CriterionResult, ...]

    def to_data(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "rubric": self.rubric,
            "rubric_version": self.rubric_version,
            "rubric_sha256": self.rubric_sha256,
            "outcome": self.outcome,
            "score": self.score,
            "criteria": [c.to_data() for c in self.criteria],
        }
