"""The review rows that travel between sites and a hub (revision 0014, `storage.replication`),
without servers to replicate: what the apply worker would write is written here by hand.

- Double marking is insert-only: an assignment is completed by its marks; twins (the same
  assessor assigned to the same session, or one assignment submitted, at two places before
  either heard of the other) are read as one, and a store keeps the rule within itself.
- A reviewed outcome whose review rows arrived by replication is recomputed before outcomes
  are read: PostgreSQL marks the session due in the apply worker only (a REPLICA trigger).
- Revision 0014 keeps the double marks made before it, and derives their completion.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import psycopg
import pytest

from assessengine.api.service import ReviewService
from assessengine.api.service.cohorts import CohortService
from assessengine.api.service.models import ObservationIn
from assessengine.api.service.service import SessionFilters
from assessengine.storage import open_store
from assessengine.storage.appdb import AppDb
from assessengine.storage.double_marks import (
    DuplicateAssignmentError,
    MarkIn,
    SqlDoubleMarks,
)
from assessengine.storage.port import StoreError
from assessengine.storage.reviews import AuditEntry

from .test_cohorts import fill
from .test_store_report_columns import _migrate_to, _sql

ITEM = "looks_before_reversing"


@pytest.fixture
def db(store_url: str) -> Iterator[AppDb]:
    open_store(store_url).close()
    appdb = AppDb(store_url)
    try:
        yield appdb
    finally:
        appdb.close()


def _audit(action: str) -> AuditEntry:
    return AuditEntry("trainer", "trainer", action, "S-1", session="S-1")


def _twin(db: AppDb, session: str, assessor: str, at: str) -> int:
    """An assignment as replication brings it from another place (no check, no audit)."""
    with db.write() as tx:
        return tx.insert_id("INSERT INTO review_double_assignments (session, assessor, "
                            "assigned_by, assigned_at) VALUES (?, ?, 'hub trainer', ?)",
                            (session, assessor, at))  # fmt: skip


def _marks_from_elsewhere(db: AppDb, assignment: int, session: str, at: str) -> None:
    with db.write() as tx:
        tx.execute("INSERT INTO review_double_marks (assignment, session, criterion, verdict, "
                   "note, actor, recorded_at) VALUES (?, ?, ?, 'pass', 'elsewhere', 'bob', ?)",
                   (assignment, session, ITEM, at))  # fmt: skip


# ==================================================================================== double marks


def test_twin_assignments_from_two_places_are_read_as_the_first_one(db: AppDb) -> None:
    marks = SqlDoubleMarks(db)
    made = marks.assign("S-1", "bob", by="trainer", at="t1", audit=_audit("double_mark.assign"))
    twin = _twin(db, "S-1", "bob", "t2")  # the hub assigned bob too before it heard of it
    assert [(a.id, a.completed_at) for a in marks.assignments(sessions=["S-1"])] == [
        (made.id, None)]
    with pytest.raises(DuplicateAssignmentError):  # still one per pair within one database
        marks.assign("S-1", "bob", by="trainer", at="t3", audit=_audit("double_mark.assign"))
    done = marks.submit(twin, [MarkIn(ITEM, "fail", "here")], actor="bob", at="t4",
                        audit=_audit("double_mark.submit"))  # fmt: skip
    assert (done.id, done.completed_at) == (twin, "t4")
    assert [(a.id, a.completed_at) for a in marks.assignments(assessor="bob")] == [
        (made.id, "t4")]
    assert marks.assignments(assessor="bob", open_only=True) == []
    with pytest.raises(StoreError, match="was completed at t4"):  # the pair is done
        marks.submit(made.id, [MarkIn(ITEM, "pass", "")], actor="bob", at="t5",
                     audit=_audit("double_mark.submit"))  # fmt: skip


def test_a_second_submission_from_another_place_is_not_counted(db: AppDb) -> None:
    marks = SqlDoubleMarks(db)
    made = marks.assign("S-1", "bob", by="trainer", at="t1", audit=_audit("double_mark.assign"))
    marks.submit(made.id, [MarkIn(ITEM, "fail", "here")], actor="bob", at="t3",
                 audit=_audit("double_mark.submit"))  # fmt: skip
    _marks_from_elsewhere(db, made.id, "S-1", "t4")  # submitted at the other place too, later
    assert [(m.verdict, m.note) for m in marks.marks(["S-1"])] == [("fail", "here")]
    _marks_from_elsewhere(db, made.id, "S-1", "t2")  # ... or earlier: that one counts
    assert [(m.verdict, m.note) for m in marks.marks(["S-1"])] == [("pass", "elsewhere")]
    assert [a.completed_at for a in marks.assignments()] == ["t2"]


def test_a_submission_without_marks_is_refused(db: AppDb) -> None:
    """Completion is the marks' presence: a submission must bring at least one."""
    marks = SqlDoubleMarks(db)
    made = marks.assign("S-1", "bob", by="trainer", at="t1", audit=_audit("double_mark.assign"))
    with pytest.raises(StoreError, match="no marks given"):
        marks.submit(made.id, [], actor="bob", at="t2", audit=_audit("double_mark.submit"))
    assert [a.completed_at for a in marks.assignments()] == [None]


