"""The cohort index's change check (``cohort_changes``, revision 0011), on SQLite and
PostgreSQL: nothing changed → a refresh compares nothing; every kind of change the index
derives from (a re-scored report, an observation, a session closing, a write by another
connection, a transaction still running when the index was brought up to date) is seen by
the next refresh; the change rows are pruned; `serve` brings the index up to date before the
first request, logging its progress."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assessengine.api.service import ReviewService
from assessengine.api.service.cohorts import CohortService
from assessengine.api.service.models import ObservationIn
from assessengine.cli.serve_cmd import index_cohorts
from assessengine.storage import open_store
from assessengine.storage.appdb import AppDb

from .test_cohorts import fill


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str | Path, list[str]]:
    """A filled store of the parameter's backend (one per module: the tests change it only
    in ways the next ones tolerate)."""
    url: str | Path = tmp_path_factory.mktemp("changes") / "engine.db"
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = str(server.url(server.create_database()))
    return url, fill(url)


@pytest.fixture
def store_url(filled: tuple[str | Path, list[str]]) -> str | Path:
    return filled[0]


@pytest.fixture
def cohorts(filled: tuple[str | Path, list[str]]) -> Iterator[tuple[CohortService, list[str]]]:
    """A cohort service whose index is up to date (a fresh one: its first refresh looks)."""
    url, ids = filled
    service = ReviewService.open(url)
    cohorts = CohortService.open(service, url)
    try:
        cohorts.refresh()
        assert cohorts.refresh() == 0
        yield cohorts, ids
    finally:
        cohorts.close()
        service.close()


class _NoScan:
    def __call__(self, *args: Any) -> Any:
        raise AssertionError("the stale sessions were looked for, with nothing changed")


def test_a_refresh_with_nothing_changed_compares_nothing(
    cohorts: tuple[CohortService, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = cohorts
    monkeypatch.setattr(service.store, "stale", _NoScan())
    monkeypatch.setattr(service.store, "stale_count", _NoScan())
    assert service.refresh() == 0
    assert service.refresh() == 0


def test_a_rescored_report_is_seen_by_the_next_refresh(
    cohorts: tuple[CohortService, list[str]], store_url: str | Path
) -> None:
    service, ids = cohorts
    with open_store(store_url) as store:  # another connection, as the engine's
        report = store.report(ids[0])
        assert report is not None
        store.save_report(ids[0], {**report, "score": 1.0})
    assert service.refresh() == 1
    assert service.refresh() == 0


def test_an_observation_is_seen_by_the_next_refresh(
    cohorts: tuple[CohortService, list[str]],
) -> None:
    service, ids = cohorts
    reviews = service.reviews
    _, secret = reviews.create_token(name="a", role="assessor", learner=None, actor="test")
    reviews.observe(reviews.authenticate(secret), ids[1],
                    ObservationIn(criterion="looks_before_reversing", verdict="pass",
                                  note="seen"))  # fmt: skip
    assert service.refresh() == 1


def test_a_session_closing_after_its_report_is_seen(
    cohorts: tuple[CohortService, list[str]], store_url: str | Path
) -> None:
    service, ids = cohorts
    with open_store(store_url) as store:
        report = store.report(ids[0])
        assert report is not None
        store.save_report("S-open", {**report, "session": "S-open"})
        assert service.refresh() == 0  # open: not indexed yet
        store.close_session("S-open", 10.0)
    assert service.refresh() == 1


def test_a_write_still_running_during_a_refresh_is_seen_after_it_commits(
    cohorts: tuple[CohortService, list[str]], store_url: str | Path
) -> None:
    service, ids = cohorts
    db = AppDb(store_url)
    try:
        with db.write() as tx:  # begun (and holding its change) before the refresh
            tx.execute("UPDATE reports SET saved_at = ? WHERE session_id = "
                       "(SELECT id FROM sessions WHERE session = ?)",
                       ("2999-01-01T00:00:00.000000Z", ids[2]))  # fmt: skip
            if db.dialect == "postgresql":  # SQLite: one writer, the refresh waits or reads before
                assert service.refresh() == 0  # not committed: not visible yet
        assert service.refresh() == 1
    finally:
        db.close()


def test_change_rows_are_pruned_by_a_refresh(
    cohorts: tuple[CohortService, list[str]], store_url: str | Path
) -> None:
    service, ids = cohorts
    with open_store(store_url) as store:
        for sid in ids[:5]:
            report = store.report(sid)
            assert report is not None
            store.save_report(sid, {**report, "score": 2.0})
    assert service.refresh() == 5
    db = AppDb(store_url)
    try:
        with db.read() as tx:
            assert tx.execute("SELECT COUNT(*) FROM cohort_changes").fetchone()[0] == 1
    finally:
        db.close()


def test_serve_indexes_the_cohorts_before_the_first_request(
    store_url: str | Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = AppDb(store_url)
    try:
        with db.write() as tx:  # a store whose index was never built
            tx.execute("DELETE FROM cohort_verdicts")
            tx.execute("DELETE FROM cohort_sessions")
            indexable = tx.execute("SELECT COUNT(*) FROM sessions s JOIN reports r ON "
                                   "r.session_id = s.id WHERE s.status = 'closed'"
                                   ).fetchone()[0]  # fmt: skip
    finally:
        db.close()
    service = ReviewService.open(store_url)
    cohorts = CohortService.open(service, store_url)

    class App:
        class state:  # noqa: N801 (as FastAPI's app.state)
            pass

    App.state.cohorts = cohorts  # type: ignore[attr-defined]
    try:
        with caplog.at_level(logging.INFO, logger="assessengine.serve"):
            index_cohorts(App)
        lines = [r.getMessage() for r in caplog.records]
        assert f"cohort index: {indexable} of {indexable} sessions indexed" in lines
        assert any(line.startswith(f"cohort index up to date ({indexable} session(s)")
                   for line in lines)  # fmt: skip
        assert cohorts.refresh() == 0
    finally:
        cohorts.close()
        service.close()
