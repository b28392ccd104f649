"""The live engine in-process, over real loopback sockets and a real SQLite file: final reports
equal the offline scorer's, decisions are saved as they are taken, unknown rubrics and
scenarios are refused, bad input leaves a concurrent good session alone, a restarted engine
rebuilds open sessions from the store, and metrics come out in Prometheus format."""

from __future__ import annotations

import gc
import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import zmq

from assessengine.api.app import create_app
from assessengine.client import EngineClient, NackError
from assessengine.compose import open_store
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.ingest.fake import FakePeer, FakeTransport
from assessengine.metrics import Histogram, Metric, counter, render
from assessengine.runtime.engine import GC_THRESHOLDS, Engine
from assessengine.runtime.pipeline import RubricEntry, RubricLibrary, Scorer
from assessengine.runtime.scoring import ThreadScoring
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import SessionInfo, Store, StoreError
from assessengine.storage.sqlite import SqliteStore
from assessengine.streaming import stream_sessions
from assessengine.webserver import WebServer

from .test_engine_helpers import (
    FAST,
    RUBRIC_DIR,
    audit,
    library,
    offline_reports,
    reports,
    running_engine,
    sessions,
)
from .waits import WAIT_MS, WAIT_S


@pytest.mark.parametrize("scoring", ["thread", "process"])
def test_final_reports_equal_assessengine_score_on_the_same_events(
    tmp_path: Path, scoring: str
) -> None:
    forklift = sessions("forklift-warehouse", 5)
    lab = sessions("network-lab", 8)
    db = tmp_path / "engine.db"
    with running_engine(db, scoring=scoring) as (engine, store):
        with EngineClient(engine.endpoint, client_id="sim", batch_bytes=16_384, **FAST) as c:
            stream_sessions(c, forklift)
        with EngineClient(engine.endpoint, client_id="lab", encoding="json-v1", **FAST) as c:
            stream_sessions(c, lab)
        assert engine.wait_idle(WAIT_S)
        assert engine.scoring.sessions_open == 0
        decisions = {sid: store.decisions(sid) for sid in forklift.session_ids}
    for sim in (forklift, lab):
        assert reports(db, sim.session_ids) == offline_reports(sim, tmp_path)
    for sid, rows in decisions.items():
        criteria = {c["id"] for c in reports(db, [sid])[sid]["criteria"]}
        assert rows
        assert {row["criterion"] for row in rows} <= criteria
    for sid in (*forklift.session_ids[:2], *lab.session_ids[:2]):
        code, output = audit(db, sid)
        assert code == 0, output


def test_decisions_are_saved_while_the_session_is_still_open(tmp_path: Path) -> None:
    sim = sessions("forklift-warehouse", 1, seed=8)
    cols = Columns(sim.seq, sim.t, sim.event, sim.signals)
    with running_engine(tmp_path / "e.db") as (engine, store), EngineClient(
        engine.endpoint, client_id="sim", **FAST
    ) as c:
        sid = sim.session_ids[0]
        c.open(sid, learner="L", scenario=sim.scenario, rubric=sim.rubric)
        c.send(sid, cols)
        c.flush(WAIT_S)
        assert engine.wait_idle(60)
        assert store.decisions(sid)
        assert store.report(sid) is None
        assert isinstance(engine.scoring, ThreadScoring)
        assert engine.scoring.scorer.is_open(sid)


@pytest.mark.parametrize(
    ("scenario", "rubric", "version", "code"),
    [
        ("forklift-warehus", "forklift-load-handling", None, "unknown_scenario"),
        ("forklift-warehouse", "forklift-load-handlin", None, "unknown_rubric"),
        ("forklift-warehouse", "forklift-load-handling", 99, "unknown_rubric"),
        ("forklift-warehouse", "network-lab", None, "unknown_rubric"),
    ],
)
def test_an_open_naming_an_unknown_scenario_or_rubric_is_refused(
    tmp_path: Path, scenario: str, rubric: str, version: int | None, code: str
) -> None:
    with running_engine(tmp_path / "e.db") as (engine, store), EngineClient(
        engine.endpoint, client_id="sim", **FAST
    ) as c:
        with pytest.raises(NackError) as caught:
            c.open("S1", learner="L", scenario=scenario, rubric=rubric, rubric_version=version)
        assert caught.value.code == code
        assert store.session("S1") is None


