"""Ids at a site: the engine of site ``north`` stores the session ``S1`` a simulator opens as
``north:S1``, and its learner ``L1`` as ``north:L1``, so that no two sites' ids collide at the
hub that gathers them (docs/operations.md, "Several sites").

`at_site` wraps any `TransportFactory`: the messages it returns carry the qualified ids, and
the answers it sends carry the simulator's own ids again. The protocol is unchanged, a
simulator never sees the prefix; the raw EVENTS header is stored as the simulator sent it (the
hash chain covers exactly the bytes received). An id that would be longer than an id may be
once qualified is refused as the id rule would refuse it (NACK ``bad_message``). An OPEN's
metadata gets ``site: NAME`` unless the simulator gave a ``site`` itself (the cohort
dashboards group sessions by it).
"""

from __future__ import annotations

from typing import Final

from ..core.ids import MAX_ID_LENGTH, qualify, site_problem, unqualify
from ..core.wire import Close, Events, Open, WireModel
from .port import Counters, IngestTransport, Message, TransportFactory

_QUALIFIED: Final = (Open, Events, Close)


def at_site(factory: TransportFactory, site: str) -> TransportFactory:
    """`factory`'s transports, speaking site-qualified ids to the engine (see the module).
    ValueError for an invalid site name."""
    problem = site_problem(site)
    if problem is not None:
        raise ValueError(problem)

    def make(counters: Counters) -> IngestTransport:
        return SiteTransport(factory(counters), site)

    return make


class SiteTransport:
    """An `IngestTransport` over `inner` that qualifies ids in and unqualifies them out."""

    def __init__(self, inner: IngestTransport, site: str) -> None:
        self._inner, self.site = inner, site
        self._room = MAX_ID_LENGTH - len(qualify(site, ""))
        self._ours = b'"session":"' + qualify(site, "").encode()

    @property
    def endpoint(self) -> str:
        return self._inner.endpoint

    @property
    def max_messages(self) -> int:
        return self._inner.max_messages

    def poll(self, timeout: float, *, max_bytes: int | None = None) -> list[Message]:
        out: list[Message] = []
        for m in self._inner.poll(timeout, max_bytes=max_bytes):
            h = m.header
            if not isinstance(h, _QUALIFIED):
                out.append(m)
                continue
            names = ("session", "learner") if isinstance(h, Open) else ("session",)
            long = [n for n in names if len(getattr(h, n)) > self._room]
            if long:
                self._inner.nack(m.identity, "bad_message", f"{long[0]} has "
                                 f"{len(getattr(h, long[0]))} characters; at site {self.site!r} "
                                 f"an id has at most {self._room} (it is stored as "
                                 f"{qualify(self.site, '...')!r})", session=h.session,
                                 in_reply_to=h.type)  # fmt: skip
                continue
            update: dict[str, object] = {n: qualify(self.site, getattr(h, n)) for n in names}
            if isinstance(h, Open) and "site" not in h.metadata:
                update["metadata"] = {**h.metadata, "site": self.site}
            out.append(Message(m.identity, h.model_copy(update=update), m.raw_header,
                               m.payload, m.received))  # fmt: skip
        return out

    def reply(self, identity: bytes, header: WireModel | bytes, *frames: bytes) -> None:
        head = header if isinstance(header, bytes) else header.to_frame()
        self._inner.reply(identity, head.replace(self._ours, b'"session":"', 1), *frames)

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
        self._inner.nack(identity, code, message,
                         session=None if session is None else unqualify(self.site, session),
                         expected_seq=expected_seq, in_reply_to=in_reply_to,
                         first_seq=first_seq)  # fmt: skip

    def close(self) -> None:
        self._inner.close()
