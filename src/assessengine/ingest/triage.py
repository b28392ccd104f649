"""What every ingest transport does with a received multipart message before the engine sees it:
count it, check its frames and header against `core.wire`, answer HELLO, PING and malformed
messages itself, and pass on the rest as a `Message`. One implementation, so that the ZeroMQ
transport and the in-process fake refuse exactly the same messages with exactly the same NACKs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

from .. import __version__
from ..core.wire import (
    EMPTY_HEADER_HINT,
    PAYLOAD_FRAMES,
    PROTOCOL,
    ClientMessage,
    HeaderProblem,
    Nack,
    Welcome,
    parse_client_header,
)
from .port import Counters, Message

log = logging.getLogger(__name__)

MAX_FRAMES: Final = 1 + max(PAYLOAD_FRAMES.values())
"""The most frames a client message has (header and payload), the peer's identity aside."""

Send = Callable[[bytes, list[bytes]], None]
"""Sends frames to the peer with that identity; never raises when the peer is gone."""


class Triage:
    """Checks received messages for one transport and answers what it can itself.

    max_frame_bytes: a payload frame above it gets NACK ``too_large``.
    max_header_bytes: the same for the JSON header frame.
    send: how the transport sends frames to a peer.
    """

    def __init__(
        self, *, max_frame_bytes: int, max_header_bytes: int, counters: Counters, send: Send
    ) -> None:
        self.max_frame_bytes, self.max_header_bytes = max_frame_bytes, max_header_bytes
        self.counters, self._send = counters, send
        self._welcome = Welcome(engine=f"assessengine/{__version__}",
                                max_frame_bytes=max_frame_bytes,
                                max_header_bytes=max_header_bytes).to_frame()  # fmt: skip

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
        """Send a NACK and count it under `code`. Text UTF-8 cannot encode (lone surrogates)
        is sent escaped, so that no value makes the NACK itself fail."""
        self.counters.count_nack(code)
        nack = Nack(session=_utf8(session), code=code, message=_utf8(message) or "",
                    expected_seq=expected_seq, in_reply_to=_utf8(in_reply_to),
                    first_seq=first_seq)  # fmt: skip
        self._send(identity, [nack.to_frame()])

    def guarded(self, identity: bytes, parts: Sequence[memoryview]) -> Message | None:
        """`check`, except that a failure (a bug: `check` answers every message it can read)
        is logged and answered NACK ``internal`` instead of reaching the caller."""
        try:
            return self.check(identity, parts)
        except Exception as exc:
            log.exception("ingest: failed on a message of %d frame(s)", len(parts))
            with contextlib.suppress(Exception):
                self.nack(identity, "internal", f"the engine failed on this message "
                          f"({type(exc).__name__}); it was not stored")  # fmt: skip
            return None

    def check(self, identity: bytes, parts: Sequence[memoryview]) -> Message | None:
        """The message `parts` (its frames after the identity) as a `Message`, or None when it
        was answered here (malformed: NACK; HELLO: WELCOME; PING: PONG)."""
        c = self.counters
        c.messages += 1
        c.bytes += sum(len(f) for f in parts)
        if len(parts) > 1 and not len(parts[0]):  # a REQ socket's delimiter: answer in kind
            c.count_nack("frame_count")
            nack = Nack(code="frame_count", message=EMPTY_HEADER_HINT)
            self._send(identity, [b"", nack.to_frame()])
            return None
        if not parts or len(parts) > MAX_FRAMES:
            self.nack(identity, "frame_count", f"a message has 1 to {MAX_FRAMES} frames, this "
                      f"one has {len(parts)}")  # fmt: skip
            return None
        if len(parts[0]) > self.max_header_bytes:
            self.nack(identity, "too_large", f"header frame is {len(parts[0])} bytes, the "
                      f"limit is {self.max_header_bytes}")  # fmt: skip
            return None
        raw = bytes(parts[0])
        parsed = parse_client_header(raw)
        if isinstance(parsed, HeaderProblem):
            self.nack(identity, parsed.code, parsed.message, session=parsed.session,
                      in_reply_to=parsed.in_reply_to)  # fmt: skip
            return None
        return self._admit(identity, parsed, raw, parts[1:])

    def _admit(
        self, identity: bytes, header: ClientMessage, raw: bytes, payload: Sequence[memoryview]
    ) -> Message | None:
        session = getattr(header, "session", None)
        first_seq = header.first_seq if header.type == "EVENTS" else None
        wanted = PAYLOAD_FRAMES[header.type]
        if len(payload) != wanted:
            self.nack(identity, "frame_count", f"{header.type} has {1 + wanted} frame(s) (header"
                      f"{' + payload' if wanted else ''}), this one has {1 + len(payload)}",
                      session=session, in_reply_to=header.type, first_seq=first_seq)
            return None
        if payload and len(payload[0]) > self.max_frame_bytes:
            self.nack(identity, "too_large", f"payload frame is {len(payload[0])} bytes, the "
                      f"limit is {self.max_frame_bytes}; send smaller batches", session=session,
                      in_reply_to=header.type, first_seq=first_seq)
            return None
        if header.type == "HELLO":
            if header.protocol != PROTOCOL:
                self.nack(identity, "unsupported_version", f"this engine speaks protocol "
                          f"{PROTOCOL}, not {header.protocol}", in_reply_to="HELLO")
            else:
                self._send(identity, [self._welcome])
            return None
        if header.type == "PING":
            self._send(identity, [b'{"type":"PONG","nonce":%d}' % header.nonce])
            return None
        if header.type == "EVENTS":
            self.counters.batches += 1
            self.counters.events += header.count
        # read-only: the frame is the transport's alone and never written, so it may be stored
        body = payload[0].toreadonly() if payload else None
        return Message(identity, header, raw, body, time.monotonic())


def _utf8(text: str | None) -> str | None:
    """`text`, with what UTF-8 cannot encode (lone surrogates) written as escapes."""
    if text is None or text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
