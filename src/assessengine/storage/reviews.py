"""`ReviewStore`: what people add to a store's sessions, in the same database (SQLite or
PostgreSQL, through `storage.appdb.AppDb`).

The engine's store owns ``sessions``, ``batches``, ``decisions`` and ``reports``; this adapter
writes its own tables beside them (defined in `storage.schema`, created by the migrations when
the engine's store opens) and reads the engine's ``sessions`` and ``reports`` for the filtered
session list:

    review_tokens        API tokens: name, role, learner, sha256 of the secret (never the secret)
    review_observations  in-field observations of `observed` criteria (every one kept)
    review_overrides     assessors' overrides, each with its written reason and the machine
                         verdict it overrode (every one kept; the latest per criterion counts:
                         latest by `recorded_at`, then id, `core.latest`; ids come from each
                         place's range, so the highest id is not the latest)
    review_outcomes      a session's outcome with observations and with overrides, kept up to
                         date with them (so the session list can filter on it)
    review_outcomes_due  sessions whose observations or overrides arrived by replication since
                         their outcome was kept (PostgreSQL: written by a trigger that fires in
                         the apply worker only, revision 0014); the app recomputes them
                         (`recompute_due`)
    review_rubrics       uploaded rubric versions: text, sha256, who and when
    review_rescores      re-scoring runs and the verdicts they changed
    review_audit         every change: who, when, what, why

Open the engine's store first (`open_store`: it creates and migrates the database and refuses
one with foreign tables). Methods may be called from any thread; they are serialised by a
lock. Writes that read first run inside one write transaction (`session_write`; SQLite
``BEGIN IMMEDIATE``), so concurrent writers never lose an update.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..core.jsontext import dumps
from .appdb import AppDb, AppTables, Db
from .order import (
    AFTER_AUDIT_ENTRY,
    AFTER_SESSION,
    AUDIT_NEWEST_FIRST,
    RECORDED_ORDER,
    SESSIONS_NEWEST_FIRST,
)
from .port import StoreError

# ==================================================================================== rows


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    name: str
    role: str
    learner: str | None
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class ObservationRow:
    id: int
    session: str
    criterion: str
    verdict: str
    note: str
    observed_at: str
    t: float | None
    location: dict[str, Any] | None
    actor: str
    recorded_at: str


@dataclass(frozen=True, slots=True)
class OverrideRow:
    id: int
    session: str
    criterion: str
    verdict: str
    machine_verdict: str
    reason: str
    actor: str
    recorded_at: str


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """A session's outcome and score with observations, and with overrides too."""

    outcome: str
    score: float
    outcome_with_overrides: str
    score_with_overrides: float
    overrides: int  # criteria with an override


@dataclass(frozen=True, slots=True)
class RubricRow:
    id: int
    rubric: str
    version: int
    sha256: str
    scenario: str
    title: str
    filename: str
    text: str
    uploaded_by: str
    uploaded_at: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: str
    actor: str
    role: str
    action: str
    target: str
    session: str | None
    reason: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A change to record: `actor` is a token's name (or ``cli:<user>``)."""

    actor: str
    role: str
    action: str
    target: str
    session: str | None = None
    reason: str | None = None
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One line of the session list: the engine's session fields, the stored report's outcome
    and score, and the reviewed outcome (None until someone recorded something)."""

    key: int
    session: str
    learner: str
    scenario: str
    rubric: str
    rubric_version: int
    source: str
    status: str
    opened_at: str
    closed_at: str | None
    report_outcome: str | None
    report_score: float | None
    reviewed: OutcomeRow | None


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Filters of the session list (None: any). Times are ISO 8601 UTC strings as the store
    writes them; `before_key` continues a listing after the row with that key (in the list's
    order, `storage.order.AFTER_SESSION`)."""

    learner: str | None = None
    scenario: str | None = None
    rubric: str | None = None
    outcome: str | None = None
    source: str | None = None
    status: str | None = None
    opened_from: str | None = None
    opened_to: str | None = None
    before_key: int | None = None


