"""Renewal: a policy's `recertification` (validated, problems located FILE:LINE:COL), the
service renewing an active credential on fresh sessions inside the renewal window (a new
credential whose evidence points at the one it renews), the learner's progress showing it due,
and the expiring credentials listed for staff (API and page)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from assessengine.adapters.policies import check_policy_file, load_policy
from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.service.credentials import CredentialApi, CredentialSettings
from assessengine.cli import main
from assessengine.core.credentials import RENEWAL_GENRE, renewed_credential
from assessengine.core.policy import Policy, parse_period
from assessengine.credential_service import (
    AlreadyIssuedError,
    CredentialService,
    EngineUrls,
    NotEligibleError,
)
from assessengine.storage.credentials import MemoryCredentialStore
from assessengine.storage.memory import MemoryStore

from .stored_payloads import copy_store
from .test_api_credentials import MINE, OBSERVED, POLICY, template  # noqa: F401 (fixture)
from .test_api_support import LEARNER, make_tokens
from .test_credentials_e2e import SAMPLER, record_sessions
from .test_policy import GOOD, write

FORKLIFT = "forklift-load-handling"
RENEWABLE = GOOD + """\
recertification:
  within: 90 days
  requirements:
    - {rubric: forklift-load-handling, source: field, passes: 1, observed_by_assessor: true}
