"""The test suite's own PostgreSQL server (tests/pg_server.py) serves fresh databases."""

from __future__ import annotations

import psycopg
import pytest

from .pg_server import PASSWORD, PgServer


def test_each_test_gets_an_empty_database_of_its_own(pg_server: PgServer) -> None:
    first, second = pg_server.create_database(), pg_server.create_database()
    assert first != second
    with psycopg.connect(pg_server.url(first)) as conn:
        conn.execute("CREATE TABLE t (x int)")
    with psycopg.connect(pg_server.url(second)) as conn:
        found = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone()
        assert found == (0,)
    pg_server.drop_database(first)
    pg_server.drop_database(second)


def test_the_server_checks_passwords(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.url(password=PASSWORD + "x"))
