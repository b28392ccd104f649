"""Backpressure: a client that offers ten times what the scorer can take is slowed down to the
scorer's pace, and one whose scoring process stalls is stopped at the queue's bound; the
engine's memory stays bounded (bounded work queue, ZeroMQ high-water mark) and nothing is
lost."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from assessengine.client import EngineClient
from assessengine.core.codec import Columns
from assessengine.runtime.scoring import ThreadScoring
from assessengine.runtime.scoring_process import RemoteScorer
from assessengine.streaming import stream_sessions

from .test_engine_helpers import FAST, offline_reports, reports, running_engine, sessions
from .waits import WAIT_S

SCENARIO = "forklift-warehouse"
SESSIONS = 16               # about 74,000 events (4.4 MB of columns-v1) per round
OVERLOAD = 10               # the client offers this many times the throttled scorer's pace
QUEUE_BYTES = 256 * 2**10
BATCH_BYTES = 32 * 2**10


def _sender(conn: Connection, endpoint: str) -> None:
    """Streams SESSIONS sessions (ids from `first`) at full speed per command (first,
    timeout)."""
    try:
        with EngineClient(endpoint, client_id="flood", batch_bytes=BATCH_BYTES, **FAST) as c:
            while (command := conn.recv()) is not None:
                first, timeout = command
                sim = sessions(SCENARIO, SESSIONS, seed=1, first=first)
                start = time.perf_counter()
                sent = stream_sessions(c, sim, timeout=timeout)
                conn.send((sent.events, time.perf_counter() - start))
    finally:
        conn.close()


@contextmanager
def _flooding_client(endpoint: str) -> Iterator[Connection]:
    """A `_sender` process streaming to `endpoint`; yields the pipe that commands it (send
    (first session number, timeout), receive (events, seconds)); stopped on exit."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    sender = context.Process(target=_sender, args=(theirs, endpoint))
    sender.start()
    try:
        yield ours
        ours.send(None)
    finally:
        sender.join(WAIT_S)
        if sender.is_alive():
            sender.kill()
            sender.join()
        ours.close()
        theirs.close()


class _Throttle:
    """Wraps `Scorer.score`: once `rate` (events/s) is set, sleeps as long as scoring at that
    pace would take."""

    def __init__(self, score: Any) -> None:
        self.score, self.rate = score, 0.0

    def __call__(self, batches: Sequence[tuple[str, Columns]], **options: Any) -> Any:
        if self.rate:
            time.sleep(sum(len(cols) for _, cols in batches) / self.rate)
        return self.score(batches, **options)


def test_ten_times_overload_is_slowed_to_the_scorer_with_bounded_memory(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with running_engine(db, queue_bytes=QUEUE_BYTES, round_bytes=QUEUE_BYTES, rcvhwm=4) as (
        engine, _):  # fmt: skip
        assert isinstance(engine.scoring, ThreadScoring)
        throttle = _Throttle(engine.scoring.scorer.score)
        engine.scoring.scorer.score = throttle  # type: ignore[method-assign]
        with _flooding_client(engine.endpoint) as ours:
            ours.send((0, 60))  # unthrottled: the rate the client can offer
            assert ours.poll(60)
            events_a, seconds_a = ours.recv()
            assert engine.wait_idle(WAIT_S)
            # the scorer's pace is a tenth of what this client offers on this machine now,
            # so the overload is ten times however busy the machine is
            rate = events_a / seconds_a / OVERLOAD
            throttle.rate = rate
            tracemalloc.start()
            try:
                patience = 60 + 3 * OVERLOAD * seconds_a  # the throttled round's time, thrice
                ours.send((SESSIONS, patience))
                assert ours.poll(patience)
                events_b, seconds_b = ours.recv()
                assert engine.wait_idle(WAIT_S)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        queue_peak = engine.queue.peak_bytes
    payload = events_b * 60
    assert seconds_b >= 0.8 * events_b / rate  # the client was held back to the scorer's pace
    assert queue_peak <= QUEUE_BYTES + 2 * BATCH_BYTES
    assert peak < min(6 * QUEUE_BYTES, payload / 3), f"{peak:,} bytes traced for {payload:,}"
    sim = sessions(SCENARIO, SESSIONS, seed=1, first=SESSIONS)
    assert reports(db, sim.session_ids) == offline_reports(sim, tmp_path)


def test_a_stalled_scoring_process_holds_the_client_back_with_bounded_memory(
    tmp_path: Path,
) -> None:
    """With scoring in its own process (as `serve` runs it), a scorer that stops taking work
    (here: the process stopped with SIGSTOP) stops the ingest at the queue's bound; when it
    goes on, everything is scored exactly."""
    db = tmp_path / "e.db"
    with running_engine(db, queue_bytes=QUEUE_BYTES, round_bytes=QUEUE_BYTES, rcvhwm=4,
                        scoring="process") as (engine, _):  # fmt: skip
        assert isinstance(engine.scoring, RemoteScorer)
        assert engine.scoring.pid is not None
        with _flooding_client(engine.endpoint) as ours:
            os.kill(engine.scoring.pid, signal.SIGSTOP)  # idle: it holds no transaction
            tracemalloc.start()
            try:
                ours.send((0, 60))  # it floods a scorer that takes nothing, until held back:
                stalled = _settled(lambda: engine.stats.events_stored, quiet=1.0, timeout=60)
                assert not ours.poll(0)  # the client has not got through
                os.kill(engine.scoring.pid, signal.SIGCONT)
                assert ours.poll(60)
                events, _ = ours.recv()
                assert engine.wait_idle(WAIT_S)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
                os.kill(engine.scoring.pid, signal.SIGCONT)
        queue_peak = engine.queue.peak_bytes
    assert 0 < stalled * 60 <= 2 * QUEUE_BYTES + 2 * BATCH_BYTES  # the queue and one round
    assert queue_peak <= QUEUE_BYTES + 2 * BATCH_BYTES
    assert peak < min(6 * QUEUE_BYTES, events * 60 / 3), f"{peak:,} bytes traced"
    sim = sessions(SCENARIO, SESSIONS, seed=1)
    assert reports(db, sim.session_ids) == offline_reports(sim, tmp_path)


def _settled(value: Any, *, quiet: float, timeout: float) -> int:
    """`value()` once it is above zero and has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif last > 0 and time.monotonic() - since >= quiet:
            return int(last)
    raise AssertionError(f"still changing (or zero) after {timeout}s: {last}")
