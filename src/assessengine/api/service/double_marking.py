"""Double marking: a trainer (or admin) asks a second assessor to mark a session's observed
items blind; the inter-rater agreement it gives is on the calibration page
(`calibration.inter_rater`).

- `assign`: the session must be closed, scored, with a known rubric that has observed items;
  the assessor a live assessor or admin token's name that has recorded nothing on the
  session (they would not be blind); the same assessor twice is a conflict (409).
- Until the second assessor has submitted their marks, the session is shown to them as the
  scorer left it: no observation, no override, nor who made one (`ReviewService.blind`:
  the session's page and API, the session list, the learner page, the review queue, which
  lists it under their double marking instead).
- `submit`: one mark (pass or fail, a note) for every observed item, all at once; only by the
  assigned assessor, once. Second marks never change the session's outcome.
- `session_marks`: a session's assignments, and its second marks once both sides are in (the
  assignment completed and every observed item observed): never to an assessor still blind.

Every assignment and every submission is written to the audit log (``double_mark.assign``,
``double_mark.submit``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator

from ...core.instants import utc_text
from ...storage.double_marks import Assignment, DuplicateAssignmentError, MarkIn
from ...storage.port import StoreError
from ...storage.reviews import AuditEntry
from .access import Action, Principal
from .errors import ConflictError, FieldProblem, ForbiddenError, InvalidError, NotFoundError
from .models import MAX_TEXT, Model, Name
from .service import ReviewService

MARKERS = frozenset({"assessor", "admin"})  # roles that may be asked to mark (may observe)


class AssignIn(Model):
    assessor: Name = Field(description="the second assessor's token name")


class SecondMarkIn(Model):
    criterion: Name
    verdict: Literal["pass", "fail"]
    note: str = Field(default="", max_length=MAX_TEXT)

    @field_validator("note")
    @classmethod
    def _note(cls, value: str) -> str:
        return value.strip()


class SecondMarksIn(Model):
    marks: list[SecondMarkIn] = Field(max_length=1000, description="one per observed item")


class AssignmentOut(Model):
    id: int
    session: str
    learner: str
    scenario: str
    rubric: str
    rubric_version: int
    assessor: str
    assigned_by: str
    assigned_at: str
    completed_at: str | None = Field(description="null until the assessor submitted")


class SecondMarkOut(Model):
    criterion: str
    verdict: str
    note: str
    assessor: str
    recorded_at: str


class SessionMarksOut(Model):
    session: str
    assignments: list[AssignmentOut]
    revealed: bool = Field(description="whether both sides are in (every assignment completed "
                           "and every observed item observed), so the marks are shown")
    marks: list[SecondMarkOut] = Field(description="empty until `revealed`")


def assign(service: ReviewService, who: Principal, session_id: str,
           body: AssignIn) -> AssignmentOut:  # fmt: skip
    """Ask `body.assessor` to mark the session's observed items a second time, blind."""
    if not who.may(Action.ASSIGN_DOUBLE_MARKING):
        raise ForbiddenError("Only trainers and admins assign double marking.")
    record = service._visible(who, session_id)
    _, entry = service._reviewable(record)
    if not _observed(service, session_id):
        raise InvalidError(f"rubric {entry.rubric.rubric!r} has no observed items to mark")
    assessor = body.assessor
    if not any(t.name == assessor and t.revoked_at is None and t.role in MARKERS
               for t in service.review.tokens()):  # fmt: skip
        raise InvalidError(f"no live assessor or admin token named {assessor!r}",
                           [FieldProblem("body.assessor", "unknown assessor")])  # fmt: skip
    seen = service.review.observations([session_id]) + service.review.overrides([session_id])
    if any(r.actor == assessor for r in seen):
        raise InvalidError(f"{assessor!r} has recorded marks on this session already: they "
                           "would not mark blind", [FieldProblem("body.assessor",
                                                                 "not blind")])  # fmt: skip
    at = _now()
    audit = AuditEntry(who.name, who.role, "double_mark.assign", f"{session_id}/{assessor}",
                       session=session_id, detail={"assessor": assessor})  # fmt: skip
    try:
        made = service.double_marks.assign(session_id, assessor, by=who.name, at=at, audit=audit)
    except DuplicateAssignmentError as exc:
        raise ConflictError(str(exc)) from None
    return _out(service, made)