# The report's outcome and score are columns of their own (revision 0006; the stores write
# them with the report): the list never parses a report's JSON.
_SESSION_SELECT: Final = """
SELECT s.id, s.session, s.learner, s.scenario, s.rubric, s.rubric_version, s.source, s.status,
       s.opened_at, s.closed_at, r.outcome, r.score,
       o.outcome, o.score, o.outcome_with_overrides, o.score_with_overrides, o.overrides
FROM sessions s
LEFT JOIN reports r ON r.session_id = s.id
LEFT JOIN review_outcomes o ON o.session = s.session
"""


@dataclass(frozen=True, slots=True)
class DueSession:
    """A session whose reviewed outcome is due (`ReviewStore.recompute_due`): its stored info
    and report (parsed JSON) and its review rows, oldest first."""

    session: str
    info: dict[str, Any]
    report: dict[str, Any]
    observations: list[ObservationRow]
    overrides: list[OverrideRow]


_SET_OUTCOME: Final = (
    "INSERT INTO review_outcomes (session, outcome, score, outcome_with_overrides, "
    "score_with_overrides, overrides, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (session) "
    "DO UPDATE SET outcome = excluded.outcome, score = excluded.score, "
    "outcome_with_overrides = excluded.outcome_with_overrides, "
    "score_with_overrides = excluded.score_with_overrides, "
    "overrides = excluded.overrides, updated_at = excluded.updated_at"
)


# ==================================================================================== store


