"""Test support for the ingest tests: a list-backed fake `Store`, and a tiny engine loop
(ZmqIngest + IngestRules + store, ACK after commit) running in a thread. No scoring."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import zmq

from assessengine.adapters.store import (
    SessionInfo,
    SessionRecord,
    Store,
    StoredBatch,
    StoreError,
)
from assessengine.adapters.zmq_ingest import Counters, Message, ZmqIngest
from assessengine.core import chain
from assessengine.core.codec import Layout
from assessengine.core.scenario import Scenario
from assessengine.core.wire import Ack, Closed, Opened
from assessengine.ingest_rules import Accept, Duplicate, IngestRules, Reject

NOW = "2026-01-01T00:00:00Z"


def genesis(info: SessionInfo) -> str:
    return chain.genesis(info)


def next_chain(previous: str, header: bytes, payload: bytes) -> str:
    return chain.next_chain(previous, header, payload)


@dataclass
class FakeStore:
    """Just enough of the Store port for ingest: sessions and hash-chained batches."""

    records: dict[str, SessionRecord] = field(default_factory=dict)
    stored: dict[str, list[StoredBatch]] = field(default_factory=dict)
    fail_next_append: bool = False

    def open_session(self, info: SessionInfo) -> SessionRecord:
        old = self.records.get(info.session)
        if old is not None:
            if old.info != info:
                raise StoreError(f"session {info.session!r} exists with different info")
            return old
        record = SessionRecord(info, "open", NOW, 0, genesis(info), 0)
        self.records[info.session] = record
        self.stored[info.session] = []
        return record

    def open_sessions(self, infos: Sequence[SessionInfo]) -> list[SessionRecord | StoreError]:
        out: list[SessionRecord | StoreError] = []
        for info in infos:
            try:
                out.append(self.open_session(info))
            except StoreError as exc:
                out.append(exc)
        return out

    def session(self, session_id: str) -> SessionRecord | None:
        return self.records.get(session_id)

    def append_batches(
        self, items: Sequence[tuple[str, int, int, str, bytes, bytes]]
    ) -> list[StoredBatch]:
        if self.fail_next_append:
            self.fail_next_append = False
            raise StoreError("disk full (simulated)")
        touched = [r for r in (self.records.get(item[0]) for item in items) if r is not None]
        heads = {r.info.session: (r.next_seq, r.chain_head, r.batches) for r in touched}
        out: list[StoredBatch] = []
        for session, first_seq, count, encoding, header, payload in items:
            record = self.records.get(session)
            if record is None or record.status != "open" or heads[session][0] != first_seq:
                raise StoreError(f"refused batch {session}/{first_seq}")
            _, chain, index = heads[session]
            chain = next_chain(chain, header, payload)
            out.append(StoredBatch(session, index, first_seq, count, encoding, header, payload,
                                   chain, NOW))
            heads[session] = (first_seq + count, chain, index + 1)
        for batch in out:
            self.stored[batch.session].append(batch)
        for session, (next_seq, chain, n) in heads.items():
            self.records[session] = replace(
                self.records[session], next_seq=next_seq, chain_head=chain, batches=n
            )
        return out

    def batches(self, session_id: str) -> Iterator[StoredBatch]:
        return iter(list(self.stored.get(session_id, [])))

    def close_session(self, session_id: str, close_t: float) -> SessionRecord:
        record = replace(self.records[session_id], status="closed", close_t=close_t,
                         closed_at=NOW)
        self.records[session_id] = record
        return record

    def close_sessions(
        self, closing: Sequence[tuple[str, float]]
    ) -> list[SessionRecord | StoreError]:
        return [self.close_session(session_id, close_t) for session_id, close_t in closing]

    def save_decisions(self, session_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def decisions(self, session_id: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def save_report(self, session_id: str, report: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def report(self, session_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def sessions(self, *, status: str | None = None) -> list[SessionRecord]:
        return [r for r in self.records.values() if status is None or r.status == status]

    def close(self) -> None:
        pass


def chain_intact(store: Store, session: str) -> bool:
    """The session's stored batches follow its chain from the genesis to the recorded head."""
    record = store.session(session)
    assert record is not None
    batches = list(store.batches(session))
    head = batches[-1].chain if batches else chain.genesis(record.info)
    return chain.verify_chain(chain.genesis(record.info), batches) is None and (
        head == record.chain_head
    )


def stored_batches(store: Store, session: str) -> list[StoredBatch]:
    return list(store.batches(session))


def status(store: Store, session: str) -> str:
    record = store.session(session)
    return "missing" if record is None else record.status


