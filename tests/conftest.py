"""Fixtures shared by the test modules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from .pg_server import PgServer, start_server

_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of the test session's own (skips when the package is missing)."""
    yield from start_server()


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """The URL of a fresh, empty database on `pg_server`, dropped after the test."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def pg_store_database(pg_server: PgServer) -> str:
    """The database the store tests share; each test has a schema of its own in it."""
    return pg_server.create_database()


@pytest.fixture
def pg_store_url(pg_server: PgServer, pg_store_database: str) -> Iterator[str]:
    """The URL of a fresh, empty schema (``search_path``) of its own for one test: a store
    opened on it creates its tables there (faster than a database per test)."""
    schema = f"s{next(_schemas)}"
    pg_server.sql(f"CREATE SCHEMA {schema}", pg_store_database)
    yield pg_server.url(pg_store_database) + f"?options=-csearch_path%3D{schema}"
    pg_server.sql(f"DROP SCHEMA {schema} CASCADE", pg_store_database)
