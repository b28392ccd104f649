"""Test support for the ingest tests: a list-backed fake `Store` (for the ingest rules alone),
the real `Engine` over a demo scenario and rubric on any transport (`running`), a transport
that loses messages in transit (`Lossy`), a store that fails an append on demand, and a bare
ZeroMQ peer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import zmq

from assessengine.core import chain
from assessengine.core.rubric import Rubric
from assessengine.core.scenario import Scenario
from assessengine.core.wire import WireModel
from assessengine.ingest.port import Counters, IngestTransport, Message, TransportFactory
from assessengine.runtime.engine import Engine
from assessengine.runtime.pipeline import RubricEntry, RubricLibrary
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import (
    SessionInfo,
    SessionRecord,
    Store,
    StoredBatch,
    StoreError,
)

from .waits import WAIT_S

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

    def recv(self, timeout: float = WAIT_S) -> dict[str, Any] | None:
        if not self.socket.poll(int(timeout * 1000)):
            return None
        frames = self.socket.recv_multipart()
        while len(frames) > 1 and not frames[0]:  # the delimiter echoed to an empty first frame
            frames = frames[1:]
        reply: dict[str, Any] = json.loads(frames[0])
        return reply

    def request(self, *frames: bytes | dict[str, Any], timeout: float = WAIT_S) -> dict[str, Any]:
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
DEMO_RUBRIC = Rubric.model_validate(
    {
        "rubric": "r",
        "version": 1,
        "title": "Demo rubric",
        "scenario": "demo",
        "criteria": [{"id": "slow", "title": "Slow", "never": "speed > 15"}],
    }
)


@cache
def demo_library() -> RubricLibrary:
    """The demo scenario with one rubric, ``r`` v1."""
    entry = RubricEntry(DEMO_RUBRIC, DEMO, DEMO_RUBRIC.sha256(), Path("r.yaml"))
    return RubricLibrary([entry])


@contextmanager
def running(store: Store, transport: TransportFactory, **options: Any) -> Iterator[Engine]:
    """The real engine (scoring in its thread) over `store` and the demo library, started on
    `transport`; stopped on the way out."""
    engine = Engine(store, demo_library(), transport, **options)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


class FailingStore(MemoryStore):
    """A `MemoryStore` whose next `append_batches` fails once `fail_next_append` is set."""

    fail_next_append = False

    def append_batches(
        self, items: Sequence[tuple[str, int, int, str, bytes, bytes]]
    ) -> list[StoredBatch]:
        if self.fail_next_append:
            self.fail_next_append = False
            raise StoreError("disk full (simulated)")
        return super().append_batches(items)


class Lossy:
    """A transport that loses the messages `drop` picks, in transit (the engine never sees
    them), around the transport `inner` makes."""

    def __init__(self, inner: TransportFactory, drop: Callable[[Message], bool]) -> None:
        self._make, self._drop = inner, drop
        self._inner: IngestTransport | None = None

    def __call__(self, counters: Counters) -> IngestTransport:
        self._inner = self._make(counters)
        return self

    @property
    def inner(self) -> IngestTransport:
        assert self._inner is not None
        return self._inner

    @property
    def endpoint(self) -> str:
        return self.inner.endpoint

    @property
    def max_messages(self) -> int:
        return self.inner.max_messages

    def poll(self, timeout: float, *, max_bytes: int | None = None) -> list[Message]:
        return [m for m in self.inner.poll(timeout, max_bytes=max_bytes) if not self._drop(m)]

    def reply(self, identity: bytes, header: WireModel | bytes, *frames: bytes) -> None:
        self.inner.reply(identity, header, *frames)

    def nack(self, identity: bytes, code: str, message: str, **fields: Any) -> None:
        self.inner.nack(identity, code, message, **fields)

    def close(self) -> None:
        self.inner.close()