class LoopEngine:
    """ZmqIngest + IngestRules + a store, in a thread: the protocol side of the engine.

    drop: messages for which it returns True are ignored (simulated loss in transit).
    """

    def __init__(
        self,
        endpoint: str,
        store: Store,
        scenarios: Mapping[str, Scenario],
        *,
        drop: Callable[[Message], bool] | None = None,
        **ingest_options: Any,
    ) -> None:
        self.store = store
        self.layouts = {name: Layout.of(sc) for name, sc in scenarios.items()}
        self.drop = drop
        self._options = ingest_options
        self._requested = endpoint
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.endpoint = ""
        self.counters = Counters()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoopEngine:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("engine did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            ingest = ZmqIngest(self._requested, counters=self.counters, **self._options)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        try:
            self.endpoint = ingest.endpoint
            self._ready.set()
            rules = IngestRules(self.store, lambda info: self.layouts[info.scenario])
            while not self._stop.is_set():
                self._round(ingest, rules, ingest.poll(0.01))
        except BaseException as exc:
            self._error = exc
        finally:
            ingest.close()

    def _round(self, ingest: ZmqIngest, rules: IngestRules, messages: list[Message]) -> None:
        waiting: list[tuple[bytes, Accept]] = []
        for m in messages:
            if self.drop is not None and self.drop(m):
                continue
            h = m.header
            if h.type == "EVENTS":
                assert m.payload is not None
                decision = rules.events(h, m.raw_header, m.payload)
                if isinstance(decision, Accept):
                    waiting.append((m.identity, decision))
                elif isinstance(decision, Duplicate):
                    ingest.reply(m.identity, Ack(session=h.session, seq=decision.ack_seq))
                else:
                    self._nack(ingest, m, decision)
                continue
            self._commit(ingest, rules, waiting)
            waiting = []
            if h.type == "OPEN":
                info = SessionInfo(h.session, h.learner, h.scenario, h.rubric,
                                   h.rubric_version or 1, "0" * 64, h.source, dict(h.metadata))
                opened = rules.open(info)
                if isinstance(opened, Reject):
                    self._nack(ingest, m, opened)
                    continue
                record, layout = opened
                ingest.reply(m.identity, Opened(
                    session=h.session, next_seq=record.next_seq,
                    closed=record.status == "closed", signals=list(layout.signal_names),
                    events=list(layout.event_names)))
            elif h.type == "CLOSE":
                closed = rules.close(h)
                if isinstance(closed, Reject):
                    self._nack(ingest, m, closed)
                else:
                    ingest.reply(m.identity, Closed(session=h.session, t=h.t,
                                                    seq=closed.next_seq - 1))
        self._commit(ingest, rules, waiting)

    def _commit(
        self, ingest: ZmqIngest, rules: IngestRules, waiting: list[tuple[bytes, Accept]]
    ) -> None:
        try:
            rules.commit()
        except StoreError as exc:
            for identity, a in waiting:
                ingest.nack(identity, "internal", str(exc), session=a.session,
                            in_reply_to="EVENTS", first_seq=a.first_seq)
            return
        for identity, a in waiting:
            ingest.reply(identity, Ack(session=a.session, seq=a.last_seq))

    @staticmethod
    def _nack(ingest: ZmqIngest, m: Message, r: Reject) -> None:
        ingest.nack(m.identity, r.code, r.message, session=r.session,
                    expected_seq=r.expected_seq, in_reply_to=m.header.type,
                    first_seq=getattr(m.header, "first_seq", None))


DEMO = Scenario.model_validate(
    {
        "scenario": "demo",
        "title": "Demo",
        "signals": {
            "speed": {"unit": "km/h", "range": [0, 20]},
            "load": {"unit": "kg", "range": [0, 2500]},
        },
        "events": {"horn": "Horn sounded", "stop": "Stopped"},
    }
)


class RawPeer:
    """A bare DEALER socket speaking the protocol by hand."""

    def __init__(self, endpoint: str, **options: Any) -> None:
        self.context = zmq.Context()
        self.socket: zmq.Socket[bytes] = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():
            self.socket.setsockopt(getattr(zmq, name.upper()), value)
        self.socket.connect(endpoint)

    def send(self, *frames: bytes | dict[str, Any]) -> None:
        self.socket.send_multipart(
            [json.dumps(f).encode() if isinstance(f, dict) else f for f in frames]
        )

    def recv(self, timeout: float = 2.0) -> dict[str, Any] | None:
        if not self.socket.poll(int(timeout * 1000)):
            return None
        reply: dict[str, Any] = json.loads(self.socket.recv_multipart()[0])
        return reply

    def request(self, *frames: bytes | dict[str, Any], timeout: float = 2.0) -> dict[str, Any]:
        self.send(*frames)
        reply = self.recv(timeout)
        assert reply is not None, "no reply"
        return reply

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()

    def __enter__(self) -> RawPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
