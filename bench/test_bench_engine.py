"""The live engine end to end: a sender in a separate process streams forklift sessions over
tcp://127.0.0.1 to an in-process `Engine` (a fresh store, synchronous=NORMAL, ACK after
commit, scoring on in a process of its own, as `serve` runs it). The store is a SQLite file,
and for the columns-v1 throughput also a PostgreSQL database (``[sqlite-...]`` and
``[postgresql-...]``) on the benchmarks' own server (tests/pg_server.py, started with fsync on
as a production server runs; skipped where PostgreSQL is not installed), the engine owning
its sessions through advisory locks as on a shared database.

* throughput: every batch of every session is sent as fast as the engine ACKs (a window of
  64 MiB in flight), and each session is closed as soon as its last batch is ACKed, as a
  simulator closes its session when it ends (the ``closes-at-end`` case closes all 1,000 after
  the last ACK instead: the worst case for the end of a round); a round ends when every batch
  is ACKed AND scored and every report saved (`Engine.wait_idle`).
  ``extra_info``: events/s to the last ACK and to the end of scoring, and the CPU seconds the
  best round took in the engine's ingest and scoring threads, the ZeroMQ I/O threads and the
  sender (from /proc: whether a round is bound by one thread or by the machine's cores), and
  each round's mid-round pace: events/s stored and scored between 10 % and 90 % of its events
  (`_Progress`), the rate the engine keeps up while sessions stream, without the round's
  start and its end (the scorer's backlog, and the closes still to come).
* latency: 500 sessions at a steady 50,000 events/s in total, each session sending 10 events
  every 100 ms (5,000 batches/s) or 50 events every 500 ms (1,000 batches/s), staggered, for
  `LATENCY_SECONDS`; ``extra_info`` has percentiles of the time from send to ACK, measured by
  the sender for every batch.

* ``...-commit-thread``: the 64 KiB throughput case and the 10-events latency case with the
  optional commit thread (`Engine(overlap_commits=True)`, setting `commit_thread`: large
  rounds committed in a thread of their own, small ones in place); the default cases, every
  group commit in the ingest thread, are their same-run baselines.

* sink: the same sender and frames against a socket that answers at once and stores nothing,
  the ceiling of the harness and the loopback transport on this machine (same run).

The sender speaks the protocol on a bare DEALER socket with frames encoded before the clock
starts, so the figures are the engine's, not the client library's.
Run: pytest bench/test_bench_engine.py --benchmark-only -s
Smoke (every case once, 20 sessions, a 1 s latency run; nothing measured):
pytest bench/test_bench_engine.py --benchmark-disable -q
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from tests.pg_server import PgServer

from assessengine.adapters.library import load_rubric
from assessengine.compose import build_owners, open_store, scoring_backend
from assessengine.core.codec import Columns, Layout, encode_json_v1, records_v1
from assessengine.ingest.zmq import zmq_transport
from assessengine.runtime import fused
from assessengine.runtime.engine import Engine
from assessengine.runtime.pipeline import RubricLibrary, warm_up_kernel
from assessengine.runtime.scoring_process import RemoteScorer
from assessengine.settings import Settings
from assessengine.sim.generate import simulate

ROOT = Path(__file__).resolve().parents[1]
RUBRIC_DIR = ROOT / "rubrics"
SCENARIO = "forklift-warehouse"
RUBRIC = "forklift-load-handling"
WINDOW = 64 * 2**20
ROUNDS = 3
LATENCY_SESSIONS = 500
LATENCY_RATE = 50_000          # events/s, all sessions together
LATENCY_TICK = 0.01            # some of the sessions send at every tick
LATENCY_SECONDS = 6.0
CLOSES_AT_END = "/closes-at-end"  # a sender mode's suffix: close every session after the last ACK


# ================================================================================ the sender


@dataclass
class _Plan:
    """Pre-encoded batches: per session, (first_seq, count, payload) in order."""

    encoding: str
    dtype: list[list[str]] | None
    batches: list[list[tuple[int, int, bytes]]]
    events: int


def _plan(sessions: int, encoding: str, frame_bytes: int) -> _Plan:
    _, scenario = load_rubric(RUBRIC_DIR / f"{RUBRIC}.yaml")
    layout = Layout.of(scenario)
    sim = simulate(scenario, "mixed", sessions, seed=11)
    per_row = layout.itemsize if encoding == "columns-v1" else 200
    rows = max(1, frame_bytes // per_row)
    out: list[list[tuple[int, int, bytes]]] = []
    for k in range(sessions):
        lo, hi = int(sim.offsets[k]), int(sim.offsets[k + 1])
        mine = []
        for a in range(lo, hi, rows):
            b = min(hi, a + rows)
            cols = Columns(sim.seq[a:b], sim.t[a:b], sim.event[a:b], sim.signals[:, a:b])
            payload = (records_v1(cols, layout).tobytes() if encoding == "columns-v1"
                       else encode_json_v1(cols, layout))  # fmt: skip
            mine.append((a - lo, b - a, payload))
        out.append(mine)
    dtype = layout.dtype_header() if encoding == "columns-v1" else None
    return _Plan(encoding, dtype, out, len(sim))


class _Peer:
    """A DEALER socket speaking the protocol by hand."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.socket: zmq.Socket[bytes] = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 100_000)
        self.socket.setsockopt(zmq.RCVHWM, 100_000)
        self.socket.connect(endpoint)

    def send(self, header: dict[str, Any] | bytes, payload: bytes | None = None) -> None:
        head = header if isinstance(header, bytes) else json.dumps(header).encode()
        self.socket.send_multipart([head] + ([payload] if payload is not None else []),
                                   copy=False)  # fmt: skip

    def replies(self, timeout: float) -> Iterator[dict[str, Any]]:
        if self.socket.poll(int(timeout * 1000), zmq.POLLIN):
            while True:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                yield json.loads(frames[0])

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


