"""With `Engine(overlap_commits=True)` (setting `commit_thread`; off by default) a round's group
commit runs in the engine's commit thread while the ingest thread takes and decides the next
round, for rounds of at least `overlap_min_bytes` whose batches are not small; other rounds
are committed in place (most tests below hand over every round, `EVERY_ROUND`). What must
not change:
every answer goes out in arrival order, no batch is ACKed before its commit returned, a bad
frame or a failed commit spoils nothing else, and `stop` answers the round being committed
before the transport closes. A store whose appends wait at a gate makes the overlap happen
when the tests want it (no sleeps, no timing)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.events import Event
from assessengine.core.wire import WireModel
from assessengine.ingest.fake import FakePeer, FakeTransport
from assessengine.ingest.port import Message
from assessengine.runtime.engine import OVERLAP_MIN_BATCH_BYTES, OVERLAP_MIN_BYTES
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import Payload, SessionRecord, StoredBatch, StoreError

from .ingest_engine import DEMO, chain_intact, running

LAYOUT = Layout.of(DEMO)
TIMEOUT = 120.0  # an upper bound only (nothing here waits for time to pass)
EVERY_ROUND = {"overlap_commits": True, "overlap_min_bytes": 0, "overlap_min_batch_bytes": 0}


class GatedStore(MemoryStore):
    """A `MemoryStore` that records which thread appends, and whose next append, once `hold`
    is set, waits for `release` (raising StoreError then if `fail_held`)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_held = False
        self.threads: list[str] = []

    def append_batches(
        self, items: Sequence[tuple[str, int, int, str, bytes, Payload]]
    ) -> list[StoredBatch]:
        self.threads.append(threading.current_thread().name)
        if self.hold.is_set():
            self.hold.clear()
            self.entered.set()
            assert self.release.wait(TIMEOUT)
            if self.fail_held:
                raise StoreError("disk full (simulated)")
        return super().append_batches(items)


class CheckedTransport(FakeTransport):
    """A `FakeTransport` that notes every ACK sent for a seq its store does not hold yet, and
    counts the messages it handed to the engine."""

    def __init__(self, store: MemoryStore, **options: Any) -> None:
        super().__init__(**options)
        self.store = store
        self.early: list[dict[str, Any]] = []
        self.polled = 0
        self._polled = threading.Condition()

    def poll(self, timeout: float, *, max_bytes: int | None = None) -> list[Message]:
        out = super().poll(timeout, max_bytes=max_bytes)
        with self._polled:
            self.polled += len(out)
            self._polled.notify_all()
        return out

    def wait_polled(self, n: int) -> bool:
        with self._polled:
            return self._polled.wait_for(lambda: self.polled >= n, TIMEOUT)

    def reply(self, identity: bytes, header: WireModel | bytes, *frames: bytes) -> None:
        if isinstance(header, bytes) and header.startswith(b'{"type":"ACK"'):
            ack = json.loads(header)
            record = self.store.session(ack["session"])
            if record is None or record.next_seq <= ack["seq"]:
                self.early.append(ack)
        super().reply(identity, header, *frames)


def _open(peer: FakePeer, session: str) -> None:
    reply = peer.request({"type": "OPEN", "session": session, "learner": "L", "scenario": "demo",
                          "rubric": "r"}, timeout=TIMEOUT)  # fmt: skip
    assert reply["type"] == "OPENED", reply


def _events(session: str, first: int, n: int) -> tuple[dict[str, Any], bytes]:
    events = [Event(first + i, 0.1 * (first + i), "sample", {"speed": 1.0}) for i in range(n)]
    payload = encode_columns_v1(Columns.from_events(events, LAYOUT), LAYOUT)
    return {"type": "EVENTS", "session": session, "first_seq": first, "count": n,
            "encoding": "columns-v1", "dtype": LAYOUT.dtype_header()}, payload  # fmt: skip


