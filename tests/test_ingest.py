"""The engine's ingest, its transports and its rules: every message gets one reply;
duplicates are re-ACKed, overlaps keep the new tail, gaps are NACKed with the expected seq,
and every malformed message gets a precise NACK code. The conversation runs on the real engine
over each transport (ZeroMQ on loopback, and the in-process fake), so both keep the same
contract; what only a socket does (binding, the hard frame cap) runs over ZeroMQ."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

import pytest

from assessengine.core.codec import Columns, Layout, decode_events, encode_columns_v1
from assessengine.core.events import Event
from assessengine.core.wire import NACK_CODES, Close, Events
from assessengine.ingest.fake import FakeTransport
from assessengine.ingest.port import TransportFactory
from assessengine.ingest.zmq import (
    CurveConfig,
    IngestConfigError,
    ZmqIngest,
    check_bind,
    zmq_transport,
)
from assessengine.ingest_rules import Accept, Duplicate, IngestRules, Reject, classify
from assessengine.runtime.engine import Engine
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import SessionInfo, SessionRecord, StoreError, kept_payload

from .ingest_engine import (
    DEMO,
    FailingStore,
    FakeStore,
    RawPeer,
    chain_intact,
    running,
    stored_batches,
)
from .waits import WAIT_S

LAYOUT = Layout.of(DEMO)
ENDPOINT = "tcp://127.0.0.1:*"


def events(first: int, n: int, t0: float = 0.0) -> list[Event]:
    return [Event(first + i, t0 + 0.1 * (first + i), "sample", {"speed": float(i)})
            for i in range(n)]


def events_msg(session: str, first: int, n: int, **head: Any) -> tuple[dict[str, Any], bytes]:
    payload = encode_columns_v1(Columns.from_events(events(first, n), LAYOUT), LAYOUT)
    header = {"type": "EVENTS", "session": session, "first_seq": first, "count": n,
              "encoding": "columns-v1", "dtype": LAYOUT.dtype_header()} | head
    return header, payload


OPEN = {"type": "OPEN", "session": "S1", "learner": "L1", "scenario": "demo", "rubric": "r"}


LIMITS = {"max_frame_bytes": 4096, "max_header_bytes": 2048}


class Peer(Protocol):
    """A client speaking the protocol by hand: `RawPeer` (ZeroMQ) or `FakePeer`."""

    def send(self, *frames: Any) -> None: ...

    def recv(self, timeout: float = WAIT_S) -> dict[str, Any] | None: ...

    def request(self, *frames: Any, timeout: float = WAIT_S) -> dict[str, Any]: ...


@pytest.fixture(params=["zmq", "fake"])
def transport(request: pytest.FixtureRequest) -> TransportFactory:
    if request.param == "fake":
        return FakeTransport(**LIMITS)
    return zmq_transport(ENDPOINT, max_message_bytes=65536, **LIMITS)


@pytest.fixture
def zmq_only() -> TransportFactory:
    return zmq_transport(ENDPOINT, max_message_bytes=65536, **LIMITS)


@pytest.fixture
def engine(transport: TransportFactory) -> Iterator[Engine]:
    with running(MemoryStore(), transport) as e:
        yield e


@pytest.fixture
def peer(transport: TransportFactory, engine: Engine) -> Iterator[Peer]:
    if isinstance(transport, FakeTransport):
        yield transport.peer()
        return
    with RawPeer(engine.endpoint) as p:
        yield p


@pytest.fixture
def opened(peer: Peer) -> Peer:
    assert peer.request(OPEN)["type"] == "OPENED"
    return peer


# ------------------------------------------------------------------------------ binding


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://127.0.0.1:5555", "tcp://localhost:*", "tcp://[::1]:5555", "ipc:///tmp/x.sock",
     "inproc://engine"],
)
def test_loopback_ipc_and_inproc_bind_without_curve(endpoint: str) -> None:
    check_bind(endpoint, curve=None, insecure=False)


@pytest.mark.parametrize(
    "endpoint", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://eth0:5555", "tcp://10.0.0.2:1",
                 "tcp://127.0.0.1;10.0.0.2:5555", "ws://127.0.0.1:80", "tcp://127.0.0.2:1"]
)
def test_binding_anywhere_else_needs_curve_or_insecure(endpoint: str) -> None:
    with pytest.raises(IngestConfigError, match="without CURVE"):
        check_bind(endpoint, curve=None, insecure=False)
    check_bind(endpoint, curve=None, insecure=True)
    curve = CurveConfig(b"a" * 40, b"b" * 40, frozenset({b"c" * 40}))
    check_bind(endpoint, curve=curve, insecure=False)


def test_the_ingest_refuses_to_bind_all_interfaces_without_curve() -> None:
    with pytest.raises(IngestConfigError, match="without CURVE"):
        ZmqIngest("tcp://0.0.0.0:*")


def test_the_zmq_transport_refuses_an_unsafe_bind_before_the_engine_starts() -> None:
    with pytest.raises(IngestConfigError, match="without CURVE"):
        zmq_transport("tcp://0.0.0.0:*")


def test_a_transport_that_cannot_be_made_stops_the_engine_start() -> None:
    def broken(counters: Any) -> Any:
        raise IngestConfigError("no such interface")

    with pytest.raises(IngestConfigError, match="no such interface"):
        running(MemoryStore(), broken).__enter__()


def test_a_malformed_endpoint_is_refused() -> None:
    with pytest.raises(IngestConfigError, match="TRANSPORT://ADDRESS"):
        check_bind("127.0.0.1:5555", curve=None, insecure=False)


def test_the_bound_endpoint_names_the_real_port() -> None:
    with ZmqIngest(ENDPOINT) as ingest:
        assert ingest.endpoint.startswith("tcp://127.0.0.1:")
        assert not ingest.endpoint.endswith(":*")


# ------------------------------------------------------------------------------ conversation


def test_hello_gets_welcome_with_the_limits(peer: Peer) -> None:
    reply = peer.request({"type": "HELLO", "client": "sim-1", "protocol": 1})
    assert reply["type"] == "WELCOME"
    assert reply["protocol"] == 1
    assert reply["max_frame_bytes"] == 4096


def test_hello_with_another_protocol_version_is_nacked(peer: Peer) -> None:
    reply = peer.request({"type": "HELLO", "client": "sim-1", "protocol": 2})
    assert reply["code"] == "unsupported_version"


def test_ping_gets_pong_with_the_nonce(peer: Peer) -> None:
    assert peer.request({"type": "PING", "nonce": 42}) == {"type": "PONG", "nonce": 42}


def test_open_gets_opened_with_the_scenario_layout(peer: Peer) -> None:
    reply = peer.request(OPEN)
    assert reply == {"type": "OPENED", "session": "S1", "next_seq": 0, "closed": False,
                     "signals": ["speed", "load"], "events": ["sample", "horn", "stop"]}
    assert peer.request(OPEN)["type"] == "OPENED"  # idempotent


def test_open_with_other_details_is_a_conflict(opened: Peer) -> None:
    assert opened.request(OPEN | {"learner": "L2"})["code"] == "session_conflict"


def test_open_of_an_unknown_scenario_is_nacked(peer: Peer) -> None:
    assert peer.request(OPEN | {"scenario": "nope"})["code"] == "unknown_scenario"


def test_a_batch_is_stored_then_acked(opened: Peer, engine: Engine) -> None:
    assert opened.request(*events_msg("S1", 0, 10)) == {"type": "ACK", "session": "S1", "seq": 9}
    [stored] = stored_batches(engine.store, "S1")
    assert (stored.first_seq, stored.count, stored.encoding) == (0, 10, "columns-v1")
    assert chain_intact(engine.store, "S1")


def test_a_json_batch_is_stored_then_acked(opened: Peer, engine: Engine) -> None:
    items = [{"seq": i, "t": i * 0.5, "event": "horn" if i == 2 else "sample"} for i in range(4)]
    head = {"type": "EVENTS", "session": "S1", "first_seq": 0, "count": 4, "encoding": "json-v1"}
    assert opened.request(head, json.dumps(items).encode())["seq"] == 3
    [stored] = stored_batches(engine.store, "S1")
    assert decode_events(stored.header, stored.payload, LAYOUT).event.tolist() == [0, 0, 1, 0]


def test_a_duplicate_batch_is_dropped_and_re_acked(opened: Peer, engine: Engine) -> None:
    opened.request(*events_msg("S1", 0, 10))
    opened.request(*events_msg("S1", 10, 5))
    assert opened.request(*events_msg("S1", 0, 10)) == {"type": "ACK", "session": "S1", "seq": 14}
    assert len(stored_batches(engine.store, "S1")) == 2


def test_a_partial_overlap_stores_only_the_new_tail(opened: Peer, engine: Engine) -> None:
    opened.request(*events_msg("S1", 0, 10))
    assert opened.request(*events_msg("S1", 5, 10))["seq"] == 14
    tail = stored_batches(engine.store, "S1")[1]
    assert (tail.first_seq, tail.count) == (10, 5)
    cols = decode_events(tail.header, tail.payload, LAYOUT)
    assert cols.seq.tolist() == [10, 11, 12, 13, 14]
    assert chain_intact(engine.store, "S1")


def test_a_gap_is_nacked_with_the_expected_seq(opened: Peer) -> None:
    opened.request(*events_msg("S1", 0, 10))
    reply = opened.request(*events_msg("S1", 20, 5))
    assert (reply["code"], reply["expected_seq"], reply["first_seq"]) == ("gap", 10, 20)
    assert reply["in_reply_to"] == "EVENTS"


def test_events_for_a_session_never_opened(peer: Peer) -> None:
    reply = peer.request(*events_msg("nobody", 0, 3))
    assert (reply["code"], reply["session"]) == ("unknown_session", "nobody")


def test_close_then_new_events_are_refused_but_resends_are_acked(opened: Peer) -> None:
    opened.request(*events_msg("S1", 0, 10))
    closed = opened.request({"type": "CLOSE", "session": "S1", "t": 5.0, "next_seq": 10})
    assert closed == {"type": "CLOSED", "session": "S1", "t": 5.0, "seq": 9}
    assert opened.request(*events_msg("S1", 10, 2))["code"] == "closed"
    assert opened.request(*events_msg("S1", 0, 10))["type"] == "ACK"
    again = {"type": "CLOSE", "session": "S1", "t": 5.0, "next_seq": 10}
    assert opened.request(again)["type"] == "CLOSED"
    assert opened.request(again | {"t": 6.0})["code"] == "closed"
    assert opened.request(OPEN)["closed"] is True


def test_close_before_all_events_arrived_is_a_gap(opened: Peer) -> None:
    opened.request(*events_msg("S1", 0, 10))
    reply = opened.request({"type": "CLOSE", "session": "S1", "t": 5.0, "next_seq": 12})
    assert (reply["code"], reply["expected_seq"]) == ("gap", 10)


def test_a_batch_before_the_last_stored_time_is_bad_time(opened: Peer) -> None:
    opened.request(*events_msg("S1", 0, 10))
    head, _ = events_msg("S1", 10, 1)
    early = encode_columns_v1(Columns.from_events([Event(10, 0.2, "sample")], LAYOUT), LAYOUT)
    assert opened.request(head, early)["code"] == "bad_time"


def test_a_store_failure_is_nacked_internal_and_the_resend_succeeds() -> None:
    store, transport = FailingStore(), FakeTransport()
    with running(store, transport):
        peer = transport.peer()
        peer.request(OPEN)
        store.fail_next_append = True
        assert peer.request(*events_msg("S1", 0, 10))["code"] == "internal"
        assert peer.request(*events_msg("S1", 0, 10))["seq"] == 9
        assert chain_intact(store, "S1")


class UnreachableStore(MemoryStore):
    """A `MemoryStore` whose lookups and opens fail while `down` (a server gone), counted (an
    OPEN is stored without a lookup first: the open is the call that fails)."""

    down = False
    failed_reads = 0

    def _fail(self) -> None:
        if self.down:
            self.failed_reads += 1
            raise StoreError("postgresql://...: connection refused (simulated)")

    def session(self, session_id: str) -> SessionRecord | None:
        self._fail()
        return super().session(session_id)

    def open_sessions(self, infos: Sequence[SessionInfo]) -> list[SessionRecord | StoreError]:
        self._fail()
        return super().open_sessions(infos)


def test_a_store_that_cannot_be_read_gets_the_round_nacked_internal_with_one_call_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each failed read may wait for the store's connect timeout: the engine answers the whole
    round NACK internal (retryable) after one, instead of trying each message alone, and logs
    one line, not a traceback; once the store is back the resends succeed."""
    store, transport = UnreachableStore(), FakeTransport()
    sessions = [f"S{k}" for k in range(6)]
    with running(store, transport):
        peer = transport.peer()
        store.down = True
        for sid in sessions:
            peer.send(OPEN | {"session": sid})
        answers = [peer.recv() for _ in sessions]
        assert [a and a["code"] for a in answers] == ["internal"] * len(sessions)
        assert 1 <= store.failed_reads < len(sessions)  # not one more per message
        store.down = False
        for sid in sessions:
            assert peer.request(OPEN | {"session": sid})["type"] == "OPENED"
    assert not [r for r in caplog.records if r.exc_info]


