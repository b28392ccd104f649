""""The latest" review row is the one recorded last, not the one with the highest id.

Each place of a federation numbers its rows in its own id range (the hub's below every
site's), so a replicated row's id says where it was written, not when. Here the rows are
written in one store the way replication leaves them: the later-recorded row with the LOWER
id (written first, with a later ``recorded_at``), on SQLite and PostgreSQL. The two-server
version (a site overrides, the hub overrides later) is in tests/test_sites_pg.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from assessengine.api.service import ReviewService
from assessengine.api.service.access import Principal
from assessengine.api.service.cohorts import CohortService
from assessengine.api.service.models import ObservationIn, OutcomeScore
from assessengine.api.service.service import SessionFilters
from assessengine.core.latest import latest_by, newest, oldest_first
from assessengine.storage.cohorts import CohortQuery, ValidityPair
from assessengine.storage.reviews import AuditEntry, SessionQuery

from .test_cohorts import fill
from .test_store_report_columns import _sql

ITEM = "looks_before_reversing"  # the forklift rubric's observed item
EARLY, LATE = "2026-03-01T09:00:00.000000Z", "2026-03-01T10:00:00.000000Z"


# ==================================================================================== core


@dataclass(frozen=True)
class Row:
    id: int
    recorded_at: str
    criterion: str = "c"


def test_the_later_recorded_row_wins_over_a_higher_id() -> None:
    hub_late, site_early = Row(1 << 40, LATE), Row(2 << 40, EARLY)
    assert latest_by([hub_late, site_early], lambda r: r.criterion) == {"c": hub_late}
    assert latest_by([site_early, hub_late], lambda r: r.criterion) == {"c": hub_late}
    assert newest([site_early, hub_late]) == hub_late
    assert oldest_first([hub_late, site_early]) == [site_early, hub_late]


def test_rows_of_the_same_instant_are_ordered_by_id_the_same_way_in_any_input_order() -> None:
    a, b = Row(5, LATE), Row(9, LATE)
    assert latest_by([a, b], lambda r: r.criterion) == latest_by([b, a], lambda r: r.criterion)
    assert newest([b, a]) == b
    assert newest([]) is None


def test_latest_by_keeps_one_row_per_key() -> None:
    rows = [Row(1, LATE, "x"), Row(2, EARLY, "x"), Row(3, EARLY, "y")]
    assert latest_by(rows, lambda r: r.criterion) == {"x": rows[0], "y": rows[2]}


# ==================================================================================== store


@dataclass
class Filled:
    url: str
    service: ReviewService
    admin: Principal


@pytest.fixture
def filled(store_url: str) -> Iterator[Filled]:
    fill(store_url)
    service = ReviewService.open(store_url)
    try:
        _, token = service.create_token(name="admin", role="admin", learner=None, actor="t")
        yield Filled(store_url, service, service.authenticate(token))
    finally:
        service.close()


def _override(f: Filled, sid: str, criterion: str, verdict: str, at: str, by: str) -> int:
    """An override as replication writes it: recorded at `at` (by the place that made it)."""
    with f.service.review.session_write(sid) as tx:
        return tx.add_override(criterion=criterion, verdict=verdict, machine_verdict="pass",
                               reason=f"{verdict} at {at}", actor=by, at=at)  # fmt: skip


def _observe(f: Filled, sid: str, verdict: str, at: str, by: str) -> int:
    with f.service.review.session_write(sid) as tx:
        return tx.add_observation(criterion=ITEM, verdict=verdict, note=f"{verdict} at {at}",
                                  observed_at=at, t=None, location=None, actor=by, at=at)


def _a_passed_criterion(f: Filled, sid: str) -> str:
    return next(c.id for c in f.service.session(f.admin, sid).criteria if c.verdict == "pass")


def test_a_later_override_with_a_lower_id_is_the_one_that_counts(filled: Filled) -> None:
    sid = "S-000"
    criterion = _a_passed_criterion(filled, sid)
    hub = _override(filled, sid, criterion, "fail", LATE, "hub assessor")
    site = _override(filled, sid, criterion, "not_applicable", EARLY, "site assessor")
    assert hub < site
    shown = next(c for c in filled.service.session(filled.admin, sid).criteria
                 if c.id == criterion)  # fmt: skip
    assert shown.override is not None
    assert (shown.override.id, shown.override.by, shown.final_verdict) == (
        hub, "hub assessor", "fail")
    # both listed, in the order they were recorded
    assert [o.id for o in filled.service.review.overrides([sid])] == [site, hub]
    with filled.service.review.session_write(sid) as tx:
        assert [o.id for o in tx.overrides()] == [site, hub]


def test_a_later_observation_with_a_lower_id_is_the_one_that_counts(filled: Filled) -> None:
    sid = "S-001"
    hub = _observe(filled, sid, "fail", LATE, "hub assessor")
    site = _observe(filled, sid, "pass", EARLY, "site assessor")
    assert hub < site
    shown = next(c for c in filled.service.session(filled.admin, sid).criteria if c.id == ITEM)
    assert shown.observation is not None
    assert (shown.observation.id, shown.verdict) == (hub, "fail")
    assert [o.id for o in filled.service.review.observations([sid])] == [site, hub]


def test_the_assessors_agreement_counts_their_later_override_with_a_lower_id(
    filled: Filled,
) -> None:
    sid = "S-002"
    criterion = _a_passed_criterion(filled, sid)
    _override(filled, sid, criterion, "fail", LATE, "ann")  # at the hub, later
    _override(filled, sid, criterion, "pass", EARLY, "ann")  # at the site, earlier
    cohorts = CohortService.open(filled.service, filled.url)
    try:
        cohorts.refresh()
        rows = [r for r in cohorts.store.agreement(CohortQuery())
                if r.actor == "ann" and r.criterion == criterion]  # fmt: skip
    finally:
        cohorts.close()
    assert [(r.machine, r.assessor) for r in rows] == [("pass", "fail")]


def test_the_audit_lists_entries_newest_recorded_first_whatever_their_ids(
    filled: Filled,
) -> None:
    review = filled.service.review
    review.record(AuditEntry("hub", "admin", "t.late", "x", session="S-003"), LATE)
    review.record(AuditEntry("site", "admin", "t.early", "x", session="S-003"), EARLY)
    listed = [r.action for r in review.audit(session="S-003")]
    assert listed == ["t.late", "t.early"]
    first = review.audit(session="S-003", limit=1)
    rest = review.audit(session="S-003", before_id=first[0].id)
    assert [r.action for r in first + rest] == ["t.late", "t.early"]


def test_validity_pairs_the_simulator_session_opened_last_whatever_its_id(
    filled: Filled,
) -> None:
    """A learner's sessions may be opened at several places (a field log uploaded at the hub,
    simulator sessions at a site): the latest is the one opened last, not the highest id."""
    f = filled
    for sid, verdict in (("S-015", "pass"), ("S-000", "pass"), ("S-010", "fail")):  # L-0's
        f.service.observe(f.admin, sid, ObservationIn(criterion=ITEM, verdict=verdict,
                                                      note="seen"))  # fmt: skip
    counted = {sid: f.service.session(f.admin, sid).with_overrides for sid in ("S-000",
                                                                               "S-010")}
    assert counted["S-000"] != counted["S-010"]
    cohorts = CohortService.open(f.service, f.url)
    try:
        cohorts.refresh()
        pairs = {p.learner: p for p in cohorts.store.validity(CohortQuery())}
        assert _simulator(pairs["L-0"]) == counted["S-010"]  # opened last, the highest id
        _sql(f.url, "UPDATE sessions SET opened_at = :at WHERE session = 'S-000'",
             {"at": "2099-01-01T00:00:00.000000Z"})  # as if opened later, elsewhere
        pairs = {p.learner: p for p in cohorts.store.validity(CohortQuery())}
    finally:
        cohorts.close()
    assert _simulator(pairs["L-0"]) == counted["S-000"]


def _simulator(pair: ValidityPair) -> OutcomeScore:
    return OutcomeScore(outcome=pair.simulator_outcome, score=pair.simulator_score)


# ==================================================================================== sessions

LATER = "2099-01-01T00:00:00.000000Z"  # as if opened after every other session, elsewhere


def test_the_session_list_is_newest_opened_first_whatever_the_ids(filled: Filled) -> None:
    f = filled
    every = [r.session for r in f.service.review.session_rows(SessionQuery(), 100)]
    _sql(f.url, "UPDATE sessions SET opened_at = :at WHERE session = 'S-001'", {"at": LATER})
    expected = ["S-001"] + [s for s in every if s != "S-001"]
    assert [r.session for r in f.service.review.session_rows(SessionQuery(), 100)] == expected
    paged, cursor = [], None
    while True:  # the cursor continues in the same order, one session a page
        page = f.service.list_sessions(f.admin, SessionFilters(), cursor=cursor, limit=1)
        paged += [s.session for s in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert paged == expected
    history = f.service.learner_history(f.admin, "L-1")  # oldest first: S-001 is the last
    assert [a.session for a in history.rubrics[0].attempts][-1] == "S-001"


def test_the_review_queue_is_newest_opened_first_whatever_the_ids(filled: Filled) -> None:
    f = filled
    _sql(f.url, "UPDATE sessions SET opened_at = :at WHERE session = 'S-000'", {"at": LATER})
    cohorts = CohortService.open(f.service, f.url)
    try:
        cohorts.refresh()
        queued = [r.session for r in cohorts.store.queue(CohortQuery(), limit=100)]
        assert queued[0] == "S-000"
        after = cohorts.store.queue(CohortQuery(), before_key=cohorts.store.key_of("S-000"),
                                    limit=100)  # fmt: skip
    finally:
        cohorts.close()
    assert [r.session for r in after] == queued[1:]
