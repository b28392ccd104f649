"""Python client of the ingest protocol v1 (`docs/protocol.md`): open sessions, stream events,
close them, and know that every event was durably stored.

    with EngineClient("tcp://127.0.0.1:5555", client_id="sim-01") as client:
        client.open("S1", learner="L1", scenario="forklift-warehouse",
                    rubric="forklift-load-handling")
        client.send("S1", events)          # Events, event dicts, Columns or a columns-v1 array
        client.close("S1", t=612.0)
        client.flush(timeout=30)           # returns once everything is ACKed and CLOSED

Delivery: every batch is kept until the engine ACKs it. The client resends from the engine's
``expected_seq`` on NACK ``gap``, resends batches left unacknowledged for `resend_after` seconds,
pings a silent engine after `reply_timeout`, and after `dead_after` seconds of silence drops its
socket, connects a new one, re-OPENs its sessions and resends everything unacknowledged. The
engine drops duplicates, so nothing is stored twice.

A NACK that resending cannot fix (bad data, unknown rubric, ...) fails its session: the next
`send`, `close` or `flush` raises `NackError` for it, and the session is dropped.

Thread-safety: an EngineClient (like the ZeroMQ socket inside) belongs to ONE thread. Use one
client per thread; a client carries any number of sessions.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zmq
import zmq.auth
from numpy.typing import NDArray
from pydantic import ValidationError

from .core.codec import COLUMNS_V1, JSON_V1, CodecError, Columns, Layout, encode_json_v1, records_v1
from .core.events import Event
from .core.wire import NACK_CODES, PROTOCOL, Nack, ServerMessage, parse_server_header
from .errors import AssessEngineError

EventsInput = Columns | NDArray[Any] | Sequence[Event] | Sequence[Mapping[str, Any]]


class ClientError(AssessEngineError):
    """The client could not do what was asked."""


class NackError(ClientError):
    """The engine refused a message for a reason resending cannot fix."""

    def __init__(self, code: str, message: str, session: str | None = None) -> None:
        self.code, self.message, self.session = code, message, session
        where = f"session {session!r}: " if session else ""
        super().__init__(f"{where}{code}: {message}")


class DeliveryTimeoutError(ClientError):
    """Not everything was acknowledged within the time allowed."""


@dataclass(frozen=True, slots=True)
class ClientCurve:
    """CURVE keys of a client (z85, 40 bytes each) and the engine's public key."""

    server_public_key: bytes
    public_key: bytes
    secret_key: bytes

    @classmethod
    def from_files(cls, server_public: Path | str, client_secret: Path | str) -> ClientCurve:
        """The engine's public ``.key`` file and this client's ``.key_secret`` file."""
        server, _ = zmq.auth.load_certificate(server_public)
        public, secret = zmq.auth.load_certificate(client_secret)
        if secret is None:
            raise ClientError(f"{client_secret} holds no secret key (use the .key_secret file)")
        return cls(server, public, secret)


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """What the engine said to OPEN: where the session stands and its scenario's layout."""

    session: str
    next_seq: int
    closed: bool
    layout: Layout


@dataclass(slots=True)
class _Batch:
    first_seq: int
    count: int
    header: bytes
    payload: bytes | NDArray[np.uint8]
    sent_at: float | None = None

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1

    @property
    def nbytes(self) -> int:
        return len(self.header) + len(self.payload)


@dataclass(slots=True)
class _Session:
    name: str
    open_frame: bytes
    layout: Layout | None = None
    next_seq: int | None = None      # seq of the next event to send
    last_t: float = 0.0
    acked: int = -1
    opened: bool = False             # OPENED received on the current connection
    open_sent_at: float | None = None
    unacked: deque[_Batch] = field(default_factory=deque)
    close_frame: bytes | None = None
    close_sent_at: float | None = None
    closed: bool = False
    failed: NackError | None = None
    gap_resend: tuple[int, float] = (-1, 0.0)
    reopen_attempts: int = 0

    def outstanding(self) -> bool:
        if self.failed is not None:
            return False
        return not self.opened or bool(self.unacked) or (
            self.close_frame is not None and not self.closed
        )


