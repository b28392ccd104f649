"""Several engines on one PostgreSQL database: a session is owned by one engine at a time
(`storage.owners`); another engine answers NACK ``session_owned`` until the owner is gone,
then takes the session over, rebuilding its scoring state from the stored batches.

The engines are built as `serve` builds them (`compose.build_engine` from `Settings`), on
loopback ZeroMQ, scoring in a thread, on the PostgreSQL server the test session starts."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Collection, Iterator
from contextlib import ExitStack, closing, contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assessengine.client import EngineClient
from assessengine.compose import build_engine, build_owners, open_store, store_options
from assessengine.core.codec import Columns
from assessengine.core.wire import NACK_CODES
from assessengine.ingest.fake import FakeTransport
from assessengine.runtime.engine import Engine
from assessengine.settings import Settings
from assessengine.sim.generate import SimBatch
from assessengine.storage.memory import MemoryStore
from assessengine.storage.owners import Claim, SoleOwner
from assessengine.storage.port import StoreError
from assessengine.storage.postgres_owners import PostgresOwners
from assessengine.streaming import stream_sessions

from .ingest_engine import RawPeer, running
from .pg_server import PgServer
from .test_engine_helpers import FAST, audit, library, offline_reports, reports, sessions
from .waits import START_S, WAIT_S


def _settings(url: str, scoring: str = "thread") -> Settings:
    return Settings.load(flags={"db": url, "zmq": "tcp://127.0.0.1:*", "scoring": scoring})


@contextmanager
def composed_engine(url: str, scoring: str = "thread") -> Iterator[Engine]:
    """An engine as `serve` builds it from its settings, started; stopped afterwards."""
    settings = _settings(url, scoring)
    with closing(open_store(url, **store_options(settings))) as store:
        engine = build_engine(settings, store, library())
        engine.start()
        try:
            yield engine
        finally:
            engine.stop()


def _open(sim: SimBatch, k: int) -> dict[str, Any]:
    return {"type": "OPEN", "session": sim.session_ids[k], "learner": sim.learners[k],
            "scenario": sim.scenario, "rubric": sim.rubric,
            "metadata": {"profile": sim.profiles[k]}}  # fmt: skip


def _send_first_half(endpoint: str, sim: SimBatch) -> int:
    """Open every session of `sim` and send the first half of each one's events (ACKed)."""
    half = sim.seq < np.diff(sim.offsets)[sim.session] // 2
    with EngineClient(endpoint, client_id="sim", **FAST) as c:
        for k, sid in enumerate(sim.session_ids):
            c.open(sid, learner=sim.learners[k], scenario=sim.scenario, rubric=sim.rubric,
                   metadata={"profile": sim.profiles[k]})  # fmt: skip
            rows = np.flatnonzero(half & (sim.session == k))
            c.send(sid, Columns(sim.seq[rows], sim.t[rows], sim.event[rows],
                                sim.signals[:, rows]))  # fmt: skip
        c.flush(WAIT_S)
    return int(half.sum())


# ================================================================================ the port


def test_compose_gives_a_sqlite_store_the_sole_owner(tmp_path: Path) -> None:
    owners = build_owners(_settings(str(tmp_path / "e.db")))
    assert isinstance(owners, SoleOwner)
    claim = owners.claim(["a", "b"])
    assert (claim.refused, claim.acquired) == (frozenset(), frozenset())


def test_a_session_held_by_one_connection_is_refused_to_another_until_released(
    pg_database: str,
) -> None:
    first, second = build_owners(_settings(pg_database)), build_owners(_settings(pg_database))
    try:
        assert first.claim(["s1", "s2"]).acquired == {"s1", "s2"}
        assert first.claim(["s1"]).acquired == frozenset()  # owned already: not acquired again
        claim = second.claim(["s1", "s3"])
        assert (claim.refused, claim.acquired) == ({"s1"}, {"s3"})
        assert second.owner("s1") is not None
        assert "assessengine" in (second.owner("s1") or "")
        first.release(["s1"])
        assert second.claim(["s1"]).acquired == {"s1"}
        assert first.claim(["s1"]).refused == {"s1"}
    finally:
        first.close()
        second.close()


def test_a_session_is_free_once_its_owners_connection_is_gone(
    pg_server: PgServer, pg_database: str
) -> None:
    """The server releases a dead connection's locks: what a killed engine leaves; an owner
    whose lock connection broke notices it at its next check and owns nothing any more."""
    first, second = (PostgresOwners(pg_database, check_interval=0) for _ in range(2))
    try:
        first.claim(["s1"])
        assert second.claim(["s1"]).refused == {"s1"}
        dbname = pg_database.rsplit("/", 1)[1]
        pg_server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      f"datname = '{dbname}' AND pid <> pg_backend_pid() AND "
                      "application_name LIKE 'assessengine%'")  # fmt: skip
        # both lock connections are gone: each reconnects, and s1 is the first claimer's
        assert second.claim(["s1"]).acquired == {"s1"}
        assert first.claim(["s1"]).refused == {"s1"}
    finally:
        first.close()
        second.close()


