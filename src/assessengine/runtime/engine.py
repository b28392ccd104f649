"""The live engine: ingest -> durable store -> ACK -> incremental scoring.

Two threads, one queue (see docs/architecture.md, "Live engine"):

* the **ingest thread** owns the ingest transport (an `ingest.port.IngestTransport`, which
  it makes with the `TransportFactory` it was given: in `serve`, ZeroMQ's ROUTER socket,
  `ZmqIngest`; in tests, an `ingest.fake.FakeTransport`) and the ingest rules. Per round it
  takes what arrived (up to `round_bytes`), decides every EVENTS (`IngestRules`), appends all
  accepted batches in ONE store transaction (group commit), stores the round's OPENs in one
  more and its CLOSEs in one more, and only then answers, in arrival order. Only a message
  about a session whose OPEN or CLOSE is still pending makes it store what is pending first.
  Accepted batches (decoded columns) go to the work queue.
* the **scoring thread** takes everything queued and submits it to its `ScoringBackend`: each
  compiled rubric stepped once over the batches of all its sessions, decisions saved, and at
  CLOSE the final report saved and the session's slot released. The backend runs the `Scorer`
  in this thread (`ThreadScoring`, the default), or in a process of its own
  (`scoring_process.RemoteScorer`, what `serve` runs), so that ingest and scoring each have a
  GIL.

Backpressure: the work queue is bounded in bytes (`queue_bytes`). When it is full the ingest
thread stops reading its transport; with ZeroMQ, the receive high-water mark (`rcvhwm`
messages per client) then fills and clients' sends block. Memory stays bounded by about
``queue_bytes + round_bytes + clients * rcvhwm * frame size`` (plus, with a scoring process,
its two shared buffers, each the size of one take rounded up to a power of two), whatever the
offered load.

Recovery: `start` first has the scoring backend replay every open session's stored batches
(`Scorer.recover`), so its state is exact after a crash; clients resend what was not ACKed.

    with open_store("sqlite:///engine.db") as store:
        library, _ = RubricLibrary.load(rubric_dirs())
        with Engine(store, library, zmq_transport("tcp://127.0.0.1:5555")) as engine:
            ...                                   # engine.endpoint, engine.metrics_text()

(`compose.build_engine` does this from the settings.)
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Final

from ..core.codec import COLUMNS_V1, Columns, Layout, warm_up_decoder
from ..core.wire import NACK_CODES, Close, Closed, Events, Open, Opened
from ..ingest.port import Counters, IngestTransport, Message, TransportFactory
from ..ingest_rules import Accept, Duplicate, IngestRules, Reject
from ..metrics import Histogram, Metric, counter, gauge, labelled, render
from ..storage.owners import Owners, SoleOwner
from ..storage.port import Payload, SessionInfo, SessionRecord, Store, StoredBatch, StoreError
from .pipeline import GC_THRESHOLDS, Recovery, Refusal, RubricEntry, RubricLibrary, settle_collector
from .scoring import ScoringBackend, ScoringBackendError, ThreadScoring

log = logging.getLogger(__name__)

MiB: Final = 2**20
STOP_TIMEOUT_S: Final = 60.0
"""How long `stop` lets each thread and the scoring backend finish by default (the setting
``stop_timeout``)."""
ROUND_SECONDS: Final = 0.002
"""A round takes what is queued in ZeroMQ for at most this long (then commits and ACKs)."""
OVERLAP_MIN_BYTES: Final = 1 * MiB
"""Rounds whose batches hold at least this many payload bytes go to the commit thread (the
setting ``overlap_min_kb``); smaller ones are committed in the ingest thread at once."""
OVERLAP_MIN_BATCH_BYTES: Final = 16 * 2**10
"""... and whose batches hold at least this many payload bytes on average (a round of many
small batches is committed in the ingest thread: its commit is mostly Python)."""


# ================================================================================ work queue


@dataclass(frozen=True, slots=True)
class OpenItem:
    session: str
    entry: RubricEntry
    replay: bool = False  # taken over from another engine: rebuild its state from the store


@dataclass(frozen=True, slots=True)
class BatchItem:
    session: str
    columns: Columns
    received: float         # time.monotonic() when the message arrived
    nbytes: int
    records: Payload | None = None  # the columns-v1 payload the columns view, if so it came


@dataclass(frozen=True, slots=True)
class CloseItem:
    session: str
    close_t: float


@dataclass(frozen=True, slots=True)
class StopItem:
    """The last item: the ingest thread has stopped."""


Item = OpenItem | BatchItem | CloseItem | StopItem


@dataclass(slots=True)
class _Pending:
    """What a round holds until it is stored: decided batches (accepted or duplicates), OPENs
    and CLOSEs (one per session each), the messages to answer in arrival order, their answers
    as they are known (id(message) -> answer; a refused EVENTS's at once), and the work for
    the scoring thread that storing them gave."""

    batches: list[tuple[Message, Accept | Duplicate]] = field(default_factory=list)
    opens: dict[str, tuple[Message, Open]] = field(default_factory=dict)
    closes: dict[str, tuple[Message, Close]] = field(default_factory=dict)
    order: list[Message] = field(default_factory=list)
    answers: dict[int, Callable[[], None]] = field(default_factory=dict)
    queued: list[tuple[Item, int]] = field(default_factory=list)


Appended = tuple[list[tuple[Accept, StoredBatch]], float]
"""What a group commit gave: the batches with their stored form, and the commit's seconds."""


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A round whose batches the commit thread is appending: answered once `future` is done."""

    pending: _Pending
    taken: list[Accept]
    future: Future[Appended]


class WorkQueue:
    """A FIFO between the two threads, bounded by the bytes of the batches it holds.

    A batch counts from `put` until the scoring thread calls `done` for it (so memory held
    while scoring counts too). `put` blocks while the queue is full (one batch larger than the
    bound is let in alone); items without bytes (OPEN, CLOSE) never block. A queued CLOSE ends
    the consumer's `linger` at once: a report is awaited. `blocked_seconds` counts the time
    producers waited for room (in `put` and in `wait_room`): the backpressure scoring exerts.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.max_bytes = max_bytes
        self._items: deque[Item] = deque()
        self._bytes = 0         # queued or being scored
        self._queued = 0        # queued only
        self._unfinished = 0
        self._closes = 0        # CloseItems queued
        self._closed = False
        self._cond = threading.Condition()
        self.peak_bytes = 0
        self.blocked_seconds = 0.0

    def put(self, item: Item, nbytes: int = 0) -> None:
        self.put_many([(item, nbytes)])

    def put_many(self, items: Sequence[tuple[Item, int]]) -> None:
        """`put` each (item, nbytes) in order, waking the consumer once, not per item."""
        if not items:
            return
        with self._cond:
            for item, nbytes in items:
                if nbytes and self._bytes and self._bytes + nbytes > self.max_bytes:
                    self._wait_for_room(nbytes)
                self._items.append(item)
                self._bytes += nbytes
                self._queued += nbytes
                self._unfinished += 1
                self._closes += isinstance(item, CloseItem)
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._cond.notify_all()

    def _wait_for_room(self, nbytes: int) -> None:
        """Wait (holding the condition) until `nbytes` more fit, the queue is empty or closed."""
        start = time.perf_counter()
        while self._bytes and self._bytes + nbytes > self.max_bytes and not self._closed:
            self._cond.notify_all()  # let the consumer see what is queued so far
            self._cond.wait(0.5)
        self.blocked_seconds += time.perf_counter() - start

    def wait_room(self, timeout: float) -> bool:
        """True as soon as the queue is below its bound; False after `timeout` seconds."""
        with self._cond:
            if self._bytes < self.max_bytes or self._closed:
                return True
            start = time.perf_counter()
            try:
                return self._cond.wait_for(
                    lambda: self._bytes < self.max_bytes or self._closed, timeout
                )
            finally:
                self.blocked_seconds += time.perf_counter() - start

    def take(self, timeout: float, max_bytes: int, *, linger: float = 0.0) -> list[Item]:
        """The items at the head of the queue (at least one unless `timeout` passes first),
        up to about `max_bytes` of batches. With `linger`, waits up to that long after the
        first item for `max_bytes` to gather (fewer, larger scoring steps), but not once a
        CLOSE or the last item is queued."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                return []
            if linger > 0:
                self._cond.wait_for(
                    lambda: self._queued >= max_bytes or self._closes > 0
                    or isinstance(self._items[-1], StopItem),
                    linger,
                )  # fmt: skip
            out: list[Item] = []
            taken = 0
            while self._items and (not out or taken < max_bytes):
                item = self._items.popleft()
                if isinstance(item, BatchItem):
                    taken += item.nbytes
                elif isinstance(item, CloseItem):
                    self._closes -= 1
                out.append(item)
            self._queued -= taken
            return out

    def done(self, items: int, nbytes: int) -> None:
        """`items` taken items (holding `nbytes`) are finished with."""
        with self._cond:
            self._unfinished -= items
            self._bytes -= nbytes
            self._cond.notify_all()

    def close(self) -> None:
        """No consumer any more: `put` stops blocking."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once every item put has been finished with."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unfinished == 0, timeout)

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes


