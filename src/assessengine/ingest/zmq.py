"""The ZeroMQ ingest transport: the engine's ingest socket, a ROUTER that clients' DEALER sockets
connect to (`ZmqIngest`), made by `zmq_transport` in the engine's ingest thread.

`ZmqIngest.poll` returns only well-formed client messages (frame count, sizes and header checked
against `core.wire`); everything else is answered here with a NACK and counted in `Counters`.
Payloads are not decoded here (that needs the session's scenario: see `ingest_rules`).

Security: without CURVE the socket binds only to a loopback TCP address (127.0.0.1, ::1,
localhost), ipc:// or inproc://. Anything else needs a `CurveConfig` (server key pair plus an
allow-list of client public keys, enforced by a ZAP handler) or an explicit ``insecure=True``.

Not thread-safe: create, poll, reply and close from one thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from ..core.wire import WireModel
from ..errors import AssessEngineError
from .port import Counters, IngestTransport, Message, TransportFactory
from .triage import Triage

__all__ = [
    "Counters", "CurveConfig", "IngestConfigError", "Message", "ZmqIngest", "check_bind",
    "zmq_transport",
]  # fmt: skip

log = logging.getLogger(__name__)

ZAP_DOMAIN: Final = "assessengine"
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
LOCAL_TRANSPORTS: Final = frozenset({"ipc", "inproc"})


class IngestConfigError(AssessEngineError):
    """The ingest socket cannot be set up as asked (unsafe bind, bad key files, ...)."""


# ------------------------------------------------------------------------------ security


@dataclass(frozen=True, slots=True)
class CurveConfig:
    """CURVE for the ingest socket: the server's key pair (z85, 40 bytes each) and the z85 public
    keys of the clients that may connect. Clients with other keys never get a connection."""

    public_key: bytes
    secret_key: bytes
    allowed_clients: frozenset[bytes]

    def __post_init__(self) -> None:
        for name, key in (("public_key", self.public_key), ("secret_key", self.secret_key)):
            if len(key) != 40:
                raise IngestConfigError(f"CURVE {name} must be 40 z85 characters")
        if not self.allowed_clients:
            raise IngestConfigError("CURVE needs at least one allowed client public key")

    @classmethod
    def from_files(
        cls, server_secret: Path | str, allowed: Path | str | Iterable[Path]
    ) -> CurveConfig:
        """Load the server's ``.key_secret`` file and the allowed clients' public ``.key``
        files (a directory of them, or a list of files), as `assessengine keys create` writes."""
        try:
            public, secret = zmq.auth.load_certificate(server_secret)
        except (OSError, ValueError) as exc:
            raise IngestConfigError(f"cannot read server key {server_secret}: {exc}") from None
        if secret is None:
            raise IngestConfigError(
                f"{server_secret} holds no secret key (use the .key_secret file)"
            )
        if isinstance(allowed, Path | str):
            files = sorted(Path(allowed).glob("*.key"))
        else:
            files = list(allowed)
        keys: set[bytes] = set()
        for path in files:
            try:
                keys.add(zmq.auth.load_certificate(path)[0])
            except (OSError, ValueError) as exc:
                raise IngestConfigError(f"cannot read client key {path}: {exc}") from None
        return cls(public, secret, frozenset(keys))


def check_bind(endpoint: str, *, curve: CurveConfig | None, insecure: bool) -> None:
    """Raise IngestConfigError if binding `endpoint` would expose an unauthenticated socket:
    anything but loopback TCP, ipc or inproc needs CURVE, or an explicit ``insecure``."""
    transport, sep, rest = endpoint.partition("://")
    if not sep or not rest:
        raise IngestConfigError(f"endpoint {endpoint!r} is not TRANSPORT://ADDRESS")
    if curve is not None or insecure or transport in LOCAL_TRANSPORTS:
        return
    host = rest.rsplit(":", 1)[0] if transport == "tcp" else None
    if host not in LOOPBACK_HOSTS:
        raise IngestConfigError(
            f"refusing to bind {endpoint} without CURVE: only 127.0.0.1, ::1, localhost, ipc:// "
            "and inproc:// may be bound unauthenticated. Give a CURVE key pair and an allow-list "
            "of client keys (assessengine keys create), or --insecure to accept the risk."
        )


class _AllowList:
    """ZAP credentials provider: a fixed set of z85 client public keys."""

    def __init__(self, keys: frozenset[bytes], counters: Counters) -> None:
        self._keys = keys
        self._counters = counters

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key in self._keys
        if not allowed:
            self._counters.count_denied()
        return allowed


# ------------------------------------------------------------------------------ the socket


class ZmqIngest:
    """The ROUTER socket, bound when built; validated messages in, replies out.

    max_frame_bytes: frames above it (payload or header) get NACK ``too_large``.
    max_header_bytes: limit for the JSON header frame.
    max_message_bytes: ZMQ_MAXMSGSIZE, the hard cap per frame: a peer sending a bigger frame is
        disconnected by ZeroMQ before the frame is buffered (no NACK). Default 2 x max_frame_bytes.
    rcvhwm: messages queued per connected client before its sends block (backpressure).
    max_messages: at most this many messages per `poll`.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        max_frame_bytes: int = 16 * 2**20,
        max_header_bytes: int = 64 * 2**10,
        max_message_bytes: int | None = None,
        rcvhwm: int = 256,
        sndhwm: int = 10_000,
        max_messages: int = 1024,
        curve: CurveConfig | None = None,
        insecure: bool = False,
        counters: Counters | None = None,
    ) -> None:
        if min(max_frame_bytes, max_header_bytes, rcvhwm, sndhwm, max_messages) < 1:
            raise IngestConfigError("sizes, high-water marks and max_messages must be >= 1")
        hard = max_message_bytes if max_message_bytes is not None else 2 * max_frame_bytes
        if hard < max(max_frame_bytes, max_header_bytes):
            raise IngestConfigError("max_message_bytes must be >= max_frame_bytes")
        check_bind(endpoint, curve=curve, insecure=insecure)
        self.max_frame_bytes = max_frame_bytes
        self.max_header_bytes = max_header_bytes
        self.max_messages = max_messages
        self.counters = counters if counters is not None else Counters()
        self._triage = Triage(max_frame_bytes=max_frame_bytes, max_header_bytes=max_header_bytes,
                              counters=self.counters, send=self._send)  # fmt: skip
        self._context = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._socket: zmq.Socket[bytes] = self._context.socket(zmq.ROUTER)
        try:
            self._configure(hard, rcvhwm, sndhwm, curve)
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise IngestConfigError(f"cannot bind the ingest socket to {endpoint}: {exc}") from None
        except BaseException:
            self.close()
            raise
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        """The bound endpoint (with the real port when bound to ``:*`` or ``:0``)."""

    def _configure(self, hard: int, rcvhwm: int, sndhwm: int, curve: CurveConfig | None) -> None:
        s = self._socket
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, hard)
        s.setsockopt(zmq.RCVHWM, rcvhwm)
        s.setsockopt(zmq.SNDHWM, sndhwm)
        if curve is None:
            return
        self._auth = ThreadAuthenticator(self._context)
        self._auth.start()
        self._auth.configure_curve_callback(
            domain=ZAP_DOMAIN, credentials_provider=_AllowList(curve.allowed_clients, self.counters)
        )
        s.setsockopt_string(zmq.ZAP_DOMAIN, ZAP_DOMAIN)
        s.setsockopt(zmq.CURVE_SERVER, 1)
        s.setsockopt(zmq.CURVE_SECRETKEY, curve.secret_key)
        s.setsockopt(zmq.CURVE_PUBLICKEY, curve.public_key)

    # -------------------------------------------------------------------------- receiving

    def poll(self, timeout: float, *, max_bytes: int | None = None) -> list[Message]:
        """Well-formed messages that arrived, in arrival order; waits at most `timeout` seconds
        for the first one, then takes what is already queued (up to `max_messages`, and with
        `max_bytes` until the frames taken reach that many bytes: what a caller holds at once).
        Malformed messages are answered with NACK here and not returned. HELLO is answered with
        WELCOME here too, and PING with PONG, so neither is returned either. Nothing a client
        sends makes `poll` raise: a message it fails on (a bug) is logged and answered NACK
        ``internal``."""
        out: list[Message] = []
        if not self._socket.poll(max(0, int(timeout * 1000)), zmq.POLLIN):
            return out
        taken = 0
        socket, guarded = self._socket, self._triage.guarded
        for _ in range(self.max_messages):
            try:
                identity = _recv(socket, zmq.NOBLOCK)
            except zmq.Again:
                break
            parts = _rest(socket)
            message = guarded(identity, parts)
            if message is not None:
                out.append(message)
            if max_bytes is not None:
                taken += len(identity) + sum(len(f) for f in parts)
                if taken >= max_bytes:
                    break
        return out

    # -------------------------------------------------------------------------- replying

    def reply(self, identity: bytes, header: WireModel | bytes, *frames: bytes) -> None:
        """Send a reply to one client. Never blocks: if the client is gone or its queue is full
        the reply is dropped (clients resend what stays unacknowledged)."""
        head = header if isinstance(header, bytes) else header.to_frame()
        self._send(identity, [head, *frames])

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
        """Send a NACK and count it under `code` (see `Triage.nack`)."""
        self._triage.nack(identity, code, message, session=session, expected_seq=expected_seq,
                          in_reply_to=in_reply_to, first_seq=first_seq)  # fmt: skip

    def _send(self, identity: bytes, frames: list[bytes]) -> None:
        # ROUTER drops (does not raise) when the peer is gone or its queue is full
        socket = self._socket
        try:
            _send(socket, identity, _MORE)
            for frame in frames[:-1]:
                _send(socket, frame, _MORE)
            _send(socket, frames[-1], zmq.NOBLOCK)
        except zmq.Again:
            pass

    # -------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the socket, stop the ZAP handler and end the context. Idempotent."""
        if not self._socket.closed:
            self._socket.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if not self._context.closed:
            self._context.term()

    def __enter__(self) -> ZmqIngest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The hot path calls the backend's (Cython) `recv` and `send` directly: pyzmq's Python layer
