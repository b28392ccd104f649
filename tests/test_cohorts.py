"""The review queue, the cohort dashboard's numbers and the CSV exports over the JSON API, on
SQLite and on PostgreSQL: each number checked against a count made independently from the
sessions' own pages (``GET /sessions/{id}``, the per-session truth), bad query parameters
answered 422 with the parameter named, formulas neutralised in every CSV cell."""

from __future__ import annotations

import csv
import functools
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assessengine.adapters.library import find_rubric, load_rubric
from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.csv_export import cell
from assessengine.api.service.cohorts import site_of
from assessengine.api.service.models import ObservationIn, OverrideIn
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.events import SessionEvents
from assessengine.core.offline import score_sessions
from assessengine.core.rubric import Rubric
from assessengine.core.scenario import Scenario
from assessengine.sim.generate import simulate
from assessengine.storage import open_store
from assessengine.storage.port import SessionInfo

LEARNERS = 5
ATTEMPTS = 4
HOSTILE_SITE = '=HYPERLINK("http://evil.example","x")'
SITES = ("north", "south", HOSTILE_SITE)


@functools.cache
def _scored() -> tuple[Rubric, Scenario, list[SessionEvents], list[dict[str, Any]]]:
    """The sessions `fill` stores and their reports, simulated and scored once (read only)."""
    rubric, scenario = load_rubric(find_rubric("forklift-load-handling"))
    sims = simulate(scenario, "mixed", LEARNERS * ATTEMPTS, seed=11).to_sessions()
    return rubric, scenario, sims, [r.to_data() for r in score_sessions(rubric, scenario, sims)]


def fill(url: str | Path) -> list[str]:
    """LEARNERS x ATTEMPTS scored forklift sessions (mixed profiles), sites in turn, every
    fourth a field session; one more left open."""
    rubric, scenario, sims, reports = _scored()
    layout = Layout.of(scenario)
    ids = []
    with open_store(url) as store:
        for k, (sim, report) in enumerate(zip(sims, reports, strict=True)):
            sid = f"S-{k:03d}"
            info = SessionInfo(sid, f"L-{k % LEARNERS}", scenario.scenario, rubric.rubric,
                               rubric.version, rubric.sha256(),
                               "field" if k % 4 == 3 else "simulator",
                               {"site": SITES[k % len(SITES)]})  # fmt: skip
            store.open_session(info)
            header = {"session": sid, "first_seq": 0, "count": len(sim.events),
                      "encoding": "columns-v1", "dtype": layout.dtype_header()}  # fmt: skip
            payload = encode_columns_v1(Columns.from_events(sim.events, layout), layout)
            store.append_batches([(sid, 0, len(sim.events), "columns-v1",
                                   json.dumps(header).encode(), payload)])  # fmt: skip
            store.close_session(sid, sim.end_t)
            store.save_report(sid, {**report, "session": sid})
            ids.append(sid)
        store.open_session(SessionInfo("S-open", "L-0", scenario.scenario, rubric.rubric,
                                       rubric.version, rubric.sha256()))  # fmt: skip
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Any]]:
    """(client as an assessor, tokens) over a filled store of the parameter's backend; half
    of the sessions observed (pass, one fail), one override."""
    tmp_path = tmp_path_factory.mktemp("cohorts")
    url: str | Path = tmp_path / "engine.db"
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
    ids = fill(url)
    key = tmp_path / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    key.chmod(0o600)
    app = create_app(db_path=url, web=False, issuer_key_path=key)
    service = app.state.service
    tokens = {}
    for role in ("admin", "trainer", "assessor", "learner"):
        _, tokens[role] = service.create_token(name=f"{role}-t", role=role,
                                               learner="L-1" if role == "learner" else None,
                                               actor="test")  # fmt: skip
    who = service.authenticate(tokens["assessor"])
    for k, sid in enumerate(ids[::2]):
        service.observe(who, sid, ObservationIn(criterion="looks_before_reversing",
                                                verdict="fail" if k == 3 else "pass",
                                                note="seen"))  # fmt: skip
    service.override(who, ids[4], OverrideIn(criterion="pre_use_checks", verdict="fail",
                                             reason="saw the checks skipped"))  # fmt: skip
    with TestClient(app, headers={"Authorization": f"Bearer {tokens['assessor']}"}) as client:
        yield client, tokens


def _details(client: TestClient) -> list[dict[str, Any]]:
    """Every closed session's page (the per-session truth), in open order."""
    items = client.get("/api/v1/sessions?status=closed&limit=500").json()["items"]
    return [client.get(f"/api/v1/sessions/{s['session']}").json() for s in reversed(items)]


