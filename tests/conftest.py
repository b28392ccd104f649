"""Fixtures shared by the test modules, and the PostgreSQL tests' one skip message.

Without Debian's ``postgresql`` package the tests that need a server (a ``pg_*`` fixture, or
a ``postgres`` parameter of the store fixtures) are deselected at collection and the run says
so once, in its summary, instead of a skip line per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from assessengine.runtime import fused

from . import pg_server as pg
from .browser_support import open_browser
from .pg_server import PgServer, start_server

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

_schemas = itertools.count(1)

# The fused steps are on by default (`runtime.fused`): every command would install them in
# this process for good and compile the shipped rubrics' steps in child processes, into the
# user's cache, under whichever tests come next. The suite scores with the table-driven
# kernel unless a run sets the variable (=1: the whole suite on fused steps); the tests of
# the fused steps install them themselves (tests/test_fused_kernel.py, test_settings.py).
os.environ.setdefault("ASSESSENGINE_FUSED_KERNEL", "0")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fused-step cache directory of the test module's own."""
    return tmp_path_factory.mktemp("fused")


@pytest.fixture
def provider(cache_dir: Path) -> Iterator[fused.FusedProvider]:
    """Fused steps installed for one test, compiled before the first batch (loaded once per
    module and key)."""
    installed = fused.install(cache_dir, background=False)
    try:
        yield installed
    finally:
        fused.uninstall()


def _needs_postgres(item: pytest.Item) -> bool:
    if any(name.startswith("pg_") for name in getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgres" in callspec.params.values()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if pg.bin_dir() is not None:
        return
    dropped = [item for item in items if _needs_postgres(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not _needs_postgres(item)]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile (a fresh clone) or load the scoring kernel once, before any test runs: in the
    xdist controller, so that the workers load it from numba's cache instead of compiling it
    at once inside tests that wait for an engine with a bound."""
    if hasattr(session.config, "workerinput"):
        return
    from assessengine.compose import load_library  # noqa: PLC0415
    from assessengine.runtime.pipeline import Scorer  # noqa: PLC0415
    from assessengine.settings import Settings  # noqa: PLC0415
    from assessengine.storage.memory import MemoryStore  # noqa: PLC0415

    library, _ = load_library(Settings())
    Scorer(MemoryStore(), library).warm_up()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if pg.bin_dir() is None:
        terminalreporter.write_line(pg.MISSING, yellow=True, bold=True)


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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store location of each backend (SQLite, then a PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'engine.db'}"
    else:
        yield request.getfixturevalue("pg_store_url")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Headless Chromium for one test (browser_support.open_browser)."""
    with open_browser(tmp_path) as context:
        yield context