class EngineClient:
    """A DEALER connection to the engine, carrying any number of sessions.

    encoding: ``columns-v1`` (binary, fast; default) or ``json-v1``.
    batch_bytes: largest payload per EVENTS message (events are split to fit).
    max_unacked_bytes: `send` waits for ACKs while more than this is unacknowledged.
    reply_timeout / resend_after / dead_after: seconds, see the module docstring.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        client_id: str,
        curve: ClientCurve | None = None,
        encoding: Literal["columns-v1", "json-v1"] = COLUMNS_V1,
        batch_bytes: int = 256 * 2**10,
        max_unacked_bytes: int = 64 * 2**20,
        reply_timeout: float = 1.0,
        resend_after: float = 3.0,
        dead_after: float = 5.0,
        send_timeout: float = 60.0,
    ) -> None:
        if encoding not in (COLUMNS_V1, JSON_V1):
            raise ValueError(f"encoding must be {COLUMNS_V1} or {JSON_V1}, got {encoding!r}")
        if not 0 < reply_timeout <= resend_after and reply_timeout <= dead_after:
            raise ValueError(
                "need 0 < reply_timeout <= resend_after and reply_timeout <= dead_after"
            )
        if batch_bytes < 1 or max_unacked_bytes < batch_bytes:
            raise ValueError("need 1 <= batch_bytes <= max_unacked_bytes")
        self.endpoint, self.client_id, self.curve = endpoint, client_id, curve
        self.encoding = encoding
        self.batch_bytes, self.max_unacked_bytes = batch_bytes, max_unacked_bytes
        self.reply_timeout, self.resend_after = reply_timeout, resend_after
        self.dead_after = dead_after
        self.send_timeout = send_timeout
        self.reconnects = 0
        self.max_frame_bytes: int | None = None   # from WELCOME
        self._sessions: dict[str, _Session] = {}
        self._fatal: NackError | None = None
        self._unacked_bytes = 0
        self._heard = time.monotonic()
        self._pinged = 0.0
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] | None = None
        self._connect()

    # -------------------------------------------------------------------------- public API

    def open(
        self,
        session: str,
        *,
        learner: str,
        scenario: str,
        rubric: str,
        rubric_version: int | None = None,
        source: Literal["simulator", "field"] = "simulator",
        metadata: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> OpenedSession:
        """OPEN a session and wait for OPENED (a session the engine holds already resumes at its
        ``next_seq``). Raises NackError (unknown rubric, conflict, ...) or DeliveryTimeoutError."""
        if session in self._sessions:
            raise ClientError(f"session {session!r} is already open on this client")
        head: dict[str, Any] = {"type": "OPEN", "session": session, "learner": learner,
                                "scenario": scenario, "rubric": rubric, "source": source,
                                "metadata": dict(metadata or {})}
        if rubric_version is not None:
            head["rubric_version"] = rubric_version
        s = _Session(session, json.dumps(head, allow_nan=False).encode())
        self._mark_busy()
        self._sessions[session] = s
        self._pump(s)
        if not self._service(lambda: s.opened or s.failed is not None, timeout):
            self._sessions.pop(session, None)
            raise DeliveryTimeoutError(
                f"no OPENED for {session!r} within {timeout}s from {self.endpoint}"
            )
        self._raise_if_failed(s)
        assert s.layout is not None
        assert s.next_seq is not None
        return OpenedSession(session, s.next_seq, s.closed, s.layout)

    def send(self, session: str, events: EventsInput, *, encoding: str | None = None) -> None:
        """Queue events for `session` and send them (in batches of up to `batch_bytes`).
        Seqs must continue where the previous send ended (the first send: the ``next_seq`` of
        OPENED, 0 for a new session). Returns once sent; waits only while more than
        `max_unacked_bytes` is unacknowledged. Raises ValueError on events that cannot be
        valid, NackError if the session failed."""
        s = self._session(session)
        assert s.layout is not None
        assert s.next_seq is not None
        cols = _to_columns(events, s.layout)
        if not len(cols):
            return
        _check_rows(cols, s.next_seq, s.last_t)
        enc = encoding or self.encoding
        for start, stop in self._chunks(len(cols), s.layout, enc):
            part = Columns(cols.seq[start:stop], cols.t[start:stop], cols.event[start:stop],
                           cols.signals[:, start:stop])
            self._wait_window(s)
            self._queue(s, self._batch(s, part, enc))
        s.next_seq = int(cols.seq[-1]) + 1
        s.last_t = float(cols.t[-1])
        self._drain()

    def close(self, session: str, t: float) -> None:
        """Queue CLOSE (end time `t`) after the session's events. `flush` waits for CLOSED."""
        s = self._session(session)
        if not math.isfinite(t) or t < s.last_t:
            raise ValueError(f"close t must be finite and >= the last event's t ({s.last_t})")
        head = {"type": "CLOSE", "session": session, "t": float(t), "next_seq": s.next_seq}
        s.close_frame = json.dumps(head).encode()
        self._mark_busy()
        self._pump(s)
        self._drain()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every event sent is ACKed and every CLOSE is CLOSED. Raises NackError for
        a failed session (dropping it), DeliveryTimeoutError after `timeout` seconds."""
        done = self._service(lambda: not self._outstanding() or self._any_failed(), timeout)
        for s in list(self._sessions.values()):
            self._raise_if_failed(s)
        if not done:
            waiting = {n: f"acked {s.acked}, next {s.next_seq}" for n, s in
                       self._sessions.items() if s.outstanding()}
            raise DeliveryTimeoutError(f"not acknowledged within {timeout}s: {waiting}")
        for name in [n for n, s in self._sessions.items() if s.closed and not s.unacked]:
            del self._sessions[name]

    def acked(self, session: str) -> int:
        """Highest seq of `session` the engine has acknowledged (-1: none)."""
        return self._sessions[session].acked

    def disconnect(self) -> None:
        """Close the socket now (unacknowledged data is dropped: `flush` first)."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if not self._context.closed:
            self._context.term()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -------------------------------------------------------------------------- batching

    def _chunks(self, n: int, layout: Layout, encoding: str) -> Iterable[tuple[int, int]]:
        limit = min(self.batch_bytes, self.max_frame_bytes or self.batch_bytes)
        per_row = layout.itemsize if encoding == COLUMNS_V1 else 40 + 24 * len(layout.signal_names)
        rows = max(1, limit // per_row)
        return ((i, min(n, i + rows)) for i in range(0, n, rows))

    def _batch(self, s: _Session, cols: Columns, encoding: str) -> _Batch:
        assert s.layout is not None
        head: dict[str, Any] = {"type": "EVENTS", "session": s.name,
                                "first_seq": int(cols.seq[0]), "count": len(cols),
                                "encoding": encoding}
        if encoding == COLUMNS_V1:
            head["dtype"] = s.layout.dtype_header()
            payload: bytes | NDArray[np.uint8] = records_v1(cols, s.layout)
        else:
            payload = encode_json_v1(cols, s.layout)
        return _Batch(head["first_seq"], len(cols), json.dumps(head).encode(), payload)

    def _queue(self, s: _Session, batch: _Batch) -> None:
        self._mark_busy()
        s.unacked.append(batch)
        self._unacked_bytes += batch.nbytes
        self._pump(s)

    def _wait_window(self, s: _Session) -> None:
        if self._unacked_bytes <= self.max_unacked_bytes:
            return
        ok = self._service(
            lambda: self._unacked_bytes <= self.max_unacked_bytes or s.failed is not None,
            self.send_timeout,
        )
        self._raise_if_failed(s)
        if not ok:
            raise DeliveryTimeoutError(f"engine acknowledged nothing for {self.send_timeout}s")

    # -------------------------------------------------------------------------- sending

    def _pump(self, s: _Session) -> None:
        """Send what of `s` is unsent, in order: OPEN, batches, CLOSE."""
        now = time.monotonic()
        if not s.opened and s.open_sent_at is None:
            if not self._send([s.open_frame]):
                return
            s.open_sent_at = now
        for b in s.unacked:
            if b.sent_at is None:
                if not self._send([b.header, b.payload]):
                    return
                b.sent_at = now
        closing = s.close_frame is not None and not s.closed and s.close_sent_at is None
        if closing and self._send([s.close_frame]):
            s.close_sent_at = now

    def _send(self, frames: list[Any]) -> bool:
        assert self._socket is not None
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _connect(self) -> None:
        sock: zmq.Socket[bytes] = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.curve.server_public_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self.curve.public_key)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self.curve.secret_key)
        sock.connect(self.endpoint)
        self._socket = sock
        self._heard = time.monotonic()
        hello = {"type": "HELLO", "client": self.client_id, "protocol": PROTOCOL}
        self._send([json.dumps(hello).encode()])

    def _reconnect(self) -> None:
        """Drop the socket, connect a new one, re-OPEN every session, resend all unacked."""
        if self._socket is not None:
            self._socket.close(linger=0)
        self.reconnects += 1
        self._connect()
        for s in self._sessions.values():
            if s.failed is not None or (s.closed and not s.unacked):
                continue
            s.opened, s.open_sent_at, s.close_sent_at = False, None, None
            for b in s.unacked:
                b.sent_at = None
            self._pump(s)

    # -------------------------------------------------------------------------- receiving

    def _service(self, done: Callable[[], bool], timeout: float) -> bool:
        """Handle replies and timers until `done()` or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        tick = self.reply_timeout / 4
        while not done():
            if self._fatal is not None:
                raise self._fatal
            now = time.monotonic()
            if now >= deadline:
                return done()
            assert self._socket is not None
            if self._socket.poll(int(1000 * min(tick, deadline - now)) + 1, zmq.POLLIN):
                self._drain()
            self._timers()
        return True

    def _drain(self) -> None:
        assert self._socket is not None
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._heard = time.monotonic()
            try:
                message = parse_server_header(frames[0])
            except ValidationError:
                continue  # not a v1 engine message; ignore it
            self._handle(message)

    def _handle(self, m: ServerMessage) -> None:
        if m.type == "WELCOME":
            self.max_frame_bytes = m.max_frame_bytes
            return
        if m.type == "PONG":
            return
        if m.type == "NACK":
            self._on_nack(m)
            return
        s = self._sessions.get(m.session)
        if s is None:
            return
        if m.type == "OPENED":
            s.opened, s.closed = True, s.closed or m.closed
            s.layout = Layout.from_names(m.signals, m.events)
            if s.next_seq is None:
                s.next_seq = m.next_seq
            self._acknowledge(s, m.next_seq - 1)
            self._pump(s)
        elif m.type == "ACK":
            self._acknowledge(s, m.seq)
        elif m.type == "CLOSED":
            self._acknowledge(s, m.seq)
            s.closed = True

    def _acknowledge(self, s: _Session, seq: int) -> None:
        s.acked = max(s.acked, seq)
        while s.unacked and s.unacked[0].last_seq <= s.acked:
            self._unacked_bytes -= s.unacked.popleft().nbytes

    def _on_nack(self, m: Nack) -> None:
        s = self._sessions.get(m.session) if m.session else None
        if s is None:
            if m.in_reply_to == "HELLO" or m.code == "unsupported_version":
                self._fatal = NackError(m.code, m.message)
            return
        if m.code == "gap" and m.expected_seq is not None:
            self._on_gap(s, m.expected_seq)
        elif m.code == "unknown_session" and m.in_reply_to != "OPEN" and s.reopen_attempts < 3:
            s.reopen_attempts += 1
            self._resend_all(s)
        elif not NACK_CODES.get(m.code, NACK_CODES["bad_message"]).retry:
            s.failed = NackError(m.code, m.message, s.name)
            self._unacked_bytes -= sum(b.nbytes for b in s.unacked)
            s.unacked.clear()
        # retryable codes (internal, ...): the resend timer sends the batch again

    def _on_gap(self, s: _Session, expected: int) -> None:
        self._acknowledge(s, expected - 1)
        now = time.monotonic()
        if s.gap_resend[0] == expected and now - s.gap_resend[1] < self.resend_after:
            return  # a NACK for a batch sent before the resend from `expected`
        if (s.unacked and s.unacked[0].first_seq > expected) or (
            not s.unacked and (s.next_seq or 0) > expected
        ):
            s.failed = NackError("gap", f"the engine expects seq {expected}, which this client "
                                  "no longer holds", s.name)
            return
        s.gap_resend = (expected, now)
        self._resend_all(s, keep_open=True)

    def _resend_all(self, s: _Session, *, keep_open: bool = False) -> None:
        if not keep_open:
            s.opened, s.open_sent_at = False, None
        for b in s.unacked:
            b.sent_at = None
        s.close_sent_at = None
        self._pump(s)

    def _timers(self) -> None:
        if not self._outstanding():
            return
        now = time.monotonic()
        silence = now - self._heard
        if silence > self.dead_after:
            self._reconnect()
            return
        if silence > self.reply_timeout and now - self._pinged > self.reply_timeout:
            self._pinged = now
            self._send([b'{"type":"PING","nonce":%d}' % int(now * 1000)])
        for s in self._sessions.values():
            if s.failed is None:
                self._retry_stale(s, now - self.resend_after)
                self._pump(s)

    @staticmethod
    def _retry_stale(s: _Session, limit: float) -> None:
        """Mark for resending what waits for a reply since before `limit`: the OPEN, else only
        the OLDEST unacknowledged batch (a probe: if it was lost the engine stores it, and any
        later loss shows up as a gap; if it is merely queued behind a backlog, one duplicate
        costs nothing), else the CLOSE."""
        def expired(sent_at: float | None) -> bool:
            return sent_at is not None and sent_at < limit

        if not s.opened:
            if expired(s.open_sent_at):
                s.open_sent_at = None
        elif s.unacked:
            if expired(s.unacked[0].sent_at):
                s.unacked[0].sent_at = None
        elif s.close_frame is not None and not s.closed and expired(s.close_sent_at):
            s.close_sent_at = None

    # -------------------------------------------------------------------------- helpers

    def _outstanding(self) -> bool:
        return any(s.outstanding() for s in self._sessions.values())

    def _any_failed(self) -> bool:
        return any(s.failed is not None for s in self._sessions.values())

    def _mark_busy(self) -> None:
        """Silence is measured from now if nothing was outstanding (an idle client is not an
        unanswered one)."""
        if not self._outstanding():
            self._heard = time.monotonic()

    def _session(self, session: str) -> _Session:
        s = self._sessions.get(session)
        if s is None:
            raise ClientError(f"session {session!r} is not open on this client (open it first)")
        self._raise_if_failed(s)
        if s.close_frame is not None:
            raise ClientError(f"session {session!r} is closed")
        return s

    def _raise_if_failed(self, s: _Session) -> None:
        if s.failed is not None:
            self._sessions.pop(s.name, None)
            raise s.failed


def _to_columns(events: EventsInput, layout: Layout) -> Columns:
    if isinstance(events, Columns):
        return events
    if isinstance(events, np.ndarray):
        names = events.dtype.names or ()
        want = tuple(n for n, _ in layout.dtype_fields)
        if names != want:
            raise ValueError(f"structured array fields {names} differ from the layout {want}")
        return Columns(
            np.asarray(events["seq"], np.int64), np.asarray(events["t"], np.float64),
            np.asarray(events["event"], np.int32),
            np.stack([np.asarray(events[n], np.float64) for n in layout.signal_names])
            if layout.signal_names else np.empty((0, len(events))),
        )
    items = [e if isinstance(e, Event) else _event(e) for e in events]
    try:
        return Columns.from_events(items, layout)
    except CodecError as exc:
        raise ValueError(exc.message) from None


def _event(record: Mapping[str, Any]) -> Event:
    return Event(int(record["seq"]), float(record["t"]), str(record["event"]),
                 dict(record.get("signals") or {}))


def _check_rows(cols: Columns, next_seq: int, last_t: float) -> None:
    expected = np.arange(next_seq, next_seq + len(cols), dtype=np.int64)
    if not np.array_equal(cols.seq, expected):
        raise ValueError(f"seqs must run {next_seq}, {next_seq + 1}, ... on this session; got "
                         f"{cols.seq[:3].tolist()}...")
    t = cols.t
    if not np.isfinite(t).all() or t[0] < last_t or (np.diff(t) < 0).any():
        raise ValueError(f"t must be finite, never decrease, and start at >= {last_t}")
