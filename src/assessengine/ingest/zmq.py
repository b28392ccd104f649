"""The ZeroMQ ingest transport: `adapters.zmq_ingest.ZmqIngest` (a ROUTER socket), made by
`zmq_transport` in the engine's ingest thread."""

from __future__ import annotations

from typing import Any

from ..adapters.zmq_ingest import CurveConfig, IngestConfigError, ZmqIngest, check_bind
from .port import Counters, IngestTransport, TransportFactory

__all__ = ["CurveConfig", "IngestConfigError", "ZmqIngest", "zmq_transport"]


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
