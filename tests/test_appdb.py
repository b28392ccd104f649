"""`storage.appdb.AppDb` on PostgreSQL: the connection of the app's stores outlives the server
ending it (the call that finds it broken fails, the next one reconnects)."""

from __future__ import annotations

import threading

from assessengine.storage import open_store
from assessengine.storage.appdb import APPLICATION_NAME, AppDb
from assessengine.storage.reviews import AuditEntry, ReviewStore

from .pg_server import PgServer
from .waits import WAIT_S


def test_a_connection_the_server_ended_is_replaced(pg_server: PgServer, pg_store_url: str) -> None:
    open_store(pg_store_url).close()
    with ReviewStore(pg_store_url) as review:
        review.record(AuditEntry("a", "admin", "test.one", "x"), "2026-01-01T00:00:00Z")
        pg_server.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE application_name = '{APPLICATION_NAME}'")  # fmt: skip
        assert [row.action for row in review.audit()] == ["test.one"]  # on a new connection
        review.record(AuditEntry("a", "admin", "test.two", "x"), "2026-01-01T00:00:01Z")
        assert [row.action for row in review.audit()] == ["test.two", "test.one"]


def _concurrent_read(db: AppDb) -> bool:
    """Whether a read finishes while another thread's read is still in progress."""
    inside, leave, second = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with db.read() as conn:
            conn.execute("SELECT 1").fetchone()
            inside.set()
            leave.wait(60)

    def other() -> None:
        with db.read() as conn:
            conn.execute("SELECT 2").fetchone()
        second.set()

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert inside.wait(WAIT_S)
    threads.append(threading.Thread(target=other))
    threads[1].start()
    finished = second.wait(WAIT_S)
    leave.set()
    for thread in threads:
        thread.join(60)
    return finished


def test_requests_on_a_server_database_run_at_once(pg_store_url: str) -> None:
    open_store(pg_store_url).close()
    db = AppDb(pg_store_url)
    try:
        assert _concurrent_read(db)
        with db.write() as conn:  # a read nested in a write uses the write's connection
            conn.execute("CREATE TEMP TABLE seen (x int)")
            with db.read() as inner:
                assert inner.execute("SELECT count(*) FROM seen").fetchone()[0] == 0
    finally:
        db.close()
