"""What a reader remembers of every session it has seen, by ordinal (first appearance):
enough to check each new record against the session's past, and nothing per event."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


class Ledger:
    """The session table of one input: id <-> ordinal, and per session whether it has events,
    a non-empty open record, a close; its last seq and t. Arrays grow by doubling; everything
    a chunk changes is committed at once (`commit_events`, and the scalar setters)."""

    def __init__(self) -> None:
        self.ordinal: dict[str, int] = {}
        self.ids: list[str] = []
        self.has_events: NDArray[np.bool_] = np.zeros(64, np.bool_)
        self.has_open: NDArray[np.bool_] = np.zeros(64, np.bool_)
        self.closed: NDArray[np.bool_] = np.zeros(64, np.bool_)
        self.last_seq: NDArray[np.int64] = np.full(64, -1, np.int64)
        self.last_t: NDArray[np.float64] = np.zeros(64, np.float64)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, session: str) -> int:
        """The ordinal of `session`, a new one (the next) if it was never seen."""
        found = self.ordinal.get(session)
        if found is not None:
            return found
        k = self.ordinal[session] = len(self.ids)
        self.ids.append(session)
        if k == self.has_events.shape[0]:
            self._grow(2 * k)
        return k

    def commit_events(
        self, sessions: NDArray[np.int64], seq: NDArray[np.int64], t: NDArray[np.float64]
    ) -> None:
        """Record checked events: `sessions` distinct, each with its new last seq and t."""
        self.has_events[sessions] = True
        self.last_seq[sessions] = seq
        self.last_t[sessions] = t

    def _grow(self, capacity: int) -> None:
        for name in ("has_events", "has_open", "closed", "last_seq", "last_t"):
            old: NDArray[Any] = getattr(self, name)
            new = np.full(capacity, -1 if name == "last_seq" else 0, old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
