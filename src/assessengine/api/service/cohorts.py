"""`CohortService`: the review queue and the cohort dashboard, over the cohort index
(`storage.cohorts.CohortStore`).

Before each query the index is brought up to date: every closed, scored session whose report
or review changed since it was indexed is indexed again, with the session page's rules
(`verdicts.review`: the latest observation and override of each criterion), so the queue and
the dashboard count exactly what the session pages show. A session without observations or
overrides is indexed from its report alone (no rubric needed). The first query over a large
store indexes every session once (1.5 ms each measured); later ones only what changed.

Who: admins, trainers and assessors (`Action.READ_COHORTS`); learners are refused.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from ...core.ids import SITE_SEPARATOR, site_problem
from ...core.instants import to_utc, utc_text
from ...core.report import finite
from ...storage.appdb import AppDb
from ...storage.cohort_numbers import CohortNumbers, CriterionRow, GroupRow
from ...storage.cohorts import (
    CohortQuery,
    CohortStore,
    IndexedSession,
    QueueRow,
    StaleSession,
    VerdictRow,
)
from . import double_marking
from .access import Action, Principal
from .catalog import Entry
from .cohort_models import (
    Breakdown,
    CohortOut,
    CriterionRate,
    CriterionRef,
    FirstPass,
    PassRate,
    QueueCounts,
    QueueItem,
    QueuePage,
    QueueReason,
    Reason,
)
from .errors import FieldProblem, ForbiddenError, InvalidError
from .models import SessionSummary
from .service import MAX_PAGE, ReviewService, SessionFilters, decode_cursor, encode_cursor
from .verdicts import review

INDEX_CHUNK: Final = 1000       # sessions indexed per transaction
MAX_QUEUE_PAGE: Final = 500
MAX_EXPORT_ROWS: Final = 50_000  # rows of one CSV export
SLOWEST: Final = 5               # criteria listed as slowest improving
CACHED: Final = 64               # dashboards kept (per filters) until the index changes
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)
OUTCOMES: Final = ("pass", "fail", "incomplete")
SOURCES: Final = ("simulator", "field")
PERIODS: Final = ("day", "month")
Period = Literal["day", "month"]
Progress = Callable[[int, int], None]
"""`CohortService.refresh`'s progress report: (sessions indexed so far, sessions to index)."""


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """The review queue's filters (None: any); times are inclusive bounds on `opened_at`;
    `outcome` is the counted outcome (with overrides)."""

    reason: Reason | None = None
    scenario: str | None = None
    rubric: str | None = None
    learner: str | None = None
    outcome: str | None = None
    opened_from: datetime | None = None
    opened_to: datetime | None = None

    def query(self) -> CohortQuery:
        return CohortQuery(learner=self.learner, scenario=self.scenario, rubric=self.rubric,
                           outcome=self.outcome, opened_from=_stamp(self.opened_from),
                           opened_to=_stamp(self.opened_to))  # fmt: skip

    def params(self) -> dict[str, str]:
        """The filters as query parameters (what `queue_filters` reads back)."""
        given = {"reason": self.reason, "scenario": self.scenario, "rubric": self.rubric,
                 "learner": self.learner, "outcome": self.outcome,
                 "from": _param_time(self.opened_from), "to": _param_time(self.opened_to)}
        return {k: v for k, v in given.items() if v}


@dataclass(frozen=True, slots=True)
class CohortFilters:
    """The dashboard's filters (None: any); `period` None: by day over at most 92 days."""

    rubric: str | None = None
    rubric_version: int | None = None
    scenario: str | None = None
    source: str | None = None
    site: str | None = None
    opened_from: datetime | None = None
    opened_to: datetime | None = None
    period: Period | None = None

    def query(self) -> CohortQuery:
        return CohortQuery(rubric=self.rubric, rubric_version=self.rubric_version,
                           scenario=self.scenario, source=self.source, site=self.site,
                           opened_from=_stamp(self.opened_from),
                           opened_to=_stamp(self.opened_to))  # fmt: skip

    def params(self) -> dict[str, str]:
        given = {"rubric": self.rubric, "version": None if self.rubric_version is None else
                 str(self.rubric_version), "scenario": self.scenario, "source": self.source,
                 "site": self.site, "from": _param_time(self.opened_from),
                 "to": _param_time(self.opened_to), "period": self.period}  # fmt: skip
        return {k: v for k, v in given.items() if v}