def _open(peer: _Peer, names: list[str]) -> None:
    for name in names:
        peer.send({"type": "OPEN", "session": name, "learner": "L", "scenario": SCENARIO,
                   "rubric": RUBRIC})  # fmt: skip
    waiting = set(names)
    deadline = time.monotonic() + 60
    while waiting and time.monotonic() < deadline:
        for reply in peer.replies(1.0):
            if reply["type"] != "OPENED":
                raise RuntimeError(f"OPEN refused: {reply}")
            waiting.discard(reply["session"])
    if waiting:
        raise RuntimeError(f"{len(waiting)} OPEN(s) unanswered")


def _throughput_round(
    peer: _Peer, plan: _Plan, prefix: str, conn: Connection, *, close_each: bool
) -> None:
    """Open the sessions, then (timed) send every batch round robin over the sessions as the
    window allows and close each session as soon as its last batch is ACKed (`close_each`,
    as a simulator does when its session ends) or all of them after the last ACK."""
    names = [f"{prefix}-{k}" for k in range(len(plan.batches))]
    _open(peer, names)
    queue = [  # round robin over the sessions, as live simulators interleave
        (names[k], mine[i])
        for i in range(max(map(len, plan.batches)))
        for k, mine in enumerate(plan.batches)
        if i < len(mine)
    ]
    headers = [  # encoded before the clock starts, like the payloads
        json.dumps({"type": "EVENTS", "session": name, "first_seq": first, "count": count,
                    "encoding": plan.encoding}
                   | ({} if plan.dtype is None else {"dtype": plan.dtype})).encode()
        for name, (first, count, _) in queue
    ]  # fmt: skip
    last = {names[k]: mine[-1][0] + mine[-1][1] - 1 for k, mine in enumerate(plan.batches)}
    conn.send("ready")
    conn.recv()
    start = time.perf_counter()
    acked: dict[str, int] = {}
    in_flight = sent = 0
    sizes: dict[tuple[str, int], int] = {}
    done = closed = 0
    deadline = time.monotonic() + 300
    while done < len(names) and time.monotonic() < deadline:
        while sent < len(queue) and in_flight < WINDOW:
            name, (first, count, payload) = queue[sent]
            peer.send(headers[sent], payload)
            sizes[(name, first + count - 1)] = len(payload)
            in_flight += len(payload)
            sent += 1
        for reply in peer.replies(0.001 if sent < len(queue) else 0.1):
            if reply["type"] == "CLOSED" and close_each:
                closed += 1
                continue
            if reply["type"] != "ACK":
                raise RuntimeError(f"unexpected reply {reply}")
            name, seq = reply["session"], reply["seq"]
            in_flight -= sizes.pop((name, seq), 0)
            if seq > acked.get(name, -1):
                acked[name] = seq
                done += seq == last[name]
                if close_each and seq == last[name]:
                    _close(peer, name, last[name])
    elapsed = time.perf_counter() - start
    if not close_each:
        for name in names:
            _close(peer, name, last[name])
    while closed < len(names) and time.monotonic() < deadline:
        closed += sum(r["type"] == "CLOSED" for r in peer.replies(1.0))
    conn.send((elapsed, plan.events, done == len(names)))


