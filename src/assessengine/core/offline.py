"""Offline scoring: whole recorded sessions in, one report per session out.

`score_sessions` scores `SessionEvents` objects (the reference scorer's input);
`score_chunks` scores a reader's stream of chunks (`core.recorded`) the way the live engine
does: each session gets a slot at its first chunk, batches are stepped as they come, a session
is decided and its slot freed at its close; so memory holds one chunk and the open sessions'
state, whatever the input's size. Both give the same reports for the same sessions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from . import kernel_scorer, reference
from .compiler import CompiledRubric
from .events import Event, SessionEvents
from .recorded import Chunk
from .report import SessionReport, Verdict
from .rubric import Rubric
from .scenario import Scenario
from .scorer import ScoringState, close_chunks, step
from .scoring import DecisionLog

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


@dataclass(slots=True)
class ScoredInput:
    """What `score_chunks` found: reports and open metadata by ordinal (first appearance),
    the skipped lines' messages and the number of events scored."""

    reports: list[SessionReport]
    opens: list[Mapping[str, Any]]
    problems: list[str] = field(default_factory=list)
    n_events: int = 0


def score_chunks(
    compiled: CompiledRubric,
    chunks: Iterable[Chunk],
    *,
    observations: Observations | None = None,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> ScoredInput:
    """Score every session of a reader's chunks (see the module docstring); `on_chunk` is
    called after each chunk is scored (progress)."""
    run = _Run(compiled, observations or {})
    for chunk in chunks:
        run.add(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
    return run.finish()


class _Run:
    """The state of one `score_chunks` call."""

    def __init__(self, compiled: CompiledRubric, observations: Observations) -> None:
        self.compiled = compiled
        self.observations = observations
        self.state = ScoringState.new(compiled, capacity=1024)
        self.log = DecisionLog(compiled)
        self.ids: list[str] = []
        self.slots = np.full(1024, -1, np.int32)
        self.reports: list[SessionReport | None] = []
        self.opens: list[Mapping[str, Any]] = []
        self.result = ScoredInput([], [])

    def add(self, chunk: Chunk) -> None:
        if chunk.sessions:
            self._open(chunk.sessions)
        for k, meta in chunk.opens.items():
            self.opens[k] = meta
        batch = chunk.batch
        slotted = type(batch)(self.slots[batch.session], batch.seq, batch.t, batch.event,
                              batch.signals)  # fmt: skip
        for start in range(0, len(slotted), kernel_scorer.BATCH_ROWS):
            part = slotted.take(slice(start, start + kernel_scorer.BATCH_ROWS))
            self.log.add(step(self.compiled, self.state, part))
        if chunk.closed.shape[0]:
            self._close(chunk.closed, chunk.close_t)
        self.result.problems.extend(chunk.problems)
        self.result.n_events += len(batch)

    def finish(self) -> ScoredInput:
        """Close every session still open at its last event; the result."""
        pending = np.flatnonzero(self.slots[: len(self.ids)] >= 0)
        if pending.shape[0]:
            self._close(pending.astype(np.int64), np.zeros(pending.shape[0], np.float64))
        self.result.reports = [r for r in self.reports if r is not None]
        self.result.opens = self.opens
        return self.result

    def _open(self, sessions: Sequence[str]) -> None:
        first = len(self.ids)
        self.ids.extend(sessions)
        if len(self.ids) > self.slots.shape[0]:
            grown = np.full(2 * len(self.ids), -1, np.int32)
            grown[:first] = self.slots[:first]
            self.slots = grown
        self.slots[first : len(self.ids)] = self.state.open(sessions)
        self.reports.extend([None] * len(sessions))
        self.opens.extend([{}] * len(sessions))

    def _close(self, ordinals: NDArray[np.int64], close_t: NDArray[np.float64]) -> None:
        slots = self.slots[ordinals]
        for decided in close_chunks(self.compiled, self.state, slots, close_t):
            self.log.add(decided)
        extents = kernel_scorer.spans(self.state, slots, close_t)
        for k, slot, span in zip(ordinals.tolist(), slots.tolist(), extents, strict=True):
            sid = self.ids[k]
            self.reports[k] = self.log.pop_report(
                slot, sid, observations=self.observations.get(sid), span=span
            )
        self.state.release_slots(slots.tolist())
        self.slots[ordinals] = -1


def collect_sessions(
    chunks: Iterable[Chunk], scenario: Scenario
) -> tuple[list[SessionEvents], list[str]]:
    """Every session of a reader's chunks as `SessionEvents` (an object per event: for the
    reference scorer and small inputs), by first appearance; and the skipped lines' messages."""
    sessions: list[SessionEvents] = []
    problems: list[str] = []
    names, signals = scenario.event_names, scenario.signal_names
    for chunk in chunks:
        sessions.extend(SessionEvents(sid) for sid in chunk.sessions)
        for k, meta in chunk.opens.items():
            sessions[k].open = meta
        b = chunk.batch
        values = b.signals.T.tolist()
        for k, seq, t, code, row in zip(b.session.tolist(), b.seq.tolist(), b.t.tolist(),
                                        b.event.tolist(), values, strict=True):  # fmt: skip
            reported = {n: v for n, v in zip(signals, row, strict=True) if not math.isnan(v)}
            sessions[k].events.append(Event(seq, t, names[code], reported))
        for k, ct in zip(chunk.closed.tolist(), chunk.close_t.tolist(), strict=True):
            sessions[k].close_t = ct
        problems.extend(chunk.problems)
    return sessions, problems