def _reasons(detail: dict[str, Any]) -> set[str]:
    crit = any(c["critical"] and c["final_verdict"] == "fail" for c in detail["criteria"])
    pending = any(c["template"] == "observed" and c["final_verdict"] == "pending"
                  for c in detail["criteria"])  # fmt: skip
    incomplete = detail["with_overrides"]["outcome"] == "incomplete"
    return {k for k, flag in (("critical", crit), ("pending", pending),
                              ("incomplete", incomplete)) if flag}  # fmt: skip


# ==================================================================================== queue


def test_queue_counts_and_items_match_the_session_pages(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    details = _details(client)
    expected = {d["session"]: _reasons(d) for d in details if _reasons(d)}
    page = client.get("/api/v1/review-queue?limit=500").json()
    assert [i["session"] for i in page["items"]] == sorted(expected, reverse=True)
    counts = Counter(r for reasons in expected.values() for r in reasons)
    assert page["counts"] == {"total": len(expected), "critical": counts["critical"],
                              "pending": counts["pending"], "incomplete": counts["incomplete"]}
    assert counts["critical"]
    assert counts["pending"]
    assert counts["incomplete"]
    for item in page["items"]:
        assert {r["kind"] for r in item["reasons"]} == expected[item["session"]]
    for reason in ("critical", "pending", "incomplete"):
        found = client.get(f"/api/v1/review-queue?reason={reason}&limit=500").json()
        assert {i["session"] for i in found["items"]} == {
            s for s, r in expected.items() if reason in r}
        assert found["counts"] == page["counts"]  # counts ignore the reason filter


def test_queue_reasons_name_criteria_by_title(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    item = next(i for i in client.get("/api/v1/review-queue?reason=critical").json()["items"]
                if i["session"] == "S-004")  # overridden to fail pre_use_checks (critical)
    critical = next(r for r in item["reasons"] if r["kind"] == "critical")
    assert critical["criteria"] == [{"id": "pre_use_checks", "title":
                                     "All four pre-use checks done before starting the engine"}]
    assert critical["text"] == "Critical failed: All four pre-use checks done before starting " \
                               "the engine"  # fmt: skip


def test_queue_filters_and_pages(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    whole = client.get("/api/v1/review-queue?limit=500").json()
    mine = client.get("/api/v1/review-queue?learner=L-2&limit=500").json()
    assert {i["session"] for i in mine["items"]} == {
        i["session"] for i in whole["items"] if i["learner"] == "L-2"}
    assert mine["counts"]["total"] == len(mine["items"])
    fails = client.get("/api/v1/review-queue?outcome=fail&limit=500").json()["items"]
    assert fails
    assert all(i["outcome"] == "fail" for i in fails)
    later = client.get("/api/v1/review-queue?opened_from=2999-01-01T00:00:00Z").json()
    assert later["items"] == []
    assert later["counts"]["total"] == 0
    seen, cursor = [], None
    while True:
        url = "/api/v1/review-queue?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).json()
        seen += [i["session"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["session"] for i in whole["items"]]


def test_an_observation_takes_a_session_out_of_the_pending_count(
    api: tuple[TestClient, Any],
) -> None:
    client, _ = api
    before = client.get("/api/v1/review-queue?reason=pending&limit=500").json()
    sid = before["items"][0]["session"]
    answer = client.post(f"/api/v1/sessions/{sid}/observations", json={
        "criterion": "looks_before_reversing", "verdict": "pass", "note": "seen"})
    assert answer.status_code == 201, answer.text
    after = client.get("/api/v1/review-queue?reason=pending&limit=500").json()
    assert after["counts"]["pending"] == before["counts"]["pending"] - 1
    assert sid not in {i["session"] for i in after["items"]}


@pytest.mark.parametrize(("query", "name", "reason"), [
    ("reason=late", "query.reason", "Input should be 'critical', 'pending' or 'incomplete'"),
    ("outcome=passed", "query.outcome", "Input should be 'pass', 'fail' or 'incomplete'"),
    ("opened_from=yesterday", "query.opened_from", "Input should be a valid datetime or date, "
     "input is too short"),
    ("opened_from=2026-02-01&opened_to=2026-01-01", "query.to", "before 'from'"),
    ("limit=0", "query.limit", "Input should be greater than or equal to 1"),
    ("cursor=nope", "query.cursor", "invalid cursor"),
])  # fmt: skip
def test_queue_refuses_bad_parameters_naming_them(
    api: tuple[TestClient, Any], query: str, name: str, reason: str
) -> None:
    client, _ = api
    for path in ("/api/v1/review-queue", "/api/v1/review-queue.csv"):
        if path.endswith(".csv") and query.startswith(("limit", "cursor")):
            continue
        answer = client.get(f"{path}?{query}")
        assert answer.status_code == 422, answer.text
        assert {"name": name, "reason": reason} in answer.json()["errors"]


def test_learners_may_not_read_the_queue_or_the_dashboard(api: tuple[TestClient, Any]) -> None:
    client, tokens = api
    as_learner = {"Authorization": f"Bearer {tokens['learner']}"}
    for path in ("/api/v1/review-queue", "/api/v1/review-queue.csv", "/api/v1/dashboard"):
        answer = client.get(path, headers=as_learner)
        assert answer.status_code == 403, path
        assert "assessors, trainers and admins" in answer.json()["detail"]
    rows = _csv(client.get("/api/v1/sessions.csv", headers=as_learner).text)
    assert rows[1:]
    assert {r[1] for r in rows[1:]} == {"L-1"}


# ==================================================================================== CSV


@pytest.mark.parametrize("text", ["=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_cell_that_a_spreadsheet_would_run_is_neutralised(text: str) -> None:
    assert cell(text) == "'" + text


def test_ordinary_cells_are_kept() -> None:
    assert [cell(v) for v in ("L-1", 90.0, None, "a=b", 3)] == ["L-1", "90.0", "", "a=b", "3"]


def _csv(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_queue_csv_rows_equal_the_queue_with_formulas_neutralised(
    api: tuple[TestClient, Any],
) -> None:
    client, _ = api
    answer = client.get("/api/v1/review-queue.csv?reason=pending")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in answer.headers["content-disposition"]
    rows = _csv(answer.text)
    items = client.get("/api/v1/review-queue?reason=pending&limit=500").json()["items"]
    assert rows[0][:3] == ["session", "learner", "scenario"]
    assert [r[0] for r in rows[1:]] == [i["session"] for i in items]
    site = rows[0].index("site")
    hostile = [r for r in rows[1:] if HOSTILE_SITE in r[site]]
    assert hostile
    assert all(r[site] == "'" + HOSTILE_SITE for r in hostile)
    assert not any(c.startswith(("=", "+", "-", "@")) for r in rows for c in r)


def test_sessions_csv_lists_what_the_session_list_does(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    rows = _csv(client.get("/api/v1/sessions.csv?learner=L-0").text)
    listed = client.get("/api/v1/sessions?learner=L-0&limit=500").json()["items"]
    assert [r[0] for r in rows[1:]] == [s["session"] for s in listed]
    assert "S-open" in [r[0] for r in rows[1:]]
    bad = client.get("/api/v1/sessions.csv?status=done")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["name"] == "query.status"


# ==================================================================================== cohort


@pytest.mark.parametrize(("session", "metadata", "site"), [
    ("north:S1", {}, "north"), ("north:S1", {"site": "yard B"}, "yard B"), ("S1", {}, None),
    ("urn:x", {"site": 3}, "urn"), ("Bad:S1", {}, None), ("S1", {"site": "=1"}, "=1"),
])  # fmt: skip
def test_a_sessions_site_is_its_metadata_else_its_site_prefix(
    session: str, metadata: dict[str, Any], site: str | None
) -> None:
    assert site_of(session, {"metadata": metadata}) == site


def _rate(failed: int, decided: int) -> float | None:
    return failed / decided if decided else None


def test_dashboard_numbers_equal_a_count_over_the_session_pages(
    api: tuple[TestClient, Any],
) -> None:
    client, _ = api
    details = _details(client)
    numbers = client.get("/api/v1/dashboard").json()
    assert numbers["sessions"] == len(details)
    outcomes = [d["with_overrides"]["outcome"] for d in details]
    day = details[0]["opened_at"][:10]
    assert numbers["pass_rates"] == [{
        "rubric": "forklift-load-handling", "rubric_version": 1, "period": day,
        "sessions": len(details), "passed": outcomes.count("pass"),
        "failed": outcomes.count("fail"), "incomplete": outcomes.count("incomplete"),
        "pass_rate": outcomes.count("pass") / len(details),
    }]  # fmt: skip
    attempt: dict[str, int] = defaultdict(int)
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    first_pass: dict[str, int | None] = {}
    for d in details:
        attempt[d["learner"]] += 1
        k = attempt[d["learner"]]
        if d["with_overrides"]["outcome"] == "pass" and first_pass.get(d["learner"]) is None:
            first_pass[d["learner"]] = k
        first_pass.setdefault(d["learner"], None)
        for c in d["criteria"]:
            when = "first" if k == 1 else "later"
            if c["final_verdict"] in ("pass", "fail"):
                tally[c["id"]][f"{when}_decided"] += 1
                tally[c["id"]][f"{when}_failed"] += c["final_verdict"] == "fail"
            else:
                tally[c["id"]]["undecided"] += 1
    by_id = {c["criterion"]: c for c in numbers["criteria"]}
    assert list(by_id) == [c["id"] for c in details[0]["criteria"]]
    for cid, t in tally.items():
        got = by_id[cid]
        assert got["title"] == next(c["title"] for c in details[0]["criteria"] if c["id"] == cid)
        assert got["first_attempt_decided"] == t["first_decided"]
        assert got["later_decided"] == t["later_decided"]
        assert got["failed"] == t["first_failed"] + t["later_failed"]
        assert got["undecided"] == t["undecided"]
        assert got["first_attempt_failure_rate"] == _rate(t["first_failed"], t["first_decided"])
        assert got["later_failure_rate"] == _rate(t["later_failed"], t["later_decided"])
    expected_first = Counter(first_pass.values())
    assert {(f["attempt"], f["learners"]) for f in numbers["attempts_to_first_pass"]} == set(
        expected_first.items())
    sources = Counter(d["source"] for d in details)
    assert {b["key"]: b["sessions"] for b in numbers["by_source"]} == dict(sources)
    sites = Counter(SITES[int(d["session"][2:]) % len(SITES)] for d in details)
    assert {b["key"]: b["sessions"] for b in numbers["by_site"]} == dict(sites)
    slow = numbers["slowest_improving"]
    improvements = [c["improvement"] for c in slow]
    assert improvements == sorted(improvements)
    assert all(c["first_attempt_failure_rate"] for c in slow)


def test_dashboard_filters_select_sessions(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    field = client.get("/api/v1/dashboard?source=field").json()
    assert field["sessions"] == LEARNERS * ATTEMPTS // 4
    assert [b["key"] for b in field["by_source"]] == ["field"]
    north = client.get("/api/v1/dashboard?site=north&period=month").json()
    assert [b["key"] for b in north["by_site"]] == ["north"]
    assert north["period"] == "month"
    assert len(north["pass_rates"][0]["period"]) == 7
    none = client.get("/api/v1/dashboard?rubric=nothing").json()
    assert none["sessions"] == 0
    assert none["criteria"] == []
    assert none["pass_rates"] == []


@pytest.mark.parametrize(("query", "name"), [
    ("version=0", "query.version"), ("version=x", "query.version"),
    ("source=vr", "query.source"), ("period=week", "query.period"),
    ("opened_to=2026-13-01", "query.opened_to"),
])  # fmt: skip
def test_dashboard_refuses_bad_parameters_naming_them(
    api: tuple[TestClient, Any], query: str, name: str
) -> None:
    client, _ = api
    answer = client.get(f"/api/v1/dashboard?{query}")
    assert answer.status_code == 422, answer.text
    assert [e["name"] for e in answer.json()["errors"]] == [name]


# ==================================================================================== progress


def test_learner_progress_lists_each_policy_with_its_requirements(
    api: tuple[TestClient, Any],
) -> None:
    client, tokens = api
    mine = client.get("/api/v1/learners/L-1/progress",
                      headers={"Authorization": f"Bearer {tokens['learner']}"})  # fmt: skip
    assert mine.status_code == 200, mine.text
    forklift = next(p for p in mine.json() if p["policy"] == "forklift-operator")
    assert forklift["requirements"]
    assert all(set(r) == {"text", "met", "sessions", "missing"} for r in forklift["requirements"])
    assert forklift["eligible"] is False
    assert forklift["reasons"]
    other = client.get("/api/v1/learners/L-2/progress",
                       headers={"Authorization": f"Bearer {tokens['learner']}"})  # fmt: skip
    assert other.status_code == 404


def test_a_dashboard_viewed_again_shows_a_review_made_since(api: tuple[TestClient, Any]) -> None:
    client, _ = api

    def undecided() -> int:
        numbers = client.get("/api/v1/dashboard").json()
        return next(c["undecided"] for c in numbers["criteria"]
                    if c["criterion"] == "looks_before_reversing")  # fmt: skip

    before = undecided()
    assert undecided() == before  # the kept numbers
    pending = client.get("/api/v1/review-queue?reason=pending").json()["items"]
    answer = client.post(f"/api/v1/sessions/{pending[0]['session']}/observations", json={
        "criterion": "looks_before_reversing", "verdict": "fail", "note": "did not look"})
    assert answer.status_code == 201, answer.text
    assert undecided() == before - 1