def _close(peer: _Peer, name: str, last: int) -> None:
    peer.send({"type": "CLOSE", "session": name, "t": 1e6, "next_seq": last + 1})


def _latency_round(peer: _Peer, plan: _Plan, conn: Connection, seconds: float) -> None:
    names = [f"lat-{k}" for k in range(len(plan.batches))]
    _open(peer, names)
    conn.send("ready")
    conn.recv()
    rows = plan.batches[0][0][1]  # events per batch: each session sends every rows/rate s
    groups = max(1, round(rows * len(names) / LATENCY_RATE / LATENCY_TICK))
    sent_at: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    cursor = [0] * len(names)
    start = time.perf_counter()
    tick = 0
    while True:
        due = start + tick * LATENCY_TICK
        now = time.perf_counter()
        if now - start >= seconds:
            break
        if now >= due:
            for k in range(tick % groups, len(names), groups):
                if cursor[k] >= len(plan.batches[k]):
                    continue  # the session has sent all it has
                first, count, payload = plan.batches[k][cursor[k]]
                peer.send({"type": "EVENTS", "session": names[k], "first_seq": first,
                           "count": count, "encoding": plan.encoding, "dtype": plan.dtype},
                          payload)  # fmt: skip
                sent_at[(names[k], first + count - 1)] = time.perf_counter()
                cursor[k] += 1
            tick += 1
        for reply in peer.replies(max(0.0, min(due + LATENCY_TICK - time.perf_counter(), 0.002))):
            sent = sent_at.pop((reply.get("session", ""), reply.get("seq", -2)), None)
            if reply["type"] == "ACK" and sent is not None:
                latencies.append(time.perf_counter() - sent)
    deadline = time.perf_counter() + 10
    while sent_at and time.perf_counter() < deadline:
        for reply in peer.replies(0.1):
            sent = sent_at.pop((reply.get("session", ""), reply.get("seq", -2)), None)
            if reply["type"] == "ACK" and sent is not None:
                latencies.append(time.perf_counter() - sent)
    conn.send((latencies, len(sent_at), sum(cursor) * rows, time.perf_counter() - start))


def _sender(
    conn: Connection,
    endpoint: str,
    mode: str,
    sessions: int,
    frame_bytes: int,
    latency_seconds: float = LATENCY_SECONDS,
) -> None:
    """The sender process: plan once, then one round per command until None. `mode`:
    ``json-v1``, ``columns-v1`` (+ `CLOSES_AT_END`) or ``latency`` (columns-v1). The sender's
    own garbage collector is kept out of the measurement (its full passes took 15-40 ms)."""
    encoding = "json-v1" if mode == "json-v1" else "columns-v1"
    plan = _plan(sessions, encoding, frame_bytes)
    gc.collect()
    gc.freeze()
    peer = _Peer(endpoint)
    try:
        conn.send("planned")
        while (command := conn.recv()) is not None:
            if mode == "latency":
                _latency_round(peer, plan, conn, latency_seconds)
            else:
                _throughput_round(peer, plan, command, conn,
                                  close_each=not mode.endswith(CLOSES_AT_END))  # fmt: skip
    finally:
        peer.close()


# ================================================================================ CPU by thread


