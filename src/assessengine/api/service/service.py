"""`ReviewService`: everything assessors, trainers, learners and admins do with scored sessions.

No HTTP here: the JSON API (`api/app.py`), the web pages and the CLI call these methods with
the `Principal` a token stands for, and turn `ServiceError`s into their own answers. Every
method checks the principal's role first (`ForbiddenError`), then whether the principal may see the
record at all (a learner asking for another learner's session gets `NotFoundError`, as if it did not
exist), then the input (`InvalidError`, `ConflictError`).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np

from ...core.codec import CodecError, Layout
from ...core.events import load_record
from ...core.ids import qualify
from ...core.instants import utc_text
from ...core.kernel_scorer import score_columns
from ...core.report import Verdict
from ...core.session_columns import decode_session
from ...storage import open_store
from ...storage.double_marks import DoubleMarks, SqlDoubleMarks
from ...storage.port import SessionInfo, SessionRecord, Store, StoreError, disk_full
from ...storage.reviews import (
    AuditEntry,
    ReviewStore,
    RubricRow,
    SessionQuery,
    SessionRow,
    SessionWrite,
    TokenRow,
)
from . import drafts, history, outcomes, series, uploads, views
from . import rescore as rescoring
from .access import ROLES, Action, Principal, Role, new_token, token_hash
from .catalog import Catalog, Entry
from .errors import (
    ConflictError,
    FieldProblem,
    ForbiddenError,
    InsufficientStorageError,
    InvalidError,
    NotFoundError,
    RubricProblemsError,
    TooLargeError,
    UnauthenticatedError,
    check_ids,
)
from .models import (
    AuditOut,
    AuditPage,
    LearnerHistory,
    ObservationIn,
    OverrideIn,
    RescoreIn,
    RescoreOut,
    RubricVersionOut,
    SeriesOut,
    SessionDetail,
    SessionPage,
)
from .verdicts import Reviewed, review

if TYPE_CHECKING:
    from ...archive.cohort import ArchiveSource

MAX_UPLOAD_BYTES: Final = 64 * 2**20
FIELD_BATCH_ROWS: Final = 4096
MAX_PAGE: Final = 500
MAX_KEY: Final = 2**63 - 1
"""The largest row key a cursor may name (the stores' row keys are signed 64-bit numbers)."""
_CURSOR_KEY: Final = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class SessionFilters:
    """The session list's filters (None: any); times are inclusive bounds on `opened_at`."""

    learner: str | None = None
    scenario: str | None = None
    rubric: str | None = None
    outcome: str | None = None
    source: str | None = None
    status: str | None = None
    opened_from: datetime | None = None
    opened_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class FieldUpload:
    """An uploaded field log and what to file it under. `rubric` and `learner` may come from
    the JSONL file's ``open`` record instead; `version` None: the rubric's newest."""

    filename: str
    data: bytes
    content_type: str | None = None
    format: str | None = None
    learner: str | None = None
    rubric: str | None = None
    version: int | None = None
    session: str | None = None


class ReviewService:
    """The review service over one store file. Thread-safe; `close` when done."""

    def __init__(
        self, store: Store, review_store: ReviewStore, catalog: Catalog, *,
        max_upload_bytes: int = MAX_UPLOAD_BYTES, archive: ArchiveSource | None = None,
        site: str | None = None, double_marks: DoubleMarks | None = None,
    ) -> None:  # fmt: skip
        self.store, self.review, self.catalog = store, review_store, catalog
        self.double_marks: DoubleMarks = double_marks or SqlDoubleMarks(review_store.appdb)
        """Second markings (`double_marking`); a session an assessor is to mark a second
        time is shown to them without the first marks until they have marked it (`blind`)."""
        self.max_upload_bytes = max_upload_bytes
        self.archive = archive
        self.site = site
        """The site this service runs at (`Settings.site_id`): the field sessions it files
        get ids ``SITE:ID`` and so do their learners, as the engine's do (`ingest.sites`)."""

    @classmethod
    def open(
        cls, db_path: str | Path, *, rubric_dirs: Sequence[Path] = (),
        scenario_dirs: Sequence[Path] = (), max_upload_bytes: int = MAX_UPLOAD_BYTES,
        archive: ArchiveSource | None = None,
        site: str | None = None,
    ) -> ReviewService:  # fmt: skip
        """Open the store `db_path` names (a path or a store URL; created when missing), then
        the review tables in it."""
        store = open_store(db_path)
        try:
            review_store = ReviewStore(db_path)
        except BaseException:
            store.close()
            raise
        catalog = Catalog(review_store, rubric_dirs=rubric_dirs, scenario_dirs=scenario_dirs)
        return cls(store, review_store, catalog, max_upload_bytes=max_upload_bytes,
                   archive=archive, site=site)  # fmt: skip

    def close(self) -> None:
        self.review.close()
        self.store.close()

    # ================================================================================ tokens

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a live token; UnauthenticatedError for none, unknown or revoked."""
        if not token:
            raise UnauthenticatedError("send 'Authorization: Bearer <token>'")
        row = self.review.token_by_hash(token_hash(token))
        if row is None or row.revoked_at is not None:
            raise UnauthenticatedError("the token is not valid (unknown or revoked)")
        return Principal(row.id, row.name, cast(Role, row.role), row.learner)

    def create_token(
        self, *, name: str, role: str, learner: str | None, actor: str
    ) -> tuple[TokenRow, str]:
        """A new token (row, secret). The secret is returned once and only its hash kept."""
        if role not in ROLES:
            raise InvalidError(
                f"role must be one of {', '.join(ROLES)}", [FieldProblem("role", role)]
            )
        if (role == "learner") != bool(learner):
            raise InvalidError("a learner token needs --learner, and only a learner token takes it",
                          [FieldProblem("learner", "required for role learner only")])
        check_ids(learner=learner)
        if not name.strip():
            raise InvalidError("a token needs a name", [FieldProblem("name", "empty")])
        secret = new_token()
        row = TokenRow("tok_" + uuid.uuid4().hex[:12], name.strip(), role, learner or None,
                       _now(), None)  # fmt: skip
        audit = AuditEntry(actor, "admin", "token.create", row.id,
                           detail={"name": row.name, "role": role, "learner": learner})
        self.review.add_token(row, token_hash(secret), audit)
        return row, secret

    def tokens(self) -> list[TokenRow]:
        return self.review.tokens()

    def revoke_token(self, key: str, *, actor: str) -> list[TokenRow]:
        """Revoke the live tokens with this id or name; NotFoundError when there is none."""
        audit = AuditEntry(actor, "admin", "token.revoke", key)
        revoked = self.review.revoke_token(key, _now(), audit)
        if not revoked:
            raise NotFoundError(f"no live token with id or name {key!r}")
        return revoked

    # ================================================================================ sessions

    def list_sessions(
        self, who: Principal, filters: SessionFilters, *, cursor: str | None = None,
        limit: int = 50,
    ) -> SessionPage:  # fmt: skip
        """Sessions matching `filters`, newest first; `next_cursor` continues the listing."""
        _allow(who, Action.READ_SESSIONS)
        learner = filters.learner
        if who.role == "learner":
            if learner not in (None, who.learner):
                return SessionPage(items=[], next_cursor=None, limit=limit)
            learner = who.learner
        query = SessionQuery(
            learner=learner, scenario=filters.scenario, rubric=filters.rubric,
            outcome=filters.outcome, source=filters.source, status=filters.status,
            opened_from=_stamp(filters.opened_from), opened_to=_stamp(filters.opened_to),
            before_key=decode_cursor(cursor, "s"),
        )  # fmt: skip
        limit = max(1, min(limit, MAX_PAGE))
        rows = self._session_rows(query, limit + 1)
        more = len(rows) > limit
        rows = self._unreviewed(who, rows[:limit])
        next_cursor = encode_cursor("s", rows[-1].key) if more and rows else None
        return SessionPage(items=[views.summary(r) for r in rows], next_cursor=next_cursor,
                           limit=limit)  # fmt: skip

    def session(self, who: Principal, session_id: str) -> SessionDetail:
        """One session with its criteria, verdicts, evidence, observations and overrides."""
        _allow(who, Action.READ_SESSIONS)
        record = self._visible(who, session_id)
        report = self.store.report(session_id)
        hidden = bool(self.blind(who, [session_id]))
        observations = [] if hidden else self.review.observations([session_id])
        overrides = [] if hidden else self.review.overrides([session_id])
        entry = self._entry_of(record)
        reviewed = None if report is None else review(session_id, report, entry, observations,
                                                      overrides)  # fmt: skip
        min_score = None if entry is None else entry.rubric.pass_.min_score
        return views.detail(record, entry is not None, reviewed, observations, overrides,
                            min_score=min_score)  # fmt: skip

    def events(
        self, who: Principal, session_id: str, *, t_from: float | None = None,
        t_to: float | None = None, signals: Sequence[str] | None = None,
        buckets: int | None = None, hold: bool = False, times: bool = True,
    ) -> SeriesOut:  # fmt: skip
        """The session's events in [t_from, t_to]: raw rows, or `buckets` min/max buckets per
        signal (spikes survive). Non-sample events are listed either way. With `hold`, signals
        are sample-and-hold: a row's missing value is the last one reported before it, and a
        bucket holds the value held at its start too (a signal sent only on change is a
        step, never a gap). `times` False leaves out when each bucket's extremes occurred
        (`t_min`, `t_max`: null), which a plot does not need."""
        _allow(who, Action.READ_SESSIONS)
        record = self._visible(who, session_id)
        entry = self._entry_of(record) or self.catalog.find(record.info.rubric)
        if entry is None or entry.scenario.scenario != record.info.scenario:
            raise ConflictError(
                f"scenario {record.info.scenario!r} of this session is not known here"
            )
        layout = Layout.of(entry.scenario)
        names = views.signal_names(signals, layout)
        try:
            cols = decode_session(self.store.batches(session_id), layout)
        except CodecError as exc:
            raise ConflictError(
                f"a stored batch does not decode ({exc}); run assessengine audit"
            ) from None
        end = record.close_t if record.close_t is not None else (
            float(cols.t[-1]) if len(cols) else 0.0
        )
        lo = 0.0 if t_from is None else t_from
        hi = max(end, lo) if t_to is None else t_to
        if hi < lo:
            raise InvalidError("t_to is before t_from", [FieldProblem("query.t_to", "< t_from")])
        whole = series.held(cols) if hold else None
        part = series.window(cols if whole is None else whole, lo, hi)
        return views.series_out(session_id, part, layout, names, lo, hi, buckets, whole=whole,
                                times=times)  # fmt: skip

    # ================================================================================ review

    def observe(self, who: Principal, session_id: str, body: ObservationIn) -> SessionDetail:
        """Record an in-field observation of an `observed` criterion; the session's outcome is
        re-evaluated at once."""
        _allow(who, Action.OBSERVE)
        record = self._visible(who, session_id)
        self._not_blind(who, session_id)
        report, entry = self._reviewable(record)
        criterion = _criterion(entry, body.criterion)
        if criterion.observed is None:
            raise InvalidError(
                f"criterion {body.criterion!r} is decided by the scorer ({criterion.template}); "
                "only 'observed' criteria take observations (use an override instead)",
                [FieldProblem("body.criterion", "not an observed criterion")],
            )
        at = _now()
        observed_at = _stamp(body.observed_at) or at
        location = None if body.location is None else body.location.model_dump(exclude_none=True)
        with self.review.session_write(session_id) as tx:
            tx.add_observation(criterion=criterion.id, verdict=body.verdict, note=body.note,
                               observed_at=observed_at, t=body.t, location=location,
                               actor=who.name, at=at)  # fmt: skip
            reviewed = review(session_id, report, entry, tx.observations(), tx.overrides())
            _keep_outcome(tx, reviewed, at)
            tx.audit(AuditEntry(
                who.name, who.role, "observation.create", f"{session_id}/{criterion.id}",
                session=session_id, reason=body.note,
                detail={"criterion": criterion.id, "verdict": body.verdict,
                        "observed_at": observed_at, "t": body.t, "location": location,
                        "outcome": reviewed.machine.outcome},
            ), at)  # fmt: skip
        return self.session(who, session_id)

    def override(self, who: Principal, session_id: str, body: OverrideIn) -> SessionDetail:
        """Override a criterion's verdict with a written reason. The machine verdict stays;
        the session shows the outcome with and without overrides."""
        _allow(who, Action.OVERRIDE)
        record = self._visible(who, session_id)
        self._not_blind(who, session_id)
        report, entry = self._reviewable(record)
        criterion = _criterion(entry, body.criterion)
        at = _now()
        with self.review.session_write(session_id) as tx:
            before = review(session_id, report, entry, tx.observations(), tx.overrides())
            machine = next(c.verdict for c in before.criteria if c.id == criterion.id)
            tx.add_override(criterion=criterion.id, verdict=body.verdict, machine_verdict=machine,
                            reason=body.reason, actor=who.name, at=at)  # fmt: skip
            reviewed = review(session_id, report, entry, tx.observations(), tx.overrides())
            _keep_outcome(tx, reviewed, at)
            tx.audit(AuditEntry(
                who.name, who.role, "override.create", f"{session_id}/{criterion.id}",
                session=session_id, reason=body.reason,
                detail={"criterion": criterion.id, "verdict": body.verdict,
                        "machine_verdict": machine, "outcome": reviewed.machine.outcome,
                        "outcome_with_overrides": reviewed.with_overrides.outcome},
            ), at)  # fmt: skip
        return self.session(who, session_id)

    # ================================================================================ field

    def upload_field_session(self, who: Principal, upload: FieldUpload) -> SessionDetail:
        """Create a `field` session from an uploaded log: stored as chained batches, closed,
        scored with the rubric's compiled kernel, the report saved."""
        _allow(who, Action.UPLOAD_FIELD_SESSION)
        if len(upload.data) > self.max_upload_bytes:
            raise TooLargeError(f"the file is larger than {self.max_upload_bytes} bytes")
        fmt = uploads.guess_format(upload.filename, upload.content_type, upload.format)
        opened = _open_record(upload.data) if fmt == "jsonl" else {}
        learner = upload.learner or _text(opened.get("learner"))
        rubric_id = upload.rubric or _text(opened.get("rubric"))
        missing = [FieldProblem(name, "required (a form field, or in the file's open record)")
                   for name, value in (("learner", learner), ("rubric", rubric_id))
                   if not value]  # fmt: skip
        if missing or learner is None or rubric_id is None:
            raise InvalidError("say whose session this is and which rubric scores it", missing)
        check_ids(session=upload.session, learner=learner)
        session_id = upload.session or f"field-{uuid.uuid4().hex[:12]}"
        if self.site is not None:
            session_id, learner = qualify(self.site, session_id), qualify(self.site, learner)
            check_ids(session=session_id, learner=learner)
        entry = self.catalog.find(rubric_id, upload.version)
        if entry is None:
            which = f"rubric {rubric_id!r}" + (f" version {upload.version}" if upload.version
                                               else "")  # fmt: skip
            raise InvalidError(f"{which} is not known here", [FieldProblem("rubric", "unknown")])
        if self.store.session(session_id) is not None:
            raise ConflictError(f"session {session_id!r} exists already")
        log = uploads.parse_log(upload.data, fmt, entry.scenario, upload.filename)
        metadata = {"filename": upload.filename, "format": fmt, "uploaded_by": who.name,
                    "events": len(log.columns), "renumbered": log.renumbered}  # fmt: skip
        info = SessionInfo(session_id, learner, entry.scenario.scenario, entry.rubric.rubric,
                           entry.rubric.version, entry.sha256, "field", metadata)  # fmt: skip
        try:
            self._store_field_session(info, log, entry)
        except StoreError as exc:
            if disk_full(exc):
                raise InsufficientStorageError(
                    f"the server's disk is full; the session was not kept ({exc})"
                ) from exc
            raise ConflictError(f"the store refused the session: {exc}") from None
        self.review.record(AuditEntry(
            who.name, who.role, "field_session.create", session_id, session=session_id,
            detail={**metadata, "rubric": entry.rubric.rubric, "version": entry.rubric.version},
        ), _now())  # fmt: skip
        return self.session(who, session_id)

    def _store_field_session(self, info: SessionInfo, log: uploads.FieldLog, entry: Entry) -> None:
        """Score the log, then file the session with its batches and report in one
        transaction (`Store.file_session`): nothing of it is kept if any part fails."""
        cols = log.columns
        items = uploads.encode_batches(info.session, cols, Layout.of(entry.scenario),
                                       FIELD_BATCH_ROWS)  # fmt: skip
        close_t = max(log.close_t, float(cols.t[-1]))
        (report,) = score_columns(entry.compiled, cols.to_batch(0), [info.session],
                                  np.array([close_t], np.float64))  # fmt: skip
        self.store.file_session(info, items, close_t, report.to_data())

    # ================================================================================ rubrics

    def rubric_versions(self, who: Principal, rubric: str | None = None) -> list[RubricVersionOut]:
        _allow(who, Action.READ_RUBRICS)
        return [e.describe() for e in self.catalog.entries(rubric)]

    def upload_rubric(
        self, who: Principal, filename: str, data: bytes
    ) -> tuple[RubricVersionOut, bool]:
        """Check and store a new rubric version; (version, created). Raises RubricProblemsError
        (each with line and column) when the text does not pass the check, and ConflictError when
        the version number is taken by other content."""
        _allow(who, Action.UPLOAD_RUBRIC)
        text, entry = self._checked_rubric(filename, data)
        rubric = entry.rubric
        known = self.catalog.find(rubric.rubric, rubric.version)
        if known is not None:
            return known.describe(), False
        at = _now()
        row = RubricRow(0, rubric.rubric, rubric.version, entry.sha256, rubric.scenario,
                        rubric.title, filename, text, who.name, at)  # fmt: skip
        audit = AuditEntry(who.name, who.role, "rubric.upload",
                           f"{rubric.rubric}@{rubric.version}",
                           detail={"sha256": row.sha256, "filename": filename})  # fmt: skip
        try:
            self.review.add_rubric(row, audit)
        except StoreError as exc:
            if disk_full(exc):
                raise InsufficientStorageError(f"the server's disk is full ({exc})") from exc
            raise ConflictError(str(exc)) from None
        found = self.catalog.find(rubric.rubric, rubric.version, row.sha256)
        return (found or entry).describe(), True

    def preview_rubric(self, who: Principal, filename: str, data: bytes) -> drafts.Preview:
        """A draft version checked as an upload is (the same errors), and what it would change
        on the newest closed sessions of its rubric against the version published now. Nothing
        is stored."""
        _allow(who, Action.UPLOAD_RUBRIC)
        _, entry = self._checked_rubric(filename, data)
        base = self.catalog.find(entry.rubric.rubric)
        rows = self._session_rows(SessionQuery(rubric=entry.rubric.rubric, status="closed"),
                                        drafts.PREVIEW_SESSIONS)  # fmt: skip
        records = [r for r in (self.store.session(row.session) for row in rows) if r is not None]
        observations = self.review.observations([r.info.session for r in records])
        return drafts.preview(entry, base, records, self.store.batches, observations)

    def _checked_rubric(self, filename: str, data: bytes) -> tuple[str, Entry]:
        """Uploaded rubric text and its checked version. Raises TooLargeError,
        RubricProblemsError (each problem with line and column) and ConflictError (the version
        number is taken by other content)."""
        if len(data) > 1_000_000:
            raise TooLargeError("a rubric file is at most 1 MB")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise RubricProblemsError("the file is not UTF-8 text",
                                 [FieldProblem("file", "not UTF-8", 1, 1)]) from None  # fmt: skip
        checked = self.catalog.check_text(text, filename)
        if checked.entry is None:
            problems = [FieldProblem("file", p.message, p.location.line, p.location.column)
                        for p in checked.problems]  # fmt: skip
            raise RubricProblemsError(f"{len(problems)} problem(s) in {filename}", problems)
        rubric = checked.entry.rubric
        known = self.catalog.find(rubric.rubric, rubric.version)
        if known is not None and known.sha256 != checked.entry.sha256:
            raise ConflictError(f"rubric {rubric.rubric!r} version {rubric.version} exists with "
                           f"sha256 {known.sha256}; give the new text a new version number")
        return text, checked.entry

    def rubric_text(self, who: Principal, rubric: str, version: int) -> str:
        """The uploaded text of a version (file versions: the file's text)."""
        _allow(who, Action.READ_RUBRICS)
        for row in self.review.rubrics(rubric):
            if row.version == version:
                return row.text
        raise NotFoundError(f"no uploaded rubric {rubric!r} version {version}")

    def rescore(self, who: Principal, body: RescoreIn) -> RescoreOut:
        """Re-score sessions under another rubric version; which verdicts changed."""
        _allow(who, Action.RESCORE)
        target = self.catalog.find(body.rubric, body.version)
        if target is None:
            raise NotFoundError(f"no rubric {body.rubric!r} version {body.version}")
        records = self._rescore_records(body)
        candidates = [self._candidate(record) for record in records]
        results = rescoring.rescore(target, candidates, self.store.batches,
                                    archive=self.archive)  # fmt: skip
        summary = {
            "rubric": body.rubric, "version": body.version, "sha256": target.sha256,
            "sessions": [r.model_dump() for r in results],
            "changed_sessions": sum(bool(r.changed) for r in results),
            "changed_verdicts": sum(len(r.changed) for r in results),
        }  # fmt: skip
        at = _now()
        audit = AuditEntry(who.name, who.role, "rescore.run", f"{body.rubric}@{body.version}",
                           detail={"sessions": len(results),
                                   "changed_sessions": summary["changed_sessions"]})  # fmt: skip
        key = self.review.add_rescore(body.rubric, body.version, target.sha256, summary, audit, at)
        return RescoreOut.model_validate({**summary, "id": key, "by": who.name, "at": at})

    def rescore_result(self, who: Principal, key: int) -> RescoreOut:
        _allow(who, Action.RESCORE)
        found = self.review.rescore(key)
        if found is None:
            raise NotFoundError(f"no re-scoring run {key}")
        actor, at, result = found
        return RescoreOut.model_validate({**result, "id": key, "by": actor, "at": at})

    def _rescore_records(self, body: RescoreIn) -> list[SessionRecord]:
        if body.sessions is not None:
            records = [self.store.session(sid) for sid in dict.fromkeys(body.sessions)]
            unknown = [FieldProblem(f"body.sessions[{k}]", f"unknown session {sid!r}")
                       for k, (sid, r) in enumerate(zip(body.sessions, records, strict=False))
                       if r is None]  # fmt: skip
            if unknown:
                raise InvalidError("some sessions do not exist", unknown)
            return [r for r in records if r is not None]
        cohort = body.cohort
        assert cohort is not None  # the model requires one of the two
        rows = self._session_rows(SessionQuery(
            learner=cohort.learner, scenario=cohort.scenario, rubric=cohort.rubric,
            source=cohort.source, outcome=cohort.outcome, status="closed",
            opened_from=_stamp(cohort.opened_from), opened_to=_stamp(cohort.opened_to),
        ), cohort.limit)  # fmt: skip
        found = [self.store.session(r.session) for r in rows]
        return [r for r in found if r is not None]

    def _candidate(self, record: SessionRecord) -> rescoring.Candidate:
        sid = record.info.session
        report = self.store.report(sid)
        observations = self.review.observations([sid])
        if report is None:
            return rescoring.Candidate(record, {}, None, observations)
        reviewed = review(sid, report, self._entry_of(record), observations, [])
        before: dict[str, Verdict] = {c.id: c.verdict for c in reviewed.criteria}
        return rescoring.Candidate(record, before, reviewed.machine, observations)

    # ================================================================================ learners

    def learner_history(
        self, who: Principal, learner: str, *, rubric: str | None = None
    ) -> LearnerHistory:
        """Attempts per rubric (oldest first) with their scores, and per-competency status."""
        _allow(who, Action.READ_LEARNERS)
        if not who.sees_learner(learner):
            raise NotFoundError(f"no learner {learner!r}")
        rows = self._session_rows(SessionQuery(learner=learner, rubric=rubric), 100_000)
        rows = self._unreviewed(who, rows[::-1])
        sessions = [r.session for r in rows]
        hidden = self.blind(who, sessions)
        observations = [o for o in self.review.observations(sessions) if o.session not in hidden]
        overrides = [o for o in self.review.overrides(sessions) if o.session not in hidden]
        attempts: list[history.Scored] = []
        for row in rows:
            record = self.store.session(row.session)
            report = self.store.report(row.session)
            if record is None or report is None:
                attempts.append(history.Scored(row, None, None))
                continue
            entry = self._entry_of(record)
            mine = [o for o in observations if o.session == row.session]
            theirs = [o for o in overrides if o.session == row.session]
            attempts.append(history.Scored(row, entry, review(row.session, report, entry, mine,
                                                               theirs)))  # fmt: skip
        return history.build(learner, attempts)

    # ================================================================================ audit

    def audit(
        self, who: Principal, *, session: str | None = None, actor: str | None = None,
        action: str | None = None, since: datetime | None = None,
        until: datetime | None = None, cursor: str | None = None, limit: int = 100,
    ) -> AuditPage:  # fmt: skip
        """Changes, newest first."""
        _allow(who, Action.READ_AUDIT)
        limit = max(1, min(limit, MAX_PAGE))
        rows = self.review.audit(
            session=session, actor=actor, action=action, since=_stamp(since),
            until=_stamp(until), before_id=decode_cursor(cursor, "a"), limit=limit + 1,
        )  # fmt: skip
        more = len(rows) > limit
        rows = rows[:limit]
        items = [AuditOut(id=r.id, at=r.at, actor=r.actor, role=r.role, action=r.action,
                          target=r.target, session=r.session, reason=r.reason, detail=r.detail)
                 for r in rows]  # fmt: skip
        next_cursor = encode_cursor("a", rows[-1].id) if more and rows else None
        return AuditPage(items=items, next_cursor=next_cursor, limit=limit)

    # ================================================================================ blind

    def blind(self, who: Principal, sessions: Sequence[str]) -> frozenset[str]:
        """Those of `sessions` that `who` is to mark a second time and has not yet: shown to
        them as the scorer left them (no observation, no override, nor who made one)."""
        if who.role == "learner" or not sessions:
            return frozenset()
        return frozenset(a.session for a in self.double_marks.assignments(
            sessions=list(sessions), assessor=who.name, open_only=True))  # fmt: skip

    def _not_blind(self, who: Principal, session_id: str) -> None:
        """Refuse a first mark from someone still to mark the session blind: it would make
        them a first marker who has seen nothing of the others' marks only by accident."""
        if self.blind(who, [session_id]):
            raise ConflictError(f"you are to double-mark session {session_id!r} blind: submit "
                                "your second marks first (POST .../double-marks)")

    def _unreviewed(self, who: Principal, rows: list[SessionRow]) -> list[SessionRow]:
        """`rows` with the reviewed outcome left out of those `who` is blind to."""
        hidden = self.blind(who, [r.session for r in rows])
        return [replace(r, reviewed=None) if r.session in hidden else r for r in rows]

    # ================================================================================ helpers

    def outcomes_up_to_date(self) -> int:
        """Recompute the reviewed outcomes that review rows from another place of a federation
        made due (`outcomes.recompute_due`); how many. Called before outcomes are read."""
        return outcomes.recompute_due(self)

    def _session_rows(self, query: SessionQuery, limit: int) -> list[SessionRow]:
        """`ReviewStore.session_rows`, with every reviewed outcome up to date."""
        self.outcomes_up_to_date()
        return self.review.session_rows(query, limit)

    def _visible(self, who: Principal, session_id: str) -> SessionRecord:
        record = self.store.session(session_id)
        if record is None or not who.sees_learner(record.info.learner):
            raise NotFoundError(f"no session {session_id!r}")
        return record

    def _entry_of(self, record: SessionRecord) -> Entry | None:
        info = record.info
        return self.catalog.find(info.rubric, info.rubric_version, info.rubric_sha256)

    def _reviewable(self, record: SessionRecord) -> tuple[dict[str, Any], Entry]:
        report = self.store.report(record.info.session)
        if report is None:
            raise ConflictError(
                f"session {record.info.session!r} has no report yet (is it closed?)"
            )
        entry = self._entry_of(record)
        if entry is None:
            raise ConflictError(
                f"rubric {record.info.rubric!r} v{record.info.rubric_version} (sha256 "
                f"{record.info.rubric_sha256[:12]}...) is not known here; upload it first"
            )
        return report, entry


# ==================================================================================== helpers


def _allow(who: Principal, action: Action) -> None:
    if not who.may(action):
        raise ForbiddenError(f"role {who.role!r} may not {action.value.replace('_', ' ')}")


def _criterion(entry: Entry, criterion_id: str) -> Any:
    for criterion in entry.rubric.criteria:
        if criterion.id == criterion_id:
            return criterion
    known = ", ".join(c.id for c in entry.rubric.criteria)
    raise InvalidError(f"rubric {entry.rubric.rubric!r} has no criterion {criterion_id!r}",
                  [FieldProblem("body.criterion", f"unknown; one of: {known}")])  # fmt: skip


def _now() -> str:
    return utc_text(datetime.now(UTC), "microseconds")


def _stamp(value: datetime | None) -> str | None:
    """A datetime as the store writes times (UTC, microseconds, Z, the year in four digits so
    that stamps compare as text); naive means UTC. An instant that its offset puts before year
    1 or after year 9999 in UTC is held at that end: no stored time lies beyond it."""
    return None if value is None else utc_text(value, "microseconds")


def encode_cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: str) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, key = text.partition(":")
        if prefix != kind or not _CURSOR_KEY.fullmatch(key) or int(key) > MAX_KEY:
            raise ValueError(text)
        return int(key)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidError("the cursor is not one this listing gave",
                      [FieldProblem("query.cursor", "invalid cursor")]) from None  # fmt: skip


def _keep_outcome(tx: SessionWrite, reviewed: Reviewed, at: str) -> None:
    row = reviewed.outcome_row()
    if row is not None:
        tx.set_outcome(row, at)


def _open_record(data: bytes) -> dict[str, Any]:
    """The ``open`` object of a JSONL log's first line, if it has one."""
    for line in data[:65536].splitlines():
        if line.strip():
            try:
                first = load_record(line.decode("utf-8-sig"))
            except ValueError:  # UnicodeDecodeError too; parsing the log names the fault
                return {}
            opened = first.get("open") if isinstance(first, dict) else None
            return opened if isinstance(opened, dict) else {}
    return {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
