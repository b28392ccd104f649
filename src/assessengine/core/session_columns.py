"""A stored session's batches decoded into one `Columns` (what re-scoring and plots start from)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Protocol

import numpy as np

from .codec import Columns, Layout, decode_events


class Batch(Protocol):
    """A stored batch as a store returns it (`storage.port.StoredBatch`)."""

    @property
    def header(self) -> bytes: ...

    @property
    def payload(self) -> bytes | memoryview: ...


def decode_session(batches: Iterable[Batch], layout: Layout) -> Columns:
    """Every stored batch of a session decoded (`core.codec`) and joined, in seq order.
    Raises CodecError when a stored batch does not decode."""
    parts: list[Columns] = []
    last_t = 0.0
    for batch in batches:
        cols = decode_events(json.loads(batch.header), batch.payload, layout, min_t=last_t)
        if len(cols):
            last_t = float(cols.t[-1])
            parts.append(cols)
    if not parts:
        n = len(layout.signal_names)
        return Columns(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int32),
                       np.empty((n, 0), np.float64))  # fmt: skip
    return Columns(
        np.concatenate([p.seq for p in parts]),
        np.concatenate([p.t for p in parts]),
        np.concatenate([p.event for p in parts]),
        np.concatenate([p.signals for p in parts], axis=1),
    )
