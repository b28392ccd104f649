"""Revisions 0005, 0006 and 0009: PostgreSQL payloads compressed with lz4; a report's outcome
and score kept as columns (written with every report, backfilled for the reports stored
before), which the session list filters and shows without parsing the report's JSON; a
criterion's decision stored once per session (duplicates stored before removed)."""

from __future__ import annotations

import math
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from assessengine.storage import open_store
from assessengine.storage._common import report_row
from assessengine.storage.migrate import MIGRATIONS
from assessengine.storage.port import SessionInfo
from assessengine.storage.reviews import ReviewStore, SessionQuery
from assessengine.storage.sqlite import APPLICATION_ID


def info(session: str) -> SessionInfo:
    return SessionInfo(session=session, learner="L1", scenario="forklift-warehouse",
                       rubric="forklift-load-handling", rubric_version=1,
                       rubric_sha256="ab" * 32)  # fmt: skip


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                            poolclass=sa.NullPool)  # fmt: skip


def _migrate_to(url: str, revision: str) -> None:
    """Build the schema of `revision` only, as a release of that version left it."""
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            if connection.dialect.name == "sqlite":  # as SqliteStore marks its files
                connection.exec_driver_sql(f"PRAGMA application_id = {APPLICATION_ID}")
    finally:
        engine.dispose()


def _sql(url: str, statement: str, params: dict[str, Any] | None = None) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), params or {})
    finally:
        engine.dispose()


def _rows(url: str, query: SessionQuery) -> list[tuple[str, str | None, float | None]]:
    with ReviewStore(url) as review:
        return [(r.session, r.report_outcome, r.report_score)
                for r in review.session_rows(query, 100)]  # fmt: skip


def test_reports_stored_before_the_columns_are_listed_by_outcome_after_the_upgrade(
    store_url: str,
) -> None:
    _migrate_to(store_url, "0005")
    reports = {
        "A": '{"outcome": "competent", "score": 90}',
        "B": '{"outcome": "not_yet_competent", "score": 41.5}',
        "C": '{"outcome": 3, "score": "high"}',  # neither a string outcome nor a number score
    }
    for key, (session, report) in enumerate(reports.items(), start=1):
        _sql(store_url, "INSERT INTO sessions (id, session, info, learner, scenario, rubric, "
             "rubric_version, source, genesis, status, opened_at) VALUES (:id, :s, '{}', 'L1', "
             "'x', 'r', 1, 'simulator', 'g', 'closed', 't')", {"id": key, "s": session})
        _sql(store_url, "INSERT INTO reports (session_id, report, saved_at) "
             "VALUES (:id, :r, 't')", {"id": key, "r": report})  # fmt: skip
    open_store(store_url).close()  # upgrades to the head revision
    assert _rows(store_url, SessionQuery(outcome="competent")) == [("A", "competent", 90.0)]
    assert _rows(store_url, SessionQuery(outcome="not_yet_competent")) == [
        ("B", "not_yet_competent", 41.5)
    ]
    assert ("C", None, None) in _rows(store_url, SessionQuery())


@pytest.mark.parametrize("how", ["save_report", "save_results", "file_session"])
def test_every_report_write_fills_the_outcome_and_score_the_list_filters_on(
    store_url: str, how: str
) -> None:
    first = {"outcome": "competent", "score": 75.0, "criteria": []}
    with open_store(store_url) as store:
        if how == "file_session":
            store.file_session(info("A"), [], 10.0, first)
        else:
            store.open_session(info("A"))
            getattr(store, how)(*(("A", first) if how == "save_report" else ({}, {"A": first})))
        assert _rows(store_url, SessionQuery(outcome="competent")) == [("A", "competent", 75.0)]
        again = {"outcome": "not_yet_competent", "score": 20.0}  # a report saved again
        if how == "save_results":  # a final save happens once: a second one stores nothing
            store.save_results({}, {"A": again})
            assert _rows(store_url, SessionQuery(outcome="competent")) == [
                ("A", "competent", 75.0)
            ]
        store.save_report("A", again)  # a re-score replaces the report (and its columns)
    assert _rows(store_url, SessionQuery(outcome="competent")) == []
    assert _rows(store_url, SessionQuery(outcome="not_yet_competent")) == [
        ("A", "not_yet_competent", 20.0)
    ]


@pytest.mark.parametrize(
    ("report", "outcome", "score"),
    [
        ({"outcome": "competent", "score": 90}, "competent", 90.0),
        ({"outcome": "competent", "score": 12.5}, "competent", 12.5),
        ({"outcome": None, "score": None}, None, None),
        ({"outcome": 1, "score": True}, None, None),  # a bool is no score
        ({"score": math.nan}, None, None),
        ({"score": math.inf}, None, None),
        ({"score": "90"}, None, None),
        ({}, None, None),
    ],
)
def test_a_report_row_keeps_a_string_outcome_and_a_finite_number_score(
    report: dict[str, Any], outcome: str | None, score: float | None
) -> None:
    row = report_row("S1", report)
    assert (row.outcome, row.score) == (outcome, score)


def test_postgres_payloads_are_compressed_with_lz4_and_read_back_whole(pg_store_url: str) -> None:
    payload = b"forklift telemetry, repetitive " * 20_000  # compressible, beyond the TOAST limit
    with open_store(pg_store_url) as store:
        store.open_session(info("A"))
        store.append_batches([("A", 0, 10, "columns-v1", b'{"h": 1}', payload)])
        (stored,) = store.batches("A")
        assert bytes(stored.payload) == payload
    with psycopg.connect(pg_store_url) as conn:
        method = conn.execute(
            "SELECT attcompression FROM pg_attribute "
            "WHERE attrelid = 'batches'::regclass AND attname = 'payload'"
        ).fetchone()
        kept = conn.execute("SELECT pg_column_compression(payload), pg_column_size(payload) "
                            "FROM batches").fetchone()  # fmt: skip
    assert method == ("l",)
    assert kept is not None
    assert kept[0] == "lz4"
    assert kept[1] < len(payload) // 10


def test_decisions_stored_twice_before_the_unique_key_are_kept_once_after_the_upgrade(
    store_url: str,
) -> None:
    _migrate_to(store_url, "0008")
    _sql(store_url, "INSERT INTO sessions (id, session, info, learner, scenario, rubric, "
         "rubric_version, source, genesis, status, opened_at) VALUES (1, 'A', '{}', 'L1', "
         "'x', 'r', 1, 'simulator', 'g', 'closed', 't')")  # fmt: skip
    rows = [("speed", '{"criterion": "speed", "verdict": "fail", "evidence": {"seq": 4}}'),
            ("belt", '{"criterion": "belt", "verdict": "pass", "evidence": {}}'),
            ("speed", '{"criterion": "speed", "verdict": "fail", "evidence": {"seq": 4}}')]
    for criterion, row in rows:
        _sql(store_url, "INSERT INTO decisions (session_id, criterion, verdict, row, "
             "recorded_at) VALUES (1, :c, 'x', :r, 't')", {"c": criterion, "r": row})
    with open_store(store_url) as store:  # upgrades to the head revision
        assert [d["criterion"] for d in store.decisions("A")] == ["speed", "belt"]
        store.save_decisions("A", [{"criterion": "belt", "verdict": "fail", "evidence": {}}])
        assert [d["verdict"] for d in store.decisions("A")] == ["fail", "pass"]
