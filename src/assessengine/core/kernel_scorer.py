"""Offline scoring of whole recorded sessions with the compiled kernel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .compiler import compile_rubric
from .events import SessionEvents, batch_from_events
from .report import SessionReport, Verdict
from .rubric import Rubric
from .scenario import Scenario
from .scorer import ScoringState, close, step
from .scoring import DecisionLog, Span

BATCH_ROWS = 65_536


def score_sessions(
    rubric: Rubric,
    scenario: Scenario,
    sessions: Sequence[SessionEvents],
    observations: Mapping[str, Mapping[str, Verdict]],
) -> list[SessionReport]:
    """Score each session from its first event to its close; reports in the given order."""
    compiled = compile_rubric(rubric, scenario)
    state = ScoringState.new(compiled, capacity=max(len(sessions), 1))
    slots = state.open([s.session for s in sessions])
    batch = batch_from_events(
        scenario,
        ((int(slot), e) for s, slot in zip(sessions, slots, strict=True) for e in s.events),
    )
    log = DecisionLog(compiled)
    for start in range(0, len(batch), BATCH_ROWS):
        log.add(step(compiled, state, batch.take(slice(start, start + BATCH_ROWS))))
    close_t = np.array([s.end_t for s in sessions], np.float64)
    log.add(close(compiled, state, slots, close_t))
    return [
        log.pop_report(
            int(slot), s.session, observations=observations.get(s.session), span=_span(s)
        )
        for s, slot in zip(sessions, slots, strict=True)
    ]


def _span(session: SessionEvents) -> Span:
    events = session.events
    return Span(
        first_seq=events[0].seq if events else None,
        first_t=events[0].t if events else None,
        last_seq=events[-1].seq if events else None,
        close_t=session.end_t,
    )
