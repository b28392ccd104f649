"""A scoring submission (its batches scored, then its sessions closed) saves its decisions and
reports in ONE store transaction: the rows stored are those of `score` and `close_many` called
one after the other; a failed save keeps everything until the next save; a failing score still
lets the closes happen; a session re-scored at close is not saved twice."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from assessengine.core.codec import Columns, encode_columns_v1
from assessengine.runtime.pipeline import RubricEntry, Scorer, score_then_close
from assessengine.runtime.scoring import ThreadScoring
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import SessionInfo

from .test_engine_helpers import library
from .test_pipeline_steps import SCENARIO, _session_columns
from .test_scoring_store_failures import FAILURES, FlakyStore, _third

N = 6


class CountingStore(FlakyStore):
    """A `FlakyStore` that records how many sessions each `save_results` call carried."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.saves: list[tuple[int, int]] = []

    def save_results(
        self,
        decisions: Mapping[str, Sequence[Mapping[str, Any]]],
        reports: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.saves.append((len(decisions), len(reports)))
        super().save_results(decisions, reports)


def _setup(store: MemoryStore) -> tuple[list[tuple[str, Columns]], RubricEntry]:
    _, parts = _session_columns(N)
    entry = _entry()
    named = [(f"S{k}", cols) for k, cols in enumerate(parts)]
    for sid, _ in named:
        store.open_session(SessionInfo(sid, "L", SCENARIO, *entry.key))
    return named, entry


def _closes(named: list[tuple[str, Columns]], which: range) -> list[tuple[str, float]]:
    return [(named[k][0], float(named[k][1].t[-1]) + 1) for k in which]


def _results(store: MemoryStore) -> tuple[dict[str, Any], dict[str, Any]]:
    sids = [f"S{k}" for k in range(N)]
    return {s: store.decisions(s) for s in sids}, {s: store.report(s) for s in sids}


def _one_by_one() -> tuple[dict[str, Any], dict[str, Any]]:
    """Today's reference: `score` and `close_many` each saving on their own."""
    store = MemoryStore()
    named, entry = _setup(store)
    scorer = Scorer(store, library())
    for sid, _ in named:
        scorer.open(sid, entry)
    for call in range(3):
        scorer.score([(sid, _third(cols, call)) for sid, cols in named])
        scorer.close_many(_closes(named, range(2 * call, 2 * call + 2)) if call else [])
    scorer.close_many(_closes(named, range(N)))
    return _results(store)


@pytest.fixture(scope="module")
def expected() -> tuple[dict[str, Any], dict[str, Any]]:
    decisions, reports = _one_by_one()
    assert all(reports.values())
    assert any(decisions.values())
    return decisions, reports


def _submissions(backend: ThreadScoring, named: list[tuple[str, Columns]]) -> None:
    """Three submissions: each scores a third of every session still open and closes two
    sessions (none in the first); then one closes the rest."""
    for call in range(3):
        batches = [(sid, _third(cols, call), None) for sid, cols in named[2 * call :]]
        if call:
            batches += [(sid, _third(cols, call), None) for sid, cols in named[: 2 * call]]
        closes = _closes(named, range(2 * call, 2 * call + 2)) if call else []
        backend.submit([], batches, closes, on_done=lambda: None)
    backend.submit([], [], _closes(named, range(N)), on_done=lambda: None)


def test_a_submission_saves_its_scores_and_closes_in_one_transaction(
    expected: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    store = CountingStore(FAILURES["locked"])
    named, entry = _setup(store)
    backend = ThreadScoring(store, library())
    for sid, _ in named:
        backend.scorer.open(sid, entry)
    _submissions(backend, named)
    assert _results(store) == expected
    # one save per submission that had results (the last one: sessions closed already)
    assert [reports for _, reports in store.saves] == [0, 2, 2, 2]
    assert len(store.saves) == 4


def test_the_same_rows_whatever_sessions_score_and_close_together(
    expected: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """The closes of a submission may include sessions with decisions scored in it."""
    store = MemoryStore()
    named, entry = _setup(store)
    scorer = Scorer(store, library())
    for sid, _ in named:
        scorer.open(sid, entry)
    for call in range(3):
        closes = _closes(named, range(2 * call, 2 * call + 2)) if call else []
        failed = score_then_close(
            scorer, [(sid, _third(cols, call)) for sid, cols in named], closes
        )
        assert failed == 0
    assert score_then_close(scorer, [], _closes(named, range(N))) == 0
    assert _results(store) == expected


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_a_failed_combined_save_loses_nothing(
    kind: str, expected: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """The store fails the one save of a submission: its decisions AND reports are kept and
    saved with the next results (or when idle); nothing is saved twice."""
    store = CountingStore(FAILURES[kind])
    named, entry = _setup(store)
    backend = ThreadScoring(store, library())
    for sid, _ in named:
        backend.scorer.open(sid, entry)
    store.failing = 1
    batches = [(sid, _third(cols, 0), None) for sid, cols in named]
    backend.submit([], batches, [], on_done=lambda: None)
    assert backend.scorer.unsaved
    store.failing = 1
    batches = [(sid, _third(cols, 1), None) for sid, cols in named]
    backend.submit([], batches, _closes(named, range(2, 4)), on_done=lambda: None)
    assert backend.scorer.unsaved_reports == {"S2", "S3"}
    backend.idle()
    assert not backend.scorer.unsaved
    batches = [(sid, _third(cols, 2), None) for sid, cols in named if sid not in {"S2", "S3"}]
    backend.submit([], batches, _closes(named, range(N)), on_done=lambda: None)
    assert _results(store) == expected


class BoomError(RuntimeError):
    pass


def test_a_failing_score_still_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`score` raising (not a kernel refusal, a bug) is logged and counted; the closes of the
    same submission still happen and are saved."""
    store = MemoryStore()
    named, entry = _setup(store)
    scorer = Scorer(store, library())
    for sid, _ in named:
        scorer.open(sid, entry)

    def boom(*_: Any, **__: Any) -> Any:
        raise BoomError("simulated")

    monkeypatch.setattr(scorer, "score", boom)
    assert score_then_close(scorer, [(named[0][0], named[0][1])], _closes(named, range(N))) == 1
    assert all(store.report(sid) is not None for sid, _ in named)


def _stored(store: MemoryStore, named: list[tuple[str, Columns]]) -> None:
    """Store every session's rows as three columns-v1 batches (what a replay reads)."""
    layout = library().layout(_entry())
    items = []
    for call in range(3):
        for sid, cols in named:
            part = _third(cols, call)
            header = {"type": "EVENTS", "session": sid, "encoding": "columns-v1",
                      "first_seq": int(part.seq[0]), "count": len(part),
                      "dtype": layout.dtype_header()}  # fmt: skip
            payload = encode_columns_v1(part, layout)
            items.append((sid, int(part.seq[0]), len(part), "columns-v1",
                          json.dumps(header).encode(), payload))  # fmt: skip
    store.append_batches(items)


def _entry() -> RubricEntry:
    entry = library().resolve(SCENARIO, "forklift-load-handling", None)
    assert isinstance(entry, RubricEntry)
    return entry


def _closed_at_the_end(*, spoil: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every session scored in three calls, then all closed; with `spoil`, each call's
    decisions saved with the next (`scored`) and S0 found spoiled just before the close."""
    store = MemoryStore()
    named, entry = _setup(store)
    _stored(store, named)
    scorer = Scorer(store, library())
    for sid, _ in named:
        scorer.open(sid, entry)
    scored: dict[str, list[dict[str, Any]]] = {}
    for call in range(3):
        batches = [(sid, _third(cols, call)) for sid, cols in named]
        if not spoil:
            scorer.score(batches)
            continue
        scorer.close_many([], scored=scored)
        scored = scorer.score(batches, save=False)
    if spoil:
        assert scored["S0"]  # the last third decides something for S0 ...
        scorer._broken.add("S0")  # ... and then its state is found spoiled
    closed = scorer.close_many(_closes(named, range(N)), scored=scored)
    assert set(closed) == {sid for sid, _ in named}
    return _results(store)


def test_a_session_rescored_at_close_is_not_saved_twice() -> None:
    """A session whose live state is spoiled is re-scored from the store at close, and the
    replay saves the decisions the store lacks, among them those scored just before and not
    saved yet (`scored`): saved again with the closes, they are not stored twice."""
    assert _closed_at_the_end(spoil=True) == _closed_at_the_end(spoil=False)