def _thread_cpu(pid: int) -> dict[tuple[int, str], float]:
    """CPU seconds (user + system) of each thread of process `pid`, keyed by (thread id,
    name), from /proc (empty where there is none)."""
    out: dict[tuple[int, str], float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue  # the thread ended
        out[(int(tid), name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _cpu_by_part(engine: Engine, sender_pid: int) -> dict[str, float]:
    """Cumulative CPU seconds of the engine's ingest thread, its commit thread, its scoring
    thread (with the thread reading the scoring process's answers), the scoring process (all
    its threads), the ZeroMQ I/O threads (engine and sender) and the sender's other threads."""
    ingest, scoring = engine._ingest_thread.native_id, engine._scoring_thread.native_id
    commit = {t.native_id for t in threading.enumerate() if t.name.startswith("engine-commit")}
    scorer = engine.scoring.pid if isinstance(engine.scoring, RemoteScorer) else None
    parts = {"ingest": 0.0, "commit": 0.0, "scoring": 0.0, "scoring_process": 0.0,
             "zmq_io": 0.0, "sender": 0.0}  # fmt: skip
    for pid in (os.getpid(), sender_pid, scorer):
        if pid is None:
            continue
        for (tid, name), seconds in _thread_cpu(pid).items():
            if name.startswith("ZMQbg/IO"):
                parts["zmq_io"] += seconds
            elif pid == sender_pid:
                parts["sender"] += seconds
            elif pid == scorer:
                parts["scoring_process"] += seconds
            elif tid == ingest:
                parts["ingest"] += seconds
            elif tid in commit:
                parts["commit"] += seconds
            elif tid == scoring or name == "scoring-answers":
                parts["scoring"] += seconds
    return parts


def _ingest_seconds(engine: Engine) -> dict[str, float]:
    """The ingest thread's cumulative seconds: CPU, waiting for a message (idle) and for room
    in the work queue (blocked), from `EngineStats`; waiting for a core (runqueue), from
    /proc's schedstat (0 where there is none)."""
    stats = engine.stats
    runqueue = 0.0
    try:
        with open(f"/proc/self/task/{engine._ingest_thread.native_id}/schedstat") as f:
            runqueue = int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        pass
    return {"cpu": stats.ingest_cpu_seconds, "idle": stats.ingest_idle_seconds,
            "blocked": engine.queue.blocked_seconds, "runqueue": runqueue}  # fmt: skip


def _ingest_breakdown(
    before: dict[str, float], after: dict[str, float], window: float
) -> dict[str, float]:
    """Where the ingest thread's wall time went between two `_ingest_seconds` (`window`
    seconds apart): its CPU, waiting for a message, for room in the queue, for a core, and
    the rest (``other``: the GIL, the store's lock, I/O)."""
    parts = {k: round(after[k] - before[k], 3) for k in after}
    parts["other"] = round(window - sum(parts.values()), 3)
    return {"window": round(window, 3)} | parts


# ================================================================================ mid-round rates


class _Progress:
    """Samples the engine's stored and scored event counters every `interval` s while a
    round runs: the rates between 10 % and 90 % of the round's events are the steady pace of
    ingest and scoring, without the start and the end of the round."""

    def __init__(self, engine: Engine, interval: float = 0.005) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._base = self._counts()
        self.samples: list[tuple[float, int, int]] = []  # (time, stored, scored) this round
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _counts(self) -> tuple[int, int]:
        return self._engine.stats.events_stored, self._engine.scoring.events_scored

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            stored, scored = self._counts()
            self.samples.append((time.perf_counter(), stored - self._base[0],
                                 scored - self._base[1]))  # fmt: skip

    def rates(self, events: int) -> dict[str, float | None]:
        """events/s of storing and of scoring between 10 % and 90 % of `events`."""
        self._stop.set()
        self._thread.join()
        return {"stored": _rate([(t, n) for t, n, _ in self.samples], events),
                "scored": _rate([(t, n) for t, _, n in self.samples], events)}  # fmt: skip


def _rate(series: list[tuple[float, int]], events: int) -> float | None:
    """Events per second between the first samples at or past 10 % and 90 % of `events`."""
    lo = next(((t, n) for t, n in series if n >= 0.1 * events), None)
    hi = next(((t, n) for t, n in series if n >= 0.9 * events), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


# ================================================================================ the engine


@dataclass
class _Bench:
    engine: Engine
    conn: Connection
    process: Any

    def round(self, prefix: str) -> dict[str, Any]:
        self.conn.send(prefix)
        assert self.conn.recv() == "ready"
        assert self.engine.wait_idle(120)  # the OPENs are scored before the clock starts
        before = _cpu_by_part(self.engine, self.process.pid)
        progress = _Progress(self.engine)
        ingest = _ingest_seconds(self.engine)
        start = time.perf_counter()
        self.conn.send("go")
        if not self.conn.poll(300):
            raise RuntimeError("the sender did not finish")
        # the sender reports once every batch is ACKed and every session CLOSED: the window
        # ends a little after the last ACK (its own clock, `elapsed`)
        ingest = _ingest_breakdown(ingest, _ingest_seconds(self.engine),
                                   time.perf_counter() - start)  # fmt: skip
        elapsed, events, complete = self.conn.recv()
        assert complete, "not every batch was acknowledged"
        assert self.engine.wait_idle(120)
        scored = time.perf_counter() - start
        after = _cpu_by_part(self.engine, self.process.pid)
        cpu = {part: round(after[part] - before[part], 2) for part in after}
        return {"events": events, "ack_seconds": elapsed, "scored_seconds": scored, "cpu": cpu,
                "mid_round": progress.rates(events), "ingest_seconds": ingest}


def _smoke(request: pytest.FixtureRequest) -> bool:
    """``--benchmark-disable``: a quick run of every case (a few sessions, a short latency
    run), to see that it works, not to measure."""
    return bool(request.config.getoption("benchmark_disable", False))


@pytest.fixture
def bench_store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty store on the backend `request.param` names (``sqlite``, the
    default: a file in a temporary folder; ``postgresql``: a database of its own on the
    benchmarks' server, which syncs as a production server does)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield str(Path(folder) / "bench.db")
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def bench_engine(request: pytest.FixtureRequest, bench_store_url: str) -> Iterator[_Bench]:
    """An engine as `serve` runs it (a scoring process; on PostgreSQL, session owners) on a
    new store at `bench_store_url`, and a sender process connected to it."""
    mode, sessions, frame_bytes, *thread = request.param  # thread: the commit thread on
    smoke = _smoke(request)
    if smoke:
        sessions = min(sessions, 20)
    library, _ = RubricLibrary.load([RUBRIC_DIR])
    url = bench_store_url
    fused_on = _scores_as_serve(library)
    store = open_store(url)
    try:
        scoring = scoring_backend("process", store, library, url=url)
        owners = build_owners(Settings.load(flags={"db": url}))
        engine = Engine(store, library, zmq_transport("tcp://127.0.0.1:*"), scoring=scoring,
                        owners=owners, overlap_commits=bool(thread))  # fmt: skip
        engine.start()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        seconds = 1.0 if smoke else LATENCY_SECONDS
        process = context.Process(target=_sender, args=(child, engine.endpoint, mode, sessions,
                                                        frame_bytes, seconds))  # fmt: skip
        process.start()
        try:
            if not parent.poll(120) or parent.recv() != "planned":
                raise RuntimeError("the sender did not start")
            yield _Bench(engine, parent, process)
        finally:
            parent.send(None)
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()
            parent.close()
            child.close()
            engine.stop()
    finally:
        store.close()
        if fused_on:
            fused.uninstall()


def _scores_as_serve(library: RubricLibrary) -> bool:
    """Score as `serve` does by default: with the fused steps (`fused_kernel`; set
    ``ASSESSENGINE_FUSED_KERNEL=0`` for the table-driven kernel), from the default cache
    directory, each rubric's step compiled or loaded here before the engine starts (its
    scoring process then loads it from the cache: no compile child beside the rounds).
    Whether the fused steps are on."""
    settings = Settings.load(environ=os.environ)
    if not settings.fused_kernel:
        return False
    fused.install(settings.fused_cache or fused.default_cache_dir(os.environ), background=False)
    warm_up_kernel(library)
    return True


def _throughput(benchmark: Any, bench: _Bench, label: str) -> None:
    results: list[dict[str, Any]] = []
    counter = iter(range(1000))

    def one_round() -> None:
        results.append(bench.round(f"{label}-{next(counter)}"))

    bench.round("warmup")  # numba loads its cache, SQLite grows its file
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    best = min(results, key=lambda r: r["scored_seconds"])
    events = best["events"]
    benchmark.extra_info.update({
        "events_per_round": events,
        "events_per_s_acked": round(events / best["ack_seconds"]),
        "events_per_s_scored": round(events / best["scored_seconds"]),
        "events_per_s_scored_all_rounds": [round(r["events"] / r["scored_seconds"])
                                           for r in results],
        "cpu_seconds_of_best_round": best["cpu"],
        "ingest_thread_to_the_last_ack": [r["ingest_seconds"] for r in results],
        "mid_round_events_per_s": [{k: v and round(v) for k, v in r["mid_round"].items()}
                                   for r in results],
        "store_commits": bench.engine.stats.commits,
        "batches": bench.engine.stats.batches_stored,
    })  # fmt: skip
    print(f"\n{label}: {benchmark.extra_info}")


@pytest.mark.parametrize("bench_store_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize(
    "bench_engine",
    [("columns-v1", 1000, 64 * 2**10), ("columns-v1", 1000, 64 * 2**10, "thread"),
     ("columns-v1", 1000, 256 * 2**10), ("columns-v1", 1000, 2**20),
     ("columns-v1" + CLOSES_AT_END, 1000, 2**20)],
    ids=["64KiB", "64KiB-commit-thread", "256KiB", "1MiB", "1MiB-closes-at-end"],
    indirect=True,
)
def test_columns_v1_throughput(benchmark: Any, bench_engine: _Bench) -> None:
    _throughput(benchmark, bench_engine, "columns-v1")


class _Sink:
    """A ROUTER that answers at once (OPENED, ACK, CLOSED) and stores nothing: what the sender
    and the loopback transport alone reach on this machine, the ceiling for the engine's
    figures measured in the same run."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.socket: zmq.Socket[bytes] = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            if not self.socket.poll(100):
                continue
            while True:
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                h = json.loads(frames[1].bytes)
                sid = h.get("session")
                last = h.get("first_seq", 0) + h.get("count", 0) - 1
                reply = {"OPEN": {"type": "OPENED", "session": sid},
                         "CLOSE": {"type": "CLOSED", "session": sid},
                         "EVENTS": {"type": "ACK", "session": sid, "seq": last}}  # fmt: skip
                if h.get("type") in reply:
                    self.socket.send_multipart([frames[0].bytes,
                                                json.dumps(reply[h["type"]]).encode()])  # fmt: skip

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.socket.close(linger=0)
        self.context.term()


@pytest.mark.parametrize("frame_bytes", [64 * 2**10, 2**20], ids=["64KiB", "1MiB"])
def test_columns_v1_sender_to_a_sink(benchmark: Any, frame_bytes: int) -> None:
    """The harness's ceiling: the same sender and frames against `_Sink`."""
    sink = _Sink()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    args = (child, sink.endpoint, "columns-v1", 1000, frame_bytes)
    process = context.Process(target=_sender, args=args)
    process.start()
    results: list[tuple[float, int]] = []
    try:
        assert parent.poll(120)
        assert parent.recv() == "planned"

        def one_round() -> None:
            parent.send(f"r{len(results)}")
            assert parent.recv() == "ready"
            parent.send("go")
            elapsed, events, complete = parent.recv()
            assert complete
            results.append((elapsed, events))

        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    finally:
        parent.send(None)
        process.join(30)
        sink.close()
    elapsed, events = min(results)
    benchmark.extra_info.update(events_per_round=events, events_per_s_acked=round(events / elapsed))
    print(f"\nsink: {benchmark.extra_info}")


@pytest.mark.parametrize("bench_engine", [("json-v1", 100, 256 * 2**10)], indirect=True)
def test_json_v1_throughput(benchmark: Any, bench_engine: _Bench) -> None:
    _throughput(benchmark, bench_engine, "json-v1")


@pytest.mark.parametrize(
    "bench_engine",
    [("latency", LATENCY_SESSIONS, 10 * 60), ("latency", LATENCY_SESSIONS, 10 * 60, "thread"),
     ("latency", LATENCY_SESSIONS, 50 * 60)],
    ids=["10-events-at-10Hz", "10-events-at-10Hz-commit-thread", "50-events-at-2Hz"],
    indirect=True,
)
def test_ack_latency_500_sessions_50k_events_per_s(benchmark: Any, bench_engine: _Bench) -> None:
    outcome: dict[str, Any] = {}

    def run() -> None:
        bench_engine.conn.send("latency")
        assert bench_engine.conn.recv() == "ready"
        bench_engine.conn.send("go")
        assert bench_engine.conn.poll(LATENCY_SECONDS + 60)
        latencies, unacked, events, seconds = bench_engine.conn.recv()
        outcome.update(latencies=np.array(latencies), unacked=unacked, events=events,
                       seconds=seconds)  # fmt: skip

    benchmark.pedantic(run, rounds=1, iterations=1)
    lat = outcome["latencies"]
    assert outcome["unacked"] == 0
    p50, p99, p999 = (float(np.percentile(lat, q)) * 1e3 for q in (50, 99, 99.9))
    benchmark.extra_info.update({
        "batches": len(lat), "events_per_s": round(outcome["events"] / LATENCY_SECONDS),
        "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "p99_9_ms": round(p999, 3),
        "max_ms": round(float(lat.max()) * 1e3, 3),
        "scoring_latency_p99_le_s": bench_engine.engine.stats.scoring_latency.quantile(0.99),
    })  # fmt: skip
    print(f"\nlatency: {benchmark.extra_info}")
