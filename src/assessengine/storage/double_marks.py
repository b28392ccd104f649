"""Double marking: a second assessor marks a session's observed items blind.

The port `DoubleMarks` and its two implementations: `SqlDoubleMarks` over a store's database
(tables ``review_double_assignments`` and ``review_double_marks``, revision 0009, SQLite and
PostgreSQL through `storage.appdb`) and `MemoryDoubleMarks`, the fake. Both follow one
contract (tests/test_double_marks.py runs it on all three):

- `assign` records that `assessor` is to mark `session` a second time; a second assignment of
  the same assessor to the same session raises `DuplicateAssignmentError`.
- `submit` stores the assessor's marks (one per item, all at once) and completes the
  assignment; an unknown or already completed assignment raises `StoreError`.
- Every change writes its audit entry in the same transaction (``review_audit``).

Who may do what, and what is blind to whom, is the service's business
(`api.service.double_marking`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from .appdb import AppDb
from .port import StoreError
from .reviews import AuditEntry, write_audit


class DuplicateAssignmentError(StoreError):
    """The assessor is assigned to this session already."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """A second marking asked of `assessor` by `assigned_by`; `completed_at` None: open."""

    id: int
    session: str
    assessor: str
    assigned_by: str
    assigned_at: str
    completed_at: str | None


@dataclass(frozen=True, slots=True)
class Mark:
    """One item as the second assessor marked it (``pass`` or ``fail``)."""

    assignment: int
    session: str
    criterion: str
    verdict: str
    note: str
    actor: str
    recorded_at: str


@dataclass(frozen=True, slots=True)
class MarkIn:
    criterion: str
    verdict: str
    note: str


class DoubleMarks(Protocol):
    """Assignments and second marks (see the module)."""

    def assign(self, session: str, assessor: str, *, by: str, at: str,
               audit: AuditEntry) -> Assignment: ...  # fmt: skip

    def assignments(
        self, *, sessions: Sequence[str] | None = None, assessor: str | None = None,
        open_only: bool = False,
    ) -> list[Assignment]:  # fmt: skip
        """Matching assignments in the order they were made."""
        ...

    def submit(self, assignment: int, marks: Sequence[MarkIn], *, actor: str, at: str,
               audit: AuditEntry) -> Assignment: ...  # fmt: skip

    def marks(self, sessions: Sequence[str]) -> list[Mark]:
        """The second marks of these sessions, in the order they were recorded."""
        ...


class SqlDoubleMarks:
    """`DoubleMarks` in the store database of `db` (opened by the caller, which closes it)."""

    def __init__(self, db: AppDb) -> None:
        self._db = db

    def assign(self, session: str, assessor: str, *, by: str, at: str,
               audit: AuditEntry) -> Assignment:  # fmt: skip
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM review_double_assignments WHERE session = ? AND "
                          "assessor = ?", (session, assessor)).fetchone():  # fmt: skip
                raise DuplicateAssignmentError(_duplicate(session, assessor))
            key = db.insert_id(
                "INSERT INTO review_double_assignments (session, assessor, assigned_by, "
                "assigned_at, completed_at) VALUES (?, ?, ?, ?, NULL)",
                (session, assessor, by, at),
            )
            write_audit(db, audit, at, extra={"assignment": key})
        return Assignment(key, session, assessor, by, at, None)

    def assignments(
        self, *, sessions: Sequence[str] | None = None, assessor: str | None = None,
        open_only: bool = False,
    ) -> list[Assignment]:  # fmt: skip
        clauses, params = ["1 = 1"], []
        if sessions is not None:
            if not sessions:
                return []
            clauses.append(f"session IN ({','.join('?' * len(sessions))})")
            params += list(sessions)
        if assessor is not None:
            clauses.append("assessor = ?")
            params.append(assessor)
        if open_only:
            clauses.append("completed_at IS NULL")
        with self._db.read() as db:
            rows = db.execute(
                "SELECT id, session, assessor, assigned_by, assigned_at, completed_at FROM "
                f"review_double_assignments WHERE {' AND '.join(clauses)} ORDER BY id", params,
            ).fetchall()
        return [Assignment(*row) for row in rows]

    def submit(self, assignment: int, marks: Sequence[MarkIn], *, actor: str, at: str,
               audit: AuditEntry) -> Assignment:  # fmt: skip
        with self._db.write() as db:
            row = db.execute("SELECT id, session, assessor, assigned_by, assigned_at, "
                             "completed_at FROM review_double_assignments WHERE id = ?",
                             (assignment,)).fetchone()  # fmt: skip
            found = _submittable(None if row is None else Assignment(*row), assignment)
            db.executemany(
                "INSERT INTO review_double_marks (assignment, session, criterion, verdict, "
                "note, actor, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(assignment, found.session, m.criterion, m.verdict, m.note, actor, at)
                 for m in marks],
            )  # fmt: skip
            db.execute("UPDATE review_double_assignments SET completed_at = ? WHERE id = ?",
                       (at, assignment))  # fmt: skip
            write_audit(db, audit, at, extra={"assignment": assignment})
        return replace(found, completed_at=at)

    def marks(self, sessions: Sequence[str]) -> list[Mark]:
        if not sessions:
            return []
        with self._db.read() as db:
            rows = db.execute(
                "SELECT assignment, session, criterion, verdict, note, actor, recorded_at "
                f"FROM review_double_marks WHERE session IN ({','.join('?' * len(sessions))}) "
                "ORDER BY id", tuple(sessions),
            ).fetchall()  # fmt: skip
        return [Mark(*row) for row in rows]


class MemoryDoubleMarks:
    """`DoubleMarks` in memory (the fake); `audit` keeps the entries it would write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._assignments: list[Assignment] = []
        self._marks: list[Mark] = []
        self.audit: list[tuple[AuditEntry, str]] = []

    def assign(self, session: str, assessor: str, *, by: str, at: str,
               audit: AuditEntry) -> Assignment:  # fmt: skip
        with self._lock:
            if any(a.session == session and a.assessor == assessor for a in self._assignments):
                raise DuplicateAssignmentError(_duplicate(session, assessor))
            made = Assignment(len(self._assignments) + 1, session, assessor, by, at, None)
            self._assignments.append(made)
            self.audit.append((audit, at))
        return made

    def assignments(
        self, *, sessions: Sequence[str] | None = None, assessor: str | None = None,
        open_only: bool = False,
    ) -> list[Assignment]:  # fmt: skip
        with self._lock:
            return [a for a in self._assignments
                    if (sessions is None or a.session in sessions)
                    and (assessor is None or a.assessor == assessor)
                    and not (open_only and a.completed_at is not None)]  # fmt: skip

    def submit(self, assignment: int, marks: Sequence[MarkIn], *, actor: str, at: str,
               audit: AuditEntry) -> Assignment:  # fmt: skip
        with self._lock:
            rows = self._assignments
            found = _submittable(rows[assignment - 1] if 0 < assignment <= len(rows) else None,
                                 assignment)  # fmt: skip
            self._marks += [Mark(assignment, found.session, m.criterion, m.verdict, m.note,
                                 actor, at) for m in marks]  # fmt: skip
            done = replace(found, completed_at=at)
            rows[assignment - 1] = done
            self.audit.append((audit, at))
        return done

    def marks(self, sessions: Sequence[str]) -> list[Mark]:
        with self._lock:
            return [m for m in self._marks if m.session in sessions]


def _duplicate(session: str, assessor: str) -> str:
    return f"{assessor!r} is assigned to double-mark session {session!r} already"


def _submittable(found: Assignment | None, key: int) -> Assignment:
    if found is None:
        raise StoreError(f"no double-marking assignment {key}")
    if found.completed_at is not None:
        raise StoreError(f"double-marking assignment {key} was completed at "
                         f"{found.completed_at}")  # fmt: skip
    return found
