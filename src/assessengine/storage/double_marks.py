"""Double marking: a second assessor marks a session's observed items blind.

The port `DoubleMarks` and its two implementations: `SqlDoubleMarks` over a store's database
(tables ``review_double_assignments`` and ``review_double_marks``, revisions 0012 and 0014,
SQLite and PostgreSQL through `storage.appdb`) and `MemoryDoubleMarks`, the fake. Both follow
one contract (tests/test_double_marking.py runs it on all three):

- `assign` records that `assessor` is to mark `session` a second time; a second assignment of
  the same assessor to the same session raises `DuplicateAssignmentError`.
- `submit` stores the assessor's marks (one per item, all at once, at least one) and so
  completes the assignment; an unknown or already completed assignment, or no marks, raises
  `StoreError`.
- Every change writes its audit entry in the same transaction (``review_audit``).

Both tables are insert-only, so that their rows replicate between a hub and its sites like
the other review rows (`storage.replication`): an assignment is completed when its marks
are there (``completed_at``: when they were recorded), never by changing its row. No unique
key holds "one assignment per (session, assessor)" or "one submission per assignment" (two
places may each write one before they hear of the other: a key would stop replication);
`SqlDoubleMarks` keeps both rules inside one database (`Db.serialize`) and reads twins that
came from two places as one: the assignment made first, and the submission recorded first.

Who may do what, and what is blind to whom, is the service's business
(`api.service.double_marking`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

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
        """Matching assignments in the order they were made (assigned_at, then id)."""
        ...

    def submit(self, assignment: int, marks: Sequence[MarkIn], *, actor: str, at: str,
               audit: AuditEntry) -> Assignment: ...  # fmt: skip

    def marks(self, sessions: Sequence[str]) -> list[Mark]:
        """The second marks of these sessions, in the order they were recorded (recorded_at,
        then assignment)."""
        ...


_ASSIGNMENT: Final = (
    "SELECT a.id, a.session, a.assessor, a.assigned_by, a.assigned_at, "
    "(SELECT min(m.recorded_at) FROM review_double_marks m JOIN review_double_assignments t "
    "ON t.id = m.assignment WHERE t.session = a.session AND t.assessor = a.assessor) "
    "FROM review_double_assignments a"
)
"""Assignments with their completion: when the first marks of any twin were recorded."""


class SqlDoubleMarks:
    """`DoubleMarks` in the store database of `db` (opened by the caller, which closes it)."""

    def __init__(self, db: AppDb) -> None:
        self._db = db

    def assign(self, session: str, assessor: str, *, by: str, at: str,
               audit: AuditEntry) -> Assignment:  # fmt: skip
        with self._db.write() as db:
            db.serialize(_pair(session, assessor))
            if db.execute("SELECT 1 FROM review_double_assignments WHERE session = ? AND "
                          "assessor = ?", (session, assessor)).fetchone():  # fmt: skip
                raise DuplicateAssignmentError(_duplicate(session, assessor))
            key = db.insert_id(
                "INSERT INTO review_double_assignments (session, assessor, assigned_by, "
                "assigned_at) VALUES (?, ?, ?, ?)",
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
            clauses.append(f"a.session IN ({','.join('?' * len(sessions))})")
            params += list(sessions)
        if assessor is not None:
            clauses.append("a.assessor = ?")
            params.append(assessor)
        with self._db.read() as db:
            rows = db.execute(f"{_ASSIGNMENT} WHERE {' AND '.join(clauses)} "
                              "ORDER BY a.assigned_at, a.id", params).fetchall()  # fmt: skip
        found = _first_of_twins(Assignment(*row) for row in rows)
        return [a for a in found if not (open_only and a.completed_at is not None)]

    def submit(self, assignment: int, marks: Sequence[MarkIn], *, actor: str, at: str,
               audit: AuditEntry) -> Assignment:  # fmt: skip
        with self._db.write() as db:
            row = db.execute(f"{_ASSIGNMENT} WHERE a.id = ?", (assignment,)).fetchone()
            if row is not None:  # then read it again, alone: a twin may have been submitted
                db.serialize(_pair(row[1], row[2]))
                row = db.execute(f"{_ASSIGNMENT} WHERE a.id = ?", (assignment,)).fetchone()
            found = _submittable(None if row is None else Assignment(*row), assignment, marks)
            db.executemany(
                "INSERT INTO review_double_marks (assignment, session, criterion, verdict, "
                "note, actor, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(assignment, found.session, m.criterion, m.verdict, m.note, actor, at)
                 for m in marks],
            )  # fmt: skip
            write_audit(db, audit, at, extra={"assignment": assignment})
        return replace(found, completed_at=at)

    def marks(self, sessions: Sequence[str]) -> list[Mark]:
        if not sessions:
            return []
        with self._db.read() as db:
            rows = db.execute(
                "SELECT m.assignment, m.session, m.criterion, m.verdict, m.note, m.actor, "
                "m.recorded_at, a.assessor FROM review_double_marks m "
                "JOIN review_double_assignments a ON a.id = m.assignment "
                f"WHERE m.session IN ({','.join('?' * len(sessions))}) "
                "ORDER BY m.recorded_at, m.assignment, m.id", tuple(sessions),
            ).fetchall()  # fmt: skip
        return [Mark(*row[:7]) for row in _first_submissions(rows)]


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
            found = [a for a in self._assignments
                     if (sessions is None or a.session in sessions)
                     and (assessor is None or a.assessor == assessor)
                     and not (open_only and a.completed_at is not None)]  # fmt: skip
        return sorted(found, key=lambda a: (a.assigned_at, a.id))  # as the SQL: time order

    def submit(self, assignment: int, marks: Sequence[MarkIn], *, actor: str, at: str,
               audit: AuditEntry) -> Assignment:  # fmt: skip
        with self._lock:
            rows = self._assignments
            found = _submittable(rows[assignment - 1] if 0 < assignment <= len(rows) else None,
                                 assignment, marks)  # fmt: skip
            self._marks += [Mark(assignment, found.session, m.criterion, m.verdict, m.note,
                                 actor, at) for m in marks]  # fmt: skip
            done = replace(found, completed_at=at)
            rows[assignment - 1] = done
            self.audit.append((audit, at))
        return done

    def marks(self, sessions: Sequence[str]) -> list[Mark]:
        with self._lock:
            found = [m for m in self._marks if m.session in sessions]
        return sorted(found, key=lambda m: (m.recorded_at, m.assignment))  # as the SQL


def _duplicate(session: str, assessor: str) -> str:
    return f"{assessor!r} is assigned to double-mark session {session!r} already"


def _submittable(found: Assignment | None, key: int, marks: Sequence[MarkIn]) -> Assignment:
    if found is None:
        raise StoreError(f"no double-marking assignment {key}")
    if found.completed_at is not None:
        raise StoreError(f"double-marking assignment {key} was completed at "
                         f"{found.completed_at}")  # fmt: skip
    if not marks:
        raise StoreError(f"double-marking assignment {key}: no marks given (an assignment is "
                         "completed by its marks)")  # fmt: skip
    return found


def _first_submissions(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Of mark rows (assignment, session, criterion, ..., recorded_at, assessor) in the order
    they were recorded, those of each (session, assessor)'s first submission (assignment and
    time), one per criterion: a second one came from another place of a federation, where
    the pair was submitted before the first had reached it."""
    counted: dict[tuple[str, str], tuple[int, str]] = {}
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for row in rows:
        assignment, session, criterion, recorded_at, assessor = (
            row[0], row[1], row[2], row[6], row[7])
        first = counted.setdefault((session, assessor), (assignment, recorded_at))
        if first == (assignment, recorded_at) and (session, assessor, criterion) not in seen:
            seen.add((session, assessor, criterion))
            kept.append(row)
    return kept


def _pair(session: str, assessor: str) -> str:
    """What `Db.serialize` holds while one (session, assessor) pair is checked and written."""
    return f"double-marking\x1f{session}\x1f{assessor}"


def _first_of_twins(rows: Iterable[Assignment]) -> list[Assignment]:
    """`rows` (in the order they were made) with one assignment per (session, assessor): the
    first. Twins come from two places that each assigned the pair before they heard of the
    other's (`storage.replication`); their completion is the pair's (`_ASSIGNMENT`)."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for row in rows:
        if (row.session, row.assessor) not in seen:
            seen.add((row.session, row.assessor))
            kept.append(row)
    return kept
