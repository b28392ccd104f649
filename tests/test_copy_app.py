"""`assessengine copy` carries the HTTP app's data too: tokens, observations, overrides,
outcomes, the audit log, issued credentials, revocations and published status lists, from
SQLite to PostgreSQL, with their keys; the target serves the same data; a second copy adds
nothing; a target holding other content under a row's key is refused, naming table and key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.api.service.credentials import CredentialSettings
from assessengine.cli import copy_cmd, main
from assessengine.storage import copy_tables as copy_tables_module
from assessengine.storage import open_store, schema
from assessengine.storage.copy_tables import (
    APP_TABLES,
    DERIVED_TABLES,
    ENGINE_TABLES,
    TableCopied,
    copy_tables,
)
from assessengine.storage.engines import engine_for
from assessengine.storage.sqlite import SqliteStore

from .test_api_credentials import API, BASE, LEARNER, OBSERVED, Http, open_http, record_template
from .test_api_support import make_tokens

OVERRIDE = {"criterion": "", "verdict": "fail", "reason": "seen in the yard"}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("copy-app") / "engine.db"
    with SqliteStore(path, synchronous="OFF") as store:
        record_template(store)
    return path


@contextmanager
def served(template: Path, folder: Path) -> Iterator[Http]:
    yield from open_http(template, folder)


@contextmanager
def target_app(url: str, key: Path) -> Iterator[Http]:
    """The HTTP API on the copy, with the source's issuer key and no new tokens."""
    app = create_app(db_path=url, credentials=CredentialSettings(base_url=BASE),
                     issuer_key_path=key)  # fmt: skip
    with TestClient(app) as client:
        yield Http(client, {}, url)


def override(http: Http, session: str) -> None:
    detail = http.get(f"{API}/sessions/{session}", "assessor").json()
    criterion = next(c["id"] for c in detail["criteria"] if c["verdict"] == "pass")
    answer = http.post(f"{API}/sessions/{session}/overrides",
                       {**OVERRIDE, "criterion": criterion}, "assessor")  # fmt: skip
    assert answer.status_code == 201, answer.text


@pytest.fixture
def source(template: Path, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], list[Any]]]:
    """A SQLite store used through the API: tokens (one revoked), observations, an override,
    two credentials issued (the first revoked), the status list published."""
    with served(template, tmp_path) as http:
        http.observe_all()
        revoked = http.issue().json()
        answer = http.post(f"{API}/credentials/{revoked['id']}/revoke", {"reason": "mistake"})
        assert answer.status_code == 200, answer.text
        valid = http.issue(role="admin").json()
        override(http, "S-1")
        assert http.get(f"{API}/credentials/status/1", None).is_success
        service: ReviewService = http.client.app.state.service  # type: ignore[attr-defined]
        service.revoke_token("learner-2", actor="test")
        yield Path(http.db), http.tokens, [revoked, valid]


def views(http: Http, tokens: dict[str, str]) -> list[Any]:
    """What the API serves of the app's data (the same on the source and on a copy)."""
    http.tokens = tokens
    return [
        http.get(f"{API}/sessions/S-1", "assessor").json(),
        http.get(f"{API}/sessions?limit=50", "assessor").json(),
        http.get(f"{API}/audit?limit=500").json(),
        http.get(f"{API}/learners/{LEARNER}/credentials", "learner").json(),
        http.get(f"{API}/credentials/status/1", None).text,  # the published bytes
    ]


def test_a_copy_to_postgres_serves_the_same_reviews_tokens_and_credentials(
    source: tuple[Path, dict[str, str], list[Any]], pg_store_url: str, tmp_path: Path
) -> None:
    db, tokens, (revoked, valid) = source
    result = run("copy", "--from", str(db), "--to", pg_store_url)
    assert result.exit_code == 0, result.output
    assert "review_observations: 3 row(s) added, 0 updated" in result.output
    assert "credential_revocations: 1 row(s) added" in result.output
    assert "credential_status_published: 1 row(s) added" in result.output
    with served_again(db, tmp_path) as before:
        expected = views(before, tokens)
    with target_app(pg_store_url, Path(f"{db}.issuer.pem")) as http:
        assert views(http, tokens) == expected
        http.tokens = tokens
        assert http.get(f"{API}/sessions", "learner2").status_code == 401  # revoked, still
        detail = http.get(f"{API}/sessions/S-1", "assessor").json()
        assert [o["criterion"] for o in detail["observations"]] == OBSERVED
        assert [o["reason"] for o in detail["overrides"]] == [OVERRIDE["reason"]]
        verdict = http.post(f"{API}/credentials/verify", valid, None).json()
        assert verdict["valid"] is True, verdict
        verdict = http.post(f"{API}/credentials/verify", revoked, None).json()
        status = next(c for c in verdict["checks"] if c["name"] == "status")
        assert (verdict["valid"], status["status"], status["detail"][:7]) == (
            False, "failed", "revoked")  # fmt: skip
    with closing(open_store(db)) as store:
        sessions = [r.info.session for r in store.sessions()]
    for session in sessions:
        audited = run("audit", session, "--db", pg_store_url)
        assert audited.exit_code == 0, audited.output
    again = run("copy", "--from", str(db), "--to", pg_store_url)
    assert again.exit_code == 0, again.output
    assert "0 new session(s), 0 batch(es)" in again.output
    assert "copied the HTTP app's tables: 0 row(s) added, 0 updated" in again.output
    with target_app(pg_store_url, Path(f"{db}.issuer.pem")) as http:
        # the target goes on: its next rows get fresh ids (the sequences moved past the copy's)
        http.tokens = tokens
        answer = http.post(f"{API}/sessions/S-3/observations",
                           {"criterion": OBSERVED[0], "verdict": "pass", "note": "later"},
                           "assessor")  # fmt: skip
        assert answer.status_code == 201, answer.text
        override(http, "S-2")