def test_concurrent_assignments_of_one_pair_make_one(db: AppDb) -> None:
    marks = SqlDoubleMarks(db)
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def assign(k: int) -> None:
        start.wait()
        try:
            marks.assign("S-1", "bob", by=f"trainer {k}", at=f"t{k}",
                         audit=_audit("double_mark.assign"))  # fmt: skip
            outcomes.append("made")
        except DuplicateAssignmentError:
            outcomes.append("refused")

    threads = [threading.Thread(target=assign, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["made", "refused", "refused", "refused"]
    with db.read() as tx:
        assert tx.execute("SELECT count(*) FROM review_double_assignments").fetchone()[0] == 1


def test_revision_0014_keeps_the_double_marks_and_derives_their_completion(
    store_url: str,
) -> None:
    _migrate_to(store_url, "0013")
    for key, completed in ((1, "t2"), (2, None)):
        _sql(store_url, "INSERT INTO review_double_assignments (session, assessor, "
                        "assigned_by, assigned_at, completed_at) VALUES (:s, 'bob', "
                        "'trainer', 't1', :done)", {"s": f"S-{key}", "done": completed})
    _sql(store_url, "INSERT INTO review_double_marks (assignment, session, criterion, verdict, "
                    "note, actor, recorded_at) SELECT id, 'S-1', :c, 'pass', '', 'bob', 't2' "
                    "FROM review_double_assignments WHERE session = 'S-1'", {"c": ITEM})
    open_store(store_url).close()
    with closing(AppDb(store_url)) as db:
        marks = SqlDoubleMarks(db)
        assert [(a.session, a.completed_at) for a in marks.assignments()] == [
            ("S-1", "t2"), ("S-2", None)]
        assert [m.criterion for m in marks.marks(["S-1", "S-2"])] == [ITEM]
        marks.assign("S-3", "bob", by="trainer", at="t3", audit=_audit("double_mark.assign"))
        with db.read() as tx:  # a store that never joined a hub has nothing due
            assert tx.execute("SELECT count(*) FROM review_outcomes_due").fetchone()[0] == 0


# ==================================================================================== outcomes


@pytest.fixture(scope="module")
def pg_filled(pg_server: Any) -> str:
    url: str = pg_server.url(pg_server.create_database())
    fill(url)
    return url


def _apply(url: str, statement: str, params: tuple[Any, ...]) -> None:
    """Run `statement` as a logical-replication apply worker does (replica role)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(statement, params)


def _due(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT session FROM review_outcomes_due "
                                           "ORDER BY session").fetchall()]  # fmt: skip


def test_an_override_that_arrived_by_replication_counts_in_the_list_and_the_index(
    pg_filled: str,
) -> None:
    url = pg_filled
    service = ReviewService.open(url)
    cohorts = CohortService.open(service, url)
    try:
        _, token = service.create_token(name="admin", role="admin", learner=None, actor="t")
        admin = service.authenticate(token)
        sid = "S-001"
        cohorts.refresh()
        before = service.session(admin, sid)
        passed = next(c for c in before.criteria if c.verdict == "pass")
        _apply(url, "INSERT INTO review_overrides (session, criterion, verdict, "
                    "machine_verdict, reason, actor, recorded_at) VALUES (%s, %s, 'fail', "
                    "'pass', 'seen at the site', 'north assessor', '2026-01-01T00:00:00Z')",
               (sid, passed.id))  # fmt: skip
        assert _due(url) == [sid]
        after = service.session(admin, sid)  # computed from the rows: right at once
        assert after.with_overrides != before.with_overrides
        assert cohorts.refresh() == 1  # the outcome recomputed, then the session re-indexed
        assert _due(url) == []
        listed = service.list_sessions(admin, SessionFilters(learner=before.learner))
        row = next(s for s in listed.items if s.session == sid)
        assert (row.overridden, row.with_overrides) == (True, after.with_overrides)
        with psycopg.connect(url) as conn:  # what the queue and the dashboard count
            indexed = conn.execute("SELECT c.outcome FROM cohort_sessions c JOIN sessions s "
                                   "ON s.id = c.session_id WHERE s.session = %s",
                                   (sid,)).fetchone()  # fmt: skip
        assert indexed == (after.with_overrides.outcome,)
        # the app's own write is counted at once, and marks nothing due
        service.observe(admin, "S-002", ObservationIn(criterion=ITEM, verdict="pass",
                                                      note="seen"))  # fmt: skip
        assert _due(url) == []
    finally:
        cohorts.close()
        service.close()



def test_revision_0014_marks_due_the_sessions_reviewed_elsewhere_of_a_joined_database(
    pg_store_url: str,
) -> None:
    """A site (range 2) upgraded in place: its outcomes never counted the hub's reviews."""
    _migrate_to(pg_store_url, "0013")
    lo, hi = 2 << 40, (3 << 40) - 1
    _sql(pg_store_url, f"ALTER TABLE review_observations ALTER COLUMN id SET MINVALUE {lo} "
                       f"SET MAXVALUE {hi} SET START WITH {lo} RESTART WITH {lo}")  # fmt: skip
    _sql(pg_store_url, f"ALTER TABLE sessions ALTER COLUMN id SET MINVALUE {lo} "
                       f"SET MAXVALUE {hi} SET START WITH {lo} RESTART WITH {lo}")  # fmt: skip
    for session, key in (("north:here", lo + 5), ("north:hub", (1 << 40) + 7)):
        _sql(pg_store_url, "INSERT INTO review_observations (id, session, criterion, verdict, "
                           "note, observed_at, actor, recorded_at) VALUES (:id, :s, :c, 'pass', "
                           "'', 't', 'a', 't')", {"id": key, "s": session, "c": ITEM})
    open_store(pg_store_url).close()
    with psycopg.connect(pg_store_url) as conn:
        due = conn.execute("SELECT session FROM review_outcomes_due").fetchall()
    assert due == [("north:hub",)]
