"""`assessengine site add / list / remove` refusing what cannot work: one line on stderr, exit
status 2, no password shown, nothing changed (the test server runs without logical
replication: ``wal_level = replica``)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from assessengine.cli import main

from .pg_server import PASSWORD, PgServer, free_port


def _refused(*args: str) -> str:
    result = CliRunner().invoke(main, ["site", *args])
    assert result.exit_code == 2, result.output
    assert PASSWORD not in result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_server_without_logical_replication_is_refused_naming_it(
    pg_server: PgServer, pg_database: str
) -> None:
    other = pg_server.url(pg_server.create_database())
    line = _refused("add", "--hub", pg_database, "--site", other, "--name", "north")
    assert "wal_level is 'replica'" in line
    assert "wal_level = logical" in line
    assert f"127.0.0.1:{pg_server.port}" in line
    assert pg_server.sql("SELECT count(*) FROM pg_publication").strip() == "0"


def test_an_unreachable_server_is_refused(pg_database: str) -> None:
    nowhere = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/assess"
    line = _refused("add", "--hub", nowhere, "--site", pg_database, "--name", "north")
    assert "cannot connect" in line
    assert "***" in line


def test_wrong_credentials_are_refused(pg_server: PgServer, pg_database: str) -> None:
    name = pg_database.rsplit("/", 1)[1]
    wrong = pg_server.url(name, password="not-the-password")
    line = _refused("add", "--hub", pg_database, "--site", wrong, "--name", "north")
    assert "password authentication failed" in line
    assert "not-the-password" not in line
    assert "password authentication failed" in _refused("list", "--hub", wrong)


def test_hub_and_site_cannot_be_one_database(pg_database: str) -> None:
    assert "the same database" in _refused("add", "--hub", pg_database, "--site", pg_database,
                                           "--name", "north")  # fmt: skip


@pytest.mark.parametrize("name", ["North", "north-1", "1north", "a" * 33])
def test_an_invalid_site_name_is_refused(name: str) -> None:
    line = _refused("add", "--hub", "postgresql://h/x", "--site", "postgresql://s/x",
                    "--name", name)  # fmt: skip
    assert "not a valid site name" in line


def test_a_sqlite_store_cannot_be_a_site_or_a_hub() -> None:
    line = _refused("add", "--hub", "postgresql://h/x", "--site", "engine.db", "--name", "north")
    assert "SQLite does not replicate" in line
    assert "--site" in line


def test_removing_a_site_the_hub_does_not_have_is_refused(pg_database: str) -> None:
    assert "no site named 'north'" in _refused("remove", "--hub", pg_database, "--name", "north")


def test_a_hub_without_sites_lists_none(pg_database: str) -> None:
    result = CliRunner().invoke(main, ["site", "list", "--hub", pg_database])
    assert (result.exit_code, result.output) == (0, "no sites\n")