def test_open_resolves_the_latest_rubric_version_and_stores_its_hash(tmp_path: Path) -> None:
    entry = library().resolve("network-lab", "network-lab", None)
    assert isinstance(entry, RubricEntry)
    with running_engine(tmp_path / "e.db") as (engine, store), EngineClient(
        engine.endpoint, client_id="sim", **FAST
    ) as c:
        c.open("S1", learner="L", scenario="network-lab", rubric="network-lab")
        info = store.session("S1")
        assert info is not None
        assert (info.info.rubric_version, info.info.rubric_sha256) == (
            entry.rubric.version, entry.sha256)  # fmt: skip


def _network_lab_v2(folder: Path) -> RubricLibrary:
    """The library's network-lab rubric at version 1 and a copy of it at version 2."""
    text = (RUBRIC_DIR / "network-lab.yaml").read_text(encoding="utf-8")
    (folder / "network-lab.yaml").write_text(text, encoding="utf-8")
    newer = text.replace("\nversion: 1\n", "\nversion: 2\n", 1)
    assert newer != text
    (folder / "network-lab-v2.yaml").write_text(newer, encoding="utf-8")
    lib, skipped = RubricLibrary.load([folder])
    assert not skipped
    return lib


def test_an_open_reads_no_session_unless_the_store_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #22 item 4: an OPEN without ``rubric_version`` is stored with the library's
    latest rubric straight away (no lookup of the session before its transaction); only one
    the store refuses is looked up (a session stored with another version keeps it)."""
    (tmp_path / "rubrics").mkdir()
    rubrics = _network_lab_v2(tmp_path / "rubrics")
    with closing(SqliteStore(tmp_path / "e.db")) as first:
        old = rubrics.resolve("network-lab", "network-lab", 1)
        assert isinstance(old, RubricEntry)
        first.open_session(SessionInfo("S0", "L", "network-lab", "network-lab", 1, old.sha256))
        first.open_session(SessionInfo("S2", "K", "network-lab", "network-lab", 1, old.sha256))
    with running_engine(tmp_path / "e.db", rubrics=rubrics) as (engine, store), EngineClient(
        engine.endpoint, client_id="sim", **FAST
    ) as c:
        looked: list[str] = []
        read = store.session

        def session(session_id: str) -> Any:
            if threading.current_thread() is not threading.main_thread():
                looked.append(session_id)
            return read(session_id)

        monkeypatch.setattr(store, "session", session)
        c.open("S1", learner="L", scenario="network-lab", rubric="network-lab")
        assert "S1" not in looked
        c.open("S0", learner="L", scenario="network-lab", rubric="network-lab")  # resumed
        assert "S0" in looked
        with pytest.raises(NackError) as caught:  # other details: refused, as before
            c.open("S2", learner="L", scenario="network-lab", rubric="network-lab")
        assert caught.value.code == "session_conflict"
        monkeypatch.undo()
        versions = {s: store.session(s).info.rubric_version for s in ("S0", "S1")}  # type: ignore[union-attr]
        assert versions == {"S0": 1, "S1": 2}


def test_a_resumed_open_whose_stored_rubric_is_gone_is_refused(tmp_path: Path) -> None:
    with closing(SqliteStore(tmp_path / "e.db")) as first:
        first.open_session(SessionInfo("S0", "L", "network-lab", "network-lab", 7, "ab" * 32))
    with running_engine(tmp_path / "e.db") as (engine, _), EngineClient(
        engine.endpoint, client_id="sim", **FAST
    ) as c:
        with pytest.raises(NackError) as caught:
            c.open("S0", learner="L", scenario="network-lab", rubric="network-lab")
        assert caught.value.code == "unknown_rubric"
        assert "network-lab v7" in str(caught.value)


# ================================================================================ bad input


class _Garbage:
    """A bare DEALER that sends every kind of bad message, each answered by one NACK."""

    def __init__(self, endpoint: str, layout: Layout, victim: str) -> None:
        self.endpoint, self.layout, self.victim = endpoint, layout, victim
        self.codes: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with _dealer(self.endpoint) as sock:
                for frames in self.messages():
                    sock.send_multipart(frames)
                    if not sock.poll(WAIT_MS):
                        raise AssertionError(f"no reply to {frames[0][:80]!r}")
                    self.codes.extend(_answers(sock, 1))
        except BaseException as exc:
            self.error = exc

    def messages(self) -> list[list[bytes]]:
        layout = self.layout
        open_g = _frame({"type": "OPEN", "session": "G", "learner": "L",
                         "scenario": "network-lab", "rubric": "network-lab"})  # fmt: skip

        def events(first: int, n: int, **change: Any) -> list[bytes]:
            cols = Columns(np.arange(first, first + n, dtype=np.int64),
                           np.arange(first, first + n, dtype=np.float64),
                           np.zeros(n, np.int32),
                           np.full((len(layout.signal_names), n), np.nan))  # fmt: skip
            for name, value in change.pop("cols", {}).items():
                getattr(cols, name)[...] = value
            header = {"type": "EVENTS", "session": "G", "first_seq": first, "count": n,
                      "encoding": "columns-v1", "dtype": layout.dtype_header()} | change
            return [_frame(header), encode_columns_v1(cols, layout)]

        good0 = events(0, 5)
        return [
            [b"a", b"b", b"c", b"d"],                                          # frame_count
            [b"{not json"],                                                    # bad_header
            [_frame({"type": "SHOUT"})],                                       # unknown_type
            [_frame({"type": "OPEN", "session": "G"})],                        # bad_message
            [_frame({"type": "OPEN", "session": "X", "learner": "L", "scenario": "moon",
                     "rubric": "network-lab"})],                               # unknown_scenario
            [_frame({"type": "OPEN", "session": self.victim, "learner": "intruder",
                     "scenario": "network-lab", "rubric": "network-lab"})],    # session_conflict
            events(0, 5, session="nobody"),                                    # unknown_session
            [open_g],                                                          # OPENED
            [events(0, 5)[0], b"\x00" * 7],                                    # truncated
            [_frame({**json.loads(good0[0]), "dtype": [["seq", "<i8"]]}), good0[1]],  # dtype
            events(0, 5, cols={"t": math.nan}),                                # bad_time
            events(0, 5, cols={"seq": 3}),                                     # seq_order
            events(7, 5),                                                      # gap
            events(0, 5, encoding="xml-v1"),                                   # bad_encoding
            good0,                                                             # ACK
            [_frame({"type": "CLOSE", "session": "G", "t": 10.0, "next_seq": 5})],  # CLOSED
            events(5, 5),                                                      # closed
            good0,                                                             # ACK (duplicate)
        ]  # fmt: skip


def _frame(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def _open_lab(sid: str, learner: str = "L", **more: str) -> list[bytes]:
    """An OPEN of a network-lab session (`more` overrides scenario or rubric)."""
    fields = {"scenario": "network-lab", "rubric": "network-lab"} | more
    return [_frame({"type": "OPEN", "session": sid, "learner": learner, **fields})]


def _lab_rows(n: int) -> tuple[Layout, Columns]:
    """The network-lab layout and `n` sample rows (seq and t 0 .. n-1, no signal reported)."""
    entry = library().resolve("network-lab", "network-lab", None)
    assert isinstance(entry, RubricEntry)
    layout = Layout.of(entry.scenario)
    cols = Columns(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.float64),
                   np.zeros(n, np.int32),
                   np.full((len(layout.signal_names), n), np.nan))  # fmt: skip
    return layout, cols


@contextmanager
def _dealer(endpoint: str) -> Iterator[zmq.Socket[bytes]]:
    """A bare DEALER socket connected to the engine."""
    context = zmq.Context()
    sock: zmq.Socket[bytes] = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        yield sock
    finally:
        sock.close(linger=0)
        context.term()


def _watch(store: Store, method: str, hold: threading.Event | None = None) -> list[int]:
    """Wrap the store's group `method` (open_sessions, append_batches, close_sessions...):
    the returned list gets the size of each call; with `hold`, each call first waits for it
    (up to 10 s), so that what a test sends meanwhile queues up for the engine's next round."""
    sizes: list[int] = []
    original = getattr(store, method)

    def watched(items: Any) -> Any:
        sizes.append(len(items))
        if hold is not None:
            hold.wait(WAIT_S)
        return original(items)

    setattr(store, method, watched)
    return sizes