# ------------------------------------------------------------------------------ malformed


def _dtype_with(name: str) -> list[list[str]]:
    return [*LAYOUT.dtype_header()[:3], [name, "<f8"], ["load", "<f8"]]


MALFORMED: list[tuple[str, list[Any]]] = [
    ("bad_header", [b"not json"]),
    ("bad_header", [b""]),
    ("bad_header", [b"[1,2]"]),
    ("bad_header", [b'{"session": "S1"}']),
    ("bad_header", [b"\xff\xfe{}"]),
    ("unknown_type", [{"type": "ACK", "session": "S1", "seq": 1}]),
    ("bad_message", [{"type": "HELLO", "client": "x"}]),
    ("bad_message", [{"type": "HELLO", "client": "x", "protocol": "1"}]),
    ("bad_message", [OPEN | {"extra": 1}]),
    ("bad_message", [OPEN | {"source": "dream"}]),
    ("bad_message", [OPEN | {"session": ""}]),
    ("bad_message", [OPEN | {"session": "x" * 201}]),
    ("bad_message", [{"type": "PING", "nonce": -1}]),
    ("bad_time", [{"type": "CLOSE", "session": "S1", "t": math.nan, "next_seq": 0}]),
    ("bad_time", [{"type": "CLOSE", "session": "S1", "t": math.inf, "next_seq": 0}]),
    ("bad_time", [{"type": "CLOSE", "session": "S1", "t": -1.0, "next_seq": 0}]),
    ("frame_count", [OPEN, b"payload"]),
    ("frame_count", [events_msg("S1", 0, 2)[0]]),
    ("frame_count", [*events_msg("S1", 0, 2), b"x"]),
    ("frame_count", [b"a", b"b", b"c", b"d"]),
    ("too_large", [{"type": "PING", "pad": "x" * 3000}]),
    ("too_large", [events_msg("S1", 0, 2)[0], b"x" * 5000]),
    ("bad_encoding", [events_msg("S1", 0, 2)[0] | {"encoding": "arrow"}, b"x"]),
    ("bad_message", [events_msg("S1", 0, 2)[0] | {"encoding": "json-v1"}, b"[]"]),
    ("bad_message", [events_msg("S1", 0, 2)[0] | {"count": 0}, b""]),
    ("bad_message", [events_msg("S1", 0, 2)[0] | {"first_seq": -1}, b""]),
    ("bad_message", [events_msg("S1", 0, 2)[0] | {"first_seq": 2**60}, b""]),
    ("dtype_mismatch", [events_msg("S1", 0, 2, dtype=_dtype_with("sped"))[0],
                        events_msg("S1", 0, 2)[1]]),
    ("truncated", [events_msg("S1", 0, 2)[0], events_msg("S1", 0, 2)[1][:-3]]),
    ("count_mismatch", [events_msg("S1", 0, 3)[0], events_msg("S1", 0, 2)[1]]),
    ("seq_order", [events_msg("S1", 1, 2)[0] | {"first_seq": 0}, events_msg("S1", 1, 2)[1]]),
    ("bad_payload", [{"type": "EVENTS", "session": "S1", "first_seq": 0, "count": 1,
                      "encoding": "json-v1"}, b"{not json"]),
    ("unknown_event", [{"type": "EVENTS", "session": "S1", "first_seq": 0, "count": 1,
                        "encoding": "json-v1"}, b'[{"seq":0,"t":0,"event":"honk"}]']),
    ("unknown_signal", [{"type": "EVENTS", "session": "S1", "first_seq": 0, "count": 1,
                         "encoding": "json-v1"},
                        b'[{"seq":0,"t":0,"event":"sample","signals":{"x":1}}]']),
    ("bad_value", [{"type": "EVENTS", "session": "S1", "first_seq": 0, "count": 1,
                    "encoding": "json-v1"},
                   b'[{"seq":0,"t":0,"event":"sample","signals":{"speed":Infinity}}]']),
    ("bad_time", [{"type": "EVENTS", "session": "S1", "first_seq": 0, "count": 1,
                   "encoding": "json-v1"}, b'[{"seq":0,"t":NaN,"event":"sample"}]']),
]


