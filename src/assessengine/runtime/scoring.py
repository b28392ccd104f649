"""The scoring port: what the engine's scoring thread drives, wherever the `Scorer` runs.

Two backends implement `ScoringBackend`:

* `ThreadScoring` (here): the `Scorer` runs in the caller's thread (the engine's scoring
  thread); any store.
* `scoring_process.RemoteScorer`: the `Scorer` runs in a process of its own (its own GIL), on
  its own connection to the store, which it opens with a `StoreOpener` (what `serve` runs).

The engine calls, from its scoring thread only: `start` once, then `submit` for each group of
work items, `idle` when there was none for a while, `drain` when it stops, `close` last. It
reads the counters from any thread.

    scoring = ThreadScoring(store, library)
    recovery = scoring.start()             # warm up, rebuild the open sessions from the store
    scoring.submit(opens, batches, closes, on_done=lambda: ...)
    scoring.drain(60.0)
    scoring.close()
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any, Protocol

from ..core.codec import Columns
from ..storage.port import Store
from .pipeline import Recovery, RubricEntry, RubricLibrary, Scorer, guarded, score_then_close

Opens = Sequence[tuple[str, RubricEntry, bool]]
"""Sessions to open: (session id, its rubric, replay: rebuild its state from the store, the
session being taken over from another engine; see `Scorer.open`)."""
Batches = Sequence[tuple[str, Columns, Any]]
"""Batches to score, in arrival order: (session id, columns, the columns-v1 records of the
same rows as received, or None)."""
Closes = Sequence[tuple[str, float]]
"""Sessions to close: (session id, close time)."""
StoreOpener = Callable[[], Store]
"""Opens the engine's store anew, in another process (so it must pickle: a module-level
function, or a `functools.partial` of one)."""


class ScoringBackendError(RuntimeError):
    """The scoring backend could not start, or it stopped; what it had is in the store (a
    restart re-scores it)."""


class ScoringBackend(Protocol):
    """Where the engine's `Scorer` runs; see the module docstring."""

    @property
    def events_scored(self) -> int: ...

    @property
    def reports_saved(self) -> int: ...

    @property
    def sessions_open(self) -> int: ...

    @property
    def scoring_errors(self) -> int:
        """Scoring steps that failed (their sessions are re-scored from the store at close)."""
        ...

    @property
    def alive(self) -> bool:
        """False once the backend has stopped on its own (the engine then stops too)."""
        ...

    @property
    def unsaved_reports(self) -> frozenset[str]:
        """The closed sessions whose final report a failed save left (the store was
        unavailable), as of the last submission done or idle retry: the engine keeps owning
        them until their report is saved."""
        ...

    def start(self, skip: Collection[str] = frozenset()) -> Recovery:
        """Warm up and rebuild every open session's state from the store, except those in
        `skip` (owned by another engine); returns what was recovered. Raises
        ScoringBackendError (or the store's error)."""
        ...

    def submit(self, opens: Opens, batches: Batches, closes: Closes,
               on_done: Callable[[], None]) -> None:  # fmt: skip
        """Open `opens`, score `batches`, then close `closes` (decisions and reports saved,
        or kept for a retry: `unsaved_reports`), in that order and after everything submitted
        before; then call `on_done` (in any thread). May block while earlier work is
        outstanding (backpressure). A failed step is logged and counted, never raised;
        ScoringBackendError when the backend is gone."""
        ...

    def idle(self) -> None:
        """Nothing was submitted for a while: save what failed saves left (the store was
        unavailable), if anything waits. Never raises."""
        ...

    def drain(self, timeout: float) -> bool:
        """True once everything submitted is done (including what failed saves left, if the
        store takes it now); False after `timeout` seconds or when the backend is gone."""
        ...

    def close(self) -> None:
        """Release the backend (idempotent)."""
        ...


class ThreadScoring:
    """`ScoringBackend` running the `Scorer` in the calling thread: `submit` returns when the
    work is done (and `on_done` has run)."""

    def __init__(self, store: Store, library: RubricLibrary) -> None:
        self.scorer = Scorer(store, library)
        self._errors = 0

    @property
    def events_scored(self) -> int:
        return self.scorer.events_scored

    @property
    def reports_saved(self) -> int:
        return self.scorer.reports_saved

    @property
    def sessions_open(self) -> int:
        return self.scorer.sessions_open

    @property
    def scoring_errors(self) -> int:
        return self.scorer.scoring_errors + self._errors

    @property
    def alive(self) -> bool:
        return True

    @property
    def unsaved_reports(self) -> frozenset[str]:
        return self.scorer.unsaved_reports

    def start(self, skip: Collection[str] = frozenset()) -> Recovery:
        self.scorer.warm_up()
        return self.scorer.recover(skip)

    def submit(self, opens: Opens, batches: Batches, closes: Closes,
               on_done: Callable[[], None]) -> None:  # fmt: skip
        scorer = self.scorer
        for session, entry, replay in opens:
            self._guarded(f"open {session!r}", partial(scorer.open, replay=replay), session,
                          entry)  # fmt: skip
        self._errors += score_then_close(scorer, [(s, cols) for s, cols, _ in batches], closes)
        on_done()

    def idle(self) -> None:
        if self.scorer.unsaved:
            self.scorer.save_unsaved()

    def drain(self, timeout: float) -> bool:
        self.idle()
        return True

    def close(self) -> None:
        pass

    def _guarded(self, what: str, action: Callable[..., object], *args: Any) -> None:
        if not guarded(what, action, *args):
            self._errors += 1