@contextmanager
def served_again(db: Path, folder: Path) -> Iterator[Http]:
    """The API on the source store as it is (no new tokens)."""
    app = create_app(db_path=db, credentials=CredentialSettings(base_url=BASE))
    with TestClient(app) as client:
        yield Http(client, {}, db)


def test_a_second_copy_adds_only_what_the_source_gained(
    source: tuple[Path, dict[str, str], list[Any]], tmp_path: Path
) -> None:
    db, tokens, _ = source
    copy = tmp_path / "copy.db"
    assert run("copy", "--from", str(db), "--to", str(copy)).exit_code == 0
    with served_again(db, tmp_path) as http:
        http.tokens = tokens
        override(http, "S-2")  # an override, its audit row, S-2's outcome recomputed
        service: ReviewService = http.client.app.state.service  # type: ignore[attr-defined]
        service.revoke_token("trainer-1", actor="test")  # a token revoked since
    later = run("copy", "--from", str(db), "--to", str(copy))
    assert later.exit_code == 0, later.output
    assert "review_overrides: 1 row(s) added, 0 updated" in later.output
    assert "review_tokens: 0 row(s) added, 1 updated" in later.output
    assert "review_audit: 2 row(s) added" in later.output
    with served_again(copy, tmp_path) as http:
        http.tokens = tokens
        assert http.get(f"{API}/sessions", "trainer").status_code == 401
        assert [o["reason"] for o in http.get(f"{API}/sessions/S-2", "assessor").json()[
            "overrides"]] == [OVERRIDE["reason"]]  # fmt: skip


def test_a_target_with_other_content_under_a_key_is_refused_naming_table_and_key(
    source: tuple[Path, dict[str, str], list[Any]], tmp_path: Path
) -> None:
    db, _, _ = source
    other = tmp_path / "other.db"
    with open_store(other) as store:
        record_template(store)
    with served_again(other, tmp_path) as http:  # its own token: audit row 1 is another's
        make_tokens(http.client.app.state.service)  # type: ignore[attr-defined]
    result = run("copy", "--from", str(db), "--to", str(other))
    assert result.exit_code == 1
    assert "error: review_audit id=1: the target holds other content under this key" in (
        result.output
    )


def test_every_app_table_is_copied_references_first() -> None:
    derived = ENGINE_TABLES | DERIVED_TABLES
    assert {t.name for t in APP_TABLES} == set(schema.metadata.tables) - derived
    order = [t for t in schema.metadata.sorted_tables if t in APP_TABLES]
    for table in APP_TABLES:  # whatever a table refers to comes before it
        for key in table.foreign_keys:
            referred = key.column.table
            assert APP_TABLES.index(referred) < APP_TABLES.index(table), (table, referred)
    assert len(order) == len(APP_TABLES)


def test_a_copy_back_from_postgres_to_sqlite_serves_the_same(
    source: tuple[Path, dict[str, str], list[Any]], pg_store_url: str, tmp_path: Path
) -> None:
    db, tokens, _ = source
    assert run("copy", "--from", str(db), "--to", pg_store_url).exit_code == 0
    back = tmp_path / "back" / "engine.db"
    back.parent.mkdir()
    result = run("copy", "--from", pg_store_url, "--to", f"sqlite:///{back}")
    assert result.exit_code == 0, result.output
    Path(f"{back}.issuer.pem").write_bytes(Path(f"{db}.issuer.pem").read_bytes())
    with served_again(db, tmp_path) as before:
        expected = views(before, tokens)
    with served_again(back, tmp_path) as http:
        assert views(http, tokens) == expected


def test_a_row_conflicting_under_another_key_is_refused_naming_the_table(
    source: tuple[Path, dict[str, str], list[Any]], tmp_path: Path
) -> None:
    db, _, _ = source
    other = tmp_path / "other.db"
    open_store(other).close()
    tokens = schema.review_tokens
    with engine_for(db).connect() as reading:
        first = dict(reading.execute(sa.select(tokens).limit(1)).mappings().one())
    writing = engine_for(other)
    with writing.begin() as db_other:  # the same secret's hash under another id
        db_other.execute(sa.insert(tokens), [{**first, "id": "another"}])
    writing.dispose()
    result = run("copy", "--from", str(db), "--to", str(other))
    assert result.exit_code == 1
    assert "error: review_tokens: the target holds a row under another key that conflicts" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_a_long_copy_reports_progress_on_the_way(
    source: tuple[Path, dict[str, str], list[Any]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, _, _ = source
    monkeypatch.setattr(copy_cmd, "PROGRESS_SESSIONS", 2)
    result = run("copy", "--from", str(db), "--to", str(tmp_path / "copy.db"))
    assert result.exit_code == 0, result.output
    assert "  sessions: 2 read so far, 2 new" in result.output
    assert "  sessions: 4 read so far, 4 new" in result.output
    monkeypatch.setattr(copy_tables_module, "CHUNK_ROWS", 1)
    seen: list[TableCopied] = []
    reading, writing = engine_for(db), engine_for(tmp_path / "again.db")
    open_store(tmp_path / "again.db").close()
    try:
        copy_tables(reading, writing, progress=seen.append, every=2)
    finally:
        reading.dispose()
        writing.dispose()
    observations = [p for p in seen if p.table == "review_observations"]
    assert observations == [
        TableCopied("review_observations", 2, 0, 2, finished=False),
        TableCopied("review_observations", 3, 0, 3),
    ]