@pytest.mark.parametrize(("code", "frames"), MALFORMED, ids=[c for c, _ in MALFORMED])
def test_malformed_messages_get_a_precise_nack_and_are_counted(
    opened: Peer, engine: Engine, code: str, frames: list[Any]
) -> None:
    reply = opened.request(*frames)
    assert reply["type"] == "NACK", reply
    assert reply["code"] == code, reply
    assert reply["message"]
    assert engine.counters.snapshot()["nacks"] == {code: 1}
    assert opened.request({"type": "PING"})["type"] == "PONG"


def test_every_nack_code_is_registered() -> None:
    codes = {code for code, _ in MALFORMED} | {"unsupported_version", "unknown_session", "gap",
                                               "closed", "session_conflict", "unknown_scenario",
                                               "internal"}
    assert codes <= set(NACK_CODES)
    # the engine's rubric library's, and its session owners' (tests/test_engine_owners.py)
    assert set(NACK_CODES) - codes == {"unknown_rubric", "session_owned"}


def test_a_frame_over_the_hard_limit_drops_the_connection(zmq_only: TransportFactory) -> None:
    with running(MemoryStore(), zmq_only) as engine, RawPeer(engine.endpoint) as big:
        big.send(events_msg("S1", 0, 2)[0], b"x" * 70_000)
        assert big.recv(timeout=0.5) is None
        with RawPeer(engine.endpoint) as other:
            assert other.request({"type": "PING"})["type"] == "PONG"


