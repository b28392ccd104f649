"""`kernel_scorer.outline_stream` (verdicts only, `scoring.VerdictLog`) gives each session's
outline equal to `Outline.of` its `score_stream` report, on all four scenarios, with assessors'
observations recorded (pass, fail, pending, and on criteria that are not observed), across
batch boundaries."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from assessengine.adapters.library import load_rubric
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import EventBatch
from assessengine.core.kernel_scorer import outline_stream, score_stream
from assessengine.core.report import Verdict
from assessengine.core.scoring import Outline
from assessengine.sim.generate import SimBatch, simulate

from .archive_data import RUBRICS

SESSIONS = 6


def _batches(run: SimBatch, rows: int) -> Iterator[EventBatch]:
    for lo in range(0, len(run), rows):
        part = slice(lo, lo + rows)
        yield EventBatch(run.session[part], run.seq[part], run.t[part], run.event[part],
                         run.signals[:, part])  # fmt: skip


@pytest.mark.parametrize("scenario", sorted(RUBRICS))
@pytest.mark.parametrize("rows", [997, 1 << 20])
def test_outlines_equal_the_reports_outlines(scenario: str, rows: int) -> None:
    rubric, loaded = load_rubric(RUBRICS[scenario])
    compiled = compile_rubric(rubric, loaded)
    run = simulate(loaded, "mixed", SESSIONS, seed=11, rubric=rubric.rubric)
    ids = list(run.session_ids)
    observed = [c.id for c in rubric.criteria if c.observed is not None]
    other = next(c.id for c in rubric.criteria if c.observed is None)
    marks: list[Verdict] = ["pass", "fail", "pending"]
    observations: dict[str, dict[str, Verdict]] = {
        sid: {**dict.fromkeys(observed, marks[k % 3]), other: "fail"}
        for k, sid in enumerate(ids[:-1])  # the last session: nothing recorded
    }
    close_t = np.asarray(run.close_t, np.float64)
    reports = score_stream(compiled, _batches(run, rows), ids, close_t, observations=observations)
    outlines = outline_stream(compiled, _batches(run, rows), ids, close_t,
                              observations=observations)  # fmt: skip
    assert outlines == [Outline.of(r) for r in reports]
    assert [o.session for o in outlines] == ids
    if observed:  # a recorded pass or fail decides a pending observed criterion
        verdicts = dict(outlines[0].verdicts)
        assert all(verdicts[c] == "pass" for c in observed)


def test_a_session_without_events_is_pending_in_both() -> None:
    rubric, loaded = load_rubric(RUBRICS["network-lab"])
    compiled = compile_rubric(rubric, loaded)
    close_t = np.array([5.0], np.float64)
    reports = score_stream(compiled, [], ["S-empty"], close_t)
    outlines = outline_stream(compiled, [], ["S-empty"], close_t)
    assert outlines == [Outline.of(r) for r in reports]