class CohortService:
    """The queue and the dashboard over the store of `reviews`; `db` is a connection of the
    cohort index's own to the same database (closed by `close`)."""

    def __init__(self, reviews: ReviewService, db: AppDb) -> None:
        self.reviews, self._db = reviews, db
        self.store = CohortStore(db)
        self._refresh_lock = threading.Lock()
        self._mark: int | None = None  # `CohortStore.change_mark` of the latest refresh
        self._generation = 0           # refreshes that found a change (the cache's key)
        self._cache_lock = threading.Lock()
        self._cache: dict[CohortFilters, tuple[int, CohortOut]] = {}

    @classmethod
    def open(cls, reviews: ReviewService, db_path: str | Path) -> CohortService:
        """Over the store `db_path` names (the one `reviews` uses), with a connection of its
        own."""
        return cls(reviews, AppDb(db_path))

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------------------ index

    def refresh(self, progress: Progress | None = None) -> int:
        """Index every closed, scored session whose report or review changed since it was
        indexed; returns how many were (re)indexed. The reviewed outcomes that replicated
        review rows made due are recomputed first (`ReviewService.outcomes_up_to_date`: one
        indexed lookup when none is). When nothing the index derives from
        changed since the last refresh (`CohortStore.changed_since`: one indexed lookup),
        nothing is compared at all. `progress(done, total)` is called after each chunk of
        `INDEX_CHUNK` sessions (the first refresh of a large store, `index_at_start`)."""
        with self._refresh_lock:
            self.reviews.outcomes_up_to_date()  # a change it makes marks the index changed
            if self._mark is not None and not self.store.changed_since(self._mark):
                return 0
            mark = self.store.change_mark()
            total = self.store.stale_count() if progress is not None else 0
            done = 0
            while stale := self.store.stale(INDEX_CHUNK):
                self.store.put(self._indexed(stale))
                done += len(stale)
                if progress is not None:
                    progress(done, max(total, done))
                if len(stale) < INDEX_CHUNK:
                    break
            self.store.forget_changes(mark)
            self._mark = mark
            self._generation += 1
        return done

    def _indexed(self, stale: Sequence[StaleSession]) -> list[IndexedSession]:
        reviewed = {s.session for s in stale if s.reviewed_at is not None}
        observations = self.reviews.review.observations(sorted(reviewed))
        overrides = self.reviews.review.overrides(sorted(reviewed))
        out = []
        entries: dict[tuple[Any, Any, Any], Entry | None] = {}
        for s in stale:
            info, report = _loads(s.info), _loads(s.report)
            which = (info.get("rubric"), info.get("rubric_version"), info.get("rubric_sha256"))
            if which not in entries:
                entries[which] = self.reviews.catalog.find_for(info)
            entry = entries[which]
            obs = [o for o in observations if o.session == s.session]
            ovs = [o for o in overrides if o.session == s.session]
            out.append(_index(s, info, report, entry, obs, ovs))
        return out

    # ------------------------------------------------------------------------------ queue

    def queue(
        self, who: Principal, filters: QueueFilters, *, cursor: str | None = None,
        limit: int = 50,
    ) -> QueuePage:  # fmt: skip
        """Closed sessions that need a person, newest first, with the counts per reason."""
        _allow(who)
        self.refresh()
        limit = max(1, min(limit, MAX_QUEUE_PAGE))
        query = filters.query()
        rows = self.store.queue(query, reason=filters.reason,
                                before_key=decode_cursor(cursor, "q"), limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        counts = self.store.queue_counts(query)
        return QueuePage(
            counts=QueueCounts(total=counts.total, critical=counts.critical,
                               pending=counts.pending, incomplete=counts.incomplete),
            items=self._items(self._seen(who, rows)), limit=limit,
            next_cursor=encode_cursor("q", rows[-1].key) if more and rows else None,
            double_marking=double_marking.mine(self.reviews, who),
        )  # fmt: skip

    def queue_export(self, who: Principal, filters: QueueFilters) -> list[QueueItem]:
        """Every session of the queue under `filters`, newest first (at most
        `MAX_EXPORT_ROWS`; more is refused: narrow the filters)."""
        _allow(who)
        self.refresh()
        rows = self.store.queue(filters.query(), reason=filters.reason,
                                limit=MAX_EXPORT_ROWS + 1)  # fmt: skip
        if len(rows) > MAX_EXPORT_ROWS:
            raise InvalidError(f"more than {MAX_EXPORT_ROWS} sessions match; narrow the "
                               "filters (a date range, a rubric)")  # fmt: skip
        items: list[QueueItem] = []
        for k in range(0, len(rows), INDEX_CHUNK):
            items += self._items(self._seen(who, rows[k:k + INDEX_CHUNK]))
        return items

    def next_in_queue(self, who: Principal, session: str, filters: QueueFilters) -> str | None:
        """The queue's session after `session` (the next older one; from the newest again
        at the end), never `session` itself; None when nothing else is queued."""
        _allow(who)
        self.refresh()
        key = self.store.key_of(session)
        query = filters.query()
        after = [] if key is None else self.store.queue(query, reason=filters.reason,
                                                        before_key=key, limit=1)
        if not after:
            after = [r for r in self.store.queue(query, reason=filters.reason, limit=2)
                     if r.session != session][:1]  # fmt: skip
        return after[0].session if after else None

    def sessions_export(self, who: Principal, filters: SessionFilters) -> list[SessionSummary]:
        """Every session `list_sessions` gives under `filters`, newest first (at most
        `MAX_EXPORT_ROWS`; more is refused). Learners get their own."""
        items: list[SessionSummary] = []
        cursor = None
        while True:
            page = self.reviews.list_sessions(who, filters, cursor=cursor, limit=MAX_PAGE)
            items += page.items
            if len(items) > MAX_EXPORT_ROWS:
                raise InvalidError(f"more than {MAX_EXPORT_ROWS} sessions match; narrow the "
                                   "filters (a date range, a rubric)")  # fmt: skip
            cursor = page.next_cursor
            if cursor is None:
                return items

    def _seen(self, who: Principal, rows: Sequence[QueueRow]) -> list[QueueRow]:
        """`rows` without the sessions `who` is to double-mark (blind: `ReviewService.blind`)."""
        hidden = self.reviews.blind(who, [r.session for r in rows])
        return [r for r in rows if r.session not in hidden]

    def _items(self, rows: Sequence[QueueRow]) -> list[QueueItem]:
        criteria = self.store.queue_criteria([r.key for r in rows])
        return [_queue_item(r, criteria.get(r.key, [])) for r in rows]

    # ------------------------------------------------------------------------------ cohort

    def cohort(self, who: Principal, filters: CohortFilters) -> CohortOut:
        """The dashboard's numbers (see `CohortOut`). The numbers of the latest `CACHED`
        filters are kept until something the index derives from changes (`refresh`), so a
        dashboard viewed again costs the change check only."""
        _allow(who)
        self.refresh()
        marker = self._generation  # read before the numbers are: they are at least as new
        with self._cache_lock:
            hit = self._cache.get(filters)
        if hit is not None and hit[0] == marker:
            return hit[1]
        out = cohort_out(self.store.cohort(filters.query(), period=filters.period))
        with self._cache_lock:
            self._cache.pop(filters, None)
            self._cache[filters] = (marker, out)
            while len(self._cache) > CACHED:
                self._cache.pop(next(iter(self._cache)))
        return out


# ==================================================================================== index


def _index(
    s: StaleSession, info: Mapping[str, Any], report: Mapping[str, Any], entry: Entry | None,
    observations: Sequence[Any], overrides: Sequence[Any],
) -> IndexedSession:  # fmt: skip
    """A session's index rows: from the report alone when nobody reviewed it, else with the
    session page's rules."""
    stored = [c for c in report.get("criteria", []) if isinstance(c, Mapping)]
    observed = _observed_ids(entry, stored)
    outcome = str(report.get("outcome", "incomplete"))
    machine, score = outcome, finite(report.get("score"))
    finals = [str(c.get("verdict", "pending")) for c in stored]
    if observations or overrides:
        reviewed = review(s.session, report, entry, observations, overrides)
        finals = [c.final_verdict for c in reviewed.criteria]
        machine, outcome = reviewed.machine.outcome, reviewed.with_overrides.outcome
        score = reviewed.with_overrides.score
    verdicts = tuple(
        VerdictRow(k, str(c.get("id", "")), str(c.get("title", c.get("id", ""))),
                   bool(c.get("critical")), str(c.get("id")) in observed,
                   str(c.get("verdict", "pending")), final)
        for k, (c, final) in enumerate(zip(stored, finals, strict=True))
    )  # fmt: skip
    return IndexedSession(
        key=s.key, saved_at=s.saved_at, reviewed_at=s.reviewed_at, outcome=outcome,
        machine_outcome=machine, score=score, site=site_of(s.session, info),
        critical_failed=any(v.critical and v.final == "fail" for v in verdicts),
        pending=any(v.observed and v.final == "pending" for v in verdicts),
        verdicts=verdicts,
    )  # fmt: skip


def site_of(session: str, info: Mapping[str, Any]) -> str | None:
    """Where a session was taken: its OPEN metadata's ``site`` when it is text, else the site
    that qualified its id at a multi-site engine (``north:S1``, `ingest.sites`); None when
    neither says."""
    metadata = info.get("metadata")
    given = metadata.get("site") if isinstance(metadata, Mapping) else None
    if isinstance(given, str) and given:
        return given
    prefix, sep, _ = session.partition(SITE_SEPARATOR)
    return prefix if sep and site_problem(prefix) is None else None


def _observed_ids(entry: Entry | None, stored: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """The `observed` criteria: from the rubric when it is known and matches the report,
    else those still pending in the closed session's report (only people decide them)."""
    if entry is not None:
        ids, observed = _rubric_observed(entry)
        if ids == [c.get("id") for c in stored]:
            return observed
    return frozenset(str(c.get("id")) for c in stored if c.get("verdict") == "pending")


_OBSERVED: dict[str, tuple[list[str], frozenset[str]]] = {}


def _rubric_observed(entry: Entry) -> tuple[list[str], frozenset[str]]:
    """A rubric's criterion ids in order and its `observed` ones (once per compiled rubric)."""
    found = _OBSERVED.get(entry.sha256)
    if found is None:
        criteria = entry.rubric.criteria
        found = ([c.id for c in criteria],
                 frozenset(c.id for c in criteria if c.template == "observed"))  # fmt: skip
        _OBSERVED[entry.sha256] = found
    return found


def _loads(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ==================================================================================== queue

_REASON_TEXT: Final[dict[Reason, str]] = {
    "critical": "Critical failed", "pending": "Observation pending",
    "incomplete": "Outcome incomplete",
}  # fmt: skip


def _queue_item(row: QueueRow, criteria: Sequence[VerdictRow]) -> QueueItem:
    reasons = []
    critical = [CriterionRef(id=v.criterion, title=v.title) for v in criteria
                if v.critical and v.final == "fail"]  # fmt: skip
    pending = [CriterionRef(id=v.criterion, title=v.title) for v in criteria
               if v.observed and v.final == "pending"]  # fmt: skip
    for kind, refs, flag in (("critical", critical, row.critical_failed),
                             ("pending", pending, row.pending),
                             ("incomplete", [], row.outcome == "incomplete")):  # fmt: skip
        if flag:
            kind = cast(Reason, kind)
            titles = ", ".join(r.title for r in refs)
            text = _REASON_TEXT[kind] + (f": {titles}" if titles else "")
            reasons.append(QueueReason(kind=kind, text=text, criteria=refs))
    return QueueItem(
        session=row.session, learner=row.learner, scenario=row.scenario, rubric=row.rubric,
        rubric_version=row.rubric_version, source=cast(Any, row.source), site=row.site,
        opened_at=row.opened_at, closed_at=row.closed_at, outcome=row.outcome,
        machine_outcome=row.machine_outcome, score=finite(row.score), reasons=reasons,
    )  # fmt: skip


# ==================================================================================== cohort


def cohort_out(numbers: CohortNumbers) -> CohortOut:
    """The API's shape of the index's numbers (rates computed once, here)."""
    first, last, period = numbers.first_opened, numbers.last_opened, numbers.period
    criteria = [_criterion_rate(r) for r in numbers.criteria]
    slow = sorted(
        (c for c in criteria if c.improvement is not None and c.first_attempt_failure_rate),
        key=lambda c: (c.improvement, -(c.first_attempt_failure_rate or 0.0), c.rubric,
                       c.criterion),
    )[:SLOWEST]  # fmt: skip
    return CohortOut(
        sessions=numbers.sessions, first_opened=first, last_opened=last,
        period=cast(Any, period),
        pass_rates=[PassRate(rubric=p.rubric, rubric_version=p.rubric_version, period=p.period,
                             sessions=p.sessions, passed=p.passed, failed=p.failed,
                             incomplete=p.incomplete, pass_rate=p.passed / p.sessions)
                    for p in numbers.periods],
        criteria=criteria,
        attempts_to_first_pass=[FirstPass(rubric=f.rubric, attempt=f.attempt,
                                          learners=f.learners) for f in numbers.first_pass],
        by_scenario=_breakdown(numbers.groups, lambda g: g.scenario),
        by_site=_breakdown(numbers.groups, lambda g: g.site),
        by_source=_breakdown(numbers.groups, lambda g: g.source),
        slowest_improving=slow,
    )  # fmt: skip


def _rate(failed: int, decided: int) -> float | None:
    return failed / decided if decided else None


def _criterion_rate(r: CriterionRow) -> CriterionRate:
    first = _rate(r.first_failed, r.first_decided)
    later = _rate(r.later_failed, r.later_decided)
    decided = r.first_decided + r.later_decided
    failed = r.first_failed + r.later_failed
    return CriterionRate(
        rubric=r.rubric, criterion=r.criterion, title=r.title, decided=decided, failed=failed,
        failure_rate=_rate(failed, decided), first_attempt_decided=r.first_decided,
        first_attempt_failure_rate=first, later_decided=r.later_decided,
        later_failure_rate=later,
        improvement=None if first is None or later is None else first - later,
        undecided=r.undecided,
    )  # fmt: skip


def _breakdown(groups: Sequence[GroupRow], key: Any) -> list[Breakdown]:
    sums: dict[str | None, list[int]] = {}
    for g in groups:
        total = sums.setdefault(key(g), [0, 0, 0, 0])
        for k, v in enumerate((g.sessions, g.passed, g.failed, g.incomplete)):
            total[k] += v
    return [
        Breakdown(key=k, sessions=v[0], passed=v[1], failed=v[2], incomplete=v[3],
                  pass_rate=v[1] / v[0])
        for k, v in sorted(sums.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]  # fmt: skip


# ==================================================================================== input


def queue_filters(params: Mapping[str, str]) -> QueueFilters:
    """The queue's filters from query parameters as a page's form sends them (empty: any);
    InvalidError naming each bad one."""
    problems: list[FieldProblem] = []
    reason = _choice(params, "reason", REASONS, problems)
    outcome = _choice(params, "outcome", OUTCOMES, problems)
    opened_from = _time(params, "from", problems, end=False)
    opened_to = _time(params, "to", problems, end=True)
    _raise(problems)
    return QueueFilters(
        reason=cast(Any, reason), scenario=_text(params, "scenario"),
        rubric=_text(params, "rubric"), learner=_text(params, "learner"), outcome=outcome,
        opened_from=opened_from, opened_to=opened_to,
    )  # fmt: skip


def cohort_filters(params: Mapping[str, str]) -> CohortFilters:
    """The dashboard's filters from a page's query parameters (empty: any)."""
    problems: list[FieldProblem] = []
    source = _choice(params, "source", SOURCES, problems)
    period = _choice(params, "period", PERIODS, problems)
    version = _text(params, "version")
    number = None
    if version is not None:
        if version.isdigit() and 1 <= int(version) <= 1_000_000:
            number = int(version)
        else:
            problems.append(FieldProblem("query.version", f"{version!r} is not a rubric "
                                         "version (a whole number from 1 to 1000000)"))  # fmt: skip
    opened_from = _time(params, "from", problems, end=False)
    opened_to = _time(params, "to", problems, end=True)
    _raise(problems)
    return CohortFilters(
        rubric=_text(params, "rubric"), rubric_version=number, scenario=_text(params, "scenario"),
        source=source, site=_text(params, "site"), opened_from=opened_from,
        opened_to=opened_to, period=cast(Any, period),
    )  # fmt: skip


def check_range(opened_from: datetime | None, opened_to: datetime | None) -> None:
    """InvalidError when the range ends before it starts (compared in UTC, `to_utc`: one
    bound may carry an offset and the other not)."""
    if (opened_from is not None and opened_to is not None
            and to_utc(opened_to) < to_utc(opened_from)):  # fmt: skip
        raise InvalidError("'to' is before 'from'",
                           [FieldProblem("query.to", "before 'from'")])  # fmt: skip


MAX_TEXT: Final = 200


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name, "").strip()
    return value[:MAX_TEXT] or None


def _choice(
    params: Mapping[str, str], name: str, allowed: Sequence[str], problems: list[FieldProblem]
) -> str | None:
    value = _text(params, name)
    if value is not None and value not in allowed:
        problems.append(FieldProblem(f"query.{name}", f"{value!r} is not one of "
                                     f"{', '.join(allowed)}"))  # fmt: skip
        return None
    return value


def _time(
    params: Mapping[str, str], name: str, problems: list[FieldProblem], *, end: bool
) -> datetime | None:
    """A date (``2026-12-06``: the whole day) or an ISO 8601 time (UTC if it names no
    offset)."""
    value = _text(params, name)
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end else time.min, UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        problems.append(FieldProblem(f"query.{name}", f"{value!r} is not a date (YYYY-MM-DD) "
                                     "or an ISO 8601 time"))  # fmt: skip
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _raise(problems: Sequence[FieldProblem]) -> None:
    if problems:
        raise InvalidError("; ".join(f"{p.name.removeprefix('query.')}: {p.reason}"
                                     for p in problems), problems)  # fmt: skip


def _stamp(moment: datetime | None) -> str | None:
    """A bound as the store writes times (`core.instants.utc_text`)."""
    return None if moment is None else utc_text(moment, "microseconds")


def _param_time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    if utc.time() == time.min:
        return utc.date().isoformat()
    if utc.time() == time.max:
        return utc.date().isoformat()
    return utc.isoformat()


def _allow(who: Principal) -> None:
    if not who.may(Action.READ_COHORTS):
        raise ForbiddenError("The review queue and the cohort dashboard are for assessors, "
                             "trainers and admins.")  # fmt: skip