def test_counters_count_messages_batches_and_events(opened: Peer, engine: Engine) -> None:
    opened.request(*events_msg("S1", 0, 10))
    opened.request(*events_msg("S1", 10, 5))
    snap = engine.counters.snapshot()
    assert (snap["messages"], snap["batches"], snap["events"]) == (3, 2, 15)


# ------------------------------------------------------------------------------ rules alone


def _info(session: str = "S1") -> SessionInfo:
    return SessionInfo(session, "L1", "demo", "r", 1, "0" * 64)


def _events_header(first: int, n: int) -> tuple[Events, bytes, bytes]:
    head, payload = events_msg("S1", first, n)
    return Events.model_validate(head), json.dumps(head).encode(), payload


@pytest.mark.parametrize(
    ("next_seq", "first", "count", "case"),
    [(0, 0, 5, "all"), (5, 0, 5, "duplicate"), (5, 2, 2, "duplicate"), (5, 3, 5, "tail"),
     (5, 5, 1, "all"), (5, 6, 1, "gap")],
)
def test_classify_by_seq_arithmetic(next_seq: int, first: int, count: int, case: str) -> None:
    store = FakeStore()
    record = store.open_session(_info())
    assert classify(record, first, count, next_seq=next_seq) == case
    assert classify(None, first, count) == "unknown_session"


