"""An in-process ingest transport for tests: peers put messages in a queue, the engine polls
them in the order they were sent, and each peer reads its answers from a queue of its own. No
sockets, no threads of its own; deterministic.

    transport = FakeTransport()
    with Engine(store, library, transport) as engine:
        peer = transport.peer()
        peer.request({"type": "OPEN", "session": "S1", ...})      # -> {"type": "OPENED", ...}

It checks and answers messages with the ZeroMQ transport's own `ingest.triage.Triage`, so it
NACKs exactly what that one NACKs (frame counts, sizes, headers that are not client messages)
and answers HELLO (WELCOME) and PING (PONG) itself, counting what it sees. What it cannot fake:
the socket's hard frame cap (ZeroMQ drops the connection), CURVE, high-water marks.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from typing import Any, Final

from ..core.wire import WireModel
from .port import Counters, Message
from .triage import Triage

FAKE_ENDPOINT: Final = "fake://in-process"
REPLY_TIMEOUT_S: Final = 120.0
"""How long a peer waits for an answer by default: the engine answers from threads of its own,
which a loaded machine may keep from running for many seconds, so only an engine that does
not answer reaches this bound. Pass a short timeout to check that no answer comes."""
Frame = bytes | dict[str, Any]
"""A frame a peer sends: bytes as they are, a dict as its JSON."""


class FakeTransport:
    """`IngestTransport` backed by in-memory queues. Thread-safe: the engine's ingest thread
    polls and answers while test threads send and receive. The object is its own
    `TransportFactory` (``Engine(store, library, FakeTransport())``)."""

    def __init__(
        self,
        *,
        max_messages: int = 64,
        max_frame_bytes: int = 16 * 2**20,
        max_header_bytes: int = 64 * 2**10,
    ) -> None:
        self.max_messages = max_messages
        self.max_frame_bytes, self.max_header_bytes = max_frame_bytes, max_header_bytes
        self.counters = Counters()
        self._triage = self._triage_for(self.counters)
        self.closed = False
        self._inbox: deque[tuple[bytes, list[bytes]]] = deque()
        self._outbox: dict[bytes, deque[list[bytes]]] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)

    @property
    def endpoint(self) -> str:
        return FAKE_ENDPOINT

    def __call__(self, counters: Counters) -> FakeTransport:
        """The factory: the engine's ingest thread takes this transport, with its counters."""
        self.counters, self._triage = counters, self._triage_for(counters)
        self.closed = False
        return self

    def _triage_for(self, counters: Counters) -> Triage:
        return Triage(max_frame_bytes=self.max_frame_bytes,
                      max_header_bytes=self.max_header_bytes, counters=counters,
                      send=self._deliver)  # fmt: skip

    # -------------------------------------------------------------------------- peers' side

    def peer(self, identity: bytes | None = None) -> FakePeer:
        """A client of this transport (a fresh identity unless given)."""
        return FakePeer(self, identity or b"peer-%d" % next(self._ids))

    def _put(self, identity: bytes, frames: list[bytes]) -> None:
        with self._cond:
            self._outbox.setdefault(identity, deque())
            self._inbox.append((identity, frames))
            self._cond.notify_all()

    def _take_reply(self, identity: bytes, timeout: float) -> list[bytes] | None:
        with self._cond:
            box = self._outbox.setdefault(identity, deque())
            if not self._cond.wait_for(lambda: bool(box), timeout):
                return None
            return box.popleft()

    # -------------------------------------------------------------------------- engine's side

    def poll(self, timeout: float, *, max_bytes: int | None = None) -> list[Message]:
        out: list[Message] = []
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._inbox) or self.closed, timeout):
                return out
            taken = 0
            for _ in range(self.max_messages):
                if not self._inbox or self.closed:
                    break
                identity, frames = self._inbox.popleft()
                message = self._triage.guarded(identity, [memoryview(f) for f in frames])
                if message is not None:
                    out.append(message)
                taken += sum(len(f) for f in frames)
                if max_bytes is not None and taken >= max_bytes:
                    break
        return out

    def reply(self, identity: bytes, header: WireModel | bytes, *frames: bytes) -> None:
        head = header if isinstance(header, bytes) else header.to_frame()
        self._deliver(identity, [head, *frames])

    def _deliver(self, identity: bytes, frames: list[bytes]) -> None:
        with self._cond:
            self._outbox.setdefault(identity, deque()).append(frames)
            self._cond.notify_all()

    def nack(
        self,
        identity: bytes,
        code: str,
        message: str,
        *,
        session: str | None = None,
        expected_seq: int | None = None,
        in_reply_to: str | None = None,
        first_seq: int | None = None,
    ) -> None:
        self._triage.nack(identity, code, message, session=session, expected_seq=expected_seq,
                          in_reply_to=in_reply_to, first_seq=first_seq)  # fmt: skip

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class FakePeer:
    """One client of a `FakeTransport`: sends messages, reads the answers meant for it."""

    def __init__(self, transport: FakeTransport, identity: bytes) -> None:
        self.transport, self.identity = transport, identity

    def send(self, *frames: Frame) -> None:
        self.transport._put(self.identity, [_frame(f) for f in frames])

    def recv(self, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any] | None:
        """The next answer's header (None after `timeout` seconds without one)."""
        frames = self.transport._take_reply(self.identity, timeout)
        if frames is None:
            return None
        reply: dict[str, Any] = json.loads(frames[0])
        return reply

    def request(self, *frames: Frame, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        """`send`, then the answer; TimeoutError when none comes within `timeout`."""
        self.send(*frames)
        reply = self.recv(timeout)
        if reply is None:
            raise TimeoutError(f"no reply within {timeout}s")
        return reply


def _frame(frame: Frame) -> bytes:
    return json.dumps(frame).encode() if isinstance(frame, dict) else bytes(frame)
