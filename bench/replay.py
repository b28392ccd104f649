"""A recorded ingest stream replayed through the live engine without sockets: the quiet,
repeatable half of the engine benchmark (`bench/test_bench_ingest_replay.py`).

A `Recording` holds every message of a throughput round as a client sends it (the EVENTS
header frame and the columns-v1 payload frame, round robin over the sessions as live
simulators interleave them). `replay` opens the recorded sessions on a fresh store and feeds
the messages through a real `Engine`'s `_guarded_round` (the code a round of the ingest
thread runs: header checks by the transport's `Triage`, the ingest rules, the group commit,
the ACKs) on a `FakeTransport`, in rounds of `round_messages`, then scores what the rounds
queued with a `Scorer` in the same thread. Nothing runs concurrently, so the seconds of each
phase are its own. They are CPU seconds of the replaying thread (`time.thread_time`): on a
machine shared with other work, time spent waiting for a core is not counted (wall seconds
are kept beside them, `Phases.wall`).

* ``check``:  the transport's `poll` (frame and header checks: `Triage.check`);
* ``decode``: `IngestRules.events` (seq rules, the columns-v1 decoding and its compiled check);
* ``chain``:  sha256 of each header and payload (`core.chain.digests`, as the store hashes);
* ``store``:  `Store.append_batches` minus the hashing (placing, writing the payloads, rows,
  commit);
* ``answer``: the rest of a round (queueing the work, the ACK frames, the bookkeeping);
* ``score``:  `Scorer.score` over the queued batches (gathering, the kernel, decisions saved).

``ingest`` is the sum of the first five: what the engine's ingest thread spends a message.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assessengine.adapters.library import load_rubric
from assessengine.core import chain
from assessengine.core.codec import Columns, Layout, records_v1, warm_up_decoder
from assessengine.ingest.fake import FakePeer, FakeTransport
from assessengine.ingest.port import Message
from assessengine.ingest_rules import IngestRules
from assessengine.runtime.engine import BatchItem, Engine
from assessengine.runtime.pipeline import RubricEntry, RubricLibrary, Scorer
from assessengine.sim.generate import simulate
from assessengine.storage.port import SessionInfo, Store
from assessengine.storage.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
RUBRIC_DIR = ROOT / "rubrics"
SCENARIO = "forklift-warehouse"
RUBRIC = "forklift-load-handling"
PHASES = ("check", "decode", "chain", "store", "answer", "score")
CLOCK = time.thread_time


@dataclass(frozen=True)
class Recording:
    """A round's messages: (header frame, payload frame) per EVENTS message, in send order."""

    sessions: list[str]
    messages: list[tuple[bytes, bytes]]
    events: int

    @property
    def payload_bytes(self) -> int:
        return sum(len(p) for _, p in self.messages)