def test_rules_keep_pending_batches_in_order_until_commit() -> None:
    store = FakeStore()
    rules = IngestRules(store, lambda info: LAYOUT)
    assert not isinstance(rules.open(_info()), Reject)
    a = rules.events(*_events_header(0, 5))
    b = rules.events(*_events_header(5, 5))
    dup = rules.events(*_events_header(0, 5))
    assert isinstance(a, Accept)
    assert isinstance(b, Accept)
    assert dup == Duplicate("S1", 9)
    assert store.records["S1"].next_seq == 0
    assert [stored.first_seq for _, stored in rules.commit()] == [0, 5]
    assert store.records["S1"].next_seq == 10


def test_a_new_sessions_first_batch_reads_nothing_back_from_the_store() -> None:
    """OPEN of a new session primes the rules' cache (nothing stored yet); a re-OPEN of a
    session holding batches does not, so its next batch loads the stored head and last t."""
    store = FakeStore()
    rules = IngestRules(store, lambda info: LAYOUT)
    reads: list[str] = []
    store_session, store_batches = store.session, store.batches
    store.session = lambda sid: reads.append("session") or store_session(sid)  # type: ignore[method-assign]
    store.batches = lambda sid: reads.append("batches") or store_batches(sid)  # type: ignore[method-assign]
    assert not isinstance(rules.open(_info()), Reject)
    assert isinstance(rules.events(*_events_header(0, 5)), Accept)
    rules.commit()
    assert reads == []
    fresh = IngestRules(store, lambda info: LAYOUT)
    assert not isinstance(fresh.open(_info()), Reject)
    assert isinstance(fresh.events(*_events_header(5, 5)), Accept)
    assert reads == ["session", "batches"]