def mine(service: ReviewService, who: Principal) -> list[AssignmentOut]:
    """`who`'s open double-marking assignments, oldest first."""
    if who.role not in MARKERS:
        return []
    return [_out(service, a)
            for a in service.double_marks.assignments(assessor=who.name, open_only=True)]


def submit(service: ReviewService, who: Principal, session_id: str,
           body: SecondMarksIn) -> AssignmentOut:  # fmt: skip
    """Record `who`'s second marks of the session (every observed item once)."""
    service._visible(who, session_id)
    found = service.double_marks.assignments(sessions=[session_id], assessor=who.name)
    if not found:
        raise NotFoundError(f"you are not assigned to double-mark session {session_id!r}")
    if found[0].completed_at is not None:
        raise ConflictError(f"you double-marked session {session_id!r} already "
                            f"({found[0].completed_at})")  # fmt: skip
    items = _observed(service, session_id)
    given = [m.criterion for m in body.marks]
    problems = [FieldProblem(f"body.marks.{k}.criterion", "not an observed item")
                for k, c in enumerate(given) if c not in items]  # fmt: skip
    problems += [FieldProblem("body.marks", f"{c!r} marked more than once")
                 for c in sorted({c for c in given if given.count(c) > 1})]  # fmt: skip
    problems += [FieldProblem("body.marks", f"{c!r} not marked") for c in items
                 if c not in given]  # fmt: skip
    if problems:
        raise InvalidError("mark every observed item once: " + ", ".join(items), problems)
    at = _now()
    audit = AuditEntry(who.name, who.role, "double_mark.submit", session_id, session=session_id,
                       detail={"marks": {m.criterion: m.verdict for m in body.marks}})  # fmt: skip
    try:
        done = service.double_marks.submit(
            found[0].id, [MarkIn(m.criterion, m.verdict, m.note) for m in body.marks],
            actor=who.name, at=at, audit=audit)  # fmt: skip
    except StoreError as exc:  # completed meanwhile by another request of theirs
        raise ConflictError(str(exc)) from None
    return _out(service, done)


def session_marks(service: ReviewService, who: Principal, session_id: str) -> SessionMarksOut:
    """The session's assignments, and its second marks once both sides are in."""
    service._visible(who, session_id)
    if who.role == "learner":
        raise ForbiddenError("Double marking is for trainers, assessors and admins.")
    made = service.double_marks.assignments(sessions=[session_id])
    if service.blind(who, [session_id]):
        made = [a for a in made if a.assessor == who.name]
    items = _observed(service, session_id)
    observed = {o.criterion for o in service.review.observations([session_id])}
    revealed = bool(made) and all(a.completed_at is not None for a in made) and all(
        c in observed for c in items)
    marks = [SecondMarkOut(criterion=m.criterion, verdict=m.verdict, note=m.note,
                           assessor=m.actor, recorded_at=m.recorded_at)
             for m in service.double_marks.marks([session_id])] if revealed else []
    return SessionMarksOut(session=session_id, assignments=[_out(service, a) for a in made],
                           revealed=revealed, marks=marks)  # fmt: skip


def _observed(service: ReviewService, session_id: str) -> list[str]:
    """The session's observed items (criterion ids, rubric order); empty when its rubric is
    not known here."""
    record = service.store.session(session_id)
    entry = None if record is None else service.catalog.find(
        record.info.rubric, record.info.rubric_version, record.info.rubric_sha256)
    if entry is None:
        return []
    return [c.id for c in entry.rubric.criteria if c.observed is not None]


def _out(service: ReviewService, a: Assignment) -> AssignmentOut:
    record = service.store.session(a.session)
    info = None if record is None else record.info
    return AssignmentOut(
        id=a.id, session=a.session, learner=info.learner if info else "",
        scenario=info.scenario if info else "", rubric=info.rubric if info else "",
        rubric_version=info.rubric_version if info else 0, assessor=a.assessor,
        assigned_by=a.assigned_by, assigned_at=a.assigned_at, completed_at=a.completed_at,
    )  # fmt: skip


def _now() -> str:
    return utc_text(datetime.now(UTC), "microseconds")