"""


# ================================================================================ the policy


def test_the_shipped_forklift_policy_is_renewable() -> None:
    policy = load_policy(POLICY)
    assert policy.recertification is not None
    assert policy.recertification.within == parse_period("90 days")
    renewal = policy.renewal()
    assert [r.source for r in renewal.requirements] == ["field"]
    assert renewal.recertification is None


@pytest.mark.parametrize(("old", "new", "where", "message"), [
    ("valid_for: 3 years\n", "", (12, 3), "`recertification` needs `valid_for`"),
    ("within: 90 days", "within: 3 years", (13, 11),
     "`recertification.within` (3 years) must be shorter than `valid_for` (3 years)"),
    ("within: 90 days", "within: soon", (13, 11), "expected a period"),
    ("within: 90 days\n", "", (13, 5), "missing required key 'within'"),
    ("rubric: forklift-load-handling, source: field, passes: 1",
     "rubric: network-lab, source: field, passes: 1", (15, 16),
     "rubric 'network-lab' is not one the policy requires"),
    ("passes: 1, observed_by_assessor: true}\n",
     "passes: 1, observed_by_assessor: true}\n"
     "    - {rubric: forklift-load-handling, source: field}\n", (13, 3),
     "two requirements for rubric 'forklift-load-handling' from the field"),
    ("passes: 1, observed_by_assessor: true}\n",
     "passes: 1, min_version: 9, observed_by_assessor: true}\n", (15, 79),
     "min_version 9 cannot be met"),
    ("  requirements:\n    - {rubric: forklift-load-handling, source: field, passes: 1, "
     "observed_by_assessor: true}\n", "  requirements: []\n", (14, 17), "at least 1"),
])  # fmt: skip
def test_recertification_problems_are_located_in_the_file(
    tmp_path: Path, old: str, new: str, where: tuple[int, int], message: str
) -> None:
    assert old in RENEWABLE
    path = write(tmp_path, RENEWABLE.replace(old, new, 1))
    result = check_policy_file(path)
    assert not result.ok
    located = [(p.location.line, p.location.column, p.message) for p in result.problems]
    assert any((line, col) == where and message in text for line, col, text in located), located


def test_credential_check_reports_recertification_problems_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, RENEWABLE.replace("within: 90 days", "within: 3 years"))
    result = CliRunner().invoke(main, ["credential", "check", str(path)])
    assert result.exit_code == 2
    assert f"{path}:13:11: " in result.output
    assert "Traceback" not in result.output


# ================================================================================ the service

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class Renewing:
    store: MemoryStore
    closed: dict[str, datetime]
    clock: Clock
    service: CredentialService
    policy: Policy

    def field_session(self, session: str, at: datetime) -> None:
        record_sessions(self.store, FORKLIFT, "L-1", [(session, "field", "competent")])
        self.closed[session] = at


@pytest.fixture
def renewing() -> Iterator[Renewing]:
    store = MemoryStore()
    record_sessions(store, FORKLIFT, "L-1", [("S-1", "simulator", "competent"),
                                             ("S-2", "simulator", "competent"),
                                             ("F-1", "field", "competent")])  # fmt: skip
    closed = {"S-1": T0, "S-2": T0 + timedelta(hours=1), "F-1": T0 + timedelta(days=2)}
    clock = Clock(T0 + timedelta(days=5))
    service = CredentialService(SAMPLER.FixedCloseTimes(store, closed), MemoryCredentialStore(),
                                key=IssuerKey.generate(), clock=clock,
                                urls=EngineUrls("https://engine.example.org"))  # fmt: skip
    yield Renewing(store, closed, clock, service, load_policy(POLICY))
    store.close()


def test_a_credential_is_renewed_on_fresh_sessions_inside_the_window(renewing: Renewing) -> None:
    r = renewing
    first = r.service.issue("L-1", r.policy)
    assert first.valid_until == datetime(2029, 1, 15, 9, 0, tzinfo=UTC)
    opens = datetime(2028, 10, 17, 9, 0, tzinfo=UTC)  # 90 days before

    r.clock.now = datetime(2027, 6, 1, tzinfo=UTC)
    with pytest.raises(AlreadyIssuedError, match="or renew it from 2028-10-17") as early:
        r.service.issue("L-1", r.policy)
    assert early.value.renewal_opens == opens

    r.clock.now = opens + timedelta(days=10)  # the window is open: the old sessions do not count
    with pytest.raises(NotEligibleError) as stale:
        r.service.issue("L-1", r.policy)
    assert len(stale.value.reasons) == 1
    assert "in-field" in stale.value.reasons[0]

    r.field_session("F-2", opens - timedelta(days=1))  # before the window: not fresh
    with pytest.raises(NotEligibleError):
        r.service.issue("L-1", r.policy)
    r.field_session("F-3", opens + timedelta(days=3))
    renewed = r.service.issue("L-1", r.policy)
    assert renewed.valid_until == datetime(2032, 1, 15, 9, 0, tzinfo=UTC)  # from the old end
    assert renewed_credential(renewed.document) == first.id
    evidence = renewed.document["evidence"]
    assert [e["id"].rsplit("/", 1)[-1] for e in evidence[:-1]] == ["F-3"]
    assert evidence[-1]["genre"] == RENEWAL_GENRE
    assert evidence[-1]["id"] == first.id
    assert r.service.verify(renewed.document).ok
    assert r.service.active_credential("L-1", POLICY) == renewed

    with pytest.raises(AlreadyIssuedError, match="or renew it from 2031-10-17"):
        r.service.issue("L-1", r.policy)


def test_an_expired_or_revoked_credential_is_earned_again_in_full(renewing: Renewing) -> None:
    r = renewing
    first = r.service.issue("L-1", r.policy)
    r.service.revoke(first.id, reason="supervision not recorded", by="admin")
    r.clock.now = datetime(2028, 12, 1, tzinfo=UTC)  # in the window, but nothing is held
    again = r.service.issue("L-1", r.policy)  # the full requirements: every session counts
    assert renewed_credential(again.document) is None
    assert len(again.document["evidence"]) == 3
    r.clock.now = datetime(2031, 12, 1, tzinfo=UTC)  # `again` has expired: not a renewal
    third = r.service.issue("L-1", r.policy)
    assert renewed_credential(third.document) is None


def test_a_policy_without_recertification_still_refuses_a_second_credential(
    renewing: Renewing,
) -> None:
    r = renewing
    plain = r.policy.model_copy(update={"recertification": None})
    r.service.issue("L-1", plain)
    r.clock.now = datetime(2029, 1, 10, tzinfo=UTC)  # five days before it expires
    with pytest.raises(AlreadyIssuedError, match="revoke it to issue a new one"):
        r.service.issue("L-1", plain)


# ================================================================================ over HTTP


@dataclasses.dataclass
class Http:
    client: TestClient
    tokens: dict[str, str]
    clock: Clock

    def get(self, url: str, role: str = "trainer") -> object:
        return self.client.get(url, headers={"Authorization": f"Bearer {self.tokens[role]}"})


@pytest.fixture
def http(template: Path, tmp_path: Path) -> Iterator[Http]:  # noqa: F811
    """The API with LEARNER's credential issued nearly three years before now: it expires in
    30 days, and its renewal window opened 60 days ago (the stored sessions ended after that,
    so they count as fresh here; the freshness rule itself is the service test's)."""
    db = tmp_path / "engine.db"
    copy_store(template, db)
    settings = CredentialSettings(base_url="https://engine.example.org")
    app = create_app(db_path=db, credentials=settings)
    clock = Clock(datetime.now(UTC))
    app.state.credentials = CredentialApi(app.state.service, db, settings=settings,
                                          clock=clock)  # fmt: skip
    tokens = make_tokens(app.state.service)
    with TestClient(app) as client:
        staff = {"Authorization": f"Bearer {tokens['assessor']}"}
        for session in MINE:
            for criterion in OBSERVED:
                client.post(f"/api/v1/sessions/{session}/observations", headers=staff,
                            json={"criterion": criterion, "verdict": "pass", "note": "seen"})
        real = clock.now
        clock.now = parse_period("3 years").before(real) + timedelta(days=30)
        issued = client.post("/api/v1/credentials/issue", headers=staff,
                             json={"learner": LEARNER, "policy": POLICY})  # fmt: skip
        assert issued.status_code == 201, issued.text
        clock.now = real
        yield Http(client, tokens, clock)
        app.state.credentials.close()


def test_progress_shows_a_credential_due_for_renewal(http: Http) -> None:
    progress = http.get(f"/api/v1/learners/{LEARNER}/progress", "learner").json()  # type: ignore[attr-defined]
    mine = next(p for p in progress if p["policy"] == POLICY)
    assert mine["due_for_renewal"] is True
    assert mine["held"] is not None
    assert mine["eligible"] is True
    assert [r["text"] for r in mine["requirements"]] == [
        "Pass forklift-load-handling once in the field, observed by an assessor"]
    http.client.cookies.set("ae_token", http.tokens["learner"])
    page = http.client.get(f"/learners/{LEARNER}")
    assert "Due for renewal" in page.text
    assert "due for renewal" in page.text


def test_expiring_credentials_are_listed_for_staff_until_renewed(http: Http) -> None:
    listed = http.get("/api/v1/credentials/expiring?within_days=45").json()  # type: ignore[attr-defined]
    assert [(c["learner"], c["policy"], c["days_left"], c["renewable_now"]) for c in listed] == [
        (LEARNER, POLICY, 29, True)]
    assert http.get("/api/v1/credentials/expiring?within_days=10").json() == []  # type: ignore[attr-defined]
    assert http.get("/api/v1/credentials/expiring", "learner").status_code == 403  # type: ignore[attr-defined]
    for bad in ("0", "3651", "x"):
        answer = http.get(f"/api/v1/credentials/expiring?within_days={bad}")
        assert answer.status_code == 422  # type: ignore[attr-defined]
    http.client.cookies.set("ae_token", http.tokens["trainer"])
    page = http.client.get("/credentials/expiring?within_days=45")
    assert page.status_code == 200
    assert LEARNER in page.text
    assert "open now" in page.text
    bad_page = http.client.get("/credentials/expiring?within_days=0")
    assert bad_page.status_code == 422

    renewed = http.client.post("/api/v1/credentials/issue", json={
        "learner": LEARNER, "policy": POLICY},
        headers={"Authorization": f"Bearer {http.tokens['assessor']}"})  # fmt: skip
    assert renewed.status_code == 201, renewed.text
    assert renewed_credential(renewed.json()) == listed[0]["id"]
    assert http.get("/api/v1/credentials/expiring?within_days=45").json() == []  # type: ignore[attr-defined]
    audit = http.get("/api/v1/audit?action=credential.issue", "admin").json()  # type: ignore[attr-defined]
    assert audit["items"][0]["detail"]["renews"] == listed[0]["id"]
