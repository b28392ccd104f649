"""Offline scoring: whole recorded sessions in, one report per session out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from . import kernel_scorer, reference
from .events import SessionEvents
from .report import SessionReport, Verdict
from .rubric import Rubric
from .scenario import Scenario

Engine = Literal["kernel", "reference"]
Observations = Mapping[str, Mapping[str, Verdict]]
"""session id -> criterion id -> verdict recorded by an assessor (for `observed` criteria)."""


def score_sessions(
    rubric: Rubric,
    scenario: Scenario,
    sessions: Sequence[SessionEvents],
    *,
    engine: Engine = "kernel",
    observations: Observations | None = None,
) -> list[SessionReport]:
    """Score every session from its first event to its close; reports in the given order."""
    observations = observations or {}
    if engine == "reference":
        return [
            reference.score_session(rubric, scenario, s, observations.get(s.session, {}))
            for s in sessions
        ]
    return kernel_scorer.score_sessions(rubric, scenario, sessions, observations)