class ReviewStore(AppTables):
    """The review tables of the store at `source`: a store URL or path (see `storage.url`),
    or an `AppDb` already open on it (then closing the ReviewStore closes it). Open the
    engine's store on it first (`open_store`: it creates and migrates the tables). Raises
    StoreError when the database cannot be opened."""

    closed = "the review store is closed"

    def __init__(self, source: str | Path | AppDb) -> None:
        super().__init__(source if isinstance(source, AppDb) else AppDb(source))

    @property
    def appdb(self) -> AppDb:
        """The connection(s) this store uses (for the adapters of the same tables' neighbours,
        `storage.double_marks`); StoreError once closed."""
        return self._connection()

    # ------------------------------------------------------------------------------ tokens

    def add_token(self, row: TokenRow, token_hash: str, audit: AuditEntry) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO review_tokens (id, name, role, learner, hash, created_at, "
                "revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (row.id, row.name, row.role, row.learner, token_hash, row.created_at),
            )
            write_audit(db, audit, row.created_at)

    def token_by_hash(self, token_hash: str) -> TokenRow | None:
        with self._read() as db:
            found = db.execute(
                "SELECT id, name, role, learner, created_at, revoked_at FROM review_tokens "
                "WHERE hash = ?",
                (token_hash,),
            ).fetchone()
        return TokenRow(*found) if found else None

    def tokens(self) -> list[TokenRow]:
        with self._read() as db:
            rows = db.execute(
                "SELECT id, name, role, learner, created_at, revoked_at FROM review_tokens "
                "ORDER BY created_at, id"
            ).fetchall()
        return [TokenRow(*row) for row in rows]

    def revoke_token(self, key: str, at: str, audit: AuditEntry) -> list[TokenRow]:
        """Revoke the live tokens whose id or name is `key`; returns them (empty: none)."""
        with self._write() as db:
            rows = db.execute(
                "SELECT id, name, role, learner, created_at, revoked_at FROM review_tokens "
                "WHERE (id = ? OR name = ?) AND revoked_at IS NULL",
                (key, key),
            ).fetchall()
            if rows:
                db.execute(
                    "UPDATE review_tokens SET revoked_at = ? "
                    "WHERE (id = ? OR name = ?) AND revoked_at IS NULL",
                    (at, key, key),
                )
                write_audit(db, audit, at)
        return [TokenRow(*row) for row in rows]

    # ------------------------------------------------------------------------------ sessions

    def session_rows(self, query: SessionQuery, limit: int) -> list[SessionRow]:
        """Sessions matching `query`, newest first (the one opened last first, then by id:
        `storage.order`; ids order by place at a hub), at most `limit`."""
        clauses, params = _session_where(query)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as db:
            rows = db.execute(
                f"{_SESSION_SELECT} {where} ORDER BY {SESSIONS_NEWEST_FIRST} LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_session_row(row) for row in rows]

    def session_row(self, session: str) -> SessionRow | None:
        with self._read() as db:
            row = db.execute(f"{_SESSION_SELECT} WHERE s.session = ?", (session,)).fetchone()
        return _session_row(row) if row else None

    def observations(self, sessions: Sequence[str]) -> list[ObservationRow]:
        """Observations of these sessions, oldest first (`RECORDED_ORDER`)."""
        return [_observation(r) for r in self._by_sessions("review_observations", sessions)]

    def overrides(self, sessions: Sequence[str]) -> list[OverrideRow]:
        """Overrides of these sessions, oldest first (`RECORDED_ORDER`)."""
        return [OverrideRow(*r) for r in self._by_sessions("review_overrides", sessions)]

    def _by_sessions(self, table: str, sessions: Sequence[str]) -> list[tuple[Any, ...]]:
        if not sessions:
            return []
        marks = ",".join("?" * len(sessions))
        with self._read() as db:
            rows: list[tuple[Any, ...]] = db.execute(
                f"SELECT * FROM {table} WHERE session IN ({marks}) ORDER BY {RECORDED_ORDER}",
                tuple(sessions),
            ).fetchall()
        return rows

    def recompute_due(self, limit: int, compute: Callable[[DueSession], OutcomeRow | None],
                      at: str) -> int:  # fmt: skip
        """Take up to `limit` sessions off ``review_outcomes_due`` (those with a report; others
        wait for theirs) and keep the outcome `compute` gives each (None: keep none), all in
        one write transaction; returns how many were taken (fewer than `limit`: none left).
        Two callers at once take different sessions (PostgreSQL ``SKIP LOCKED``); a review
        row that arrives meanwhile marks its session due again. When nothing is due (the usual
        case, and always on SQLite) this is one read of an empty table."""
        with self._read() as db:
            if db.execute("SELECT 1 FROM review_outcomes_due LIMIT 1").fetchone() is None:
                return 0
        with self._write() as db:
            taken = [row[0] for row in db.execute(
                "DELETE FROM review_outcomes_due WHERE session IN (SELECT d.session FROM "
                "review_outcomes_due d WHERE EXISTS (SELECT 1 FROM sessions s JOIN reports r "
                "ON r.session_id = s.id WHERE s.session = d.session) ORDER BY d.session "
                f"LIMIT ?{db.skip_locked()}) RETURNING session", (limit,)).fetchall()]
            if not taken:
                return 0
            marks = ",".join("?" * len(taken))
            stored = db.execute(
                "SELECT s.session, s.info, r.report FROM sessions s JOIN reports r ON "
                f"r.session_id = s.id WHERE s.session IN ({marks})", tuple(taken)).fetchall()
            observations, overrides = self.observations(taken), self.overrides(taken)
            rows = []
            for session, info, report in stored:
                row = compute(DueSession(
                    session, json.loads(info), json.loads(report),
                    [o for o in observations if o.session == session],
                    [o for o in overrides if o.session == session]))  # fmt: skip
                if row is not None:
                    rows.append((session, row.outcome, row.score, row.outcome_with_overrides,
                                 row.score_with_overrides, row.overrides, at))  # fmt: skip
            db.executemany(_SET_OUTCOME, rows)
        return len(taken)

    @contextmanager
    def session_write(self, session: str) -> Iterator[SessionWrite]:
        """One write transaction on a session's review rows: what it reads inside is what the
        writes are based on (no other writer can come between)."""
        with self._write() as db:
            yield SessionWrite(db, session)

    # ------------------------------------------------------------------------------ rubrics

    def add_rubric(self, row: RubricRow, audit: AuditEntry) -> RubricRow:
        """Store an uploaded version; an identical (rubric, version, sha256) already stored is
        returned as it is. Raises StoreError when (rubric, version) exists with other text."""
        with self._write() as db:
            found = db.execute(
                "SELECT * FROM review_rubrics WHERE rubric = ? AND version = ?",
                (row.rubric, row.version),
            ).fetchone()
            if found is not None:
                existing = RubricRow(*found)
                if existing.sha256 != row.sha256:
                    raise StoreError(
                        f"rubric {row.rubric!r} version {row.version} exists with sha256 "
                        f"{existing.sha256}; upload a new version number"
                    )
                return existing
            key = db.insert_id(
                "INSERT INTO review_rubrics (rubric, version, sha256, scenario, title, filename,"
                " text, uploaded_by, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.rubric, row.version, row.sha256, row.scenario, row.title, row.filename,
                 row.text, row.uploaded_by, row.uploaded_at),
            )  # fmt: skip
            write_audit(db, audit, row.uploaded_at)
        return RubricRow(key, *_fields(row)[1:])

    def rubrics(self, rubric: str | None = None) -> list[RubricRow]:
        with self._read() as db:
            where, params = _filters(("rubric = ?", rubric))
            rows = db.execute(
                f"SELECT * FROM review_rubrics {where} ORDER BY rubric, version", params
            ).fetchall()
        return [RubricRow(*row) for row in rows]

    # ------------------------------------------------------------------------------ rescores

    def add_rescore(
        self, rubric: str, version: int, sha256: str, result: Mapping[str, Any],
        audit: AuditEntry, at: str,
    ) -> int:  # fmt: skip
        with self._write() as db:
            key = db.insert_id(
                "INSERT INTO review_rescores (rubric, version, sha256, actor, created_at, result)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (rubric, version, sha256, audit.actor, at, dumps(result)),
            )
            write_audit(db, audit, at, extra={"rescore": key})
        return key

    def rescore(self, key: int) -> tuple[str, str, dict[str, Any]] | None:
        """(actor, created_at, result) of a re-scoring run."""
        with self._read() as db:
            row = db.execute(
                "SELECT actor, created_at, result FROM review_rescores WHERE id = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return row[0], row[1], json.loads(row[2])

    # ------------------------------------------------------------------------------ audit

    def record(self, audit: AuditEntry, at: str) -> None:
        with self._write() as db:
            write_audit(db, audit, at)

    def audit(
        self,
        *,
        session: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        """Audit entries, newest first: by the time each was recorded (``at``), then by id
        (`core.latest`: ids order by the place that wrote the entry, not by time).
        `before_id` continues a listing after the entry with that id (none: nothing)."""
        with self._read() as db:
            where, params = _filters(
                ("session = ?", session), ("actor = ?", actor), ("action = ?", action),
                ("at >= ?", since), ("at <= ?", until), (AFTER_AUDIT_ENTRY, before_id),
            )  # fmt: skip
            rows = db.execute(
                f"SELECT * FROM review_audit {where} ORDER BY {AUDIT_NEWEST_FIRST} LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_audit_row(row) for row in rows]



class SessionWrite:
    """Reads and writes of one session's review rows inside one transaction."""

    def __init__(self, db: Db, session: str) -> None:
        self._db, self.session = db, session

    def observations(self) -> list[ObservationRow]:
        rows = self._db.execute(
            f"SELECT * FROM review_observations WHERE session = ? ORDER BY {RECORDED_ORDER}",
            (self.session,),
        ).fetchall()
        return [_observation(r) for r in rows]

    def overrides(self) -> list[OverrideRow]:
        rows = self._db.execute(
            f"SELECT * FROM review_overrides WHERE session = ? ORDER BY {RECORDED_ORDER}",
            (self.session,),
        ).fetchall()
        return [OverrideRow(*r) for r in rows]

    def add_observation(
        self, *, criterion: str, verdict: str, note: str, observed_at: str, t: float | None,
        location: Mapping[str, Any] | None, actor: str, at: str,
    ) -> int:  # fmt: skip
        return self._db.insert_id(
            "INSERT INTO review_observations (session, criterion, verdict, note, observed_at, t,"
            " location, actor, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.session, criterion, verdict, note, observed_at, t,
             None if location is None else dumps(dict(location)), actor, at),
        )  # fmt: skip

    def add_override(
        self, *, criterion: str, verdict: str, machine_verdict: str, reason: str, actor: str,
        at: str,
    ) -> int:  # fmt: skip
        return self._db.insert_id(
            "INSERT INTO review_overrides (session, criterion, verdict, machine_verdict, reason,"
            " actor, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.session, criterion, verdict, machine_verdict, reason, actor, at),
        )

    def set_outcome(self, outcome: OutcomeRow, at: str) -> None:
        self._db.execute(
            _SET_OUTCOME,
            (self.session, outcome.outcome, outcome.score, outcome.outcome_with_overrides,
             outcome.score_with_overrides, outcome.overrides, at),
        )  # fmt: skip

    def audit(self, entry: AuditEntry, at: str) -> None:
        write_audit(self._db, entry, at)


# ==================================================================================== helpers


def write_audit(
    db: Db, entry: AuditEntry, at: str, *, extra: Mapping[str, Any] | None = None
) -> None:
    """Write `entry` (its detail with `extra`) to ``review_audit`` inside the transaction
    `db`."""
    detail = {**(entry.detail or {}), **(extra or {})}
    db.execute(
        "INSERT INTO review_audit (at, actor, role, action, target, session, reason, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (at, entry.actor, entry.role, entry.action, entry.target, entry.session, entry.reason,
         dumps(detail, sort_keys=True)),
    )  # fmt: skip


def _session_where(query: SessionQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("s.learner", query.learner), ("s.scenario", query.scenario),
                          ("s.rubric", query.rubric), ("s.source", query.source),
                          ("s.status", query.status)):  # fmt: skip
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.outcome is not None:
        clauses.append("COALESCE(o.outcome, r.outcome) = ?")
        params.append(query.outcome)
    if query.opened_from is not None:
        clauses.append("s.opened_at >= ?")
        params.append(query.opened_from)
    if query.opened_to is not None:
        clauses.append("s.opened_at <= ?")
        params.append(query.opened_to)
    if query.before_key is not None:
        clauses.append(AFTER_SESSION)
        params.append(query.before_key)
    return clauses, params


def _session_row(row: Sequence[Any]) -> SessionRow:
    key, session, learner, scenario, rubric, version, source, status, opened, closed = row[:10]
    reviewed = None if row[12] is None else OutcomeRow(*row[12:17])
    return SessionRow(key, session, learner, scenario, rubric, version, source, status, opened,
                      closed, row[10], row[11], reviewed)  # fmt: skip


def _audit_row(row: Sequence[Any]) -> AuditRow:
    key, at, actor, role, action, target, session, reason, detail = row
    return AuditRow(key, at, actor, role, action, target, session, reason, json.loads(detail))


def _observation(row: Sequence[Any]) -> ObservationRow:
    values = list(row)
    values[7] = None if values[7] is None else json.loads(values[7])
    return ObservationRow(*values)


def _fields(row: RubricRow) -> tuple[Any, ...]:
    return (row.id, row.rubric, row.version, row.sha256, row.scenario, row.title, row.filename,
            row.text, row.uploaded_by, row.uploaded_at)  # fmt: skip


def _filters(*pairs: tuple[str, Any]) -> tuple[str, list[Any]]:
    """``WHERE`` of the clauses whose value is not None (or nothing), and their values."""
    given = [(clause, value) for clause, value in pairs if value is not None]
    if not given:
        return "", []
    return "WHERE " + " AND ".join(c for c, _ in given), [v for _, v in given]
