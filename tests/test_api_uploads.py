"""Uploads over HTTP: field sessions from events JSONL and CSV (stored as chained batches and
scored like simulator sessions), rubric versions (checked; problems with line and column),
re-scoring under another version with the verdicts that changed."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from assessengine.adapters.library import load_rubric
from assessengine.api.app import create_app
from assessengine.cli import main
from assessengine.core.events import SessionEvents
from assessengine.core.offline import score_sessions
from assessengine.sim.generate import jsonl_lines, simulate

from .test_api_support import FORKLIFT, Api, copy_template, make_tokens, open_api

RUBRIC = "forklift-load-handling"


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path_factory, tmp_path)


def field_log(seed: int = 11) -> tuple[SessionEvents, str]:
    _, scenario = load_rubric(FORKLIFT)
    sim = simulate(scenario, "mixed", 1, seed=seed)
    (session,) = sim.to_sessions()
    return session, "\n".join(jsonl_lines(sim)) + "\n"


def as_csv(session: SessionEvents, names: list[str]) -> str:
    out = io.StringIO()
    out.write(",".join(["t", "event", *names]) + "\n")
    for e in session.events:
        cells = ["" if n not in e.signals else repr(e.signals[n]) for n in names]
        event = "" if e.event == "sample" else e.event
        out.write(",".join([repr(e.t), event, *cells]) + "\n")
    return out.getvalue()


def upload(api: Api, name: str, content: str, role: str = "assessor", **form: Any) -> Any:
    return api.post("/api/v1/field-sessions", role, files={"file": (name, content.encode())},
                    data=form)  # fmt: skip


def expected_report(session: SessionEvents) -> dict[str, Any]:
    rubric, scenario = load_rubric(FORKLIFT)
    (report,) = score_sessions(rubric, scenario, [session])
    return report.to_data()


def test_a_jsonl_field_log_becomes_a_scored_field_session(api: Api) -> None:
    session, text = field_log()
    answer = upload(api, "shift-3.jsonl", text, session="yard-0001")
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == "/api/v1/sessions/yard-0001"
    detail = answer.json()
    assert (detail["source"], detail["status"], detail["learner"]) == (
        "field", "closed", session.open["learner"])  # fmt: skip
    expected = expected_report(session)
    assert detail["scored"] == {"outcome": expected["outcome"], "score": expected["score"]}
    assert [c["scorer_verdict"] for c in detail["criteria"]] == [
        c["verdict"] for c in expected["criteria"]
    ]
    assert detail["metadata"]["format"] == "jsonl"
    assert detail["batches"] >= 2
    listed = api.get("/api/v1/sessions?source=field").json()["items"]
    assert [s["session"] for s in listed] == ["yard-0001"]
    audit = CliRunner().invoke(main, ["audit", "yard-0001", "--db", str(api.db)])
    assert audit.exit_code == 0, audit.output  # chain intact, report reproduces
    assert "report: matches the stored report exactly" in audit.output
    entry = api.get("/api/v1/audit?action=field_session.create").json()["items"][0]
    assert (entry["session"], entry["actor"]) == ("yard-0001", "assessor-1")


def test_a_csv_field_log_scores_like_the_same_events(api: Api) -> None:
    session, _ = field_log(seed=12)
    _, scenario = load_rubric(FORKLIFT)
    text = as_csv(session, list(scenario.signal_names))
    answer = upload(api, "log.csv", text, learner="L-77", rubric=RUBRIC, version="1")
    assert answer.status_code == 201, answer.text
    detail = answer.json()
    assert detail["learner"] == "L-77"
    assert detail["session"].startswith("field-")
    expected = expected_report(SessionEvents(session.session, session.events, {},
                                             session.events[-1].t))  # fmt: skip
    assert [c["scorer_verdict"] for c in detail["criteria"]] == [
        c["verdict"] for c in expected["criteria"]
    ]
    raw = api.get(f"/api/v1/sessions/{detail['session']}/events?t_to=30&signals=speed").json()
    first = [e.signals.get("speed") for e in session.events if e.t <= 30]
    assert raw["values"]["speed"] == [
        None if v is None or math.isnan(v) else v for v in first
    ]


def test_csv_problems_name_their_line_and_column(api: Api) -> None:
    header = upload(api, "log.csv", "t,event,sped\n0,,1\n", learner="L", rubric=RUBRIC)
    assert header.status_code == 422
    (problem,) = header.json()["errors"]
    assert (problem["line"], problem["column"]) == (1, 3)
    assert "did you mean 'speed'" in problem["reason"]
    cells = upload(api, "log.csv", "t,event,speed\n0,,1\n1,,fast\n2,jump,3\n3,,1\n2.5,,2\n",
                   learner="L", rubric=RUBRIC)  # fmt: skip
    assert cells.status_code == 422
    found = [(e["line"], e["column"]) for e in cells.json()["errors"]]
    assert found == [(3, 3), (4, 2), (6, 1)]


def test_a_field_log_needs_a_learner_a_known_rubric_and_one_session(api: Api) -> None:
    csv = "t,speed\n0,1\n"
    no_learner = upload(api, "log.csv", csv, rubric=RUBRIC)
    assert no_learner.status_code == 422
    assert no_learner.json()["errors"][0]["name"] == "learner"
    assert upload(api, "log.csv", csv, learner="L", rubric="nope").status_code == 422
    assert upload(api, "log.txt", csv, learner="L", rubric=RUBRIC).status_code == 422
    _, one = field_log(seed=13)
    _, two = field_log(seed=14)
    both = upload(api, "two.jsonl", one + two)
    assert both.status_code == 422
    bad = upload(api, "bad.jsonl", '{"session": "S", "seq": 0}\n', learner="L", rubric=RUBRIC)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["line"] == 1


@pytest.mark.parametrize(
    ("field", "form", "open_learner"),
    [("session", {"session": "yard/0001"}, None), ("session", {"session": "a b"}, None),
     ("learner", {"learner": "crew/7"}, None), ("learner", {}, "L\u0001"),
     ("learner", {}, "L" * 5000)],
)  # fmt: skip
def test_an_upload_with_an_invalid_id_is_refused_naming_the_field(
    api: Api, field: str, form: dict[str, str], open_learner: str | None
) -> None:
    """Ids follow the protocol's rule, so every uploaded session is reachable by its URL
    (a `/` in a session id used to be listed in the queue and then 404 on every route)."""
    session, text = field_log(seed=15)
    if open_learner is not None:
        text = text.replace(json.dumps(session.open["learner"]), json.dumps(open_learner), 1)
    answer = upload(api, "shift.jsonl", text, rubric=RUBRIC, **form)
    assert answer.status_code == 422, answer.text
    assert any(e["name"] == field for e in answer.json()["errors"]), answer.json()
    assert api.get("/api/v1/sessions?source=field").json()["items"] == []


def test_an_existing_session_id_is_a_conflict(api: Api) -> None:
    taken = api.stored.forklift_mixed[0]
    answer = upload(api, "log.csv", "t,speed\n0,1\n", learner="L", rubric=RUBRIC, session=taken)
    assert answer.status_code == 409


# ==================================================================================== rubrics


def post_rubric(api: Api, text: str, role: str = "trainer", name: str = "r.yaml") -> Any:
    return api.post("/api/v1/rubrics", role, files={"file": (name, text.encode())})


def stricter(version: int = 2) -> str:
    text = FORKLIFT.read_text()
    assert 'never: "load > 50 and speed > 8"' in text
    text = text.replace('never: "load > 50 and speed > 8"', 'never: "load > 50 and speed > 2"')
    return text.replace("version: 1\n", f"version: {version}\n", 1)


def test_a_rubric_with_problems_is_refused_with_lines_and_columns(api: Api) -> None:
    text = FORKLIFT.read_text().replace('speed > 8"', 'sped > 8"').replace(
        "    points: 20\n", "    pionts: 20\n", 1)  # fmt: skip
    answer = post_rubric(api, text, name="forklift.yaml")
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["type"] == "urn:assessengine:problem:rubric-problems"
    lines = text.splitlines()
    found = {(e["line"], e["column"]): e["reason"] for e in problem["errors"]}
    sped = next(i for i, line in enumerate(lines, 1) if "sped > 8" in line)
    assert (sped, lines[sped - 1].index("sped") + 1) in found
    assert "did you mean 'speed'" in found[(sped, lines[sped - 1].index("sped") + 1)]
    pionts = next(i for i, line in enumerate(lines, 1) if "pionts" in line)
    assert any(line == pionts for line, _ in found)
    assert api.get("/api/v1/rubrics?rubric=forklift-load-handling").json()[0]["version"] == 1


def test_a_new_version_is_listed_with_its_sha256_and_text(api: Api) -> None:
    answer = post_rubric(api, stricter())
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert (created["version"], created["origin"], created["uploaded_by"]) == (2, "upload",
                                                                             "trainer-1")
    versions = api.get(f"/api/v1/rubrics?rubric={RUBRIC}").json()
    assert [(v["version"], v["origin"]) for v in versions] == [(1, "file"), (2, "upload")]
    assert versions[0]["sha256"] != versions[1]["sha256"]
    assert len(versions[1]["sha256"]) == 64
    text = api.get(f"/api/v1/rubrics/{RUBRIC}/2").text
    assert text == stricter()
    again = post_rubric(api, stricter())
    assert again.status_code == 200
    taken = post_rubric(api, stricter().replace("speed > 2", "speed > 3"))
    assert taken.status_code == 409
    shipped = post_rubric(api, FORKLIFT.read_text().replace("title: Counterbalance",
                                                            "title: Changed", 1))
    assert shipped.status_code == 409  # version 1 is the shipped file's
    entries = api.get("/api/v1/audit?action=rubric.upload").json()["items"]
    assert len(entries) == 1
    assert entries[0]["detail"]["sha256"] == created["sha256"]


def test_rescoring_a_cohort_reports_the_verdicts_that_changed(api: Api) -> None:
    assert post_rubric(api, stricter()).status_code == 201
    answer = api.post("/api/v1/rescores", "trainer", json={
        "rubric": RUBRIC, "version": 2,
        "cohort": {"rubric": RUBRIC, "limit": 100},
    })  # fmt: skip
    assert answer.status_code == 201, answer.text
    run = answer.json()
    sessions = {s["session"]: s for s in run["sessions"]}
    closed = {*api.stored.forklift_competent, *api.stored.forklift_mixed}
    assert set(sessions) == closed  # the open session is not in a re-score cohort
    changes = [c for s in sessions.values() for c in s["changed"]]
    assert changes
    assert {c["criterion"] for c in changes} == {"loaded_speed"}
    assert all((c["before"], c["after"]) == ("pass", "fail") for c in changes)
    assert run["changed_verdicts"] == len(changes)
    assert run["changed_sessions"] == sum(bool(s["changed"]) for s in sessions.values())
    changed = next(s for s in sessions.values() if s["changed"])
    assert changed["after"]["score"] < changed["before"]["score"]
    stored = api.get(f"/api/v1/sessions/{changed['session']}").json()
    assert stored["rubric_version"] == 1  # reports are not replaced
    assert api.get(f"/api/v1/rescores/{run['id']}").json() == run
    audit = api.get("/api/v1/audit?action=rescore.run").json()["items"][0]
    assert audit["detail"]["rescore"] == run["id"]


def test_rescoring_named_sessions_keeps_observations_and_flags_other_scenarios(api: Api) -> None:
    sid = api.stored.forklift_competent[0]
    api.post(f"/api/v1/sessions/{sid}/observations", "assessor",
             json={"criterion": "looks_before_reversing", "verdict": "pass", "note": "ok"})
    same = api.post("/api/v1/rescores", "admin", json={
        "rubric": RUBRIC, "version": 1, "sessions": [sid, api.stored.network[0]],
    }).json()  # fmt: skip
    mine, other = same["sessions"]
    assert mine["changed"] == []
    assert mine["before"] == mine["after"] == {"outcome": "pass", "score": 100.0}
    assert other["after"] is None
    assert "scenario" in other["problem"]
    unknown = api.post("/api/v1/rescores", "admin",
                       json={"rubric": RUBRIC, "version": 1, "sessions": ["nope"]})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["name"] == "body.sessions[0]"
    missing = api.post("/api/v1/rescores", "admin",
                       json={"rubric": RUBRIC, "version": 9, "sessions": [sid]})
    assert missing.status_code == 404
    both = api.post("/api/v1/rescores", "admin", json={"rubric": RUBRIC, "version": 1})
    assert both.status_code == 422


def test_a_rubric_with_a_control_character_is_a_located_problem(api: Api) -> None:
    answer = post_rubric(api, "rubric: x\nversion: 1\ntitle: \x1f\n")
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert (error["line"], error["column"]) == (3, 8)
    assert "#x001f" in error["reason"]


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    db, _ = copy_template(tmp_path_factory, tmp_path)
    app = create_app(db_path=db, web=False, max_upload_bytes=1000)
    headers = {"Authorization": f"Bearer {make_tokens(app.state.service)['assessor']}"}
    with TestClient(app) as client:
        small = "t,speed\n" + "".join(f"{k},1\n" for k in range(300))  # ~2 KB: over 1000
        answer = client.post("/api/v1/field-sessions", headers=headers,
                             files={"file": ("log.csv", small.encode())},
                             data={"learner": "L", "rubric": RUBRIC})  # fmt: skip
        assert answer.status_code == 413
        assert answer.headers["content-type"] == "application/problem+json"
        huge = client.post("/api/v1/field-sessions", headers=headers,
                           files={"file": ("log.csv", b"t\n" + b"0\n" * 2**20)})
        assert huge.status_code == 413
        assert huge.json()["type"] == "urn:assessengine:problem:too-large"