@contextmanager
def _in_process_engine(db: Path) -> Iterator[tuple[Engine, Store, FakePeer]]:
    """The engine on a SQLite file and the in-process transport, and a peer of it."""
    with closing(open_store(db)) as store:
        transport = FakeTransport()
        with Engine(store, library(), transport) as engine:
            yield engine, store, transport.peer()


def _send_then_release(
    peer: FakePeer, messages: list[list[bytes]], held: threading.Event
) -> None:
    """Send `messages`, then release `held`. On the in-process transport a message is queued
    for the engine once sent, so the round after the held one finds all of them (over a
    socket nothing says when they have arrived: a fixed pause let a loaded machine split
    them over more rounds)."""
    for frames in messages:
        peer.send(*frames)
    held.set()


def _peer_answers(peer: FakePeer, count: int) -> list[str]:
    """The next `count` answers to `peer`: each NACK's code, or the answer's type."""
    out = []
    for _ in range(count):
        reply = peer.recv(WAIT_S)
        assert reply is not None
        out.append(reply.get("code", reply["type"]))
    return out


def _answers(sock: zmq.Socket[bytes], count: int) -> list[str]:
    """The next `count` replies: each NACK's code, or the reply's type."""
    out = []
    for _ in range(count):
        assert sock.poll(WAIT_MS)
        reply = json.loads(sock.recv_multipart()[0])
        out.append(reply.get("code", reply["type"]))
    return out