# ================================================================================ statistics


@dataclass
class EngineStats:
    """Counters of the engine's own work (the transport's are in `Counters`)."""

    commits: int = 0
    batches_stored: int = 0
    events_stored: int = 0
    duplicates: int = 0
    store_errors: int = 0
    batches_scored: int = 0
    commit_seconds: Histogram = field(default_factory=Histogram)
    scoring_latency: Histogram = field(default_factory=Histogram)
    ack_latency: Histogram = field(default_factory=Histogram)
    ingest_cpu_seconds: float = 0.0
    """CPU seconds the ingest thread has used (`time.thread_time`), updated once a loop."""
    ingest_idle_seconds: float = 0.0
    """Seconds the ingest thread waited for a message with nothing queued (its wall time in
    that wait minus the CPU it used there: checking the messages that ended the wait)."""
    started: float = field(default_factory=time.monotonic)
    recovery: Recovery = field(default_factory=Recovery)


# ================================================================================ the engine


class Engine:
    """Ingest, store and scoring in two threads; see the module docstring.

    transport:       makes the ingest transport, in the ingest thread
                     (`ingest.zmq.zmq_transport(endpoint, ...)`, `ingest.fake.FakeTransport()`).
    queue_bytes:     bound of the work queue between ingest and scoring.
    round_bytes:     payload bytes taken from the transport per round (one group commit).
    round_messages:  messages taken per round, at most.
    poll_interval:   seconds the ingest thread waits for a message (or for room in the
                     queue) before it looks whether it should stop.
    scoring_linger:  seconds the scoring thread waits for more batches before a step, when
                     less than a step's worth is queued (fewer steps, each with more rows).
    stop_timeout:    seconds `stop` waits for each thread, and the scoring backend, to finish
                     what it holds.
    overlap_commits: append a round's batches in a commit thread while the ingest thread
                     receives and decides the next round (hashing, writing the payloads and
                     SQLite's work release the GIL: the two overlap on two cores). The round
                     is answered once its commit has returned (as soon as the ingest thread
                     sees that, between two messages of the next round), before the next
                     round is answered. Off by default (it did not pay on two cores, see
                     performance.md); when on, for large rounds only (`overlap_min_bytes`).
    overlap_min_bytes: with `overlap_commits`, a round whose accepted payloads hold fewer
                     bytes is committed in the ingest thread at once: an engine that is not
                     under load answers as without a commit thread (the ACK latency of small
                     rounds stays that of a commit in place), one under load overlaps its
                     commits with the next round's work.
    overlap_min_batch_bytes: ... and so is a round whose batches hold fewer payload bytes
                     on average: committing many small batches is mostly Python, which holds
                     the GIL (the commit thread would only take turns with the ingest thread).
    owners:          which sessions this engine owns when several engines share the store
                     (`storage.owners`); default `SoleOwner` (the only engine). A message about
                     a session another live engine owns is answered NACK ``session_owned``; a
                     session taken over is rebuilt from the store before it is scored further.
                     The engine closes it when it stops (releasing every session).
    scoring:         the `ScoringBackend` the scoring thread drives; default: a
                     `ThreadScoring` on `store` (the `Scorer` runs in the scoring thread).
                     `compose.scoring_backend` builds the one `serve` and `demo` run, a
                     `RemoteScorer` (a process with its own GIL and its own connection to the
                     store: ingest and scoring then use a core each). That process is
                     spawned: as for any spawned process, a script that starts the engine
                     must guard its work with ``if __name__ == "__main__":``. The engine
                     starts and closes the backend.

    The store is not closed by the engine.
    """

    def __init__(
        self,
        store: Store,
        library: RubricLibrary,
        transport: TransportFactory,
        *,
        queue_bytes: int = 64 * MiB,
        round_bytes: int = 16 * MiB,
        round_messages: int = 2048,
        poll_interval: float = 0.05,
        scoring_linger: float = 0.05,
        stop_timeout: float = STOP_TIMEOUT_S,
        scoring: ScoringBackend | None = None,
        owners: Owners | None = None,
        overlap_commits: bool = False,
        overlap_min_bytes: int = OVERLAP_MIN_BYTES,
        overlap_min_batch_bytes: int = OVERLAP_MIN_BATCH_BYTES,
    ) -> None:
        if min(queue_bytes, round_bytes, round_messages) < 1 or min(poll_interval,
                                                                     stop_timeout) <= 0:
            raise ValueError("queue_bytes, round_bytes, round_messages, poll_interval, "
                             "stop_timeout must be > 0")  # fmt: skip
        if min(overlap_min_bytes, overlap_min_batch_bytes) < 0:
            raise ValueError("overlap_min_bytes and overlap_min_batch_bytes must be >= 0")
        self.store, self.library = store, library
        self._transport = transport
        self._round_bytes, self._round_messages = round_bytes, round_messages
        self._poll_interval = poll_interval
        self._linger = scoring_linger
        self._stop_timeout = stop_timeout
        self._overlap = overlap_commits
        self._overlap_min_bytes = overlap_min_bytes
        self._overlap_min_batch_bytes = overlap_min_batch_bytes
        self._committer: ThreadPoolExecutor | None = None  # the commit thread, while ingesting
        self._inflight: _InFlight | None = None
        self._commit_failed = False  # the round settled last failed to commit (not yet seen)
        self.queue = WorkQueue(queue_bytes)
        self.counters = Counters()
        self.stats = EngineStats()
        self.scoring: ScoringBackend = scoring or ThreadScoring(store, library)
        self.owners: Owners = owners or SoleOwner()
        self._owned_elsewhere: frozenset[str] = frozenset()  # at start: not recovered here
        self._saving = threading.Lock()
        self._unreleased: set[str] = set()  # closed, owned until their reports are saved
        self.endpoint = ""
        """The bound endpoint (real port filled in), once started."""
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._scoring_ready = threading.Event()
        self._error: BaseException | None = None
        self._ingest_thread = threading.Thread(target=self._ingest_main, name="engine-ingest")
        self._scoring_thread = threading.Thread(target=self._scoring_main, name="engine-scoring")
        self._started = False
        self._gc_before: tuple[int, int, int] | None = None

    # -------------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 30.0) -> Recovery:
        """Start the scoring backend (it recovers the open sessions' state from the store),
        then the ingest. Raises IngestConfigError (bad endpoint or security setup),
        ScoringBackendError or the store's error."""
        if self._started:
            raise RuntimeError("the engine was started already")
        self._started = True
        try:  # what another engine owns is not recovered here: its open sessions, and its
            # closed ones not reported yet (it saves their reports: both would store them)
            opened = [r.info.session for r in self.store.sessions(status="open")]
            unreported = [r.info.session for r in self.store.sessions(status="closed")
                          if self.store.report(r.info.session) is None]  # fmt: skip
            if opened or unreported:
                claim = self.owners.claim([*opened, *unreported])
                self._owned_elsewhere = claim.refused
                self._unreleased |= claim.acquired & set(unreported)  # released once reported
        except BaseException:
            self.stop()
            raise
        # the scoring thread starts the backend: a scoring process is the child of that
        # long-lived thread (on Linux it dies with the thread that made it)
        self._scoring_thread.start()
        self._scoring_ready.wait()
        if self._error is not None:
            error = self._error
            self.stop()
            raise error
        self._release_saved()  # the closed sessions recovery has reported
        for entry in self.library.entries():  # the ingest thread's compiled check
            warm_up_decoder(self.library.layout(entry))
        for line in self.stats.recovery.skipped:
            log.error("recovery: %s", line)
        self._gc_before = settle_collector()
        self._ingest_thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            error = self._error or RuntimeError("the ingest transport did not start")
            self.stop()
            raise error
        self.stats.started = time.monotonic()
        self.owners.serving(self.endpoint)
        return self.stats.recovery

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading, finish the round in hand (stored batches are ACKed), score everything
        queued (decisions and reports saved), then return; each thread is waited for up to
        `timeout` seconds (default: `stop_timeout`). Idempotent."""
        timeout = self._stop_timeout if timeout is None else timeout
        self._stopping.set()
        for thread in (self._ingest_thread, self._scoring_thread):
            if thread.is_alive():
                thread.join(timeout)
                if thread.is_alive():
                    log.error("%s did not stop within %.0fs", thread.name, timeout)
        if self._gc_before is not None and gc.get_threshold() == GC_THRESHOLDS:
            gc.set_threshold(*self._gc_before)
            self._gc_before = None
        if not any(t.is_alive() for t in (self._ingest_thread, self._scoring_thread)):
            self.owners.close()  # every session this engine owned may be taken over now

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float) -> bool:
        """True once everything stored so far has been scored (reports of closed sessions
        saved); False after `timeout` seconds."""
        return self.queue.wait_idle(timeout)

    @property
    def running(self) -> bool:
        threads = self._ingest_thread.is_alive() and self._scoring_thread.is_alive()
        return threads and self.scoring.alive

    # -------------------------------------------------------------------------- ingest thread

    def _ingest_main(self) -> None:
        try:
            ingest = self._transport(self.counters)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            self.queue.put(StopItem())
            return
        rules = IngestRules(self.store, self._layout_for)
        try:
            self.endpoint = ingest.endpoint
            if self._overlap:
                self._committer = ThreadPoolExecutor(1, thread_name_prefix="engine-commit")
            self._ready.set()
            cpu = time.thread_time()
            while not self._stopping.is_set():
                self.stats.ingest_cpu_seconds = time.thread_time() - cpu
                waiting = self._inflight is None  # else: answer it as soon as nothing arrives
                if not self.queue.wait_room(self._poll_interval if waiting else 0):
                    self._settle(ingest, rules)
                    continue  # full: leave messages in the transport's queues (backpressure)
                messages = self._receive(ingest, rules, self._poll_interval if waiting else 0)
                if messages:
                    self._guarded_round(ingest, rules, messages)
                else:
                    self._settle(ingest, rules)
        except BaseException as exc:  # a bug: log it; the engine stops taking messages
            log.exception("ingest thread failed")
            self._error = exc
        finally:
            self._last_settle(ingest, rules)
            ingest.close()
            self.queue.put(StopItem())

    def _layout_for(self, info: SessionInfo) -> Layout:
        entry = self.library.find(info.rubric, info.rubric_version, info.rubric_sha256)
        if entry is None:
            raise KeyError(info.rubric)
        return self.library.layout(entry)

    def _receive(
        self, ingest: IngestTransport, rules: IngestRules, timeout: float
    ) -> list[Message]:
        """What arrived: waits up to `timeout` for the first message, then takes what is
        queued up to `round_bytes` / `round_messages` (answering the round in the commit
        thread meanwhile, once its commit has returned). A wait (nothing was queued) is
        counted in `EngineStats.ingest_idle_seconds`."""
        messages = ingest.poll(0, max_bytes=self._round_bytes)
        if not messages and timeout > 0:
            wall, cpu = time.perf_counter(), time.thread_time()
            messages = ingest.poll(timeout, max_bytes=self._round_bytes)
            waited = (time.perf_counter() - wall) - (time.thread_time() - cpu)
            self.stats.ingest_idle_seconds += max(0.0, waited)
        more = messages
        size = sum(len(m.payload) for m in messages if m.payload is not None)
        until = time.monotonic() + ROUND_SECONDS
        while (
            len(more) >= ingest.max_messages  # more is queued (or arriving: stop at `until`)
            and size < self._round_bytes
            and len(messages) < self._round_messages
            and time.monotonic() < until
        ):
            self._settle_if_done(ingest, rules)
            more = ingest.poll(0, max_bytes=self._round_bytes - size)
            messages += more
            size += sum(len(m.payload) for m in more if m.payload is not None)
        return messages

    def _guarded_round(
        self, ingest: IngestTransport, rules: IngestRules, messages: list[Message]
    ) -> None:
        """`_round`; if it fails (a bug), the round's messages are taken again one at a time,
        and one that fails alone is logged and answered NACK ``internal``: one message never
        stops the ingest thread. (Messages answered before the failure may be answered twice:
        stored batches as duplicates, OPEN and CLOSE idempotently.) A store that fails a
        read (a database server gone, a locked store file) is no bug: the whole round is
        answered NACK ``internal`` (retryable: clients resend) at once, without a store call
        per message (each may wait for the store's connect timeout)."""
        try:
            self._round(ingest, rules, messages)
            return
        except StoreError as exc:
            log.error("store: cannot handle a round of %d message(s): %s", len(messages), exc)
            self.stats.store_errors += 1
            self._settle(ingest, rules)  # the cache must hold what is stored, before `discard`
            rules.discard()
            for m in messages:
                with contextlib.suppress(Exception):
                    _nack(ingest, m, "internal", f"the engine could not reach its store: {exc}")
            return
        except Exception:
            log.exception("ingest: a round of %d message(s) failed; taking them one at a time",
                          len(messages))  # fmt: skip
            self._settle(ingest, rules)
            rules.discard()
        for m in messages:
            try:
                self._round(ingest, rules, [m])
            except Exception as exc:
                log.exception("ingest: %s message failed", m.header.type)
                self._settle(ingest, rules)
                rules.discard()
                with contextlib.suppress(Exception):
                    _nack(ingest, m, "internal", f"the engine failed on this message "
                          f"({type(exc).__name__})")

    def _round(self, ingest: IngestTransport, rules: IngestRules, messages: list[Message]) -> None:
        """Answer `messages` (OPEN, EVENTS, CLOSE) with as few store transactions as their
        order allows. What waits to be stored is kept in a `_Pending`: its batches are
        appended in one transaction, then its OPENs in one, then its CLOSEs in one, and every
        answer goes out in arrival order. Sessions are independent, so a batch of one session
        may be stored before the CLOSE of another that arrived earlier; a message concerning a
        session whose OPEN or CLOSE is pending first stores everything pending, so each
        session's messages take effect in the order they were sent."""
        pending = _Pending()
        refused, passing = self._claim(rules, messages)
        for m in messages:
            h = m.header
            assert isinstance(h, Open | Close | Events)  # HELLO, PING: answered by the transport
            if h.session in refused:
                pending.answers[id(m)] = partial(_nack, ingest, m, *refused[h.session])
                pending.order.append(m)
                continue
            if h.session in pending.opens or h.session in pending.closes:
                self._store(ingest, rules, pending)
                pending = _Pending()
            if isinstance(h, Open):
                pending.opens[h.session] = (m, h)
            elif isinstance(h, Close):
                pending.closes[h.session] = (m, h)
            else:
                assert m.payload is not None
                decision = rules.events(h, m.raw_header, m.payload)
                if isinstance(decision, Reject):
                    pending.answers[id(m)] = partial(_nack, ingest, m, decision.code,
                                                     decision.message, decision.expected_seq)
                else:
                    pending.batches.append((m, decision))  # answered after the commit
            pending.order.append(m)
            self._settle_if_done(ingest, rules)
        self._store(ingest, rules, pending)
        self._let_go(passing)

    def _claim(
        self, rules: IngestRules, messages: list[Message]
    ) -> tuple[dict[str, tuple[str, str]], dict[str, bool]]:
        """Own the sessions of `messages` (`Owners.claim`). Returns the NACK (code, message)
        of each session that is not this engine's to handle now, and the sessions acquired
        that were not open in the store (unknown: True; closed: False), to let go after the
        round unless it opened them. A session taken over that the store holds open is
        queued to be rebuilt from the store (before any batch of this round) and dropped
        from the ingest rules' cache (another engine may have appended to it)."""
        sessions = {m.header.session for m in messages
                    if isinstance(m.header, Open | Close | Events)}  # fmt: skip
        if not sessions:
            return {}, {}
        acquired: frozenset[str] = frozenset()
        passing: dict[str, bool] = {}
        try:
            claim = self.owners.claim(sessions)
            acquired = claim.acquired
            for sid in sorted(acquired):
                rules.forget(sid)
                record = self.store.session(sid)
                entry = None if record is None else self.library.find(
                    record.info.rubric, record.info.rubric_version, record.info.rubric_sha256)
                if record is not None and record.status == "open" and entry is not None:
                    self.queue.put(OpenItem(sid, entry, replay=True))
                elif record is None or record.status == "closed":
                    passing[sid] = record is None
        except Exception as exc:
            log.error("ownership: cannot claim %d session(s): %s", len(sessions), exc)
            self.owners.release(acquired)
            reason = f"the engine could not check which engine owns the session: {exc}"
            return dict.fromkeys(sessions, ("internal", reason)), {}
        return {sid: ("session_owned", self._owned(sid)) for sid in claim.refused}, passing

    def _owned(self, session: str) -> str:
        owner = self.owners.owner(session)
        return (f"session {session!r} is owned by another engine"
                f"{'' if owner is None else f' ({owner})'}: send it there, or resend later "
                "(this engine takes the session over once that one is gone)")  # fmt: skip

    def _let_go(self, passing: dict[str, bool]) -> None:
        """Release the sessions acquired this round that were closed before it, or unknown
        and still not stored (a refused OPEN, a message about a session never opened)."""
        if not passing:
            return
        try:
            done = [s for s, unknown in passing.items()
                    if not unknown or self.store.session(s) is None]  # fmt: skip
        except Exception as exc:  # kept: released when the engine stops
            log.error("ownership: cannot look sessions up: %s", exc)
            return
        self.owners.release(done)

    def _store(self, ingest: IngestTransport, rules: IngestRules, pending: _Pending) -> None:
        """Store what is pending (batches, then OPENs, then CLOSEs: one transaction each),
        queue the work for scoring, then answer in arrival order (queued first, so that a
        client that has its answer finds the work in `wait_idle`). The round before is
        answered first. A round of batches alone (the hot path) is handed to the commit
        thread, when there is one, and answered later (`_settle`), unless the round before
        failed to commit (its batches may continue the failed ones: stored here, at once)."""
        if not pending.order:
            return
        self._settle(ingest, rules)
        failed, self._commit_failed = self._commit_failed, False
        if (
            self._committer is not None
            and not failed
            and self._hand_over(rules)
            and not (pending.opens or pending.closes)
        ):
            taken = rules.take()
            future = self._committer.submit(_timed_append, rules, taken)
            self._inflight = _InFlight(pending, taken, future)
            return
        taken = rules.take()
        try:
            appended: Appended | Exception = _timed_append(rules, taken)
        except Exception as exc:
            rules.failed(taken)
            appended = exc
        acked = self._commit(ingest, rules, pending, appended)
        self._open(ingest, rules, pending)
        self._close(ingest, rules, pending)
        self._answer(ingest, pending, acked)

    def _hand_over(self, rules: IngestRules) -> bool:
        """Whether the pending batches go to the commit thread: at least `overlap_min_bytes`
        in all and `overlap_min_batch_bytes` a batch on average. The commit of large payloads
        is mostly work without the GIL (hashing, writing); that of many small batches is
        mostly Python (planning and binding rows), and two threads taking turns at the GIL
        are slower than one."""
        size, count = rules.pending_bytes, rules.pending_count
        return count > 0 and size >= self._overlap_min_bytes and (
            size >= count * self._overlap_min_batch_bytes
        )

    def _settle(self, ingest: IngestTransport, rules: IngestRules) -> bool:
        """Wait for the round in the commit thread, if any, and answer it (ACK once stored,
        NACK ``internal`` when its commit failed). True when its commit failed (and until
        `_store` has seen it, `_commit_failed`: the next round is then stored in place)."""
        inflight, self._inflight = self._inflight, None
        if inflight is None:
            return False
        try:
            appended: Appended | Exception = inflight.future.result()
        except Exception as exc:
            appended = exc
        failed = isinstance(appended, Exception)
        if failed:
            rules.failed(inflight.taken)
            self._commit_failed = True
        acked = self._commit(ingest, rules, inflight.pending, appended)
        self._answer(ingest, inflight.pending, acked)
        return failed

    def _settle_if_done(self, ingest: IngestTransport, rules: IngestRules) -> None:
        """Answer the round in the commit thread now if its commit has returned: its ACKs
        do not wait for the next round to be received and decided (the latency under
        load)."""
        inflight = self._inflight
        if inflight is not None and inflight.future.done():
            self._settle(ingest, rules)

    def _last_settle(self, ingest: IngestTransport, rules: IngestRules) -> None:
        """At the end of the ingest thread: answer the round in the commit thread (what it
        stored is ACKed before the transport closes) and end the commit thread."""
        try:
            self._settle(ingest, rules)
        except Exception:  # a bug: its batches are stored or not; unanswered, clients resend
            log.exception("ingest: cannot answer the last round")
        finally:
            if self._committer is not None:
                self._committer.shutdown(wait=True)
                self._committer = None

    def _answer(
        self, ingest: IngestTransport, pending: _Pending, acked: Sequence[tuple[Message, object]]
    ) -> None:
        """Queue what storing `pending` gave for scoring, then answer its messages in
        arrival order."""
        self.queue.put_many(pending.queued)
        for m in pending.order:
            pending.answers[id(m)]()
        now = time.monotonic()
        for m, _ in acked:
            self.stats.ack_latency.observe(now - m.received)

    def _commit(
        self,
        ingest: IngestTransport,
        rules: IngestRules,
        pending: _Pending,
        appended: Appended | Exception,
    ) -> list[tuple[Message, Accept | Duplicate]]:
        """Account for the group commit of `pending`'s batches (`appended`: what
        `_timed_append` returned, or the exception it raised); queue the new batches and
        answer each (ACK, or NACK ``internal`` when the store failed) in `pending`. Returns
        the batches ACKed."""
        waiting, answers = pending.batches, pending.answers
        if not waiting:
            return []
        if isinstance(appended, Exception):
            exc = appended
            log.error("store: cannot append %d batch(es): %s", len(waiting), exc)
            self.stats.store_errors += 1
            for m, _ in waiting:
                answers[id(m)] = partial(_nack, ingest, m, "internal",
                                         f"the engine could not store the batch: {exc}")
            return []
        stored, seconds = appended
        s = self.stats
        s.commit_seconds.observe(seconds)
        s.commits += bool(stored)
        s.batches_stored += len(stored)
        s.events_stored += sum(a.count for a, _ in stored)
        for m, d in waiting:
            if isinstance(d, Accept):
                cols = d.columns
                size = cols.seq.nbytes + cols.t.nbytes + cols.event.nbytes + cols.signals.nbytes
                records = d.payload if d.encoding == COLUMNS_V1 else None
                item = BatchItem(d.session, cols, m.received, size, records)
                pending.queued.append((item, size))
                acked = d.last_seq
            else:
                s.duplicates += 1
                acked = d.ack_seq
            answers[id(m)] = partial(ingest.reply, m.identity, _ack_frame(d.session, acked))
        return waiting

    def _open(self, ingest: IngestTransport, rules: IngestRules, pending: _Pending) -> None:
        """Open the pending sessions (distinct) in one store transaction; queue the opens and
        answer each in `pending`. Each OPEN is tried with the rubric the library resolves (no
        lookup of the session first); only one without ``rubric_version`` that this refuses
        (a session stored with other details, a rubric no longer resolved) is looked up and,
        if the stored session gives it another rubric (`_entry_for`), opened again with it."""
        opening, answers = list(pending.opens.values()), pending.answers
        if not opening:
            return
        heads = [h for _, h in opening]
        entries = [self.library.resolve(h.scenario, h.rubric, h.rubric_version) for h in heads]
        outcomes = self._store_opens(rules, heads, entries)
        again = [k for k, (h, o) in enumerate(zip(heads, outcomes, strict=True))
                 if h.rubric_version is None and (isinstance(o, Refusal) or (
                     isinstance(o, Reject) and o.code == "session_conflict"))]  # fmt: skip
        retry = []
        for k in again:
            entry = self._entry_for(heads[k])
            if isinstance(entry, Refusal):
                outcomes[k], entries[k] = entry, entry
            elif entry is not entries[k]:
                entries[k] = entry
                retry.append(k)
        if retry:
            redone = self._store_opens(
                rules, [heads[k] for k in retry], [entries[k] for k in retry]
            )
            for k, outcome in zip(retry, redone, strict=True):
                outcomes[k] = outcome
        for (m, h), entry, opened in zip(opening, entries, outcomes, strict=True):
            if isinstance(opened, Refusal):
                answers[id(m)] = partial(_nack, ingest, m, opened.code, opened.message)
            elif isinstance(opened, Exception):
                answers[id(m)] = partial(_nack, ingest, m, "internal",
                                         f"the engine could not store the session: {opened}")
            elif isinstance(opened, Reject):
                answers[id(m)] = partial(_nack, ingest, m, opened.code, opened.message)
            else:
                assert not isinstance(entry, Refusal)
                record, layout = opened
                answers[id(m)] = partial(ingest.reply, m.identity, Opened(
                    session=h.session, next_seq=record.next_seq,
                    closed=record.status == "closed", signals=list(layout.signal_names),
                    events=list(layout.event_names),
                ))  # fmt: skip
                if record.status == "open":
                    pending.queued.append((OpenItem(h.session, entry), 0))

    @staticmethod
    def _store_opens(
        rules: IngestRules, heads: list[Open], entries: list[RubricEntry | Refusal]
    ) -> list[tuple[SessionRecord, Layout] | Reject | Refusal | Exception]:
        """The OPENs `heads` with their rubrics `entries` stored in one transaction: per OPEN
        its record and layout, its Reject, its entry's Refusal, or the store's failure."""
        infos = [
            SessionInfo(h.session, h.learner, h.scenario, e.rubric.rubric, e.rubric.version,
                        e.sha256, h.source, dict(h.metadata))
            for h, e in zip(heads, entries, strict=True)
            if not isinstance(e, Refusal)
        ]  # fmt: skip
        try:
            results = iter(rules.open_many(infos) if infos else [])
        except Exception as exc:
            log.error("store: cannot open %d session(s): %s", len(infos), exc)
            return [e if isinstance(e, Refusal) else exc for e in entries]
        return [e if isinstance(e, Refusal) else next(results) for e in entries]

    def _entry_for(self, h: Open) -> RubricEntry | Refusal:
        """The rubric of an OPEN. A repeated OPEN without ``rubric_version`` (a client resuming
        after a reconnect or an engine restart) gets the version the session was stored with,
        even if the library has a newer one by now."""
        stored = self.store.session(h.session) if h.rubric_version is None else None
        if stored is not None:
            i = stored.info
            same = (i.learner, i.scenario, i.rubric, i.source, dict(i.metadata)) == (
                h.learner, h.scenario, h.rubric, h.source, dict(h.metadata))  # fmt: skip
            if same:
                entry = self.library.find(i.rubric, i.rubric_version, i.rubric_sha256)
                if entry is not None:
                    return entry
                return Refusal("unknown_rubric", f"session {h.session!r} was opened with rubric "
                               f"{i.rubric} v{i.rubric_version} ({i.rubric_sha256[:12]}), which "
                               "this engine's library no longer has")  # fmt: skip
        return self.library.resolve(h.scenario, h.rubric, h.rubric_version)

    def _close(self, ingest: IngestTransport, rules: IngestRules, pending: _Pending) -> None:
        """Close the pending sessions (distinct) in one store transaction; queue the closes
        and answer each in `pending`."""
        closing, answers = list(pending.closes.values()), pending.answers
        if not closing:
            return
        try:
            results = rules.close_many([h for _, h in closing])
        except Exception as exc:
            log.error("store: cannot close %d session(s): %s", len(closing), exc)
            for m, _ in closing:
                answers[id(m)] = partial(_nack, ingest, m, "internal",
                                         f"the engine could not store the close: {exc}")
            return
        for (m, h), closed in zip(closing, results, strict=True):
            if isinstance(closed, StoreError):
                log.error("store: cannot close session %r: %s", h.session, closed)
                answers[id(m)] = partial(_nack, ingest, m, "internal",
                                         f"the engine could not store the close: {closed}")
            elif isinstance(closed, Reject):
                answers[id(m)] = partial(_nack, ingest, m, closed.code, closed.message,
                                         closed.expected_seq)  # fmt: skip
            else:
                close_t = h.t if closed.close_t is None else closed.close_t
                reply = Closed(session=h.session, t=close_t, seq=closed.next_seq - 1)
                answers[id(m)] = partial(ingest.reply, m.identity, reply)
                pending.queued.append((CloseItem(h.session, close_t), 0))  # scorer ignores a repeat

    # -------------------------------------------------------------------------- scoring thread

    def _scoring_main(self) -> None:
        budget = max(self.queue.max_bytes // 4, 1)
        scoring = self.scoring
        try:
            try:
                self.stats.recovery = scoring.start(self._owned_elsewhere)
            except BaseException as exc:
                self._error = exc
                return
            finally:
                self._scoring_ready.set()
            while True:
                items = self.queue.take(1.0, budget, linger=self._linger)
                if not items:
                    scoring.idle()  # retries what a failed save left (the store was down)
                    self._release_saved()
                    continue
                stop = any(isinstance(i, StopItem) for i in items)
                self._process(items)
                if stop:
                    if not scoring.drain(self._stop_timeout):
                        log.error("scoring: the scoring backend did not finish its work")
                    return
        except ScoringBackendError as exc:  # what it had is in the store: a restart re-scores
            log.error("scoring stopped: %s", exc)
            self._error = exc
        finally:
            self.queue.close()
            scoring.close()

    def _process(self, items: list[Item]) -> None:
        """Submit `items` to the backend: its opens, then every batch (one step per rubric),
        then its closes (a closed session takes no more batches, so closing after the step
        keeps each session's order). The items are finished with once the backend has saved
        the results (a scoring process takes the next items meanwhile)."""
        if not items:
            return
        pending = [i for i in items if isinstance(i, BatchItem)]
        self.scoring.submit(
            [(i.session, i.entry, i.replay) for i in items if isinstance(i, OpenItem)],
            [(b.session, b.columns, b.records) for b in pending],
            [(i.session, i.close_t) for i in items if isinstance(i, CloseItem)],
            on_done=partial(self._finish, len(items), pending,
                            [i.session for i in items if isinstance(i, CloseItem)]),
        )

    def _finish(self, items: int, pending: list[BatchItem], closed: list[str]) -> None:
        self._scored(pending)
        if closed:
            self._hold_until_saved(closed)
        self.queue.done(items - len(pending), 0)

    def _hold_until_saved(self, closed: Collection[str]) -> None:
        """Release the closed sessions `closed` once their reports are saved: at once for
        those saved, later (`_release_saved`, after a successful retry) for those a failed
        save left. Until then another engine cannot take them over and store their results a
        second time."""
        with self._saving:
            self._unreleased |= set(closed)
        self._release_saved()

    def _release_saved(self) -> None:
        """Release the closed sessions held for their reports whose reports are saved now."""
        with self._saving:
            if not self._unreleased:
                return
            saved = self._unreleased - self.scoring.unsaved_reports
            self._unreleased -= saved
        if saved:
            self.owners.release(saved)

    def _scored(self, pending: list[BatchItem]) -> None:
        """Count scored batches and their latency; finish with them in the queue."""
        if not pending:
            return
        now = time.monotonic()
        for b in pending:
            self.stats.scoring_latency.observe(now - b.received)
        self.stats.batches_scored += len(pending)
        self.queue.done(len(pending), sum(b.nbytes for b in pending))

    # -------------------------------------------------------------------------- metrics

    def metrics(self) -> list[Metric]:
        c = self.counters.snapshot()
        s = self.stats
        nacks = {code: float(c["nacks"].get(code, 0)) for code in NACK_CODES}
        p = "assessengine_"
        return [
            counter(p + "messages_received_total", "Messages received on the ingest socket.",
                    c["messages"]),
            counter(p + "batches_received_total", "EVENTS messages received (well formed).",
                    c["batches"]),
            counter(p + "events_received_total", "Events in the EVENTS messages received.",
                    c["events"]),
            counter(p + "bytes_received_total", "Bytes received (all frames).", c["bytes"]),
            labelled(p + "nacks_total", "counter", "NACKs sent, by code.", "code", nacks),
            counter(p + "clients_denied_total", "CURVE handshakes refused.",
                    c["denied_clients"]),
            counter(p + "batches_stored_total", "Batches committed to the store.",
                    s.batches_stored),
            counter(p + "events_stored_total", "Events committed to the store.", s.events_stored),
            counter(p + "duplicate_batches_total", "Resent batches already stored (re-ACKed).",
                    s.duplicates),
            counter(p + "store_commits_total", "Group commits.", s.commits),
            counter(p + "store_errors_total", "Failed store writes (answered NACK internal).",
                    s.store_errors),
            Metric(p + "store_commit_seconds", "histogram",
                   "Time of one group commit (many batches).", s.commit_seconds),
            gauge(p + "queue_depth", "Items waiting between ingest and scoring.",
                  self.queue.depth),
            gauge(p + "queue_bytes", "Bytes of batches queued or being scored.",
                  self.queue.nbytes),
            gauge(p + "queue_bytes_limit", "Bound of queue_bytes (backpressure).",
                  self.queue.max_bytes),
            counter(p + "batches_scored_total", "Batches scored.", s.batches_scored),
            counter(p + "events_scored_total", "Events scored.", self.scoring.events_scored),
            counter(p + "ingest_cpu_seconds_total", "CPU seconds used by the ingest thread.",
                    s.ingest_cpu_seconds),
            counter(p + "ingest_idle_seconds_total",
                    "Seconds the ingest thread waited for a message (nothing queued).",
                    s.ingest_idle_seconds),
            counter(p + "ingest_blocked_seconds_total",
                    "Seconds the ingest thread waited for room in the work queue (scoring "
                    "behind: backpressure).", self.queue.blocked_seconds),
            Metric(p + "ack_latency_seconds", "histogram",
                   "Time from reading an EVENTS message to sending its ACK (after commit).",
                   s.ack_latency),
            Metric(p + "scoring_latency_seconds", "histogram",
                   "Time from a batch's arrival to the end of its scoring.", s.scoring_latency),
            counter(p + "scoring_errors_total", "Scoring steps that failed (re-scored later).",
                    self.scoring.scoring_errors),
            gauge(p + "sessions_open", "Sessions open in the scorer.", self.scoring.sessions_open),
            counter(p + "reports_saved_total", "Final reports saved.", self.scoring.reports_saved),
            gauge(p + "recovered_sessions", "Open sessions rebuilt from the store at start.",
                  s.recovery.reopened),
            gauge(p + "uptime_seconds", "Seconds since the engine started.",
                  time.monotonic() - s.started),
        ]  # fmt: skip

    def metrics_text(self) -> str:
        """The Prometheus text exposition of `metrics`."""
        return render(self.metrics())


def _timed_append(rules: IngestRules, taken: list[Accept]) -> Appended:
    """`rules.append(taken)` and its seconds (in the commit thread, or the ingest thread).
    Raises what the store raised; the caller then calls `rules.failed(taken)`."""
    start = time.perf_counter()
    stored = rules.append(taken)
    return stored, time.perf_counter() - start


def _ack_frame(session: str, seq: int) -> bytes:
    """The ACK header frame, as `Ack(...).to_frame()` gives it but without the model (this is
    the hottest reply)."""
    return b'{"type":"ACK","session":%s,"seq":%d}' % (json.dumps(session).encode(), seq)


def _nack(
    ingest: IngestTransport, m: Message, code: str, message: str, expected_seq: int | None = None
) -> None:
    h = m.header
    ingest.nack(m.identity, code, message, session=getattr(h, "session", None),
                expected_seq=expected_seq, in_reply_to=h.type,
                first_seq=getattr(h, "first_seq", None))  # fmt: skip
