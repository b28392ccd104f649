"""The ingest port: how messages reach the engine and how it answers them.

The engine's ingest thread builds its transport with a `TransportFactory` (a ZeroMQ socket must
be made in the thread that uses it), then, per round, `poll`s for well-formed client messages
and answers each with `reply` (OPENED, ACK, CLOSED) or `nack`. A transport answers HELLO, PING
and malformed messages itself and never returns them; it counts what it sees in the engine's
`Counters`. Implementations: `ingest.zmq.ZmqIngest` (made by `ingest.zmq.
zmq_transport`) and `ingest.fake.FakeTransport`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.wire import ClientMessage, WireModel


@dataclass(frozen=True, slots=True)
class Message:
    """A well-formed client message. `payload` (EVENTS only) is a read-only view of the received
    frame (it keeps the frame alive, so it stays valid as long as it is referenced)."""

    identity: bytes
    header: ClientMessage
    raw_header: bytes
    payload: memoryview | None
    received: float             # time.monotonic() at receipt


@dataclass
class Counters:
    """What the ingest saw, for /metrics. Updated by the polling thread (and the ZAP thread for
    `denied_clients`); read a consistent copy with `snapshot`."""

    messages: int = 0           # multipart messages received
    batches: int = 0            # EVENTS messages that passed frame and header checks
    events: int = 0             # sum of their counts
    bytes: int = 0              # bytes received, all frames
    denied_clients: int = 0     # CURVE handshakes refused by the allow-list
    nacks: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_denied(self) -> None:
        with self._lock:
            self.denied_clients += 1

    def count_nack(self, code: str) -> None:
        with self._lock:
            self.nacks[code] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "messages": self.messages, "batches": self.batches, "events": self.events,
                "bytes": self.bytes, "denied_clients": self.denied_clients,
                "nacks": dict(self.nacks),
            }


class IngestTransport(Protocol):
    """Messages in, answers out; used by one thread (the one that made it)."""

    @property
    def endpoint(self) -> str:
        """Where clients reach it (a bound socket: with the real port filled in)."""
        ...

    @property
    def max_messages(self) -> int:
        """The most messages one `poll` returns (a full poll means more may be waiting)."""
        ...

    def poll(self, timeout: float, *, max_bytes: int | None = None) -> list[Message]:
        """Well-formed messages that arrived, in arrival order: waits at most `timeout`
        seconds for the first one, then takes what is already waiting (up to
        `max_messages`; with `max_bytes`, until the messages taken hold that many bytes)."""
        ...

    def reply(self, identity: bytes, header: WireModel | bytes, *frames: bytes) -> None:
        """Send a reply to one client; never blocks (a reply that cannot go is dropped:
        clients resend what stays unacknowledged)."""
        ...

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
        """Send a NACK and count it under `code`."""
        ...

    def close(self) -> None:
        """Stop receiving; idempotent."""
        ...


TransportFactory = Callable[[Counters], IngestTransport]
"""Makes the transport, in the engine's ingest thread, counting into the engine's `Counters`.
Raises (e.g. IngestConfigError) when it cannot: `Engine.start` raises that."""
