"""`CohortStore`: the cohort index and the queries over it (review queue, cohort dashboard).

The index (tables ``cohort_sessions`` and ``cohort_verdicts``, `storage.schema`) holds, per
closed and scored session, its counted outcome (with observations and overrides), the review
queue's flags (a critical criterion failed, an observed item pending) and, per criterion, the
scorer's verdict and the final one. It is derived data: `stale` names the sessions whose row is
missing or older than their report (``reports.saved_at``) or their review
(``review_outcomes.updated_at``), the caller computes their rows (`api.service.cohorts`, with
the same rules as the session page) and `put` writes them. Whoever writes reports or reviews
needs to know nothing of the index.

No report is parsed to answer a query: the queue filters and counts these flat rows in SQL;
the dashboard reads one row per selected session (with ``finals``, one code per criterion) and
counts them vectorised (`cohort_numbers`), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from .appdb import AppDb
from .cohort_numbers import CODES, CohortNumbers, numbers
from .order import AFTER_SESSION, SESSIONS_NEWEST_FIRST

Reason = Literal["critical", "pending", "incomplete"]
REASONS: Final[tuple[Reason, ...]] = ("critical", "pending", "incomplete")
Period = Literal["day", "month"]

_REASON_SQL: Final[dict[Reason, str]] = {
    "critical": "c.critical_failed = 1",
    "pending": "c.pending = 1",
    "incomplete": "c.outcome = 'incomplete'",
}
_QUEUED: Final = "(c.critical_failed = 1 OR c.pending = 1 OR c.outcome = 'incomplete')"
_FROM: Final = "FROM sessions s JOIN cohort_sessions c ON c.session_id = s.id"
_STALE: Final = (
    "FROM sessions s JOIN reports r ON r.session_id = s.id "
    "LEFT JOIN review_outcomes o ON o.session = s.session "
    "LEFT JOIN cohort_sessions c ON c.session_id = s.id "
    "WHERE s.status = 'closed' AND (c.session_id IS NULL OR c.saved_at <> r.saved_at "
    "OR COALESCE(c.reviewed_at, '') <> COALESCE(o.updated_at, '') OR c.finals IS NULL)"
)
_PRUNE_LOCK: Final = 0x41534343  # "ASCC": one pruner of cohort_changes at a time


# ==================================================================================== rows


@dataclass(frozen=True, slots=True)
class StaleSession:
    """A closed, scored session whose index rows are missing or out of date: what computing
    them needs (the session's info and report as stored, as JSON text)."""

    key: int
    session: str
    info: str
    report: str
    saved_at: str
    reviewed_at: str | None


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """One criterion of an indexed session: the scorer's verdict and the final one (with the
    latest observation and override)."""

    idx: int
    criterion: str
    title: str
    critical: bool
    observed: bool
    verdict: str
    final: str


@dataclass(frozen=True, slots=True)
class IndexedSession:
    """What the index keeps of a session (`put` writes it)."""

    key: int
    saved_at: str
    reviewed_at: str | None
    outcome: str             # counted: with observations and overrides
    machine_outcome: str     # with observations, without overrides
    score: float | None      # with overrides; None when not a finite number
    site: str | None
    critical_failed: bool
    pending: bool
    verdicts: tuple[VerdictRow, ...]


@dataclass(frozen=True, slots=True)
class CohortQuery:
    """Which indexed sessions count (None: any). Times are inclusive bounds on ``opened_at``
    as ISO 8601 UTC text; `outcome` is the counted outcome."""

    learner: str | None = None
    scenario: str | None = None
    rubric: str | None = None
    rubric_version: int | None = None
    source: str | None = None
    site: str | None = None
    outcome: str | None = None
    opened_from: str | None = None
    opened_to: str | None = None


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One session of the review queue."""

    key: int
    session: str
    learner: str
    scenario: str
    rubric: str
    rubric_version: int
    source: str
    opened_at: str
    closed_at: str | None
    outcome: str
    machine_outcome: str
    score: float | None
    site: str | None
    critical_failed: bool
    pending: bool


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Sessions in the queue under the filters other than the reason: all, and per reason (a
    session can have several reasons)."""

    total: int
    critical: int
    pending: int
    incomplete: int


@dataclass(frozen=True, slots=True)
class AgreementRow:
    """One criterion of a session an assessor reviewed (recorded an observation or override
    on): the scorer's verdict and the assessor's (their latest override of it, else the
    scorer's: not overriding is agreeing)."""

    actor: str
    rubric: str
    criterion: str
    title: str
    machine: str
    assessor: str


@dataclass(frozen=True, slots=True)
class ValidityPair:
    """A learner with closed, scored sessions from both sources: the counted outcome and score
    of their latest simulator session and of their latest field session."""

    learner: str
    simulator_outcome: str
    simulator_score: float | None
    field_outcome: str
    field_score: float | None


# ==================================================================================== store


class CohortStore:
    """The cohort index in the database of `db` (opened by the caller, which closes it)."""

    def __init__(self, db: AppDb) -> None:
        self._db = db

    # ------------------------------------------------------------------------------ index

    def stale(self, limit: int) -> list[StaleSession]:
        """Up to `limit` closed, scored sessions whose index rows are missing or older than
        their report or review, in open order."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT s.id, s.session, s.info, r.report, r.saved_at, o.updated_at "
                f"{_STALE} ORDER BY s.id LIMIT ?",
                (limit,),
            ).fetchall()
        return [StaleSession(*row) for row in rows]

    def stale_count(self) -> int:
        """How many sessions `stale` would name in all (for progress reports)."""
        with self._db.read() as db:
            row = db.execute(f"SELECT COUNT(*) {_STALE}").fetchone()
        return int(row[0])

    def change_mark(self) -> int:
        """Where the change log stands now: every change to what the index derives from
        (reports, reviews, sessions closing) that a query issued after this call cannot see
        carries a mark at or after the returned one (`changed_since`). Take it before
        bringing the index up to date, keep it, and ask `changed_since(mark)` later.

        SQLite (one writer at a time): the change counter's next value. PostgreSQL: the
        oldest transaction still running (``pg_snapshot_xmin``): what began before it has
        ended, and what ends later has an id at or after it."""
        with self._db.read() as db:
            if self._db.dialect == "postgresql":
                row = db.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
                                 ).fetchone()  # fmt: skip
            else:
                row = db.execute("SELECT COALESCE(MAX(xid), 0) + 1 FROM cohort_changes"
                                 ).fetchone()  # fmt: skip
        return int(row[0])

    def changed_since(self, mark: int) -> bool:
        """Whether anything the index derives from may have changed since `change_mark`
        gave `mark` (never a false "no"; on PostgreSQL a "yes" can be a change already
        seen, while a transaction that began before the mark still runs). One lookup in
        the primary key of ``cohort_changes``."""
        with self._db.read() as db:
            row = db.execute("SELECT 1 FROM cohort_changes WHERE xid >= ? LIMIT 1",
                             (mark,)).fetchone()  # fmt: skip
        return row is not None

    def forget_changes(self, mark: int) -> None:
        """Drop the change rows before `mark` (what an index brought up to date after
        `change_mark` gave `mark` has seen), always keeping the newest row; on PostgreSQL
        one caller at a time (the others skip: the next one drops them)."""
        with self._db.write() as db:
            if self._db.dialect == "postgresql" and not db.execute(
                "SELECT pg_try_advisory_xact_lock(?)", (_PRUNE_LOCK,)
            ).fetchone()[0]:
                return
            db.execute("DELETE FROM cohort_changes WHERE xid < ? AND xid < "
                       "(SELECT MAX(xid) FROM cohort_changes)", (mark,))  # fmt: skip

    def put(self, sessions: Sequence[IndexedSession]) -> None:
        """Write (or replace) these sessions' index rows, in one transaction."""
        if not sessions:
            return
        with self._db.write() as db:
            db.executemany(
                "INSERT INTO cohort_sessions (session_id, saved_at, reviewed_at, outcome, "
                "machine_outcome, score, site, critical_failed, pending, finals) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                "saved_at = excluded.saved_at, reviewed_at = excluded.reviewed_at, "
                "outcome = excluded.outcome, machine_outcome = excluded.machine_outcome, "
                "score = excluded.score, site = excluded.site, "
                "critical_failed = excluded.critical_failed, pending = excluded.pending, "
                "finals = excluded.finals",
                [(s.key, s.saved_at, s.reviewed_at, s.outcome, s.machine_outcome, s.score,
                  s.site, int(s.critical_failed), int(s.pending),
                  "".join(CODES.get(v.final, "A") for v in s.verdicts)) for s in sessions],
            )  # fmt: skip
            db.executemany("DELETE FROM cohort_verdicts WHERE session_id = ?",
                           [(s.key,) for s in sessions])  # fmt: skip
            db.executemany(
                "INSERT INTO cohort_verdicts (session_id, idx, criterion, title, critical, "
                "observed, verdict, final) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id, idx) DO UPDATE SET criterion = excluded.criterion, "
                "title = excluded.title, critical = excluded.critical, "
                "observed = excluded.observed, verdict = excluded.verdict, "
                "final = excluded.final",
                [(s.key, v.idx, v.criterion, v.title, int(v.critical), int(v.observed),
                  v.verdict, v.final) for s in sessions for v in s.verdicts],
            )  # fmt: skip

    # ------------------------------------------------------------------------------ queue

    def queue(
        self, query: CohortQuery, *, reason: Reason | None = None,
        before_key: int | None = None, limit: int = 50,
    ) -> list[QueueRow]:  # fmt: skip
        """Indexed sessions that need a person (a critical criterion failed, an observed item
        pending, or the counted outcome incomplete), newest first, at most `limit`."""
        clauses, params = _where(query)
        clauses.append(_QUEUED if reason is None else _REASON_SQL[reason])
        if before_key is not None:
            clauses.append(AFTER_SESSION)
            params.append(before_key)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT s.id, s.session, s.learner, s.scenario, s.rubric, s.rubric_version, "
                "s.source, s.opened_at, s.closed_at, c.outcome, c.machine_outcome, c.score, "
                f"c.site, c.critical_failed, c.pending {_FROM} WHERE {' AND '.join(clauses)} "
                f"ORDER BY {SESSIONS_NEWEST_FIRST} LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_queue_row(row) for row in rows]

    def queue_counts(self, query: CohortQuery) -> QueueCounts:
        """How many sessions of the queue match `query`, in all and per reason."""
        clauses, params = _where(query)
        clauses.append(_QUEUED)
        with self._db.read() as db:
            row = db.execute(
                "SELECT COUNT(*), SUM(c.critical_failed), SUM(c.pending), "
                f"SUM(CASE WHEN c.outcome = 'incomplete' THEN 1 ELSE 0 END) {_FROM} "
                f"WHERE {' AND '.join(clauses)}",
                params,
            ).fetchone()
        return QueueCounts(*(int(v or 0) for v in row))

    def queue_criteria(self, keys: Sequence[int]) -> dict[int, list[VerdictRow]]:
        """Per session key, the criteria that put it in the queue (critical failed, observed
        pending), in rubric order."""
        found: dict[int, list[VerdictRow]] = {k: [] for k in keys}
        if not keys:
            return found
        marks = ",".join("?" * len(keys))
        with self._db.read() as db:
            rows = db.execute(
                "SELECT session_id, idx, criterion, title, critical, observed, verdict, final "
                f"FROM cohort_verdicts WHERE session_id IN ({marks}) AND ((critical = 1 AND "
                "final = 'fail') OR (observed = 1 AND final = 'pending')) "
                "ORDER BY session_id, idx",
                tuple(keys),
            ).fetchall()
        for key, *rest in rows:
            idx, criterion, title, critical, observed, verdict, final = rest
            found[key].append(VerdictRow(idx, criterion, title, bool(critical), bool(observed),
                                         verdict, final))  # fmt: skip
        return found

    def key_of(self, session: str) -> int | None:
        """The store's row key of a session (its open order), None when unknown."""
        with self._db.read() as db:
            row = db.execute("SELECT id FROM sessions WHERE session = ?", (session,)).fetchone()
        return None if row is None else int(row[0])

    # ------------------------------------------------------------------------------ cohorts

    def cohort(self, query: CohortQuery, *, period: Period | None = None) -> CohortNumbers:
        """The dashboard's numbers over the indexed sessions `query` selects (one query for
        the sessions' rows, then `cohort_numbers`, vectorised). Attempts are numbered per
        learner and rubric in open order among the selected sessions. `period` None: by day
        when the sessions span at most 92 days, else by month."""
        clauses, params = _where(query)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._db.read() as db:
            found = db.execute(
                "SELECT s.id, s.learner, s.rubric, s.rubric_version, s.scenario, s.source, "
                "c.site, substr(s.opened_at, 1, 10), c.outcome, COALESCE(c.finals, '') "
                f"{_FROM} {where} ORDER BY s.opened_at, s.id",
                params,
            ).fetchall()
        return numbers(found, self._titles, period)

    def _titles(self, key: int) -> list[tuple[str, str]]:
        with self._db.read() as db:
            rows = db.execute("SELECT criterion, title FROM cohort_verdicts WHERE session_id = ? "
                              "ORDER BY idx", (key,)).fetchall()  # fmt: skip
        return [(str(r[0]), str(r[1])) for r in rows]


    # ------------------------------------------------------------------------------ calibration

    def agreement(self, query: CohortQuery) -> list[AgreementRow]:
        """Per assessor who reviewed an indexed session `query` selects, every criterion of
        that session that is not an observed item and that the scorer decided (pass, fail or
        not applicable): the scorer's verdict and the assessor's (`AgreementRow`), ordered by
        assessor, rubric, criterion."""
        clauses, params = _where(query)
        where = f" AND {' AND '.join(clauses)}" if clauses else ""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT r.actor, s.rubric, v.criterion, v.title, v.verdict, "
                "COALESCE(o.verdict, v.verdict) FROM (SELECT DISTINCT session, actor FROM "
                "review_overrides UNION SELECT DISTINCT session, actor FROM review_observations"
                f") r JOIN sessions s ON s.session = r.session "
                "JOIN cohort_sessions c ON c.session_id = s.id "
                "JOIN cohort_verdicts v ON v.session_id = s.id AND v.observed = 0 "
                "AND v.verdict IN ('pass', 'fail', 'not_applicable') "
                # their latest override: by recorded_at, then id (`core.latest`), never MAX(id)
                "LEFT JOIN review_overrides o ON o.id = (SELECT o2.id FROM review_overrides o2 "
                "WHERE o2.session = r.session AND o2.criterion = v.criterion AND o2.actor = "
                "r.actor ORDER BY o2.recorded_at DESC, o2.id DESC LIMIT 1) "
                f"WHERE 1 = 1{where} "
                "ORDER BY r.actor, s.rubric, v.criterion, s.id",
                params,
            ).fetchall()
        return [AgreementRow(*(str(v) for v in row)) for row in rows]

    def validity(self, query: CohortQuery) -> list[ValidityPair]:
        """The learners with a pass or fail indexed session from each source among those
        `query` selects (its `source` ignored): their latest of each (`ValidityPair`: the one
        opened last, then the higher id; not the highest id, which orders by place at a hub),
        by learner."""
        clauses, params = _where(replace(query, source=None))
        clauses.append("c.outcome IN ('pass', 'fail')")
        with self._db.read() as db:
            rows = db.execute(
                "WITH latest AS (SELECT s.learner, s.source, c.outcome, c.score, ROW_NUMBER() "
                "OVER (PARTITION BY s.learner, s.source ORDER BY s.opened_at DESC, s.id DESC) AS n "
                f"{_FROM} WHERE {' AND '.join(clauses)}) "
                "SELECT a.learner, a.outcome, a.score, b.outcome, b.score FROM latest a "
                "JOIN latest b ON b.learner = a.learner AND b.n = 1 AND b.source = 'field' "
                "WHERE a.n = 1 AND a.source = 'simulator' ORDER BY a.learner",
                params,
            ).fetchall()
        return [ValidityPair(str(r[0]), str(r[1]), _float(r[2]), str(r[3]), _float(r[4]))
                for r in rows]  # fmt: skip


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _queue_row(r: Sequence[Any]) -> QueueRow:
    return QueueRow(
        key=int(r[0]), session=r[1], learner=r[2], scenario=r[3], rubric=r[4],
        rubric_version=int(r[5]), source=r[6], opened_at=r[7], closed_at=r[8], outcome=r[9],
        machine_outcome=r[10], score=r[11], site=r[12], critical_failed=bool(r[13]),
        pending=bool(r[14]),
    )  # fmt: skip


def _where(query: CohortQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("s.learner = ?", query.learner), ("s.scenario = ?", query.scenario),
        ("s.rubric = ?", query.rubric), ("s.rubric_version = ?", query.rubric_version),
        ("s.source = ?", query.source), ("c.site = ?", query.site),
        ("c.outcome = ?", query.outcome), ("s.opened_at >= ?", query.opened_from),
        ("s.opened_at <= ?", query.opened_to),
    ):  # fmt: skip
        if value is not None:
            clauses.append(column)
            params.append(value)
    return clauses, params
