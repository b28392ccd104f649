"""The scorer when the store fails a save (a PostgreSQL server gone, a locked or full SQLite
file): no decision and no report is lost; what failed is saved with the next results, or
when the engine is idle or stops."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import pytest

from assessengine.core.codec import Columns
from assessengine.runtime.pipeline import RubricEntry, Scorer
from assessengine.runtime.scoring import ThreadScoring
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import SessionInfo, StorageFullError, StoreError

from .test_engine_helpers import library
from .test_pipeline_steps import SCENARIO, _session_columns


def _raised_from(error: StoreError, cause: Exception) -> StoreError:
    error.__cause__ = cause
    return error


FAILURES = {
    "unavailable": _raised_from(
        StoreError("postgresql://...: server closed the connection"),
        psycopg.OperationalError("server closed the connection"),
    ),
    "full": StorageFullError("the disk is full (simulated)"),
    "locked": _raised_from(
        StoreError("engine.db: database is locked"), sqlite3.OperationalError("database is locked")
    ),
}


class FlakyStore(MemoryStore):
    """A `MemoryStore` whose next `failing` saves of results raise `error`."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error, self.failing = error, 0

    def save_results(
        self,
        decisions: Mapping[str, Sequence[Mapping[str, Any]]],
        reports: Mapping[str, Mapping[str, Any]],
    ) -> None:
        if self.failing:
            self.failing -= 1
            raise self.error
        super().save_results(decisions, reports)


def _third(cols: Columns, i: int) -> Columns:
    n = len(cols)
    lo, hi = n * i // 3, n * (i + 1) // 3
    return Columns(cols.seq[lo:hi], cols.t[lo:hi], cols.event[lo:hi], cols.signals[:, lo:hi])


def _run(store: MemoryStore, fail: set[int], *, idle: bool) -> tuple[Any, Any, Scorer]:
    """Open 4 sessions, score them in 3 calls (0-2) and close them (3), the store failing
    the save of each call in `fail` (when `store` is a `FlakyStore`); then, with `idle`, the
    backend's idle retry. The sessions' stored decisions and reports, and the scorer."""
    _, parts = _session_columns(4)
    entry = library().resolve(SCENARIO, "forklift-load-handling", None)
    assert isinstance(entry, RubricEntry)
    backend = ThreadScoring(store, library())
    scorer = backend.scorer
    named = [(f"S{k}", cols) for k, cols in enumerate(parts)]
    for sid, _ in named:
        store.open_session(SessionInfo(sid, "L", SCENARIO, "forklift-load-handling", 1, "0" * 64))
        scorer.open(sid, entry)
    for call in range(4):
        if isinstance(store, FlakyStore):
            store.failing = int(call in fail)
        if call < 3:
            scorer.score([(sid, _third(cols, call)) for sid, cols in named])
        else:
            scorer.close_many([(sid, float(cols.t[-1]) + 1) for sid, cols in named])
    if idle:
        backend.idle()
    decisions = {sid: store.decisions(sid) for sid, _ in named}
    reports = {sid: store.report(sid) for sid, _ in named}
    return decisions, reports, scorer


def store_results(store: MemoryStore) -> tuple[Any, Any]:
    sids = [f"S{k}" for k in range(4)]
    return {s: store.decisions(s) for s in sids}, {s: store.report(s) for s in sids}


@pytest.fixture(scope="module")
def expected() -> tuple[Any, Any]:
    decisions, reports, _ = _run(MemoryStore(), set(), idle=False)
    assert all(reports.values())
    assert any(decisions.values())
    return decisions, reports


@pytest.mark.parametrize("kind", sorted(FAILURES))
@pytest.mark.parametrize("fail", [{0}, {1, 2}, {0, 1, 2}])
def test_decisions_a_failed_save_left_are_saved_with_the_next_results(
    kind: str, fail: set[int], expected: tuple[Any, Any]
) -> None:
    decisions, reports, scorer = _run(FlakyStore(FAILURES[kind]), fail, idle=False)
    assert (decisions, reports) == expected
    assert scorer.save_errors == len(fail)
    assert not scorer.unsaved


@pytest.mark.parametrize("kind", sorted(FAILURES))
@pytest.mark.parametrize("fail", [{3}, {2, 3}])
def test_reports_a_failed_save_left_are_saved_when_the_engine_is_idle(
    kind: str, fail: set[int], expected: tuple[Any, Any]
) -> None:
    store = FlakyStore(FAILURES[kind])
    decisions, reports, scorer = _run(store, fail, idle=False)
    assert not any(reports.values())
    assert scorer.unsaved
    assert scorer.reports_saved == 0
    store.failing = 1
    assert not scorer.save_unsaved()  # the store fails again: still kept
    assert scorer.unsaved
    assert store.report("S0") is None
    assert scorer.save_unsaved()
    assert (store_results(store), scorer.reports_saved) == (expected, 4)
    decisions, reports, scorer = _run(FlakyStore(FAILURES[kind]), fail, idle=True)
    assert (decisions, reports) == expected
    assert scorer.reports_saved == len(reports)
    assert not scorer.unsaved


def test_results_the_store_refuses_are_dropped_and_never_hold_up_later_saves(
    expected: tuple[Any, Any],
) -> None:
    """A refused write (not an unavailable store) cannot succeed later: it is logged and
    dropped (a restart re-derives it), and the next results are saved."""
    store = FlakyStore(StoreError("unknown session 'S9'"))
    decisions, reports, scorer = _run(store, {1}, idle=True)
    assert reports == expected[1]
    assert decisions != expected[0]  # the refused call's rows only
    assert not scorer.unsaved
    assert scorer.save_errors == 1
