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
    measured:           metric criteria: the aggregate's value
    """

    seq: int | None = None
    t: float | None = None
    t_start: float | None = None
    t_end: float | None = None
    seq_start: int | None = None
    seq_end: int | None = None
    values: Mapping[str, Value] | None = None
    measured: float | None = None
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
