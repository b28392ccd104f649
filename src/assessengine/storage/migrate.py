"""One versioned migration scheme for every store: Alembic revisions over SQLAlchemy Core,
the same revisions for SQLite and PostgreSQL (`storage/migrations/versions`).

Revisions are numbered ``0001``, ``0002``...; revision N is store schema version N. Each one
also records its number in ``schema_version``, the table releases before Alembic kept (and
read, to refuse a newer store): a SQLite store written by such a release is at the version
its ``schema_version`` names and is stamped so before the later revisions run; a store at a
newer version than this code knows is refused with one line (`StoreOpenError`).

`upgrade` runs inside the caller's transaction: all the revisions apply, or none. Concurrent
openers of a new store wait for each other (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a
transaction-scoped advisory lock).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ._common import now
from .engines import sqlite_engine
from .port import StoreError, StoreOpenError

MIGRATIONS: Final = Path(__file__).with_name("migrations")
ADVISORY_LOCK: Final = 0x41534547  # "ASEG": one migrating opener at a time per database

logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO: a line per migration step


def record(revision: str) -> None:
    """Inside a revision: note its number in ``schema_version``."""
    table = sa.table("schema_version", sa.column("version"), sa.column("applied_at"))
    op.bulk_insert(table, [{"version": int(revision), "applied_at": now()}])


@functools.cache
def head_version() -> int:
    """The newest schema version this code knows (its last revision's number)."""
    head = _scripts().get_current_head()
    assert head is not None
    return int(head)


def current_version(connection: sa.Connection) -> int | None:
    """The store's schema version: its Alembic revision, or for a store of a release before
    Alembic the highest ``schema_version`` row; None for an empty database."""
    revision = MigrationContext.configure(connection).get_current_revision()
    tables = set(sa.inspect(connection).get_table_names())
    legacy = 0
    if "schema_version" in tables:
        found = connection.execute(sa.text("SELECT MAX(version) FROM schema_version")).scalar()
        legacy = int(found or 0)
    if revision is None:
        return legacy or None
    if not revision.isdigit():
        raise StoreOpenError(f"unknown store schema revision {revision!r}")
    return max(int(revision), legacy)


def stored_version(execute: Callable[[str], Any]) -> int | None:
    """The schema version of a database that has both ``alembic_version`` and
    ``schema_version``, read through a driver connection's `execute` (sqlite3, psycopg): the
    opening's fast path, without SQLAlchemy. None when the revision is not a plain number."""
    (revision,) = execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
    (legacy,) = execute("SELECT MAX(version) FROM schema_version").fetchone() or (None,)
    if not isinstance(revision, str) or not revision.isdigit():
        return None
    return max(int(revision), legacy or 0)


def upgrade(connection: sa.Connection, where: str) -> None:
    """Bring the store at `connection` (in a transaction) to the newest schema version.
    StoreOpenError when it is newer than this code, or the database holds foreign tables."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    version = current_version(connection)
    head = head_version()
    if version is not None and version > head:
        raise StoreOpenError(
            f"{where} has store schema version {version}; this assessengine supports up to "
            f"{head}: upgrade assessengine"
        )
    tables = set(sa.inspect(connection).get_table_names())
    if version is None and tables:
        listed = ", ".join(sorted(tables))
        raise StoreOpenError(
            f"{where} is not an assessengine store (a database with other tables: {listed})"
        )
    config = _config(connection)
    if version is not None and "alembic_version" not in tables:
        command.stamp(config, f"{version:04d}")  # a store of a release before Alembic
    if version == head:
        return
    command.upgrade(config, "head")


def upgrade_sqlite(path: Path, *, after: str | None = None, timeout: float = 10.0) -> None:
    """`upgrade` the SQLite file at `path` in one ``BEGIN IMMEDIATE`` transaction of its own
    connection, then run the statement `after` in it (SqliteStore marks the file as its own).
    StoreError (StoreOpenError for a newer or foreign file) when it cannot."""

    engine = sqlite_engine(path, timeout=timeout)
    try:
        with engine.begin() as connection:
            upgrade(connection, str(path))
            if after is not None:
                connection.exec_driver_sql(after)
    except sa.exc.DBAPIError as exc:
        raise StoreError(f"{path}: cannot migrate the store ({exc.orig})") from exc
    finally:
        engine.dispose()


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)
