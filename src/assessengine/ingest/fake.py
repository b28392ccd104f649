"""An in-process ingest transport for tests: peers put messages in a queue, the engine polls
them in the order they were sent, and each peer reads its answers from a queue of its own. No
sockets, no threads of its own; deterministic.

    transport = FakeTransport()
    with Engine(store, library, transport) as engine:
        peer = transport.peer()
        peer.request({"type": "OPEN", "session": "S1", ...})      # -> {"type": "OPENED", ...}

Like the ZeroMQ transport (`adapters.zmq_ingest`), and in the same order, it NACKs a message
with the wrong number of frames, a frame over its size limit (``too_large``) and a header that
is not a client message (`core.wire.parse_client_header`); it answers HELLO (WELCOME) and PING
(PONG) itself, and counts what it sees. What it cannot fake: the socket's hard frame cap
(ZeroMQ drops the connection), CURVE, high-water marks.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from typing import Any, Final

from .. import __version__
from ..core.wire import (
    PAYLOAD_FRAMES,
    PROTOCOL,
    ClientMessage,
    HeaderProblem,
    Nack,
    Welcome,
    WireModel,
    parse_client_header,
)
from .port import Counters, Message

FAKE_ENDPOINT: Final = "fake://in-process"
MAX_FRAMES: Final = 1 + max(PAYLOAD_FRAMES.values())
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
        self.counters = counters
        self.closed = False
        return self

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
                message = self._check(identity, frames)
                if message is not None:
                    out.append(message)
                taken += sum(len(f) for f in frames)
                if max_bytes is not None and taken >= max_bytes:
                    break
        return out

    def _check(self, identity: bytes, frames: list[bytes]) -> Message | None:
        c = self.counters
        c.messages += 1
        c.bytes += sum(len(f) for f in frames)
        if not 1 <= len(frames) <= MAX_FRAMES:
            self.nack(identity, "frame_count", f"a message has 1 to {MAX_FRAMES} frames, this "
                      f"one has {len(frames)}")  # fmt: skip
            return None
        if len(frames[0]) > self.max_header_bytes:
            self.nack(identity, "too_large", f"header frame is {len(frames[0])} bytes, the "
                      f"limit is {self.max_header_bytes}")  # fmt: skip
            return None
        parsed = parse_client_header(frames[0])
        if isinstance(parsed, HeaderProblem):
            self.nack(identity, parsed.code, parsed.message, session=parsed.session,
                      in_reply_to=parsed.in_reply_to)  # fmt: skip
            return None
        payload = frames[1:]
        wanted = 1 + PAYLOAD_FRAMES[parsed.type]
        if len(frames) != wanted:
            self.nack(identity, "frame_count", f"{parsed.type} has {wanted} frame(s), this one "
                      f"has {len(frames)}", **_about(parsed))  # fmt: skip
            return None
        if payload and len(payload[0]) > self.max_frame_bytes:
            self.nack(identity, "too_large", f"payload frame is {len(payload[0])} bytes, the "
                      f"limit is {self.max_frame_bytes}", **_about(parsed))  # fmt: skip
            return None
        if parsed.type == "HELLO":
            if parsed.protocol != PROTOCOL:
                self.nack(identity, "unsupported_version", f"this engine speaks protocol "
                          f"{PROTOCOL}, not {parsed.protocol}", in_reply_to="HELLO")  # fmt: skip
            else:
                self.reply(identity, Welcome(engine=f"assessengine/{__version__}",
                                             max_frame_bytes=self.max_frame_bytes,
                                             max_header_bytes=self.max_header_bytes))  # fmt: skip
            return None
        if parsed.type == "PING":
            self.reply(identity, b'{"type":"PONG","nonce":%d}' % parsed.nonce)
            return None
        if parsed.type == "EVENTS":
            c.batches += 1
            c.events += parsed.count
        body = memoryview(payload[0]).toreadonly() if payload else None
        return Message(identity, parsed, frames[0], body, time.monotonic())

    def reply(self, identity: bytes, header: WireModel | bytes, *frames: bytes) -> None:
        head = header if isinstance(header, bytes) else header.to_frame()
        with self._cond:
            self._outbox.setdefault(identity, deque()).append([head, *frames])
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
        self.counters.count_nack(code)
        self.reply(identity, Nack(session=session, code=code, message=message,
                                  expected_seq=expected_seq, in_reply_to=in_reply_to,
                                  first_seq=first_seq))  # fmt: skip

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

    def recv(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """The next answer's header (None after `timeout` seconds without one)."""
        frames = self.transport._take_reply(self.identity, timeout)
        if frames is None:
            return None
        reply: dict[str, Any] = json.loads(frames[0])
        return reply

    def request(self, *frames: Frame, timeout: float = 2.0) -> dict[str, Any]:
        """`send`, then the answer; TimeoutError when none comes within `timeout`."""
        self.send(*frames)
        reply = self.recv(timeout)
        if reply is None:
            raise TimeoutError(f"no reply within {timeout}s")
        return reply


def _about(header: ClientMessage) -> dict[str, Any]:
    """The NACK fields that name the message being refused."""
    return {"session": getattr(header, "session", None), "in_reply_to": header.type,
            "first_seq": getattr(header, "first_seq", None)}  # fmt: skip


def _frame(frame: Frame) -> bytes:
    return json.dumps(frame).encode() if isinstance(frame, dict) else bytes(frame)
