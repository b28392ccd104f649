"""Scoring in a process of its own (`Engine(scoring="process")`, what `serve` and `demo` run):
rows reach the process exactly in either form, a process that cannot start says why, the
engine says it stopped when its scoring process dies (acknowledged events stay safe and a
restart scores them), and only a store another process can open (by URL) is shared with it.
(Final reports, bad input, recovery: the engine tests run in both modes; the SIGKILL test runs
`serve`.)"""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from assessengine.client import EngineClient
from assessengine.compose import open_store, scoring_backend
from assessengine.core.codec import Columns, Layout, decode_json_v1, encode_json_v1, records_v1
from assessengine.runtime.scoring_process import RemoteScorer, ScoringProcessError, _Buffer
from assessengine.sim.generate import SimBatch
from assessengine.storage.memory import MemoryStore
from assessengine.streaming import stream_sessions

from .test_engine_helpers import FAST, library, offline_reports, reports, running_engine, sessions
from .waits import WAIT_S


def _columns(n: int, k: int, seed: int) -> Columns:
    rng = np.random.default_rng(seed)
    signals = rng.normal(size=(k, n))
    signals[rng.random((k, n)) < 0.3] = np.nan
    return Columns(np.arange(5, 5 + n, dtype=np.int64), np.cumsum(rng.random(n)),
                   rng.integers(0, 2, n).astype(np.int32), signals)  # fmt: skip


def _same(a: Columns, b: Columns) -> bool:
    return (np.array_equal(a.seq, b.seq) and np.array_equal(a.t, b.t)
            and np.array_equal(a.event, b.event)
            and np.array_equal(a.signals, b.signals, equal_nan=True))  # fmt: skip


def test_rows_reach_the_scoring_process_exactly_as_records_or_as_columns() -> None:
    layout = Layout.from_names(["speed", "load", "tilt"], ["sample", "alarm"])
    binary, parsed = _columns(37, 3, 1), _columns(50, 3, 2)
    records = records_v1(binary, layout)
    from_json = decode_json_v1(encode_json_v1(parsed, layout), layout, first_seq=5, count=50)
    buffer = _Buffer.create(1 << 16)
    try:
        assert buffer.put(8, binary, records) == "records"
        assert buffer.put(4096, from_json, None) == "columns"
        reader = _Buffer(buffer.path, buffer.size, owner=False)  # as the process maps it
        try:
            as_records, as_columns = reader.views([("records", 8, 37, layout),
                                                   ("columns", 4096, 50, layout)])  # fmt: skip
            assert _same(as_records, binary)
            assert _same(as_columns, parsed)
            del as_records, as_columns
        finally:
            reader.close()
    finally:
        buffer.close()
    assert not Path(buffer.path).exists()


def test_a_scoring_process_that_cannot_start_says_why(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-store"
    folder.mkdir()
    scorer = RemoteScorer(functools.partial(open_store, folder, recover=False), library())
    with pytest.raises(ScoringProcessError, match=r"could not start: StoreOpenError: .*directory"):
        scorer.start()
    assert not scorer.alive


def test_only_a_store_with_a_url_can_be_shared_with_a_scoring_process() -> None:
    with pytest.raises(ValueError, match="needs a store URL"):
        scoring_backend("process", MemoryStore(), library())
    with pytest.raises(ValueError, match="'thread' or 'process'"):
        scoring_backend("fork", MemoryStore(), library())  # type: ignore[arg-type]


def test_the_engine_says_it_stopped_when_its_scoring_process_dies(tmp_path: Path) -> None:
    sim = sessions("forklift-warehouse", 2, seed=31)
    db = tmp_path / "e.db"
    with running_engine(db, scoring="process") as (engine, _store):
        assert isinstance(engine.scoring, RemoteScorer)
        assert engine.scoring.pid is not None
        with EngineClient(engine.endpoint, client_id="sim", **FAST) as c:
            for k, sid in enumerate(sim.session_ids):
                c.open(sid, learner=sim.learners[k], scenario=sim.scenario, rubric=sim.rubric,
                       metadata={"profile": sim.profiles[k]})  # as `stream_sessions` opens it
            half = _rows(sim, 0, 0.5)
            c.send(sim.session_ids[0], half)
            c.flush(WAIT_S)
            assert engine.wait_idle(60)
            os.kill(engine.scoring.pid, signal.SIGKILL)
            deadline = time.monotonic() + WAIT_S
            while engine.running and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not engine.running
            c.send(sim.session_ids[0], _rows(sim, 0.5, 1.0))  # still stored and ACKed
            c.flush(WAIT_S)
            assert c.acked(sim.session_ids[0]) == int(np.diff(sim.offsets)[0]) - 1
    with running_engine(db, scoring="process") as (engine, _store):
        assert engine.stats.recovery.reopened == 2
        with EngineClient(engine.endpoint, client_id="sim", **FAST) as c:
            stream_sessions(c, sim)
        assert engine.wait_idle(WAIT_S)
    assert reports(db, sim.session_ids) == offline_reports(sim, tmp_path)


def _rows(sim: SimBatch, start: float, end: float) -> Columns:
    """Session 0's rows from fraction `start` to `end` of it."""
    lo, hi = int(sim.offsets[0]), int(sim.offsets[1])
    a, b = lo + int((hi - lo) * start), lo + int((hi - lo) * end)
    return Columns(sim.seq[a:b], sim.t[a:b], sim.event[a:b], sim.signals[:, a:b])