def record(sessions: int, frame_bytes: int, *, seed: int = 11) -> Recording:
    """`sessions` forklift sessions of the simulator's ``mixed`` behaviour, cut into
    columns-v1 frames of about `frame_bytes`, round robin over the sessions."""
    _, scenario = load_rubric(RUBRIC_DIR / f"{RUBRIC}.yaml")
    layout = Layout.of(scenario)
    sim = simulate(scenario, "mixed", sessions, seed=seed)
    rows = max(1, frame_bytes // layout.itemsize)
    names = [f"replay-{k}" for k in range(sessions)]
    per_session: list[list[tuple[bytes, bytes]]] = []
    for k, name in enumerate(names):
        lo, hi = int(sim.offsets[k]), int(sim.offsets[k + 1])
        mine = []
        for a in range(lo, hi, rows):
            b = min(hi, a + rows)
            cols = Columns(sim.seq[a:b], sim.t[a:b], sim.event[a:b], sim.signals[:, a:b])
            header = json.dumps({"type": "EVENTS", "session": name, "first_seq": a - lo,
                                 "count": b - a, "encoding": "columns-v1",
                                 "dtype": layout.dtype_header()}).encode()  # fmt: skip
            mine.append((header, records_v1(cols, layout).tobytes()))
        per_session.append(mine)
    longest = max(map(len, per_session))
    messages = [m[i] for i in range(longest) for m in per_session if i < len(m)]
    return Recording(names, messages, len(sim))


@dataclass
class Phases:
    """Seconds per phase of one replay (see the module docstring)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    messages: int = 0
    events: int = 0
    wall: float = 0.0           # wall seconds of the rounds (the ingest, not the scoring)

    @property
    def ingest(self) -> float:
        return sum(v for k, v in self.seconds.items() if k != "score")

    def per_message_us(self) -> dict[str, float]:
        out = {k: v / self.messages * 1e6 for k, v in self.seconds.items()}
        out["ingest"] = self.ingest / self.messages * 1e6
        return out


class _Timed:
    """Wraps a callable, adding its seconds to `phases.seconds[name]` (minus what `inner`
    phases counted meanwhile, so that nested phases are not counted twice)."""

    def __init__(self, phases: Phases, name: str, fn: Callable[..., Any],
                 inner: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.phases, self.name, self.fn, self.inner = phases, name, fn, inner

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        s = self.phases.seconds
        before = sum(s[n] for n in self.inner)
        start = CLOCK()
        try:
            return self.fn(*args, **kwargs)
        finally:
            spent = CLOCK() - start
            s[self.name] += spent - (sum(s[n] for n in self.inner) - before)


@contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def _open_all(rules: IngestRules, library: RubricLibrary, recording: Recording) -> None:
    """Open the recorded sessions as the engine's OPENs do (the rules cache them)."""
    entry = _entry(library)
    infos = [SessionInfo(s, "L", SCENARIO, RUBRIC, entry.rubric.version, entry.sha256)
             for s in recording.sessions]  # fmt: skip
    refused = [r for r in rules.open_many(infos) if not isinstance(r, tuple)]
    assert not refused, refused[0]


def _entry(library: RubricLibrary) -> RubricEntry:
    entry = library.resolve(SCENARIO, RUBRIC, None)
    assert isinstance(entry, RubricEntry), entry
    return entry


def replay(
    recording: Recording,
    library: RubricLibrary,
    folder: Path,
    *,
    round_messages: int = 64,
    score: bool = True,
) -> Phases:
    """Replay `recording` through an engine's rounds on a fresh SQLite store in `folder`
    (rounds of `round_messages` messages, as a loaded engine takes them), then score what
    was queued; the seconds of each phase."""
    phases = Phases(messages=len(recording.messages), events=recording.events)
    with _engine(recording, library, folder, round_messages, overlap=False) as (engine, rules):
        ingest, store = engine._replay_transport, engine.store  # type: ignore[attr-defined]
        timed_digests = _Timed(phases, "chain", chain.digests)
        timed_append = _Timed(phases, "store", store.append_batches, inner=("chain",))
        timed_events = _Timed(phases, "decode", rules.events)
        wall = time.perf_counter()
        with _patched(chain, "digests", timed_digests), \
                _patched(store, "append_batches", timed_append), \
                _patched(rules, "events", timed_events):  # fmt: skip
            while True:
                start = CLOCK()
                messages: list[Message] = ingest.poll(0)
                phases.seconds["check"] += CLOCK() - start
                if not messages:
                    break
                before = sum(phases.seconds[k] for k in ("decode", "chain", "store"))
                start = CLOCK()
                engine._guarded_round(ingest, rules, messages)
                spent = CLOCK() - start
                inner = sum(phases.seconds[k] for k in ("decode", "chain", "store")) - before
                phases.seconds["answer"] += spent - inner
        phases.wall = time.perf_counter() - wall
        assert engine.stats.batches_stored == len(recording.messages), "not every batch stored"
        if score:
            phases.seconds["score"] = _score(engine, store, library, recording)
    return phases


@dataclass(frozen=True)
class Overlap:
    """One replay of the ingest alone, as the ingest thread runs it: wall seconds, and CPU
    seconds of the whole process (every thread)."""

    overlap: bool
    wall: float
    cpu: float


def replay_ingest(
    recording: Recording, library: RubricLibrary, folder: Path, *, overlap: bool,
    round_messages: int = 64,
) -> Overlap:  # fmt: skip
    """Replay `recording` through the engine's rounds with the group commits in a commit
    thread (`overlap`, setting `commit_thread`: every round here is of 64 KiB frames and large
    enough to be handed over) or in the replaying thread (the default); no scoring."""
    with _engine(recording, library, folder, round_messages, overlap=overlap) as (engine, rules):
        ingest = engine._replay_transport  # type: ignore[attr-defined]
        wall, cpu = time.perf_counter(), time.process_time()
        while messages := ingest.poll(0):
            engine._guarded_round(ingest, rules, messages)
        engine._last_settle(ingest, rules)
        result = Overlap(overlap, time.perf_counter() - wall, time.process_time() - cpu)
        assert engine.stats.batches_stored == len(recording.messages), "not every batch stored"
    return result


@contextmanager
def _engine(
    recording: Recording, library: RubricLibrary, folder: Path, round_messages: int, *,
    overlap: bool,
) -> Iterator[tuple[Engine, IngestRules]]:  # fmt: skip
    """An engine (not started: the caller runs its rounds) on a fresh SQLite file, its
    fake transport holding every recorded message, the recorded sessions open."""
    store = SqliteStore(folder / f"replay-{time.monotonic_ns()}.db")
    try:
        transport = FakeTransport(max_messages=round_messages)
        engine = Engine(store, library, transport, queue_bytes=2**40, overlap_commits=overlap)
        engine._replay_transport = transport(engine.counters)  # type: ignore[attr-defined]
        if overlap:
            engine._committer = ThreadPoolExecutor(1, thread_name_prefix="engine-commit")
        rules = IngestRules(store, engine._layout_for)
        _open_all(rules, library, recording)
        warm_up_decoder(library.layout(_entry(library)))
        peer: FakePeer = transport.peer()
        for header, payload in recording.messages:
            peer.send(header, payload)
        yield engine, rules
    finally:
        if engine._committer is not None:
            engine._committer.shutdown()
        store.close()


def _score(engine: Engine, store: Store, library: RubricLibrary, recording: Recording) -> float:
    """Seconds to score the queued batches as the scoring thread takes them (steps of a
    quarter of the default queue bound)."""
    scorer = Scorer(store, library)
    entry = _entry(library)
    for s in recording.sessions:
        scorer.open(s, entry)
    scorer.warm_up()
    items = [i for i in engine.queue.take(0, 2**40) if isinstance(i, BatchItem)]
    budget = 16 * 2**20
    start = CLOCK()
    group: list[tuple[str, Columns]] = []
    size = 0
    for item in items:
        group.append((item.session, item.columns))
        size += item.nbytes
        if size >= budget:
            scorer.score(group)
            group, size = [], 0
    if group:
        scorer.score(group)
    return CLOCK() - start


def replay_in_temp(recording: Recording, library: RubricLibrary, **options: Any) -> Phases:
    with tempfile.TemporaryDirectory() as folder:
        return replay(recording, library, Path(folder), **options)
