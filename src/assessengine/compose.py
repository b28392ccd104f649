"""The composition root: the one module that wires store, ingest transport, scoring backend and
HTTP app together. The CLI builds a `Settings` and calls these; nothing else chooses an
implementation of a port.

    store = open_store(settings.db, synchronous=settings.synchronous)
    engine = build_engine(settings, store, library)     # ZeroMQ transport, scoring backend
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from .adapters.store import Store
from .runtime.pipeline import RubricLibrary
from .runtime.scoring import ScoringBackend, ThreadScoring
from .runtime.scoring_process import RemoteScorer
from .storage import open_store

__all__ = ["ScoringKind", "open_store", "scoring_backend"]

ScoringKind = Literal["thread", "process"]


def scoring_backend(
    kind: ScoringKind,
    store: Store,
    library: RubricLibrary,
    *,
    url: str | Path | None = None,
    store_options: dict[str, Any] | None = None,
) -> ScoringBackend:
    """The scoring backend `kind` names: ``thread`` (the `Scorer` in the engine's scoring
    thread, on `store`) or ``process`` (a `RemoteScorer`: the scoring process opens the store
    `url` names itself, with `store_options`). ValueError for ``process`` without a `url`
    (a store in memory cannot be shared with another process) or an unknown kind."""
    if kind == "thread":
        return ThreadScoring(store, library)
    if kind != "process":
        raise ValueError(f"scoring must be 'thread' or 'process', got {kind!r}")
    if url is None:
        raise ValueError("scoring='process' needs a store URL (the scoring process opens the "
                         "store itself; a store in memory cannot be shared)")  # fmt: skip
    opener = functools.partial(open_store, url, **(store_options or {}), recover=False)
    return RemoteScorer(opener, library)
