"""A full disk is 507 Insufficient Storage (with Retry-After and a message that says so), never a
409 that clients take as final nor a 500; an upload that hits it leaves nothing behind: no open,
empty session for recovery to re-open, no audit entry."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from assessengine.storage import appdb, segments
from assessengine.storage.sqlite import SqliteStore, immediate

from .test_api_support import Api, open_api
from .test_api_uploads import RUBRIC, field_log, upload


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path_factory, tmp_path)


def fill(db: sqlite3.Connection) -> None:
    """Let the file grow no more (SQLite then answers SQLITE_FULL, "database or disk is
    full", as on a full disk)."""
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")


def sessions_of(api: Api) -> list[tuple[str, str]]:
    return [(r.info.session, r.status) for r in api.service.store.sessions()]


def assert_storage_full(answer: Any) -> None:
    assert answer.status_code == 507, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "60"
    problem = answer.json()
    assert problem["type"] == "urn:assessengine:problem:storage-full"
    assert "disk is full" in problem["detail"]


def test_an_upload_on_a_disk_too_full_for_its_payloads_leaves_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*_: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    _, text = field_log()
    before = sessions_of(api)
    monkeypatch.setattr(segments, "_pwritev", no_space)
    assert_storage_full(upload(api, "shift.jsonl", text, session="yard-full"))
    assert sessions_of(api) == before
    assert api.service.store.session("yard-full") is None
    assert api.get("/api/v1/audit?action=field_session.create").json()["items"] == []
    monkeypatch.undo()  # space again: the same upload goes through
    assert upload(api, "shift.jsonl", text, session="yard-full").status_code == 201


def sqlite_full() -> sqlite3.OperationalError:
    """A real SQLITE_FULL error ("database or disk is full"), from a database that may not grow."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (x)")
    fill(db)
    try:
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("the database grew past its max_page_count")


def test_an_upload_whose_database_fills_up_halfway_leaves_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session row and its batches are written, then closing it finds the disk full."""
    close_one = SqliteStore._close_one

    def full_after_the_batches(self: SqliteStore, db: Any, *args: Any) -> Any:
        assert db.execute("SELECT COUNT(*) FROM batches b JOIN sessions s ON s.id = b.session_id "
                          "WHERE s.session = 'yard-full'").fetchone()[0] > 0  # fmt: skip
        close_one(self, db, *args)
        raise sqlite_full()

    _, text = field_log()
    before = sessions_of(api)
    monkeypatch.setattr(SqliteStore, "_close_one", full_after_the_batches)
    assert_storage_full(upload(api, "shift.jsonl", text, session="yard-full"))
    assert sessions_of(api) == before
    assert api.get("/api/v1/audit?action=field_session.create").json()["items"] == []
    monkeypatch.undo()
    assert upload(api, "shift.jsonl", text, session="yard-full").status_code == 201


@contextmanager
def full_at_commit(db: sqlite3.Connection) -> Iterator[None]:
    """`immediate`, whose COMMIT finds the disk full (and so rolls back)."""
    with immediate(db):
        yield
        raise sqlite_full()


def test_any_write_on_a_full_disk_is_507(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(appdb, "immediate", full_at_commit)
    sid = api.stored.forklift_competent[0]
    observed = api.post(f"/api/v1/sessions/{sid}/observations", "assessor", json={
        "criterion": "looks_before_reversing", "verdict": "pass", "note": "looked"})
    assert_storage_full(observed)
    assert api.get(f"/api/v1/sessions/{sid}").json()["observations"] == []
    rescored = api.post("/api/v1/rescores", "trainer", json={
        "rubric": RUBRIC, "version": 1, "cohort": {"rubric": RUBRIC, "limit": 2}})
    assert_storage_full(rescored)
