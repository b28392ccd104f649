"""Which of several rows is "the latest": by the instant each was recorded, never by its id
alone.

Review rows (observations, overrides, audit entries, double marks) are written at a hub and at
its sites and replicated between them. Each place numbers its rows in its own id range (the
hub's range below every site's, architecture.md "Sites and a hub"), so a higher id says
"written at a higher-numbered place", not "written later": ordered by id, a site's override
would beat a later one made at the hub, at every place. Every choice of the latest among such
rows therefore orders them by `recorded_order`:

1. the instant stored with the row when the person acted (``recorded_at``, ISO 8601 UTC text
   with six fraction digits and ``Z``, as `core.instants.utc_text(..., "microseconds")` writes
   it: fixed width, so text order is time order; every version of the store wrote that form);
2. then the row id, unique across every place, so that a tie is broken the same way wherever
   the rows are read (within one place ids grow with time, so the later of two rows of the
   same microsecond wins there too).

The store's queries use the same order (``ORDER BY recorded_at, id``); this module is its
pure counterpart for rows already read.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Protocol, TypeVar


class Recorded(Protocol):
    """A row that knows when it was recorded and its id (unique across places)."""

    @property
    def id(self) -> int: ...

    @property
    def recorded_at(self) -> str: ...


R = TypeVar("R", bound=Recorded)
K = TypeVar("K", bound=Hashable)


def recorded_order(row: Recorded) -> tuple[str, int]:
    """The sort key of `row`: (recorded_at, id); the latest row has the largest key."""
    return row.recorded_at, row.id


def oldest_first(rows: Iterable[R]) -> list[R]:
    """`rows` in the order they were recorded (see `recorded_order`)."""
    return sorted(rows, key=recorded_order)


def latest_by(rows: Iterable[R], key: Callable[[R], K]) -> dict[K, R]:
    """For each value of `key`, the latest of the rows that have it (in any input order)."""
    latest: dict[K, R] = {}
    for row in rows:
        k = key(row)
        held = latest.get(k)
        if held is None or recorded_order(row) > recorded_order(held):
            latest[k] = row
    return latest


def newest(rows: Iterable[R]) -> R | None:
    """The latest of `rows` (None: no rows)."""
    return max(rows, key=recorded_order, default=None)
