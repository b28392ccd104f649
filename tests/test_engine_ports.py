"""The engine drives any scoring backend and any ingest transport through their ports: a
recording backend sees each session's OPEN, batches and CLOSE in order, its counters reach
/metrics, a backend that cannot start stops `Engine.start`, and one that stops stops the
engine. Runs on the in-process fake transport (no sockets)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pytest

from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.events import Event
from assessengine.ingest.fake import FakeTransport
from assessengine.runtime.engine import Engine
from assessengine.runtime.pipeline import Recovery
from assessengine.runtime.scoring import Batches, Closes, Opens, ScoringBackendError
from assessengine.storage.memory import MemoryStore

from .ingest_engine import DEMO, demo_library, running

LAYOUT = Layout.of(DEMO)
OPEN = {"type": "OPEN", "session": "S1", "learner": "L1", "scenario": "demo", "rubric": "r"}


class Recording:
    """A `ScoringBackend` that records what it is given and scores nothing."""

    def __init__(self, *, fail_start: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.events_scored = self.reports_saved = self.sessions_open = self.scoring_errors = 0
        self.alive = True
        self.unsaved_reports: frozenset[str] = frozenset()  # every report saved at once
        self.closed = False
        self.idles = 0
        self._fail_start = fail_start
        self.started_in: str | None = None

    def start(self, skip: Collection[str] = frozenset()) -> Recovery:
        self.started_in = threading.current_thread().name
        if self._fail_start:
            raise ScoringBackendError("no scorer today")
        return Recovery(reopened=3)

    def submit(self, opens: Opens, batches: Batches, closes: Closes,
               on_done: Callable[[], None]) -> None:  # fmt: skip
        self.calls += [("open", s) for s, *_ in opens]
        self.calls += [("batch", (s, int(cols.seq[0]), len(cols))) for s, cols, _ in batches]
        self.calls += [("close", (s, t)) for s, t in closes]
        self.events_scored += sum(len(cols) for _, cols, _ in batches)
        self.reports_saved += len(closes)
        on_done()

    def idle(self) -> None:
        self.idles += 1

    def drain(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def _batch(first: int, n: int) -> tuple[dict[str, Any], bytes]:
    events = [Event(first + i, 0.1 * (first + i), "sample", {"speed": 1.0}) for i in range(n)]
    payload = encode_columns_v1(Columns.from_events(events, LAYOUT), LAYOUT)
    return {"type": "EVENTS", "session": "S1", "first_seq": first, "count": n,
            "encoding": "columns-v1", "dtype": LAYOUT.dtype_header()}, payload  # fmt: skip


@pytest.fixture
def backend() -> Recording:
    return Recording()


@pytest.fixture
def engine(backend: Recording) -> Iterator[tuple[Engine, FakeTransport]]:
    transport = FakeTransport()
    with running(MemoryStore(), transport, scoring=backend) as e:
        yield e, transport


def test_a_backend_gets_each_sessions_work_in_order_and_reports_through_metrics(
    engine: tuple[Engine, FakeTransport], backend: Recording
) -> None:
    e, transport = engine
    peer = transport.peer()
    assert peer.request(OPEN)["type"] == "OPENED"
    assert peer.request(*_batch(0, 5))["seq"] == 4
    assert peer.request(*_batch(5, 3))["seq"] == 7
    assert peer.request({"type": "CLOSE", "session": "S1", "t": 2.0, "next_seq": 8})["seq"] == 7
    assert e.wait_idle(60)
    assert backend.calls == [("open", "S1"), ("batch", ("S1", 0, 5)), ("batch", ("S1", 5, 3)),
                             ("close", ("S1", 2.0))]  # fmt: skip
    assert backend.started_in == "engine-scoring"
    assert e.stats.recovery.reopened == 3
    text = e.metrics_text()
    assert "assessengine_events_scored_total 8" in text
    assert "assessengine_reports_saved_total 1" in text


def test_the_engine_closes_its_backend_when_it_stops(backend: Recording) -> None:
    with running(MemoryStore(), FakeTransport(), scoring=backend):
        assert not backend.closed
    assert backend.closed


def test_a_backend_that_cannot_start_stops_the_engine_start() -> None:
    backend = Recording(fail_start=True)
    engine = Engine(MemoryStore(), demo_library(), FakeTransport(), scoring=backend)
    with pytest.raises(ScoringBackendError, match="no scorer today"):
        engine.start()
    assert not engine.running
    assert backend.closed


def test_the_engine_is_not_running_once_its_backend_stopped(
    engine: tuple[Engine, FakeTransport], backend: Recording
) -> None:
    e, _ = engine
    assert e.running
    backend.alive = False
    assert not e.running


def test_one_round_stores_then_answers_every_message_in_arrival_order() -> None:
    """All five messages are queued before the engine starts, so its first round takes them
    together (the fake transport makes this deterministic): the OPEN is stored before the
    batches that follow it, a resend of a batch still pending in the round is ACKed after the
    commit, and every answer goes out in arrival order."""
    transport, store = FakeTransport(), MemoryStore()
    peer = transport.peer()
    close = {"type": "CLOSE", "session": "S1", "t": 2.0, "next_seq": 8}
    for frames in ([OPEN], _batch(0, 5), _batch(0, 5), _batch(5, 3), [close]):
        peer.send(*frames)
    with running(store, transport) as e:
        replies = [peer.recv(60) for _ in range(5)]
        assert e.wait_idle(60)
        assert e.stats.duplicates == 1
    assert [r["type"] if r else None for r in replies] == ["OPENED", "ACK", "ACK", "ACK",
                                                           "CLOSED"]  # fmt: skip
    assert [r["seq"] for r in replies[1:] if r] == [4, 4, 7, 7]
    assert [(b.first_seq, b.count) for b in store.batches("S1")] == [(0, 5), (5, 3)]
    assert store.report("S1") is not None
