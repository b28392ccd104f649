"""Where the ingest thread's time goes: `/metrics` counts its CPU seconds, the seconds it
waited for a message (nothing queued) and the seconds it waited for room in the work queue
(scoring behind: backpressure). Runs on the in-process fake transport (no sockets)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.events import Event
from assessengine.ingest.fake import FakeTransport
from assessengine.runtime.engine import CloseItem, Engine, WorkQueue
from assessengine.runtime.pipeline import Recovery
from assessengine.runtime.scoring import Batches, Closes, Opens
from assessengine.storage.memory import MemoryStore

from .ingest_engine import DEMO, running

LAYOUT = Layout.of(DEMO)
OPEN = {"type": "OPEN", "session": "S1", "learner": "L1", "scenario": "demo", "rubric": "r"}
WAIT_S = 60.0


class Gate:
    """A `ScoringBackend` that scores nothing and finishes no submission until `release`d:
    what it was given stays counted in the work queue."""

    def __init__(self) -> None:
        self.events_scored = self.reports_saved = self.sessions_open = self.scoring_errors = 0
        self.alive = True
        self.unsaved_reports: frozenset[str] = frozenset()
        self.submitted = 0
        self._open = threading.Event()
        self._held: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def start(self, skip: Collection[str] = frozenset()) -> Recovery:
        return Recovery()

    def submit(self, opens: Opens, batches: Batches, closes: Closes,
               on_done: Callable[[], None]) -> None:  # fmt: skip
        with self._lock:
            self.submitted += 1
            if not self._open.is_set():
                self._held.append(on_done)
                return
        on_done()

    def release(self) -> None:
        with self._lock:
            self._open.set()
            held, self._held = self._held, []
        for on_done in held:
            on_done()

    def idle(self) -> None:
        pass

    def drain(self, timeout: float) -> bool:
        self.release()
        return True

    def close(self) -> None:
        self.release()


def _batch(first: int, n: int) -> tuple[dict[str, Any], bytes]:
    events = [Event(first + i, 0.1 * (first + i), "sample", {"speed": 1.0}) for i in range(n)]
    payload = encode_columns_v1(Columns.from_events(events, LAYOUT), LAYOUT)
    return {"type": "EVENTS", "session": "S1", "first_seq": first, "count": n,
            "encoding": "columns-v1", "dtype": LAYOUT.dtype_header()}, payload  # fmt: skip


def _metric(engine: Engine, name: str) -> float:
    for line in engine.metrics_text().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def _until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_an_idle_engine_counts_its_wait_for_messages_not_cpu_or_backpressure() -> None:
    with running(MemoryStore(), FakeTransport(), poll_interval=0.01) as engine:
        assert _until(lambda: _metric(engine, "assessengine_ingest_idle_seconds_total") > 0)
        idle = _metric(engine, "assessengine_ingest_idle_seconds_total")
        uptime = _metric(engine, "assessengine_uptime_seconds")
        cpu = _metric(engine, "assessengine_ingest_cpu_seconds_total")
        assert _metric(engine, "assessengine_ingest_blocked_seconds_total") == 0
    assert idle <= uptime
    assert 0 <= cpu <= time.process_time()


def test_a_busy_round_counts_ingest_cpu() -> None:
    transport = FakeTransport()
    with running(MemoryStore(), transport) as engine:
        peer = transport.peer()
        assert peer.request(OPEN)["type"] == "OPENED"
        for k in range(20):
            assert peer.request(*_batch(50 * k, 50))["seq"] == 50 * k + 49
        assert _until(lambda: engine.stats.ingest_cpu_seconds > 0)
        cpu = _metric(engine, "assessengine_ingest_cpu_seconds_total")
    assert 0 < cpu <= time.process_time()


def test_a_scorer_that_takes_nothing_shows_as_ingest_blocked_seconds() -> None:
    """The queue holds one batch; a scorer that finishes nothing keeps it full: the ingest
    thread waits for room (counted), and goes on once the scorer finishes."""
    gate, transport = Gate(), FakeTransport()
    with running(MemoryStore(), transport, scoring=gate, queue_bytes=1) as engine:
        peer = transport.peer()
        assert peer.request(OPEN)["type"] == "OPENED"
        assert peer.request(*_batch(0, 10))["seq"] == 9  # queued, submitted, never finished
        peer.send(*_batch(10, 10))  # not taken: no room in the queue
        assert _until(lambda: engine.queue.blocked_seconds > 0.05)
        assert engine.stats.batches_stored == 1
        gate.release()
        answer = peer.recv(WAIT_S)
        assert answer is not None
        assert answer["seq"] == 19
        blocked = _metric(engine, "assessengine_ingest_blocked_seconds_total")
    assert blocked >= 0.05


def test_a_put_that_waits_for_room_counts_as_blocked() -> None:
    queue = WorkQueue(10)
    queue.put(_item(), 10)
    taker = threading.Timer(0.05, lambda: queue.done(1, 10))
    taker.start()
    queue.put(_item(), 5)  # waits until the first is finished with
    taker.join()
    assert queue.blocked_seconds > 0
    before = queue.blocked_seconds
    queue.put(_item(), 0)  # no bytes: never waits
    assert queue.wait_room(0) is True  # room: returns at once, nothing counted
    assert queue.blocked_seconds == before


def _item() -> CloseItem:
    return CloseItem("S1", 1.0)