def test_session_owned_is_a_documented_retryable_nack() -> None:
    assert NACK_CODES["session_owned"].retry
    protocol = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert "| `session_owned` | **yes** |" in protocol


# ================================================================================ engine and port


class Scripted:
    """An `Owners` fake: sessions in `others` are another engine's; `fail` makes claims
    raise; what is claimed and released is recorded."""

    def __init__(self, others: Collection[str] = (), *, fail: bool = False) -> None:
        self.others, self.fail = set(others), fail
        self.held: set[str] = set()
        self.released: list[str] = []
        self.closed = False

    def claim(self, sessions: Collection[str]) -> Claim:
        if self.fail:
            raise StoreError("the lock connection is down (simulated)")
        new = set(sessions) - self.held - self.others
        self.held |= new
        return Claim(refused=frozenset(set(sessions) & self.others), acquired=frozenset(new))

    def release(self, sessions: Collection[str]) -> None:
        self.released += [s for s in sessions if s in self.held]
        self.held -= set(sessions)

    def owner(self, session: str) -> str | None:
        return "engine-a" if session in self.others else None

    def serving(self, endpoint: str) -> None:
        pass

    def close(self) -> None:
        self.closed = True


DEMO_OPEN = {"type": "OPEN", "session": "S1", "learner": "L1", "scenario": "demo", "rubric": "r"}
DEMO_CLOSE = {"type": "CLOSE", "session": "S1", "t": 1.0, "next_seq": 0}


def test_the_engine_refuses_another_engines_session_and_stores_nothing_of_it() -> None:
    transport, store, owners = FakeTransport(), MemoryStore(), Scripted(others={"S1"})
    peer = transport.peer()
    with running(store, transport, owners=owners):
        for message in (DEMO_OPEN, DEMO_CLOSE):
            peer.send(message)
            reply = peer.recv(WAIT_S)
            assert reply is not None
            assert (reply["type"], reply["code"]) == ("NACK", "session_owned")
            assert "(engine-a)" in reply["message"]
    assert store.session("S1") is None
    assert owners.closed  # the engine's stop released everything


def test_the_engine_answers_internal_when_ownership_cannot_be_checked() -> None:
    transport, store, owners = FakeTransport(), MemoryStore(), Scripted(fail=True)
    peer = transport.peer()
    with running(store, transport, owners=owners):
        peer.send(DEMO_OPEN)
        reply = peer.recv(WAIT_S)
    assert reply is not None
    assert (reply["type"], reply["code"]) == ("NACK", "internal")
    assert "which engine owns the session" in reply["message"]
    assert store.session("S1") is None


def test_the_engine_releases_a_session_once_its_report_is_saved_and_refused_opens_at_once() -> None:
    transport, store, owners = FakeTransport(), MemoryStore(), Scripted()
    peer = transport.peer()
    with running(store, transport, owners=owners) as engine:
        assert peer.request(DEMO_OPEN)["type"] == "OPENED"
        assert "S1" in owners.held
        bad = DEMO_OPEN | {"session": "S2", "scenario": "nowhere"}
        assert peer.request(bad)["code"] == "unknown_scenario"
        assert "S2" not in owners.held  # never stored: let go at the end of its round
        assert peer.request(DEMO_CLOSE)["type"] == "CLOSED"
        assert engine.wait_idle(WAIT_S)
        assert store.report("S1") is not None
    assert owners.released == ["S2", "S1"]


# ================================================================================ two engines


