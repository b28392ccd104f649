"""Assessors' review over HTTP: in-field observations re-evaluate the outcome, overrides sit
beside the machine verdict, every change is in the audit log, learners' history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_api_support import LEARNER, Api, open_api

OBSERVED = "looks_before_reversing"


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path_factory, tmp_path)


def observe(api: Api, sid: str, verdict: str = "pass", **extra: Any) -> Any:
    body = {"criterion": OBSERVED, "verdict": verdict, "note": "looked back every time", **extra}
    return api.post(f"/api/v1/sessions/{sid}/observations", "assessor", json=body)


def criterion(detail: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in detail["criteria"] if c["id"] == cid)


def test_an_observation_decides_the_pending_criterion_and_the_outcome_at_once(api: Api) -> None:
    sid = api.stored.forklift_competent[0]
    before = api.get(f"/api/v1/sessions/{sid}").json()
    assert before["machine"]["outcome"] == "incomplete"
    answer = observe(api, sid, t=120.5, observed_at="2026-03-01T09:30:00+01:00",
                     location={"lat": -31.95, "lon": 115.86, "label": "yard B"})  # fmt: skip
    assert answer.status_code == 201, answer.text
    after = answer.json()
    assert after["machine"] == {"outcome": "pass", "score": 100.0}
    assert after["with_overrides"] == after["machine"]
    assert after["scored"] == before["scored"]  # the stored report is untouched
    c = criterion(after, OBSERVED)
    assert (c["scorer_verdict"], c["verdict"], c["decided_by"]) == ("pending", "pass",
                                                                    "observation")  # fmt: skip
    assert c["observation"]["observed_at"] == "2026-03-01T08:30:00.000000Z"
    assert c["observation"]["location"] == {"lat": -31.95, "lon": 115.86, "label": "yard B"}
    assert c["observation"]["by"] == "assessor-1"
    listed = api.get(f"/api/v1/sessions?outcome=pass&learner={after['learner']}").json()
    assert sid in [s["session"] for s in listed["items"]]


def test_the_latest_observation_counts_and_every_one_is_kept(api: Api) -> None:
    sid = api.stored.forklift_competent[1]
    observe(api, sid, "pass")
    detail = observe(api, sid, "fail", note="did not look when reversing out of bay 4").json()
    assert criterion(detail, OBSERVED)["verdict"] == "fail"
    assert detail["machine"] == {"outcome": "pass", "score": 90.0}  # 10 of 100 points lost
    assert [o["verdict"] for o in detail["observations"]] == ["pass", "fail"]


def test_an_observation_of_a_scored_criterion_is_refused(api: Api) -> None:
    sid = api.stored.forklift_competent[0]
    answer = api.post(f"/api/v1/sessions/{sid}/observations", "assessor",
                      json={"criterion": "loaded_speed", "verdict": "pass", "note": "fine"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["name"] == "body.criterion"
    unknown = api.post(f"/api/v1/sessions/{sid}/observations", "assessor",
                       json={"criterion": "nope", "verdict": "pass", "note": "x"})
    assert unknown.status_code == 422


def test_an_observation_needs_a_note_and_a_scored_session(api: Api) -> None:
    sid = api.stored.forklift_competent[0]
    blank = observe(api, sid, note="   ")
    assert blank.status_code == 422
    assert blank.json()["errors"][0]["name"] == "body.note"
    still_open = observe(api, api.stored.open_session)
    assert still_open.status_code == 409
    for at in ("0001-01-01T05:00:00+14:00", "9999-12-31T20:00:00-10:00"):  # past the UTC range
        beyond = observe(api, sid, observed_at=at)
        assert beyond.status_code == 422, beyond.text
        assert beyond.json()["errors"][0]["name"] == "body.observed_at"
    early = observe(api, sid, observed_at="0999-06-01T00:00:00Z")
    assert early.status_code == 201, early.text
    observation = criterion(early.json(), OBSERVED)["observation"]
    assert observation["observed_at"] == "0999-06-01T00:00:00.000000Z"  # a four-digit year


def test_an_override_needs_a_written_reason(api: Api) -> None:
    sid = api.stored.forklift_mixed[0]
    for reason in ("", "  "):
        answer = api.post(f"/api/v1/sessions/{sid}/overrides", "assessor",
                          json={"criterion": "loaded_speed", "verdict": "pass", "reason": reason})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["name"] == "body.reason"
    missing = api.post(f"/api/v1/sessions/{sid}/overrides", "assessor",
                       json={"criterion": "loaded_speed", "verdict": "pass"})
    assert missing.status_code == 422


def test_an_override_is_kept_beside_the_machine_verdict(api: Api) -> None:
    sid = next(s for s in api.stored.forklift_mixed
               if api.get(f"/api/v1/sessions/{s}").json()["machine"]["outcome"] == "fail"
               and _failed_critical(api, s))  # fmt: skip
    before = api.get(f"/api/v1/sessions/{sid}").json()
    failed = _failed_critical(api, sid)
    reason = "inspections done on the rig's paper checklist: the sim did not log them"
    answer = api.post(f"/api/v1/sessions/{sid}/overrides", "assessor",
                      json={"criterion": failed, "verdict": "pass", "reason": reason})
    assert answer.status_code == 201, answer.text
    after = answer.json()
    c = criterion(after, failed)
    assert (c["scorer_verdict"], c["verdict"], c["final_verdict"]) == ("fail", "fail", "pass")
    assert c["override"]["machine_verdict"] == "fail"
    assert c["override"]["reason"] == reason
    assert after["machine"] == before["machine"]
    assert after["overridden"] is True
    assert after["machine"] == {"outcome": "fail", "score": 90.0}  # a critical gate failed
    # the gate passes with the override; the observed item still waits for an assessor
    assert after["with_overrides"] == {"outcome": "incomplete", "score": 90.0}
    summary = api.get(f"/api/v1/sessions?learner={after['learner']}&limit=500").json()["items"]
    row = next(s for s in summary if s["session"] == sid)
    assert row["machine"] == after["machine"]
    assert row["with_overrides"] == after["with_overrides"]
    assert row["overridden"] is True


def _critical_fails(detail: dict[str, Any]) -> list[str]:
    return [c["id"] for c in detail["criteria"] if c["critical"] and c["final_verdict"] == "fail"]


def _failed_critical(api: Api, sid: str) -> str | None:
    fails = _critical_fails(api.get(f"/api/v1/sessions/{sid}").json())
    return fails[0] if fails else None


def test_overriding_every_failed_criterion_changes_only_the_outcome_with_overrides(
    api: Api,
) -> None:
    sid = api.stored.forklift_mixed[0]
    detail = api.get(f"/api/v1/sessions/{sid}").json()
    for c in detail["criteria"]:
        if c["verdict"] in ("fail", "pending"):
            detail = api.post(f"/api/v1/sessions/{sid}/overrides", "assessor", json={
                "criterion": c["id"], "verdict": "pass", "reason": "re-assessed in the yard"
            }).json()  # fmt: skip
    assert detail["with_overrides"] == {"outcome": "pass", "score": 100.0}
    assert detail["machine"] != detail["with_overrides"]
    assert detail["scored"]["outcome"] == detail["machine"]["outcome"]


def test_every_change_is_in_the_audit_log_with_who_when_what_why(api: Api) -> None:
    sid = api.stored.forklift_competent[0]
    observe(api, sid)
    api.post(f"/api/v1/sessions/{sid}/overrides", "assessor",
             json={"criterion": "loaded_speed", "verdict": "fail", "reason": "overspeed seen"})
    page = api.get(f"/api/v1/audit?session={sid}", "trainer").json()
    actions = [(e["action"], e["actor"], e["reason"]) for e in page["items"]]
    assert actions == [
        ("override.create", "assessor-1", "overspeed seen"),
        ("observation.create", "assessor-1", "looked back every time"),
    ]
    entry = page["items"][0]
    assert entry["detail"]["machine_verdict"] == "pass"
    assert entry["target"] == f"{sid}/loaded_speed"
    assert entry["at"].endswith("Z")
    tokens = api.get("/api/v1/audit?action=token.create").json()["items"]
    assert {e["detail"]["role"] for e in tokens} == {"admin", "trainer", "assessor", "learner"}


def test_the_audit_log_pages_with_a_cursor(api: Api) -> None:
    for k in range(5):
        observe(api, api.stored.forklift_competent[0], note=f"note {k}")
    seen: list[int] = []
    cursor = ""
    while True:
        page = api.get(f"/api/v1/audit?limit=2&action=observation.create{cursor}").json()
        seen += [e["id"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert len(seen) == 5
    assert seen == sorted(seen, reverse=True)


def test_learner_history_has_attempts_over_time_and_competencies(api: Api) -> None:
    history = api.get(f"/api/v1/learners/{LEARNER}/history", "learner").json()
    assert history["learner"] == LEARNER
    rubrics = {r["rubric"]: r for r in history["rubrics"]}
    assert set(rubrics) == {"forklift-load-handling", "network-lab"}
    forklift = rubrics["forklift-load-handling"]
    opened = [a["opened_at"] for a in forklift["attempts"]]
    assert opened == sorted(opened)
    assert len(forklift["attempts"]) == 3  # the competent run, the mixed run, the open session
    codes = [c["code"] for c in forklift["competencies"]]
    assert codes == ["MH-101", "MH-102", "MH-103", "MH-104", "MH-105"]
    statuses = {c["code"]: c["status"] for c in forklift["competencies"]}
    assert statuses["MH-104"] == "pending"  # the observed criterion
    first = forklift["attempts"][0]["session"]
    observe(api, first)
    again = api.get(f"/api/v1/learners/{LEARNER}/history?rubric=forklift-load-handling").json()
    (only,) = again["rubrics"]
    mh104 = next(c for c in only["competencies"] if c["code"] == "MH-104")
    assert (mh104["status"], mh104["first_demonstrated_in"]) == ("demonstrated", first)
