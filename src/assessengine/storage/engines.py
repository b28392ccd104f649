"""SQLAlchemy engines on the stores' databases, for what goes through SQLAlchemy rather than the
drivers: the migrations and the table-level work of `copy`. Each engine keeps no pool
(`NullPool`): it is used for a moment, then disposed of."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .url import parse_url


def sqlite_engine(path: str | Path, *, timeout: float = 10.0) -> sa.Engine:
    """The SQLite file at `path`: every transaction is ``BEGIN IMMEDIATE`` (it takes the
    write lock at once, as `SqliteStore`'s writers do, so two never deadlock upgrading)."""

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None)

    engine = sa.create_engine("sqlite://", creator=connect, poolclass=sa.NullPool)
    sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def postgres_engine(creator: Callable[[], Any]) -> sa.Engine:
    """A PostgreSQL database, on the psycopg connections `creator` makes."""
    return sa.create_engine("postgresql+psycopg://", creator=creator, poolclass=sa.NullPool)


def engine_for(url: str | Path, *, timeout: float = 10.0) -> sa.Engine:
    """The database of the store `url` names (see `storage.url`)."""
    parsed = parse_url(url)
    if parsed.backend == "sqlite":
        return sqlite_engine(parsed.target, timeout=timeout)
    import psycopg  # noqa: PLC0415  (only for PostgreSQL)

    return postgres_engine(
        lambda: psycopg.connect(parsed.target, connect_timeout=max(1, round(timeout)))
    )
