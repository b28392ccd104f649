"""Offline scoring of whole recorded sessions with the compiled kernel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from .compiler import CompiledRubric, compile_rubric
from .events import EventBatch, SessionEvents, batch_from_events
from .report import SessionReport, Verdict
from .rubric import Rubric
from .scenario import Scenario
from .scorer import Decisions, ScoringState, close_chunks, step
from .scoring import DecisionLog, Outline, Span, VerdictLog

BATCH_ROWS = 65_536


def score_sessions(
    rubric: Rubric,
    scenario: Scenario,
    sessions: Sequence[SessionEvents],
    observations: Mapping[str, Mapping[str, Verdict]],
) -> list[SessionReport]:
    """Score each session from its first event to its close; reports in the given order."""
    batch = batch_from_events(scenario, ((k, e) for k, s in enumerate(sessions) for e in s.events))
    return score_columns(
        compile_rubric(rubric, scenario),
        batch,
        [s.session for s in sessions],
        np.array([s.end_t for s in sessions], np.float64),
        observations=observations,
    )


def score_columns(
    compiled: CompiledRubric,
    batch: EventBatch,
    session_ids: Sequence[str],
    close_t: NDArray[np.float64],
    *,
    observations: Mapping[str, Mapping[str, Verdict]] | None = None,
) -> list[SessionReport]:
    """Score whole sessions given as columns: `batch.session[i]` is an index into
    `session_ids` (rows in seq order within each session, sessions in any interleaving);
    `close_t[k]` closes session k. Reports in `session_ids` order."""
    chunks = (batch.take(slice(start, start + BATCH_ROWS))
              for start in range(0, len(batch), BATCH_ROWS))  # fmt: skip
    return score_stream(compiled, chunks, session_ids, close_t, observations=observations)


def score_stream(
    compiled: CompiledRubric,
    batches: Iterable[EventBatch],
    session_ids: Sequence[str],
    close_t: NDArray[np.float64],
    *,
    observations: Mapping[str, Mapping[str, Verdict]] | None = None,
) -> list[SessionReport]:
    """`score_columns` over a stream of batches (each `batch.session[i]` an index into
    `session_ids`; rows of one session in seq order across the whole stream): one batch is
    held at a time, so memory is bounded by the largest batch and the sessions' state.
    Reports in `session_ids` order, equal to `score_columns` over the concatenated batches."""
    observations = observations or {}
    log = DecisionLog(compiled)
    state, slots = _run(compiled, batches, session_ids, close_t, log)
    extents = spans(state, slots, close_t)
    return [
        log.pop_report(int(slot), sid, observations=observations.get(sid), span=span)
        for sid, slot, span in zip(session_ids, slots, extents, strict=True)
    ]


def outline_stream(
    compiled: CompiledRubric,
    batches: Iterable[EventBatch],
    session_ids: Sequence[str],
    close_t: NDArray[np.float64],
    *,
    observations: Mapping[str, Mapping[str, Verdict]] | None = None,
) -> list[Outline]:
    """`score_stream`'s reports as outlines (each equal to `Outline.of` the report), taken
    from the decisions' verdicts alone (`scoring.VerdictLog`): no evidence, no reports. For
    callers that need verdicts, score and outcome only (`assessengine rescore`'s summary)."""
    observations = observations or {}
    log = VerdictLog(compiled)
    _, slots = _run(compiled, batches, session_ids, close_t, log)
    return [log.pop_outline(int(slot), sid, observations=observations.get(sid))
            for sid, slot in zip(session_ids, slots, strict=True)]  # fmt: skip


class _Log(Protocol):
    def add(self, decisions: Decisions) -> None: ...


def _run(
    compiled: CompiledRubric,
    batches: Iterable[EventBatch],
    session_ids: Sequence[str],
    close_t: NDArray[np.float64],
    log: _Log,
) -> tuple[ScoringState, NDArray[np.int32]]:
    """Open the sessions, step every batch (in pieces of at most `BATCH_ROWS` rows) and close
    them, giving `log` every decision; the state and the sessions' slots."""
    state = ScoringState.new(compiled, capacity=max(len(session_ids), 1))
    slots = state.open(session_ids)
    for batch in batches:
        slotted = EventBatch(slots[batch.session], batch.seq, batch.t, batch.event, batch.signals)
        for start in range(0, len(slotted), BATCH_ROWS):
            log.add(step(compiled, state, slotted.take(slice(start, start + BATCH_ROWS))))
    for decided in close_chunks(compiled, state, slots, close_t):  # the close's memory: a part's
        log.add(decided)
    return state, slots


def spans(
    state: ScoringState, slots: NDArray[np.int32], close_t: NDArray[np.float64]
) -> list[Span]:
    """Each session's first event, last event and close, from the kernel's session state
    (after `close`; the live engine uses it too)."""
    out = []
    for row, ct in zip(state.rows(slots).tolist(), close_t.tolist(), strict=True):
        first_seq, last_seq, n_events = state.sess_i[row, :3].tolist()
        first_t, last_t = state.sess_f[row, :2].tolist()
        seen = n_events > 0
        out.append(
            Span(
                first_seq=first_seq if seen else None,
                first_t=first_t if seen else None,
                last_seq=last_seq if seen else None,
                close_t=max(ct, last_t) if seen else ct,
            )
        )
    return out