@pytest.mark.parametrize("scoring", ["thread", "process"])
def test_bad_input_does_not_disturb_a_concurrent_good_session(tmp_path: Path, scoring: str) -> None:
    sim = sessions("network-lab", 3, seed=4)
    entry = library().resolve("network-lab", "network-lab", None)
    assert isinstance(entry, RubricEntry)
    layout = library().layout(entry)
    with running_engine(tmp_path / "e.db", scoring=scoring) as (engine, _):
        garbage = _Garbage(engine.endpoint, layout, sim.session_ids[0])
        with EngineClient(engine.endpoint, client_id="good", batch_bytes=512, **FAST) as c:
            thread = threading.Thread(target=garbage.run)
            for k, sid in enumerate(sim.session_ids):
                c.open(sid, learner=sim.learners[k], scenario=sim.scenario, rubric=sim.rubric)
            thread.start()
            for k, sid in enumerate(sim.session_ids):
                lo, hi = int(sim.offsets[k]), int(sim.offsets[k + 1])
                for a in range(lo, hi, 20):
                    b = min(hi, a + 20)
                    c.send(sid, Columns(sim.seq[a:b], sim.t[a:b], sim.event[a:b],
                                        sim.signals[:, a:b]))  # fmt: skip
                c.close(sid, float(sim.close_t[k]))
            c.flush(WAIT_S)
            thread.join(WAIT_S)
        assert engine.wait_idle(60)
        metrics = engine.metrics_text()
    assert garbage.error is None
    assert garbage.codes == [
        "frame_count", "bad_header", "unknown_type", "bad_message", "unknown_scenario",
        "session_conflict", "unknown_session", "OPENED", "truncated", "dtype_mismatch",
        "bad_time", "seq_order", "gap", "bad_encoding", "ACK", "CLOSED", "closed", "ACK",
    ]  # fmt: skip
    expected = offline_reports(sim, tmp_path)
    got = reports(tmp_path / "e.db", sim.session_ids)
    assert got == {sid: expected[sid] for sid in sim.session_ids}
    assert 'assessengine_nacks_total{code="session_conflict"} 1' in metrics