def _replies(peer: FakePeer, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        reply = peer.recv(TIMEOUT)
        assert reply is not None, f"{len(out)} of {n} replies came"
        out.append(reply)
    return out


def _answer(reply: dict[str, Any]) -> tuple[Any, ...]:
    if reply["type"] == "ACK":
        return ("ACK", reply["session"], reply["seq"])
    return (reply["type"], reply["session"], reply.get("code"))


def test_rounds_overlapping_their_commits_answer_in_arrival_order_after_each_commit() -> None:
    store = GatedStore()
    transport = CheckedTransport(store, max_messages=2)
    peer = transport.peer()
    sessions = ["A", "B", "C"]
    with running(store, transport, round_messages=2, **EVERY_ROUND):  # small rounds
        for s in sessions:
            _open(peer, s)
        sent = [_events(s, 5 * k, 5) for k in range(10) for s in sessions]
        for header, payload in sent:
            peer.send(header, payload)
        replies = _replies(peer, len(sent))
    assert [_answer(r) for r in replies] == [
        ("ACK", h["session"], h["first_seq"] + 4) for h, _ in sent
    ]
    assert transport.early == []
    assert "engine-commit_0" in store.threads  # the overlap happened
    for s in sessions:
        assert [(b.first_seq, b.count) for b in store.batches(s)] == [(5 * k, 5) for k in
                                                                       range(10)]  # fmt: skip
        assert chain_intact(store, s)


def test_a_bad_frame_in_an_overlapped_round_is_refused_alone_in_its_place() -> None:
    store = GatedStore()
    transport = CheckedTransport(store, max_messages=3)
    peer = transport.peer()
    with running(store, transport, round_messages=3, **EVERY_ROUND):
        _open(peer, "A")
        _open(peer, "B")
        good = [_events("A", 5 * k, 5) for k in range(4)]
        bad_header, payload = _events("B", 0, 5)
        sent = [*good[:2], (bad_header, payload[:-3]), *good[2:]]  # truncated
        for header, body in sent:
            peer.send(header, body)
        replies = _replies(peer, len(sent))
    assert [_answer(r) for r in replies] == [
        ("ACK", "A", 4), ("ACK", "A", 9), ("NACK", "B", "truncated"), ("ACK", "A", 14),
        ("ACK", "A", 19),
    ]  # fmt: skip
    assert transport.early == []
    assert [b.first_seq for b in store.batches("A")] == [0, 5, 10, 15]
    assert list(store.batches("B")) == []


def test_a_failed_commit_fails_the_round_decided_behind_it_and_nothing_unstored_is_acked(
) -> None:  # fmt: skip
    store = GatedStore()
    transport = CheckedTransport(store, max_messages=1)
    peer = transport.peer()
    with running(store, transport, round_messages=1, **EVERY_ROUND) as engine:
        _open(peer, "A")
        _open(peer, "B")
        polled = transport.polled
        store.hold.set()
        store.fail_held = True
        a1, a2, b1 = _events("A", 0, 5), _events("A", 5, 5), _events("B", 0, 5)
        for header, body in (a1, a2, b1):
            peer.send(header, body)
        assert store.entered.wait(TIMEOUT)  # A 0-4 is being committed, in the commit thread
        assert transport.wait_polled(polled + 2)  # A 5-9 is taken (decided after A 0-4)
        store.release.set()
        first = [_answer(r) for r in _replies(peer, 3)]
        for header, body in (a1, a2):  # the client resends what was not ACKed
            peer.send(header, body)
        again = [_answer(r) for r in _replies(peer, 2)]
    assert first[:2] == [("NACK", "A", "internal"), ("NACK", "A", "internal")]
    assert first[2] == ("ACK", "B", 4)
    assert again == [("ACK", "A", 4), ("ACK", "A", 9)]
    assert transport.early == []
    assert [b.first_seq for b in store.batches("A")] == [0, 5]
    assert chain_intact(store, "A")
    assert engine.stats.store_errors >= 1


def test_stop_while_a_round_is_committed_answers_it_before_the_transport_closes() -> None:
    store = GatedStore()
    transport = CheckedTransport(store, max_messages=1)
    peer = transport.peer()
    with running(store, transport, round_messages=1, **EVERY_ROUND) as engine:
        _open(peer, "A")
        polled = transport.polled
        store.hold.set()
        a1, a2 = _events("A", 0, 5), _events("A", 5, 5)
        peer.send(*a1)
        peer.send(*a2)
        assert store.entered.wait(TIMEOUT)
        assert transport.wait_polled(polled + 2)
        stopping = threading.Thread(target=engine.stop)
        stopping.start()
        store.release.set()
        stopping.join(TIMEOUT)
        assert not stopping.is_alive()
    assert [_answer(r) for r in _replies(peer, 2)] == [("ACK", "A", 4), ("ACK", "A", 9)]
    assert transport.early == []
    assert [b.first_seq for b in store.batches("A")] == [0, 5]
    assert not any(t.name.startswith("engine-commit") for t in threading.enumerate())


def test_by_default_even_a_round_of_a_mebibyte_is_committed_in_the_ingest_thread() -> None:
    store = GatedStore()
    transport = CheckedTransport(store, max_messages=1)
    peer = transport.peer()
    big = -(-OVERLAP_MIN_BYTES // LAYOUT.itemsize)  # events: the payload reaches the bound
    with running(store, transport, round_messages=1):
        _open(peer, "A")
        peer.send(*_events("A", 0, big))
        assert [_answer(r) for r in _replies(peer, 1)] == [("ACK", "A", big - 1)]
    assert set(store.threads) == {"engine-ingest"}
    assert not any(t.name.startswith("engine-commit") for t in threading.enumerate())
    assert chain_intact(store, "A")


def test_with_the_thread_a_small_round_is_committed_in_the_ingest_thread() -> None:
    store = GatedStore()
    transport = CheckedTransport(store, max_messages=2)
    peer = transport.peer()
    with running(store, transport, round_messages=2, overlap_commits=True):
        _open(peer, "A")
        for k in range(6):
            peer.send(*_events("A", 5 * k, 5))
        assert [_answer(r) for r in _replies(peer, 6)] == [("ACK", "A", 5 * k + 4)
                                                            for k in range(6)]  # fmt: skip
    assert set(store.threads) == {"engine-ingest"}
    assert transport.early == []


def test_with_the_thread_a_round_of_a_mebibyte_goes_to_the_commit_thread() -> None:
    store = GatedStore()
    transport = CheckedTransport(store, max_messages=1)
    peer = transport.peer()
    big = -(-OVERLAP_MIN_BYTES // LAYOUT.itemsize)  # events: the payload just reaches the bound
    with running(store, transport, round_messages=1, overlap_commits=True):
        _open(peer, "A")
        peer.send(*_events("A", 0, big - 1))  # one event short of the bound: in place
        assert [_answer(r) for r in _replies(peer, 1)] == [("ACK", "A", big - 2)]
        peer.send(*_events("A", big - 1, big))
        assert [_answer(r) for r in _replies(peer, 1)] == [("ACK", "A", 2 * big - 2)]
    assert store.threads == ["engine-ingest", "engine-commit_0"]
    assert transport.early == []
    assert chain_intact(store, "A")


def test_with_the_thread_a_mebibyte_of_small_batches_is_committed_in_the_ingest_thread() -> None:
    store = GatedStore()
    transport = CheckedTransport(store, max_messages=1000)
    peer = transport.peer()
    n = OVERLAP_MIN_BATCH_BYTES // LAYOUT.itemsize - 1  # events: a batch just below the mean
    batches = -(-OVERLAP_MIN_BYTES // (n * LAYOUT.itemsize))  # a round of a MiB at least
    with running(store, transport, round_messages=1000, overlap_commits=True):
        _open(peer, "A")
        with transport._cond:  # queued at once: one round
            for k in range(batches):
                peer.send(*_events("A", n * k, n))
        assert [_answer(r) for r in _replies(peer, batches)] == [
            ("ACK", "A", n * (k + 1) - 1) for k in range(batches)
        ]
    assert set(store.threads) == {"engine-ingest"}
    assert len(store.threads) == 1  # one round, one commit
    assert transport.early == []


class Stepped(CheckedTransport):
    """A `CheckedTransport` that calls `after` (when set) with the messages a poll took, and
    counts the replies sent."""

    after: Callable[[list[Message]], None] | None = None
    replied = 0

    def reply(self, identity: bytes, header: WireModel | bytes, *frames: bytes) -> None:
        self.replied += 1
        super().reply(identity, header, *frames)

    def poll(self, timeout: float, *, max_bytes: int | None = None) -> list[Message]:
        out = super().poll(timeout, max_bytes=max_bytes)
        if self.after is not None:
            self.after(out)
        return out


def test_a_committed_round_is_answered_while_the_next_round_is_still_decided() -> None:
    """Round 1 (A's large batch) is committed in the commit thread while round 2 (B's batch,
    then one for a session never opened) is taken and decided; the ACK of round 1 goes out
    as soon as its commit has returned, between two decisions of round 2, not only once
    round 2 is decided and stored. (Deciding the unknown session's batch is the one store
    read of round 2: the store notes how many replies were sent by then.)"""
    store = LookedUpStore()
    transport = Stepped(store, max_messages=2)
    peer = transport.peer()
    a1, b1, z1 = _events("A", 0, 40), _events("B", 0, 1), _events("Z", 0, 1)
    round_bytes = len(a1[1])  # A's batch fills a round alone; the other two do not
    with running(store, transport, round_messages=10, round_bytes=round_bytes,
                 **EVERY_ROUND) as engine:  # fmt: skip
        _open(peer, "A")
        _open(peer, "B")

        def after(out: list[Message]) -> None:
            if any(getattr(m.header, "session", None) == "B" for m in out):
                store.release.set()
                inflight = engine._inflight
                assert inflight is not None  # round 1 is still being committed
                inflight.future.result(TIMEOUT)  # and has returned now

        store.replied = lambda: transport.replied - opened
        opened = transport.replied
        store.hold.set()
        transport.after = after
        with transport._cond:  # all three queued at once: the rounds are a1, then b1 + z1
            for header, body in (a1, b1, z1):
                peer.send(header, body)
        replies = [_answer(r) for r in _replies(peer, 3)]
    assert replies == [("ACK", "A", 39), ("ACK", "B", 0), ("NACK", "Z", "unknown_session")]
    assert store.replied_at_lookup == [1]  # round 1's ACK went out before z1 was decided
    assert transport.early == []


class LookedUpStore(GatedStore):
    """A `GatedStore` that notes `replied()` whenever session ``Z`` is looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.replied: Callable[[], int] = lambda: 0
        self.replied_at_lookup: list[int] = []

    def session(self, session_id: str) -> SessionRecord | None:
        if session_id == "Z":
            self.replied_at_lookup.append(self.replied())
        return super().session(session_id)
