"""`storage.open_store`: a store named by URL, and the one-line refusals when it cannot open."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from assessengine.core import chain
from assessengine.storage import open_store, parse_url, redact, schema
from assessengine.storage.credentials import SqlCredentialStore
from assessengine.storage.migrate import head_version
from assessengine.storage.port import SessionInfo, Store, StoreError, StoreOpenError
from assessengine.storage.reviews import ReviewStore, SessionQuery
from assessengine.storage.sqlite import SqliteStore

from .pg_server import PASSWORD, PgServer, free_port

DATA = Path(__file__).parent / "data"


def info(session: str = "S1") -> SessionInfo:
    return SessionInfo(session=session, learner="L1", scenario="forklift-warehouse",
                       rubric="forklift-load-handling", rubric_version=1,
                       rubric_sha256="ab" * 32)  # fmt: skip


@pytest.mark.parametrize(
    ("url", "backend", "target"),
    [
        ("engine.db", "sqlite", "engine.db"),
        ("data/engine.db", "sqlite", "data/engine.db"),
        ("sqlite:///engine.db", "sqlite", "engine.db"),
        ("sqlite:////var/lib/assess/engine.db", "sqlite", "/var/lib/assess/engine.db"),
        ("postgresql://engine@db:5432/assess", "postgresql", "postgresql://engine@db:5432/assess"),
        ("postgres://engine@db/assess", "postgresql", "postgresql://engine@db/assess"),
    ],
)
def test_a_url_names_its_backend(url: str, backend: str, target: str) -> None:
    parsed = parse_url(url)
    assert (parsed.backend, parsed.target) == (backend, target)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db"])
def test_a_malformed_sqlite_url_is_refused(url: str) -> None:
    with pytest.raises(StoreOpenError, match=r"a SQLite URL is sqlite:///PATH"):
        parse_url(url)


def test_an_unknown_scheme_is_refused_in_one_line_without_the_password() -> None:
    with pytest.raises(StoreOpenError) as refused:
        open_store("mysql://engine:s3cret@db/assess")
    message = str(refused.value)
    assert message == (
        "mysql://engine:***@db/assess: unknown store URL scheme 'mysql'; use a file path, "
        "sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
    )
    assert isinstance(refused.value, StoreError)


def test_a_postgres_url_without_psycopg_installed_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an import of a missing one does
    monkeypatch.delitem(sys.modules, "assessengine.storage.postgres", raising=False)
    extra = r"pip install 'assessengine\[postgres\]'"
    with pytest.raises(StoreOpenError, match=rf"need psycopg .*{extra}"):
        open_store("postgresql://engine@db/assess")


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://u:pw@h:5/d?sslmode=require") == "postgresql://u:***@h:5/d?sslmode=require"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"


def test_a_bare_path_and_a_sqlite_url_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    with open_store(path) as first:  # type: ignore[attr-defined]
        first.open_session(info())
    store = open_store(f"sqlite:///{path}", synchronous="full")
    try:
        assert isinstance(store, SqliteStore)
        assert store.synchronous == "FULL"
        assert store.session("S1") is not None
    finally:
        store.close()


def test_a_file_that_cannot_be_a_store_is_an_open_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just words " * 100)
    with pytest.raises(StoreOpenError, match="is not an assessengine store"):
        open_store(str(path))


def test_a_sqlite_store_at_a_newer_schema_version_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE alembic_version SET version_num = ?", (f"{head_version() + 1:04d}",))
    db.commit()
    db.close()
    with pytest.raises(StoreOpenError) as refused:
        open_store(str(path))
    assert str(refused.value) == (
        f"{path} has store schema version {head_version() + 1}; this assessengine supports up "
        f"to {head_version()}: upgrade assessengine"
    )


def test_a_store_written_by_the_release_before_alembic_opens_after_the_upgrade(
    tmp_path: Path,
) -> None:
    """tests/data/store-v2.db was written by the release whose SQLite store migrated itself
    (schema_version 1 and 2, no alembic_version; two payload segment files)."""
    path = tmp_path / "engine.db"
    shutil.copyfile(DATA / "store-v2.db", path)
    shutil.copytree(DATA / "store-v2.db-payloads", tmp_path / "engine.db-payloads")
    store = open_store(path)
    try:
        a, b = store.session("A"), store.session("B")
        assert a is not None
        assert b is not None
        assert (a.status, a.close_t, a.next_seq, a.batches) == ("closed", 59.5, 60, 6)
        assert (b.status, b.next_seq, b.batches) == ("open", 60, 6)
        for record in (a, b):
            batches = list(store.batches(record.info.session))
            assert chain.verify_chain(chain.genesis(record.info), batches) is None
            assert batches[-1].chain == record.chain_head
            assert batches[3].payload == bytes([3]) * 6000 + record.info.session.encode()
        assert store.decisions("A") == [
            {"criterion": "speed", "verdict": "fail", "evidence": {"seq": 4}}
        ]
        assert store.report("A") == {"session": "A", "score": 50.0}
        store.append_batches([("B", 60, 5, "json-v1", b"{}", b"[]")])  # and it works on
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (f"{head_version():04d}",)
        ]
        assert [v for (v,) in db.execute("SELECT version FROM schema_version ORDER BY 1")] == (
            list(range(1, head_version() + 1))
        )
    finally:
        db.close()


def test_a_store_with_the_app_tables_of_the_release_before_adopts_them_nothing_lost(
    tmp_path: Path,
) -> None:
    """tests/data/store-v2-app.db was written by the release before revision 0003 (schema
    0002; its review and credential adapters made their tables with CREATE TABLE IF NOT
    EXISTS): a token, an observation, an override, an issued, revoked and published
    credential. After the upgrade every row is there and the stores write on."""
    path = tmp_path / "engine.db"
    shutil.copyfile(DATA / "store-v2-app.db", path)
    open_store(path).close()
    review = ReviewStore(path)
    try:
        (token,) = review.tokens()
        assert (token.id, token.name, token.role) == ("tok1", "alice", "assessor")
        assert review.token_by_hash("h" * 64) == token
        (observed,) = review.observations(["A"])
        assert (observed.criterion, observed.t, observed.location) == ("looks", 3.5, {"x": 1})
        (override,) = review.overrides(["A"])
        assert (override.machine_verdict, override.reason) == ("fail", "radar off")
        (row,) = review.session_rows(SessionQuery(outcome="competent"), 10)
        assert (row.session, row.report_score) == ("A", 90.0)
        assert [entry.action for entry in review.audit()] == ["token.create"]
        with review.session_write("A") as tx:
            assert tx.add_observation(criterion="c2", verdict="fail", note="n", observed_at="x",
                                      t=None, location=None, actor="bob", at="y") == 2
    finally:
        review.close()
    with SqlCredentialStore(path) as credentials:
        issued = credentials.issued("urn:uuid:c1")
        assert issued is not None
        assert (issued.status.list_id, issued.status.index, issued.status.size) == (1, 5, 16)
        revoked = credentials.revocation("urn:uuid:c1")
        assert revoked is not None
        assert revoked.reason == "mistake"
        assert credentials.revoked_indices(1) == [5]
        published = credentials.published(1)
        assert published is not None
        assert published.document == '{"list":1}'
        assert credentials.allocate_status(choose=lambda size: 5).index != 5


def test_an_app_table_with_other_columns_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    shutil.copyfile(DATA / "store-v2.db", path)
    shutil.copytree(DATA / "store-v2.db-payloads", tmp_path / "engine.db-payloads")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE review_tokens (id TEXT PRIMARY KEY, secret TEXT)")
    db.commit()
    db.close()
    with pytest.raises(StoreOpenError, match=r"table review_tokens has columns \(id, secret\)"):
        open_store(path)


# ------------------------------------------------------------------------------ PostgreSQL


def test_an_unreachable_server_is_one_line(pg_server: PgServer) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/nowhere"
    with pytest.raises(StoreOpenError) as refused:
        open_store(url, connect_timeout=2)
    message = str(refused.value)
    assert message.startswith(f"{redact(url)}: cannot connect (")
    assert "\n" not in message
    assert PASSWORD not in message


def test_wrong_credentials_are_one_line_without_the_password(pg_server: PgServer) -> None:
    url = pg_server.url(password="not-the-password")
    with pytest.raises(StoreOpenError, match="password authentication failed") as refused:
        open_store(url)
    assert "not-the-password" not in str(refused.value)
    assert "\n" not in str(refused.value)


def test_an_empty_database_gets_the_schema_of_the_metadata(pg_database: str) -> None:
    open_store(pg_database).close()
    assert schema_differences(pg_database) == []


def test_a_new_sqlite_file_gets_the_schema_of_the_metadata(tmp_path: Path) -> None:
    open_store(tmp_path / "engine.db").close()
    assert schema_differences(f"sqlite:///{tmp_path / 'engine.db'}") == []


def test_a_postgres_store_at_a_newer_schema_version_is_refused(pg_store_url: str) -> None:
    open_store(pg_store_url).close()
    with psycopg.connect(pg_store_url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (f"{head_version() + 1:04d}",))
    with pytest.raises(StoreOpenError) as refused:
        open_store(pg_store_url)
    assert str(refused.value) == (
        f"{redact(pg_store_url)} has store schema version {head_version() + 1}; this "
        f"assessengine supports up to {head_version()}: upgrade assessengine"
    )


def test_a_database_of_another_application_is_refused(pg_store_url: str) -> None:
    with psycopg.connect(pg_store_url) as conn:
        conn.execute("CREATE TABLE customers (id int)")
    with pytest.raises(StoreOpenError, match=r"not an assessengine store .*tables: customers"):
        open_store(pg_store_url)


def test_concurrent_openers_of_a_new_database_migrate_it_once(pg_store_url: str) -> None:
    stores: list[Store] = []
    threads = [threading.Thread(target=lambda: stores.append(open_store(pg_store_url)))
               for _ in range(3)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(stores) == 3
        with psycopg.connect(pg_store_url) as conn:
            versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
        assert versions == [(v,) for v in range(1, head_version() + 1)]
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("options", [{"synchronous": "SOMETIMES"}, {"pool_size": 0}])
def test_bad_postgres_options_are_refused_before_connecting(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        open_store("postgresql://nobody@127.0.0.1:1/x", **options)


def schema_differences(url: str) -> list[Any]:
    """What Alembic's autogenerate finds between the database at `url` and `schema.metadata`
    (the store's own tables; Alembic's bookkeeping aside)."""
    target = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(target, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, schema.metadata)
    finally:
        engine.dispose()
