"""`storage.appdb.AppDb` on PostgreSQL: the connection of the app's stores outlives the server
ending it (the call that finds it broken fails, the next one reconnects)."""

from __future__ import annotations

import pytest

from assessengine.storage import open_store
from assessengine.storage.appdb import APPLICATION_NAME
from assessengine.storage.port import StoreError
from assessengine.storage.reviews import AuditEntry, ReviewStore

from .pg_server import PgServer


def test_a_connection_the_server_ended_is_replaced(pg_server: PgServer, pg_store_url: str) -> None:
    open_store(pg_store_url).close()
    with ReviewStore(pg_store_url) as review:
        review.record(AuditEntry("a", "admin", "test.one", "x"), "2026-01-01T00:00:00Z")
        pg_server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE application_name = '{APPLICATION_NAME}'")  # fmt: skip
        with pytest.raises(StoreError):
            review.audit()
        review.record(AuditEntry("a", "admin", "test.two", "x"), "2026-01-01T00:00:01Z")
        assert [row.action for row in review.audit()] == ["test.two", "test.one"]
