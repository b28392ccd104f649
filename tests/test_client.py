"""The Python client against the test engine loop over real loopback sockets: delivery with
duplicates, gaps, lost batches and an engine restart; fatal NACKs; CURVE."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq.auth

from assessengine.client import (
    ClientCurve,
    ClientError,
    DeliveryTimeoutError,
    EngineClient,
    NackError,
)
from assessengine.core.codec import Columns, Layout, decode_events
from assessengine.core.events import Event
from assessengine.ingest.zmq import CurveConfig, Message, zmq_transport
from assessengine.runtime.engine import Engine
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import Store
from assessengine.storage.sqlite import SqliteStore

from .ingest_engine import (
    DEMO,
    Lossy,
    RawPeer,
    chain_intact,
    running,
    status,
    stored_batches,
)
from .waits import WAIT_S

LAYOUT = Layout.of(DEMO)
ENDPOINT = "tcp://127.0.0.1:*"
FAST = {"reply_timeout": 0.1, "resend_after": 0.3, "dead_after": 0.6}


def make_events(first: int, n: int) -> list[Event]:
    names = ("sample", "horn", "sample", "stop")
    return [Event(i, 0.01 * i, names[i % 4],
                  {"speed": float(i % 17), "load": float(i)} if i % 4 != 1 else {})
            for i in range(first, first + n)]


def stored_events(store: Store, session: str) -> list[Event]:
    out: list[Event] = []
    for b in store.batches(session):
        out.extend(decode_events(b.header, b.payload, LAYOUT).to_events(LAYOUT))
    return out


def client(endpoint: str, **options: Any) -> EngineClient:
    return EngineClient(endpoint, client_id="test", **(FAST | options))


def open_demo(c: EngineClient, session: str = "S1") -> None:
    c.open(session, learner="L1", scenario="demo", rubric="r")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "e.db")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def engine(store: Store) -> Iterator[Engine]:
    with running(store, zmq_transport(ENDPOINT)) as e:
        yield e


@pytest.mark.parametrize("encoding", ["columns-v1", "json-v1"])
def test_open_send_close_flush_stores_every_event(engine: Engine, encoding: Any) -> None:
    sent = make_events(0, 3000)
    with client(engine.endpoint, encoding=encoding, batch_bytes=4096) as c:
        opened = c.open("S1", learner="L1", scenario="demo", rubric="r")
        assert opened.next_seq == 0
        assert opened.layout.signal_names == ("speed", "load")
        c.send("S1", sent[:1000])
        c.send("S1", sent[1000:])
        c.close("S1", t=60.0)
        c.flush(timeout=WAIT_S)
    assert stored_events(engine.store, "S1") == sent
    assert status(engine.store, "S1") == "closed"
    assert len(stored_batches(engine.store, "S1")) > 10
    assert chain_intact(engine.store, "S1")


def test_send_takes_dicts_columns_and_structured_arrays(engine: Engine) -> None:
    sent = make_events(0, 30)
    with client(engine.endpoint) as c:
        open_demo(c)
        c.send("S1", [{"seq": e.seq, "t": e.t, "event": e.event, "signals": dict(e.signals)}
                      for e in sent[:10]])
        c.send("S1", Columns.from_events(sent[10:20], LAYOUT))
        cols = Columns.from_events(sent[20:], LAYOUT)
        dtype = np.dtype([("seq", "<i8"), ("t", "<f8"), ("event", "<i4"), ("speed", "<f8"),
                          ("load", "<f8")])
        arr = np.empty(10, dtype)
        arr["seq"], arr["t"], arr["event"] = cols.seq, cols.t, cols.event
        arr["speed"], arr["load"] = cols.signals
        c.send("S1", arr)
        c.flush(timeout=WAIT_S)
        assert c.acked("S1") == 29
    assert stored_events(engine.store, "S1") == sent


def test_several_sessions_share_one_client(engine: Engine) -> None:
    with client(engine.endpoint, batch_bytes=1024) as c:
        for name in ("A", "B", "C"):
            open_demo(c, name)
        for first in range(0, 300, 100):
            for name in ("A", "B", "C"):
                c.send(name, make_events(first, 100))
        c.flush(timeout=WAIT_S)
    for name in ("A", "B", "C"):
        assert stored_events(engine.store, name) == make_events(0, 300)


def _drop_once(predicate: Any) -> Any:
    dropped: list[Message] = []

    def drop(m: Message) -> bool:
        if not dropped and predicate(m):
            dropped.append(m)
            return True
        return False

    return drop


def test_a_lost_batch_is_resent_after_the_gap_nack() -> None:
    lost = _drop_once(lambda m: m.header.type == "EVENTS" and m.header.first_seq > 0)
    with running(MemoryStore(), Lossy(zmq_transport(ENDPOINT), lost)) as engine:
        with client(engine.endpoint, batch_bytes=1024) as c:
            open_demo(c)
            c.send("S1", make_events(0, 500))
            c.close("S1", 10.0)
            c.flush(timeout=WAIT_S)
        assert engine.counters.snapshot()["nacks"].get("gap", 0) >= 1
        assert stored_events(engine.store, "S1") == make_events(0, 500)
        assert chain_intact(engine.store, "S1")


def test_a_lost_last_batch_is_resent_after_resend_after() -> None:
    lost = _drop_once(lambda m: m.header.type == "EVENTS" and m.header.first_seq >= 90)
    with running(MemoryStore(), Lossy(zmq_transport(ENDPOINT), lost)) as engine:
        with client(engine.endpoint, batch_bytes=400) as c:
            open_demo(c)
            c.send("S1", make_events(0, 100))
            c.flush(timeout=WAIT_S)
        assert stored_events(engine.store, "S1") == make_events(0, 100)


def test_a_lost_close_is_resent() -> None:
    lost = _drop_once(lambda m: m.header.type == "CLOSE")
    with running(MemoryStore(), Lossy(zmq_transport(ENDPOINT), lost)) as engine:
        with client(engine.endpoint) as c:
            open_demo(c)
            c.send("S1", make_events(0, 10))
            c.close("S1", 1.0)
            c.flush(timeout=WAIT_S)
        assert status(engine.store, "S1") == "closed"


def test_the_client_reconnects_after_the_engine_restarts_on_the_same_endpoint(
    store: Store,
) -> None:
    with running(store, zmq_transport(ENDPOINT)) as first:
        endpoint = first.endpoint
        c = client(endpoint, batch_bytes=2048)
        open_demo(c)
        c.send("S1", make_events(0, 400))
        c.flush(timeout=WAIT_S)
    try:
        c.send("S1", make_events(400, 400))  # the engine is gone: nothing is acknowledged
        with pytest.raises(DeliveryTimeoutError):
            c.flush(timeout=1.0)  # silent for longer than dead_after: a new socket
        assert c.reconnects >= 1
        with running(store, zmq_transport(endpoint)):
            c.send("S1", make_events(800, 200))
            c.close("S1", 20.0)
            c.flush(timeout=WAIT_S)
    finally:
        c.disconnect()
    assert stored_events(store, "S1") == make_events(0, 1000)
    assert status(store, "S1") == "closed"
    assert chain_intact(store, "S1")


def test_a_restarted_client_resumes_at_the_engines_next_seq(engine: Engine) -> None:
    with client(engine.endpoint) as c:
        open_demo(c)
        c.send("S1", make_events(0, 50))
        c.flush(timeout=WAIT_S)
    with client(engine.endpoint) as again:
        opened = again.open("S1", learner="L1", scenario="demo", rubric="r")
        assert opened.next_seq == 50
        again.send("S1", make_events(50, 10))
        again.flush(timeout=WAIT_S)
    assert stored_events(engine.store, "S1") == make_events(0, 60)


def test_a_fatal_nack_at_open_raises(engine: Engine) -> None:
    with client(engine.endpoint) as c, pytest.raises(NackError) as info:
        c.open("S1", learner="L1", scenario="nope", rubric="r")
    assert info.value.code == "unknown_scenario"
    assert info.value.session == "S1"


def test_events_after_another_client_closed_the_session_fail_it(engine: Engine) -> None:
    with client(engine.endpoint) as c:
        open_demo(c)
        c.send("S1", make_events(0, 10))
        c.flush(timeout=WAIT_S)
        with RawPeer(engine.endpoint) as other:
            other.request({"type": "CLOSE", "session": "S1", "t": 1.0, "next_seq": 10})
        c.send("S1", make_events(10, 10))
        with pytest.raises(NackError, match="closed"):
            c.flush(timeout=WAIT_S)
        with pytest.raises(ClientError, match="not open"):
            c.send("S1", make_events(20, 1))


def test_send_checks_seqs_and_times_before_sending(engine: Engine) -> None:
    with client(engine.endpoint) as c:
        open_demo(c)
        with pytest.raises(ValueError, match="seqs must run 0"):
            c.send("S1", make_events(1, 3))
        with pytest.raises(ValueError, match="t must be finite"):
            c.send("S1", [Event(0, 1.0, "sample"), Event(1, 0.5, "sample")])
        with pytest.raises(ClientError, match="not open"):
            c.send("S2", make_events(0, 1))
        with pytest.raises(ValueError, match="unknown event"):
            c.send("S1", [Event(0, 1.0, "honk")])


def test_open_against_no_engine_times_out() -> None:
    with client("tcp://127.0.0.1:9") as c, pytest.raises(DeliveryTimeoutError):
        c.open("S1", learner="L1", scenario="demo", rubric="r", timeout=0.3)


def test_the_unacked_window_blocks_send_until_acks_arrive(engine: Engine) -> None:
    with client(engine.endpoint, batch_bytes=1024, max_unacked_bytes=4096) as c:
        open_demo(c)
        c.send("S1", make_events(0, 2000))
        c.flush(timeout=WAIT_S)
    assert stored_events(engine.store, "S1") == make_events(0, 2000)


# ------------------------------------------------------------------------------ CURVE


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    out = {}
    for name in ("server", "alice", "mallory"):
        folder = tmp_path / name
        folder.mkdir()
        public, secret = zmq.auth.create_certificates(folder, name)
        out[name] = (Path(public), Path(secret))
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "alice.key").write_bytes(out["alice"][0].read_bytes())
    return out


def _curve_engine(keys: dict[str, tuple[Path, Path]]) -> AbstractContextManager[Engine]:
    curve = CurveConfig.from_files(keys["server"][1], keys["server"][1].parent.parent / "allowed")
    return running(MemoryStore(), zmq_transport(ENDPOINT, curve=curve))


def test_an_allowed_curve_client_delivers(keys: dict[str, tuple[Path, Path]]) -> None:
    with _curve_engine(keys) as engine:
        curve = ClientCurve.from_files(keys["server"][0], keys["alice"][1])
        with client(engine.endpoint, curve=curve) as c:
            open_demo(c)
            c.send("S1", make_events(0, 100))
            c.flush(timeout=WAIT_S)
        assert stored_events(engine.store, "S1") == make_events(0, 100)


def test_a_client_with_an_unknown_key_gets_nothing(keys: dict[str, tuple[Path, Path]]) -> None:
    with _curve_engine(keys) as engine:
        curve = ClientCurve.from_files(keys["server"][0], keys["mallory"][1])
        with client(engine.endpoint, curve=curve) as c, pytest.raises(DeliveryTimeoutError):
            c.open("S1", learner="L1", scenario="demo", rubric="r", timeout=0.5)
        with RawPeer(engine.endpoint) as plain:  # no CURVE at all: no handshake either
            plain.send({"type": "PING"})
            assert plain.recv(timeout=0.3) is None
        assert engine.store.sessions() == []
        assert engine.counters.snapshot()["denied_clients"] >= 1
        assert engine.counters.snapshot()["messages"] == 0