def test_open_many_answers_each_open_with_one_store_call() -> None:
    """A run of OPENs: one `open_sessions` call for those whose scenario is known; each gets
    its record or its own refusal, in order."""
    store = FakeStore()
    calls: list[list[str]] = []
    store_open = store.open_sessions

    def open_sessions(infos: Sequence[SessionInfo]) -> list[SessionRecord | StoreError]:
        calls.append([i.session for i in infos])
        return store_open(infos)

    store.open_sessions = open_sessions  # type: ignore[method-assign]

    def layout_for(info: SessionInfo) -> Layout:
        if info.scenario == "mine":
            raise KeyError(info.scenario)
        return LAYOUT

    rules = IngestRules(store, layout_for)
    store.open_session(_info("S2"))
    results = rules.open_many([_info("S1"), replace(_info("S3"), scenario="mine"),
                               replace(_info("S2"), learner="other"), _info("S4")])  # fmt: skip
    assert calls == [["S1", "S2", "S4"]]
    opened, unknown, conflict, fourth = results
    assert not isinstance(opened, Reject)
    assert opened[0].info.session == "S1"
    assert isinstance(unknown, Reject)
    assert unknown.code == "unknown_scenario"
    assert isinstance(conflict, Reject)
    assert conflict.code == "session_conflict"
    assert not isinstance(fourth, Reject)
    assert isinstance(rules.events(*_events_header(0, 5)), Accept)  # S1 is open
    with pytest.raises(ValueError, match="one OPEN per session"):
        rules.open_many([_info("S5"), _info("S5")])


def test_a_failed_commit_forgets_the_pending_batches() -> None:
    store = FakeStore()
    rules = IngestRules(store, lambda info: LAYOUT)
    rules.open(_info())
    rules.events(*_events_header(0, 5))
    store.fail_next_append = True
    with pytest.raises(StoreError, match="disk full"):
        rules.commit()
    assert isinstance(rules.events(*_events_header(0, 5)), Accept)
    assert len(rules.commit()) == 1


def test_rules_after_a_restart_know_the_last_stored_time() -> None:
    store = FakeStore()
    rules = IngestRules(store, lambda info: LAYOUT)
    rules.open(_info())
    rules.events(*_events_header(0, 5))
    rules.commit()
    fresh = IngestRules(store, lambda info: LAYOUT)
    head, raw, _ = _events_header(5, 1)
    early = encode_columns_v1(Columns.from_events([Event(5, 0.0, "sample")], LAYOUT), LAYOUT)
    rejected = fresh.events(head, raw, early)
    assert isinstance(rejected, Reject)
    assert rejected.code == "bad_time"
    close = Close(type="CLOSE", session="S1", t=0.1, next_seq=5)
    assert isinstance(fresh.close(close), Reject)
    assert not isinstance(fresh.close(close.model_copy(update={"t": 0.4})), Reject)


def test_a_tail_is_stored_with_a_rewritten_header_and_sliced_payload() -> None:
    store = FakeStore()
    rules = IngestRules(store, lambda info: LAYOUT)
    rules.open(_info())
    rules.events(*_events_header(0, 5))
    tail = rules.events(*_events_header(3, 5))
    assert isinstance(tail, Accept)
    assert tail.columns.seq.tolist() == [5, 6, 7]
    assert json.loads(tail.header)["first_seq"] == 5
    assert decode_events(tail.header, tail.payload, LAYOUT).seq.tolist() == [5, 6, 7]


def test_a_received_payload_is_stored_without_a_copy() -> None:
    """The engine keeps the received frame's read-only view (no copy per batch); anything a
    caller could still change (a bytearray, a writable view) is copied before it is checked."""
    frame = bytes(100)
    view = memoryview(frame)
    assert kept_payload(view) is view
    assert kept_payload(frame) is frame
    mutable = bytearray(100)
    kept = kept_payload(mutable)
    mutable[0] = 1
    assert isinstance(kept, bytes)
    assert kept[0] == 0
    assert isinstance(kept_payload(memoryview(bytearray(4))), bytes)
