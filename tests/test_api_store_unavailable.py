"""A store that cannot be reached for now (its database locked by another writer, its server
gone, no pooled connection in time) is 503 Service Unavailable with Retry-After and a message
that says so, never a 500 that reads as a bug; nothing of the request is kept, and the same
request goes through once the store is back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import OperationalError
from psycopg_pool import PoolTimeout

from assessengine.storage.port import StoreError, unavailable

from .test_api_support import Api, open_api

OBSERVED = "looks_before_reversing"


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path_factory, tmp_path)


def observe(api: Api, sid: str) -> Any:
    body = {"criterion": OBSERVED, "verdict": "pass", "note": "looked back every time"}
    return api.post(f"/api/v1/sessions/{sid}/observations", "assessor", json=body)


def test_a_write_while_another_writer_holds_the_database_is_503_and_keeps_nothing(
    api: Api,
) -> None:
    sid = api.stored.forklift_competent[0]
    app_db = api.service.review._db  # the app's one SQLite connection: wait briefly, not 10 s
    assert app_db is not None
    assert app_db._conn is not None
    app_db._conn.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(api.db, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        answer = observe(api, sid)
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["type"] == "urn:assessengine:problem:store-unavailable"
        assert "unavailable" in problem["detail"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    detail = api.get(f"/api/v1/sessions/{sid}").json()
    assert detail["observations"] == []
    assert observe(api, sid).status_code == 201


def test_a_pool_timeout_and_a_lost_server_count_as_unavailable_a_refusal_does_not() -> None:
    for cause in (PoolTimeout("couldn't get a connection after 10.00 sec"),
                  OperationalError("server closed the connection unexpectedly"),
                  sqlite3.OperationalError("database is locked")):  # fmt: skip
        wrapped = StoreError("store: busy")
        wrapped.__cause__ = cause
        assert unavailable(wrapped), cause
    refused = StoreError("session S1 is closed")
    refused.__cause__ = sqlite3.IntegrityError("UNIQUE constraint failed")
    assert not unavailable(refused)
