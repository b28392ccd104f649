"""The slot -> session id side of a scoring state's session table (`ScoringState.session_of`).

A read-only mapping to its readers (slot -> id, like the dict it replaces: `[]`, `get`, `in`,
iteration over the open slots in increasing order, `==` with a dict), kept as a list indexed
by slot: opening n sessions on consecutive slots is one slice assignment (0.6 ms for 100,000
ids) where a dict's inverse cost 7-15 ms (docs/performance.md, "Narrow closes")."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class SessionIds(Mapping[int, str]):
    """Slot -> session id of the open sessions; slots without a session are absent."""

    __slots__ = ("_ids", "_open")

    def __init__(self) -> None:
        self._ids: list[str | None] = []
        self._open = 0

    def grow(self, capacity: int) -> None:
        """Make room for slots below `capacity` (none of the new ones open)."""
        self._ids.extend([None] * (capacity - len(self._ids)))

    def set_range(self, first: int, session_ids: list[str] | tuple[str, ...]) -> None:
        """Slots first, first + 1, ... (free ones, below the capacity) now hold these ids."""
        end = first + len(session_ids)
        if end > len(self._ids):
            raise IndexError(f"slots {first}..{end - 1} beyond the capacity {len(self._ids)}")
        self._ids[first:end] = session_ids
        self._open += len(session_ids)

    def set_many(self, pairs: Iterable[tuple[int, str]]) -> None:
        """Each (slot, id) pair: that free slot now holds that id."""
        ids = self._ids
        for slot, sid in pairs:
            ids[slot] = sid
            self._open += 1

    def remove(self, slot: int) -> None:
        """The session on `slot` is gone (KeyError if there is none)."""
        if self.get(slot) is None:
            raise KeyError(slot)
        self._ids[slot] = None
        self._open -= 1

    def slot_by_id(self) -> dict[str, int]:
        """The inverse: id -> slot of the open slots, a new dict."""
        inverse: dict[str | None, int] = dict(zip(self._ids, range(len(self._ids)), strict=True))
        inverse.pop(None, None)
        return inverse  # type: ignore[return-value]

    def __getitem__(self, slot: int) -> str:
        sid = self._ids[slot] if 0 <= slot < len(self._ids) else None
        if sid is None:
            raise KeyError(slot)
        return sid

    def __iter__(self) -> Iterator[int]:
        return (slot for slot, sid in enumerate(self._ids) if sid is not None)

    def __len__(self) -> int:
        return self._open

    def __repr__(self) -> str:
        return f"SessionIds({dict(self.items())!r})"
