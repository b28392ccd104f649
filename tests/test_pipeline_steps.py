"""How the live scorer cuts queued batches into kernel steps and gathers their columns."""

from __future__ import annotations

import numpy as np
import pytest

from assessengine.adapters.library import load_scenario
from assessengine.core.codec import (
    Columns,
    Layout,
    decode_columns_v1,
    decode_json_v1,
    encode_columns_v1,
    encode_json_v1,
)
from assessengine.core.scorer import SCRATCH_ROWS
from assessengine.runtime.pipeline import RubricEntry, Scorer, _batch, _steps
from assessengine.sim.generate import simulate
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import SessionInfo

from .test_engine_helpers import library

SCENARIO = "forklift-warehouse"


def _session_columns(n_sessions: int) -> tuple[Layout, list[Columns]]:
    scenario = load_scenario(SCENARIO)
    sim = simulate(scenario, "mixed", n_sessions, seed=11, rubric="forklift-load-handling")
    batch = sim.batch()
    parts = []
    for s in range(n_sessions):
        rows = np.flatnonzero(batch.session == s)
        parts.append(Columns(batch.seq[rows], batch.t[rows], batch.event[rows].astype(np.int32),
                             np.ascontiguousarray(batch.signals[:, rows])))  # fmt: skip
    return Layout.of(scenario), parts


def _decoded(cols: Columns, layout: Layout, encoding: str) -> Columns:
    first, n = int(cols.seq[0]), len(cols)
    if encoding == "columns-v1":  # read-only, unaligned strided views of the payload
        payload = encode_columns_v1(cols, layout)
        return decode_columns_v1(payload, layout, dtype=layout.dtype_header(),
                                 first_seq=first, count=n)  # fmt: skip
    return decode_json_v1(encode_json_v1(cols, layout), layout, first_seq=first, count=n)


@pytest.mark.parametrize("encoding", ["columns-v1", "json-v1"])
def test_a_step_gathers_decoded_batches_in_order(encoding: str) -> None:
    layout, sessions = _session_columns(3)
    parts = [(7 - k, _decoded(cols.tail(0), layout, encoding)) for k, cols in enumerate(sessions)]
    batch = _batch(parts)
    np.testing.assert_array_equal(batch.session, np.repeat([7, 6, 5], [len(c) for c in sessions]))
    np.testing.assert_array_equal(batch.seq, np.concatenate([c.seq for c in sessions]))
    np.testing.assert_array_equal(batch.t, np.concatenate([c.t for c in sessions]))
    np.testing.assert_array_equal(batch.event, np.concatenate([c.event for c in sessions]))
    np.testing.assert_array_equal(
        batch.signals, np.concatenate([c.signals for c in sessions], axis=1)
    )
    assert batch.signals.flags.c_contiguous
    assert batch.signals.flags.writeable


def test_steps_hold_at_most_scratch_rows_unless_one_batch_is_larger() -> None:
    def part(n: int) -> tuple[int, Columns]:
        return (0, Columns(np.arange(n), np.zeros(n), np.zeros(n, np.int32), np.zeros((1, n))))

    sizes = [40_000, 25_536, 1, 70_000, 10, 65_536, 3]
    steps = [[len(c) for _, c in chunk] for chunk in _steps([part(n) for n in sizes])]
    assert steps == [[40_000, 25_536], [1], [70_000], [10], [65_536], [3]]
    assert all(sum(s) <= SCRATCH_ROWS or len(s) == 1 for s in steps)


def test_scoring_many_batches_at_once_equals_scoring_them_one_by_one() -> None:
    """More rows than one step holds, in one `score` call, give the same reports as one call
    per batch (the kernel steps are cut at batch boundaries)."""
    _, sessions = _session_columns(40)
    assert sum(map(len, sessions)) > 2 * SCRATCH_ROWS
    named = [(f"S{k}", c) for k, c in enumerate(sessions)]
    chunks = [(sid, part) for sid, cols in named
              for part in (Columns(cols.seq[:500], cols.t[:500], cols.event[:500],
                                   cols.signals[:, :500]), cols.tail(500))]  # fmt: skip
    entry = library().resolve(SCENARIO, "forklift-load-handling", None)
    assert isinstance(entry, RubricEntry)
    reports = []
    for together in (True, False):
        store = MemoryStore()
        scorer = Scorer(store, library())
        for sid, _ in named:
            store.open_session(SessionInfo(sid, "L", SCENARIO, "forklift-load-handling", 1,
                                           "0" * 64))  # fmt: skip
            scorer.open(sid, entry)
        if together:
            scorer.score(chunks)
        else:
            for one in chunks:
                scorer.score([one])
        closed = scorer.close_many([(sid, float(c.t[-1]) + 1) for sid, c in named])
        reports.append({sid: r.to_data() for sid, r in closed.items()})
    assert reports[0] == reports[1]
    assert len(reports[0]) == 40
