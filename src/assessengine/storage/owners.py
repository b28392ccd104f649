"""The ownership port: which engine owns a session when several engines share one database.

A session is owned by one engine at a time. The engine asks `Owners.claim` for the sessions of
each ingest round before it decides anything about them: a session another live engine owns is
refused (the engine answers NACK ``session_owned``, and stores nothing); a session it did not
own before and owns now is *acquired*: its scoring state may be stale or missing here, so the
engine rebuilds it from the stored batches (the replay a restart does) before scoring more.
The engine releases a session once its final report is saved, and everything it owns when it
stops.

Two implementations:

* `SoleOwner` (here): the store has one engine (SQLite, whose file lock refuses a second one;
  a store in memory): it owns every session, always; nothing is acquired, nothing to release.
* `postgres_owners.PostgresOwners`: PostgreSQL session-level advisory locks, held on a
  connection of their own (docs/architecture.md, "Several engines on one database", says why
  locks rather than a lease).

`open_owners` chooses one from the store URL (`compose.build_owners` calls it); nothing else
looks at the backend.

    claim = owners.claim(["s1", "s2"])       # Claim(refused={"s2"}, acquired={"s1"})
    owners.release(["s1"])                   # after s1's report is saved
    owners.close()                           # at stop: every session released
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .port import StoreOpenError
from .url import parse_url


@dataclass(frozen=True, slots=True)
class Claim:
    """What `Owners.claim` found: `refused`, the sessions another live engine owns;
    `acquired`, those this engine owns now and did not own before the call."""

    refused: frozenset[str] = field(default_factory=frozenset)
    acquired: frozenset[str] = field(default_factory=frozenset)


class Owners(Protocol):
    """Session ownership among the engines of one database (see the module docstring)."""

    def claim(self, sessions: Collection[str]) -> Claim:
        """Own each of `sessions` unless another live engine does. Sessions owned already stay
        owned (not acquired again). Raises StoreError when ownership cannot be checked (the
        engine answers NACK ``internal``: resend later)."""
        ...

    def release(self, sessions: Collection[str]) -> None:
        """Give up `sessions` (those not owned are ignored); another engine may claim them.
        Never raises (a lost connection has released them already)."""
        ...

    def owner(self, session: str) -> str | None:
        """A name of the engine that owns `session`, for messages (None when unknown)."""
        ...

    def serving(self, endpoint: str) -> None:
        """This engine's clients reach it at `endpoint` (bound once it started): part of the
        name other engines give their clients in NACK ``session_owned``."""
        ...

    def close(self) -> None:
        """Release every session (idempotent)."""
        ...


class SoleOwner:
    """`Owners` of a store that only one engine can open: every session is this engine's."""

    def claim(self, sessions: Collection[str]) -> Claim:
        return Claim()

    def release(self, sessions: Collection[str]) -> None:
        pass

    def owner(self, session: str) -> str | None:
        return None

    def serving(self, endpoint: str) -> None:
        pass

    def close(self) -> None:
        pass


def open_owners(url: str | Path, *, name: str) -> Owners:
    """The session owners of the store `url` names: on a database several engines share
    (PostgreSQL), advisory locks on a connection of their own named `name`; otherwise
    (a store only one engine may open) `SoleOwner`. StoreOpenError when the server cannot be
    reached (or its driver is not installed)."""
    parsed = parse_url(url)
    if parsed.backend != "postgresql":
        return SoleOwner()
    try:
        from .postgres_owners import PostgresOwners  # noqa: PLC0415  (psycopg: an extra)
    except ImportError as exc:
        raise StoreOpenError(
            f"PostgreSQL stores need psycopg ({exc}): pip install 'assessengine[postgres]'"
        ) from None
    return PostgresOwners(parsed.target, name=name)