# (`zmq.Socket`, a subclass) adds nothing these calls use (bytes in, copied) but costs about a
# microsecond a call, and `recv_multipart` / `send_multipart` a few more a message (measured:
# a 64 KiB EVENTS message received in 7-10 against 13-14 us, an ACK sent in 0.6 against 3.3).
_recv: Final = zmq.backend.Socket.recv
_send: Final = zmq.backend.Socket.send
_MORE: Final = zmq.NOBLOCK | zmq.SNDMORE


def _rest(socket: zmq.Socket[bytes]) -> list[memoryview]:
    """The frames of the message being received after its first (the peer's identity): the
    header frame copied (small: a copy costs less than a frame object), every later frame
    (the payload) without a copy, as a view that keeps its frame alive."""
    if not socket.get(zmq.RCVMORE):
        return []
    parts = [memoryview(_recv(socket, 0))]
    while socket.get(zmq.RCVMORE):
        parts.append(_recv(socket, 0, copy=False).buffer)
    return parts


def zmq_transport(
    endpoint: str,
    *,
    curve: CurveConfig | None = None,
    insecure: bool = False,
    max_messages: int = 64,
    **options: Any,
) -> TransportFactory:
    """A factory of `ZmqIngest` bound to `endpoint` (``tcp://127.0.0.1:0`` picks a free port);
    `options` are `ZmqIngest`'s (``max_frame_bytes``, ``rcvhwm``, ...). An unsafe bind is
    refused here already (IngestConfigError: non-loopback without CURVE or ``insecure``)."""
    check_bind(endpoint, curve=curve, insecure=insecure)

    def make(counters: Counters) -> IngestTransport:
        return ZmqIngest(endpoint, curve=curve, insecure=insecure, max_messages=max_messages,
                         counters=counters, **options)  # fmt: skip

    return make