# ================================================================================ recovery


@pytest.mark.parametrize("scoring", ["thread", "process"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_restarted_engine_rebuilds_open_sessions_from_the_store(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, scoring: str
) -> None:
    sim = sessions("lhd-underground", 3, seed=6)
    db = request.getfixturevalue("pg_store_url") if backend == "postgres" else tmp_path / "e.db"
    half = sim.seq < np.diff(sim.offsets)[sim.session] // 2
    with running_engine(db, scoring=scoring) as (engine, store), EngineClient(
        engine.endpoint, client_id="sim", **FAST
    ) as c:
        for k, sid in enumerate(sim.session_ids):
            c.open(sid, learner=sim.learners[k], scenario=sim.scenario, rubric=sim.rubric,
                   metadata={"profile": sim.profiles[k]})  # fmt: skip
            rows = np.flatnonzero(half & (sim.session == k))
            c.send(sid, Columns(sim.seq[rows], sim.t[rows], sim.event[rows],
                                sim.signals[:, rows]))  # fmt: skip
        c.flush(WAIT_S)
        assert engine.wait_idle(60)
        before = {sid: len(store.decisions(sid)) for sid in sim.session_ids}
    # stopped with the sessions open; a new engine replays them and the stream resumes
    with running_engine(db, scoring=scoring) as (engine, store):
        recovered = engine.stats.recovery
        assert (recovered.reopened, recovered.events) == (3, int(half.sum()))
        assert recovered.decisions_saved == 0
        assert {sid: len(store.decisions(sid)) for sid in sim.session_ids} == before
        with EngineClient(engine.endpoint, client_id="sim", **FAST) as c:
            streamed = stream_sessions(c, sim)
        assert streamed.events == len(sim) - int(half.sum())
        assert engine.wait_idle(60)
    assert reports(db, sim.session_ids) == offline_reports(sim, tmp_path)


@pytest.mark.parametrize("scoring", ["thread", "process"])
def test_recovery_reports_a_session_closed_just_before_a_crash(
    tmp_path: Path, scoring: str
) -> None:
    sim = sessions("network-lab", 2, seed=9)
    db = tmp_path / "e.db"
    with running_engine(db) as (engine, store), EngineClient(
        engine.endpoint, client_id="sim", **FAST
    ) as c:
        stream_sessions(c, sim)
        assert engine.wait_idle(60)
        expected = {sid: store.report(sid) for sid in sim.session_ids}
    raw = sqlite3.connect(db)  # as if the engine had crashed between the CLOSE and its report
    try:
        raw.execute("DELETE FROM reports")
        raw.commit()
    finally:
        raw.close()
    with running_engine(db, scoring=scoring) as (engine, store):
        assert engine.stats.recovery.reported == 2
        assert {sid: store.report(sid) for sid in sim.session_ids} == expected


# ================================================================================ metrics


def test_a_running_engine_raises_the_collector_thresholds_and_restores_them(
    tmp_path: Path,
) -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's default
    try:
        with running_engine(tmp_path / "e.db"):
            assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def test_metrics_render_counters_labels_and_cumulative_histograms() -> None:
    histogram = Histogram((0.01, 0.1))
    for value in (0.005, 0.05, 0.05, 3.0):
        histogram.observe(value)
    text = render([counter("x_total", "X.", 3),
                   Metric("lat_seconds", "histogram", "Latency.", histogram)])  # fmt: skip
    assert text.splitlines() == [
        "# HELP x_total X.", "# TYPE x_total counter", "x_total 3",
        "# HELP lat_seconds Latency.", "# TYPE lat_seconds histogram",
        'lat_seconds_bucket{le="0.01"} 1', 'lat_seconds_bucket{le="0.1"} 3',
        'lat_seconds_bucket{le="+Inf"} 4', "lat_seconds_sum 3.105", "lat_seconds_count 4",
    ]  # fmt: skip
    assert histogram.quantile(0.5) == 0.1
    assert histogram.quantile(1.0) == math.inf


def test_engine_metrics_name_every_nack_code_and_the_queue(tmp_path: Path) -> None:
    with running_engine(tmp_path / "e.db") as (engine, _):
        text = engine.metrics_text()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if not line.startswith("#")}  # fmt: skip
    for name in ("assessengine_events_received_total", "assessengine_batches_received_total",
                 "assessengine_nacks_total", "assessengine_queue_depth",
                 "assessengine_scoring_latency_seconds_bucket", "assessengine_sessions_open",
                 "assessengine_ack_latency_seconds_count"):  # fmt: skip
        assert name in names
    assert 'assessengine_nacks_total{code="gap"} 0' in text


# ================================================================================ scorer


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_save_results_stores_many_sessions_in_one_call(tmp_path: Path, kind: str) -> None:
    store: Store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
    try:
        for sid in ("A", "B"):
            store.open_session(SessionInfo(sid, "L", "network-lab", "r", 1, "0" * 64))
        row = {"criterion": "c", "verdict": "pass", "evidence": {"seq": 1}}
        other = {"criterion": "d", "verdict": "fail", "evidence": {"seq": 2}}
        store.save_results({"A": [row, other], "B": []}, {"B": {"outcome": "pass"}})
        assert (store.decisions("A"), store.decisions("B")) == ([row, other], [])
        assert (store.report("A"), store.report("B")) == (None, {"outcome": "pass"})
        with pytest.raises(StoreError):  # all or nothing
            store.save_results({"A": [row]}, {"nobody": {}})
        assert len(store.decisions("A")) == 2
    finally:
        store.close()


def test_closing_many_sessions_and_a_repeated_close_reports_each_once(tmp_path: Path) -> None:
    sim = sessions("network-lab", 4, seed=12)
    store = MemoryStore()
    scorer = Scorer(store, library())
    entry = library().resolve("network-lab", "network-lab", None)
    assert isinstance(entry, RubricEntry)
    for k, sid in enumerate(sim.session_ids):
        store.open_session(SessionInfo(sid, "L", "network-lab", "network-lab",
                                       entry.rubric.version, entry.sha256))  # fmt: skip
        scorer.open(sid, entry)
        rows = slice(int(sim.offsets[k]), int(sim.offsets[k + 1]))
        scorer.score([(sid, Columns(sim.seq[rows], sim.t[rows], sim.event[rows],
                                    sim.signals[:, rows]))])  # fmt: skip
    closing = [(sid, float(t)) for sid, t in zip(sim.session_ids, sim.close_t, strict=True)]
    done = scorer.close_many([*closing, closing[0]])
    assert sorted(done) == sorted(sim.session_ids)
    assert scorer.sessions_open == 0
    assert scorer.close(sim.session_ids[0], 1.0) is None
    expected = offline_reports(sim, tmp_path)
    assert {sid: store.report(sid) for sid in sim.session_ids} == expected


def test_a_burst_of_opens_is_one_transaction_answered_in_order(tmp_path: Path) -> None:
    """OPENs arriving together are stored in one transaction (`Store.open_sessions`), each
    answered as if alone and in order: a repeat is OPENED again, other details are a conflict,
    an unknown scenario or rubric is refused, and EVENTS and CLOSE in the same burst see the
    sessions open."""
    n = 3
    layout, cols = _lab_rows(n)
    burst = [
        *(_open_lab(f"P{k}") for k in range(5)),
        _open_lab("P0"),                                   # repeat, same details: OPENED again
        _open_lab("P1", learner="someone-else"),           # other details: conflict
        _open_lab("P5", scenario="no-such-scenario"),      # unknown scenario
        _open_lab("P6", rubric="no-such-rubric"),          # unknown rubric
        [_frame({"type": "EVENTS", "session": "P2", "first_seq": 0, "count": n,
                 "encoding": "columns-v1", "dtype": layout.dtype_header()}),
         encode_columns_v1(cols, layout)],
        [_frame({"type": "CLOSE", "session": "P3", "t": 1.0, "next_seq": 0})],
        _open_lab("P7"),
    ]  # fmt: skip
    expected = ["OPENED"] * 6 + ["session_conflict", "unknown_scenario", "unknown_rubric",
                                 "ACK", "CLOSED", "OPENED"]  # fmt: skip
    with _in_process_engine(tmp_path / "e.db") as (_, store, peer):
        held = threading.Event()  # the first OPEN waits until the burst is queued
        sizes = _watch(store, "open_sessions", held)
        _send_then_release(peer, [_open_lab("first"), *burst], held)
        answers = _peer_answers(peer, 1 + len(burst))
        assert answers == ["OPENED", *expected]
        # 9 OPENs reach the store (first, P0-P4, P0 again, P1 again, P7) in at most 4
        # transactions, whichever of them the first round took: first..P4 (in two at most),
        # the two repeats, P7
        assert sum(sizes) == 9
        assert len(sizes) <= 4
        records = {sid: store.session(sid) for sid in (f"P{k}" for k in range(8))}
        assert {sid for sid, r in records.items() if r is not None} == {
            "P0", "P1", "P2", "P3", "P4", "P7"
        }  # fmt: skip
        assert records["P1"] is not None
        assert records["P1"].info.learner == "L"


def test_a_store_failure_on_open_is_nacked_internal_and_the_engine_goes_on(
    tmp_path: Path,
) -> None:
    with running_engine(tmp_path / "e.db") as (engine, store):
        open_sessions = store.open_sessions

        def failing(infos: Any) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

        store.open_sessions = failing  # type: ignore[method-assign]
        with _dealer(engine.endpoint) as sock:
            for frames in (_open_lab("F1"), _open_lab("F2", scenario="nowhere"),
                           _open_lab("F3")):  # fmt: skip
                sock.send_multipart(frames)
            assert _answers(sock, 3) == ["internal", "unknown_scenario", "internal"]
            store.open_sessions = open_sessions  # type: ignore[method-assign]
            sock.send_multipart(_open_lab("F1"))
            assert _answers(sock, 1) == ["OPENED"]
        assert store.session("F3") is None
        assert engine.running


def test_a_burst_of_closes_is_answered_in_order_each_on_its_own(tmp_path: Path) -> None:
    """CLOSEs arriving together are stored in one transaction, but each is answered as if
    alone and in order: a repeat is CLOSED again (or NACKed for another t), a CLOSE with
    events missing is a gap, and events after a CLOSE in the same burst are refused."""
    n = 4
    layout, cols = _lab_rows(n)
    names = [f"B{k}" for k in range(6)]

    def close(sid: str, t: float = 9.0, next_seq: int = n) -> list[bytes]:
        return [_frame({"type": "CLOSE", "session": sid, "t": t, "next_seq": next_seq})]

    burst = [
        *(close(sid) for sid in names[:4]),
        close(names[0]),                      # repeat, same t: CLOSED again
        close(names[1], t=12.0),              # repeat, other t: closed
        close(names[4], next_seq=n + 3),      # events missing: gap
        [_frame({"type": "EVENTS", "session": names[2], "first_seq": n, "count": n,
                 "encoding": "columns-v1", "dtype": layout.dtype_header()}),
         encode_columns_v1(Columns(cols.seq + n, cols.t + 10, cols.event, cols.signals),
                           layout)],         # after its CLOSE: closed
        close(names[5]),
    ]  # fmt: skip
    expected = ["CLOSED"] * 5 + ["closed", "gap", "closed", "CLOSED"]
    with running_engine(tmp_path / "e.db") as (engine, store):
        with _dealer(engine.endpoint) as sock:
            for sid in names:
                sock.send_multipart(_open_lab(sid))
                sock.send_multipart([_frame({"type": "EVENTS", "session": sid, "first_seq": 0,
                                             "count": n, "encoding": "columns-v1",
                                             "dtype": layout.dtype_header()}),
                                     encode_columns_v1(cols, layout)])  # fmt: skip
            assert set(_answers(sock, 2 * len(names))) <= {"OPENED", "ACK"}
            for frames in burst:
                sock.send_multipart(frames)
            answers = _answers(sock, len(burst))
        assert answers == expected
        assert engine.wait_idle(60)
        records = {sid: store.session(sid) for sid in names}
        assert {sid: r.status for sid, r in records.items() if r} == {
            **dict.fromkeys(names, "closed"), names[4]: "open"
        }
        assert all(store.report(sid) is not None for sid in names if sid != names[4])


def test_closes_between_other_sessions_batches_do_not_split_the_group_commit(
    tmp_path: Path,
) -> None:
    """CLOSEs arriving between batches of other sessions (sessions ending while others
    stream) are stored in one transaction and the batches in one append, not one transaction
    per message; every answer still comes in arrival order, and a batch for a session whose
    CLOSE came earlier in the burst is refused as closed."""
    n = 4
    layout, cols = _lab_rows(n)
    ending, streaming = [f"E{k}" for k in range(4)], [f"S{k}" for k in range(4)]

    def events(sid: str, first: int) -> list[bytes]:
        moved = Columns(cols.seq + first, cols.t + first, cols.event, cols.signals)
        return [_frame({"type": "EVENTS", "session": sid, "first_seq": first, "count": n,
                        "encoding": "columns-v1", "dtype": layout.dtype_header()}),
                encode_columns_v1(moved, layout)]  # fmt: skip

    burst = [frames for e, s in zip(ending, streaming, strict=True)
             for frames in ([_frame({"type": "CLOSE", "session": e, "t": 99.0,
                                     "next_seq": n})], events(s, n))]  # fmt: skip
    burst.append(events(ending[0], n))  # after its CLOSE: closed
    expected = ["CLOSED", "ACK"] * 4 + ["closed"]
    with _in_process_engine(tmp_path / "e.db") as (engine, store, peer):
        for sid in [*ending, *streaming, "first"]:
            peer.send(*_open_lab(sid))
            peer.send(*events(sid, 0))
        assert set(_peer_answers(peer, 2 * 9)) <= {"OPENED", "ACK"}
        held = threading.Event()  # the first append waits until the burst is queued
        appends = _watch(store, "append_batches", held)
        closes = _watch(store, "close_sessions")
        _send_then_release(peer, [events("first", n), *burst], held)
        answers = _peer_answers(peer, 1 + len(burst))
        assert answers == ["ACK", *expected]
        # five batches and four CLOSEs reach the store, in fewer transactions than messages
        # (one each was 5 and 4): the first round takes "first" and maybe the start of the
        # burst, the next one the rest (two appends and two close transactions), or a third
        # round a message that was slow to arrive
        assert sum(appends) == 5
        assert len(appends) < 5
        assert sum(closes) == 4
        assert len(closes) < 4
        assert engine.wait_idle(60)
        assert {sid: store.session(sid).status for sid in ending + streaming} == {  # type: ignore[union-attr]
            **dict.fromkeys(ending, "closed"), **dict.fromkeys(streaming, "open")
        }
        assert all(store.report(sid) is not None for sid in ending)


def test_the_app_serves_the_engine_metrics_and_shuts_down_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with running_engine(db) as (engine, _):
        web = WebServer(create_app(db_path=db, metrics=engine.metrics_text), "127.0.0.1", 0)
        web.start()
        try:
            reply = httpx.get(f"{web.url}/metrics", timeout=WAIT_S)
        finally:
            web.stop()
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert "assessengine_sessions_open 0" in reply.text
