"""`assessengine copy --from URL --to URL`: every session into another store (SQLite to
PostgreSQL and back), audit-clean, and a second run duplicates nothing."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from assessengine.cli import main
from assessengine.storage import open_store
from assessengine.storage.engines import engine_for
from assessengine.storage.port import Store
from assessengine.storage.sqlite import SqliteStore

from .pg_server import PASSWORD
from .test_audit import SESSION, write_scored_session
from .test_store import info, item

DECISION = {"criterion": "speed", "verdict": "fail", "evidence": {"seq": 4, "span": [1, 2]}}
BELT = {"criterion": "belt", "verdict": "pass", "evidence": {"seq": 7}}
GATE = {"criterion": "gate", "verdict": "pass", "evidence": {"seq": 25}}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A SQLite store: a scored, closed session and an open one with decisions."""
    path = tmp_path / "engine.db"
    with SqliteStore(path) as store:
        write_scored_session(store)
        store.save_decisions(SESSION, [DECISION])
        store.open_session(info("OPEN"))
        store.append_batches([item("OPEN", 0), item("OPEN", 10)])
        store.save_decisions("OPEN", [DECISION, BELT])
    return path


def contents(store: Store) -> list[tuple[object, ...]]:
    """Everything a store holds, as its port shows it."""
    return [
        (r.info, r.status, r.close_t, r.next_seq, r.chain_head, r.batches, r.opened_at,
         r.closed_at,
         [(b.index, b.first_seq, b.count, b.encoding, b.header, b.payload, b.chain,
           b.received_at) for b in store.batches(r.info.session)],
         store.decisions(r.info.session), store.report(r.info.session))
        for r in store.sessions()
    ]  # fmt: skip


def recorded_times(url: str | Path) -> list[tuple[str, str]]:
    """The times of decisions and reports (the port does not show them), by session."""
    engine = engine_for(url)
    try:
        with engine.connect() as db:
            rows = db.execute(sa.text(
                "SELECT s.session, d.recorded_at FROM decisions d JOIN sessions s "
                "ON s.id = d.session_id UNION ALL SELECT s.session, r.saved_at FROM reports r "
                "JOIN sessions s ON s.id = r.session_id ORDER BY 1, 2"
            )).all()  # fmt: skip
        return [(session, at) for session, at in rows]
    finally:
        engine.dispose()


def test_a_copy_to_postgres_holds_everything_and_audits_clean(
    source: Path, pg_store_url: str
) -> None:
    result = run("copy", "--from", str(source), "--to", pg_store_url)
    assert result.exit_code == 0, result.output
    assert "2 new session(s)" in result.output
    assert "3 decision(s), 1 report(s), 1 close(s)" in result.output
    with closing(open_store(source)) as src, closing(open_store(pg_store_url)) as dst:
        assert contents(dst) == contents(src)
    assert recorded_times(pg_store_url) == recorded_times(source)
    audited = run("audit", SESSION, "--db", pg_store_url)
    assert audited.exit_code == 0, audited.output


def test_a_copy_to_postgres_refreshes_the_planner_statistics(
    source: Path, pg_store_url: str
) -> None:
    result = run("copy", "--from", str(source), "--to", pg_store_url)
    assert result.exit_code == 0, result.output
    assert "refreshed the target's planner statistics (ANALYZE)" in result.output
    engine = engine_for(pg_store_url)
    try:
        with engine.connect() as db:
            analyzed = set(db.scalars(sa.text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
                "AND schemaname = current_schema()"
            )))  # fmt: skip
    finally:
        engine.dispose()
    assert {"sessions", "batches", "reports", "review_outcomes"} <= analyzed


def test_a_copy_to_sqlite_says_nothing_of_statistics(source: Path, tmp_path: Path) -> None:
    result = run("copy", "--from", str(source), "--to", str(tmp_path / "copy.db"))
    assert result.exit_code == 0, result.output
    assert "ANALYZE" not in result.output


def test_copying_again_duplicates_nothing_and_adds_what_is_new(
    source: Path, pg_store_url: str
) -> None:
    assert run("copy", "--from", str(source), "--to", pg_store_url).exit_code == 0
    again = run("copy", "--from", str(source), "--to", pg_store_url)
    assert again.exit_code == 0, again.output
    assert "0 new session(s), 0 batch(es) (0.0 MB of payload), 0 decision(s), 0 report" in (
        again.output
    )
    with SqliteStore(source) as store:  # the open session goes on meanwhile
        store.append_batches([item("OPEN", 20)])
        store.save_decisions("OPEN", [GATE])
        store.close_session("OPEN", 31.0)
    later = run("copy", "--from", str(source), "--to", pg_store_url)
    assert "0 new session(s), 1 batch(es)" in later.output
    assert "1 decision(s), 0 report(s), 1 close(s)" in later.output
    with closing(open_store(source)) as src, closing(open_store(pg_store_url)) as dst:
        assert contents(dst) == contents(src)


def test_a_copy_back_from_postgres_to_sqlite_audits_clean(
    source: Path, pg_store_url: str, tmp_path: Path
) -> None:
    assert run("copy", "--from", str(source), "--to", pg_store_url).exit_code == 0
    back = tmp_path / "back.db"
    result = run("copy", "--from", pg_store_url, "--to", f"sqlite:///{back}")
    assert result.exit_code == 0, result.output
    with closing(open_store(source)) as src, closing(open_store(back)) as dst:
        assert contents(dst) == contents(src)
    assert recorded_times(back) == recorded_times(source)
    assert run("audit", SESSION, "--db", str(back)).exit_code == 0


def test_a_target_with_other_data_under_a_session_id_is_refused_naming_it(
    source: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    with SqliteStore(other) as store:
        store.open_session(info("OPEN"))
        store.append_batches([item("OPEN", 0, fill=9)])  # other bytes: another chain
    result = run("copy", "--from", str(source), "--to", str(other))
    assert result.exit_code == 1
    assert "session 'OPEN': the target's batches are not the source's" in result.output


def test_a_missing_source_is_refused_without_creating_it(tmp_path: Path) -> None:
    result = run("copy", "--from", str(tmp_path / "none.db"), "--to", str(tmp_path / "t.db"))
    assert result.exit_code == 2
    assert result.output == f"error: no store at {tmp_path / 'none.db'}\n"
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mysql://u:secret@db/x", "error: mysql://u:***@db/x: unknown store URL scheme 'mysql'"),
        (f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x", "cannot connect ("),
    ],
)
def test_a_target_that_cannot_be_opened_is_one_line_and_exit_2(
    source: Path, target: str, message: str
) -> None:
    result = run("copy", "--from", str(source), "--to", target)
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output
    assert "secret" not in result.output