def test_two_engines_on_one_database_report_and_audit_every_session(
    tmp_path: Path, pg_database: str
) -> None:
    one, two = sessions("forklift-warehouse", 3, seed=21), sessions("network-lab", 4, seed=22)
    with composed_engine(pg_database) as a, composed_engine(pg_database) as b:
        errors: list[BaseException] = []

        def stream(endpoint: str, sim: SimBatch, name: str) -> None:
            try:
                with EngineClient(endpoint, client_id=name, **FAST) as c:
                    stream_sessions(c, sim, timeout=60)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=stream, args=(a.endpoint, one, "sim-a")),
                   threading.Thread(target=stream, args=(b.endpoint, two, "sim-b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert a.wait_idle(WAIT_S)
        assert b.wait_idle(WAIT_S)
    expected = offline_reports(one, tmp_path) | offline_reports(two, tmp_path)
    assert reports(pg_database, list(expected)) == expected
    for sid in expected:
        code, output = audit(pg_database, sid)  # type: ignore[arg-type]
        assert code == 0, output


def test_a_second_engine_refuses_a_session_the_first_owns(pg_database: str) -> None:
    sim = sessions("lhd-underground", 1, seed=5)
    sid = sim.session_ids[0]
    with composed_engine(pg_database) as a, composed_engine(pg_database) as b:
        with RawPeer(a.endpoint) as owner, RawPeer(b.endpoint) as other:
            assert owner.request(_open(sim, 0))["type"] == "OPENED"
            close = {"type": "CLOSE", "session": sid, "t": 1.0, "next_seq": 0}
            for message in (_open(sim, 0), close):
                reply = other.request(message)
                assert (reply["type"], reply["code"], reply["session"]) == (
                    "NACK", "session_owned", sid)  # fmt: skip
                assert f"owned by another engine ({a.endpoint} assessengine pid" in reply[
                    "message"]  # fmt: skip
        assert b.store.session(sid) is not None  # stored by the owner; nothing by the other
        assert b.store.session(sid).status == "open"  # type: ignore[union-attr]


@pytest.mark.parametrize("scoring", ["thread", "process"])
def test_a_session_is_taken_over_once_its_engine_stops_and_reports_as_one_engine(
    tmp_path: Path, pg_database: str, scoring: str
) -> None:
    """(The scoring process of the engine that takes over rebuilds the sessions itself.)"""
    sim = sessions("lhd-underground", 3, seed=6)
    with composed_engine(pg_database, scoring) as b:
        with composed_engine(pg_database) as a:
            sent = _send_first_half(a.endpoint, sim)
            assert a.wait_idle(WAIT_S)
            with RawPeer(b.endpoint) as other:
                assert other.request(_open(sim, 0))["code"] == "session_owned"
        # a has stopped: b takes the sessions over and the stream resumes where it stood
        with EngineClient(b.endpoint, client_id="sim", **FAST) as c:
            streamed = stream_sessions(c, sim, timeout=60)
        assert streamed.events == len(sim) - sent
        assert b.wait_idle(WAIT_S)
    assert reports(pg_database, sim.session_ids) == offline_reports(sim, tmp_path)
    for sid in sim.session_ids:
        code, output = audit(pg_database, sid)  # type: ignore[arg-type]
        assert code == 0, output


def test_the_client_keeps_resending_a_refused_open_until_the_owner_is_gone(
    pg_database: str,
) -> None:
    """session_owned is retryable: `EngineClient.open` waits through the NACKs, and gets
    OPENED from the engine that takes the session over once its owner stops."""
    sim = sessions("network-lab", 1, seed=15)
    sid = sim.session_ids[0]
    with composed_engine(pg_database) as b, ExitStack() as owning:
        owner = owning.enter_context(composed_engine(pg_database))
        with RawPeer(owner.endpoint) as peer:
            assert peer.request(_open(sim, 0))["type"] == "OPENED"

        def stop_the_owner_once_refused() -> None:
            while not b.counters.snapshot()["nacks"].get("session_owned"):
                threading.Event().wait(0.05)
            owning.close()  # the owner stops (idempotent: the `with` closes it again)

        stopper = threading.Thread(target=stop_the_owner_once_refused, daemon=True)
        stopper.start()
        with EngineClient(b.endpoint, client_id="sim", **FAST) as c:
            opened = c.open(sid, learner=sim.learners[0], scenario=sim.scenario,
                            rubric=sim.rubric, metadata={"profile": sim.profiles[0]},
                            timeout=60)  # fmt: skip
        stopper.join(60)
        assert opened.next_seq == 0
        assert b.counters.snapshot()["nacks"]["session_owned"] >= 1


def test_an_engine_starting_beside_a_live_owner_leaves_its_sessions_alone(
    pg_database: str,
) -> None:
    sim = sessions("network-lab", 2, seed=14)
    with composed_engine(pg_database) as a:
        _send_first_half(a.endpoint, sim)
        assert a.wait_idle(WAIT_S)
        decided = {sid: len(a.store.decisions(sid)) for sid in sim.session_ids}
        with composed_engine(pg_database) as b:
            assert (b.stats.recovery.reopened, b.stats.recovery.events) == (0, 0)
            assert b.scoring.sessions_open == 0
        assert {sid: len(a.store.decisions(sid)) for sid in sim.session_ids} == decided
    with composed_engine(pg_database) as c:  # the owner gone: the next engine recovers them
        assert c.stats.recovery.reopened == 2


def _engine_process(conn: Connection, url: str) -> None:
    """A composed engine in a process of its own: sends its endpoint, then runs until killed."""
    with composed_engine(url) as engine:
        conn.send(engine.endpoint)
        conn.recv()  # never comes: the test kills this process


def test_a_session_is_taken_over_once_its_engine_is_killed(
    tmp_path: Path, pg_database: str
) -> None:
    sim = sessions("forklift-warehouse", 2, seed=8)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_engine_process, args=(child, pg_database), daemon=True)
    process.start()
    try:
        assert parent.poll(START_S), "the engine process did not start"
        endpoint = parent.recv()
        with composed_engine(pg_database) as b:
            sent = _send_first_half(endpoint, sim)
            with RawPeer(b.endpoint) as other:
                assert other.request(_open(sim, 0))["code"] == "session_owned"
            process.kill()  # SIGKILL: its connections close, and its locks go with them
            process.join(WAIT_S)
            with EngineClient(b.endpoint, client_id="sim", **FAST) as c:
                streamed = stream_sessions(c, sim, timeout=60)
            assert streamed.events == len(sim) - sent
            assert b.wait_idle(WAIT_S)
    finally:
        if process.is_alive():
            process.kill()
        parent.close()
    assert reports(pg_database, sim.session_ids) == offline_reports(sim, tmp_path)
    for sid in sim.session_ids:
        code, output = audit(pg_database, sid)  # type: ignore[arg-type]
        assert code == 0, output


