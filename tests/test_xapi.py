"""xAPI statements of scored sessions, held to the xAPI 1.0.3 statement rules that apply to
what the engine emits (checked by `statement_problems` below, written from the specification's
Data section: required and allowed properties, IRIs, UUIDs, score ranges, ISO 8601)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from assessengine.adapters.library import find_rubric, load_rubric
from assessengine.core.offline import score_sessions
from assessengine.core.reasons import report_reasons
from assessengine.core.report import SessionReport
from assessengine.core.xapi import (
    EXT_CHAIN_HEAD,
    EXT_CRITERIA,
    EXT_REASONS,
    EXT_SESSION,
    VERBS,
    SessionFacts,
    XapiConfig,
    XapiError,
    content_id,
    iso_duration,
    registration,
    session_statements,
    voiding_statement,
)
from assessengine.sim.generate import simulate

CONFIG = XapiConfig(
    home_page="https://engine.example.org",
    activity_base="https://engine.example.org/xapi/activities",
)
ENDED = datetime(2025, 3, 1, 7, 30, 15, 250000, tzinfo=UTC)

# ------------------------------------------------------------------------ an xAPI checker

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_DURATION = re.compile(
    r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
ALLOWED = {
    "statement": {"id", "actor", "verb", "object", "result", "context", "timestamp", "stored",
                  "authority", "version", "attachments"},
    "agent": {"objectType", "name", "mbox", "mbox_sha1sum", "openid", "account"},
    "account": {"homePage", "name"},
    "verb": {"id", "display"},
    "activity": {"objectType", "id", "definition"},
    "definition": {"name", "description", "type", "moreInfo", "extensions"},
    "result": {"score", "success", "completion", "response", "duration", "extensions"},
    "score": {"scaled", "raw", "min", "max"},
    "context": {"registration", "instructor", "team", "contextActivities", "revision", "platform",
                "language", "statement", "extensions"},
    "contextActivities": {"parent", "grouping", "category", "other"},
}  # fmt: skip


def statement_problems(statement: Mapping[str, Any]) -> list[str]:
    problems = list(_keys("statement", statement))
    problems += [
        f"statement: missing {n}" for n in ("actor", "verb", "object") if n not in statement
    ]
    problems += _uuid("id", statement.get("id"))
    problems += _agent("actor", statement.get("actor", {}))
    verb = statement.get("verb", {})
    problems += [*_keys("verb", verb), *_iri("verb.id", verb.get("id"))]
    problems += _language_map("verb.display", verb.get("display", {}))
    problems += _activity("object", statement.get("object", {}))
    problems += _result(statement.get("result", {}))
    problems += _context(statement.get("context", {}))
    if not _TIMESTAMP.match(str(statement.get("timestamp", ""))):
        problems.append(f"timestamp: not ISO 8601 with a time zone: {statement.get('timestamp')}")
    return problems


def _keys(kind: str, value: Mapping[str, Any]) -> Iterator[str]:
    for key in value:
        if key not in ALLOWED[kind]:
            yield f"{kind}: property {key!r} is not defined by xAPI"


def _iri(where: str, value: Any) -> list[str]:
    return [] if isinstance(value, str) and _IRI.match(value) else [f"{where}: not an IRI"]


def _uuid(where: str, value: Any) -> list[str]:
    try:
        parsed = uuid.UUID(str(value))
    except ValueError:
        return [f"{where}: not a UUID"]
    ok = str(parsed) == value and parsed.variant == uuid.RFC_4122
    return [] if ok else [f"{where}: not a lowercase RFC 4122 UUID"]


def _language_map(where: str, value: Mapping[str, Any]) -> list[str]:
    bad = [k for k, v in value.items() if not _LANGUAGE.match(k) or not isinstance(v, str)]
    return [f"{where}: bad language map entries {bad}"] if bad or not value else []


def _agent(where: str, agent: Mapping[str, Any]) -> list[str]:
    problems = [*_keys("agent", agent)]
    identifiers = [k for k in ("mbox", "mbox_sha1sum", "openid", "account") if k in agent]
    if agent.get("objectType", "Agent") != "Agent" or len(identifiers) != 1:
        problems.append(f"{where}: an Agent has exactly one identifier, has {identifiers}")
    account = agent.get("account", {})
    problems += [*_keys("account", account), *_iri(f"{where}.account.homePage",
                                                  account.get("homePage"))]  # fmt: skip
    if not isinstance(account.get("name"), str) or not account["name"]:
        problems.append(f"{where}.account.name: missing")
    return problems


def _activity(where: str, activity: Mapping[str, Any]) -> list[str]:
    problems = [*_keys("activity", activity), *_iri(f"{where}.id", activity.get("id"))]
    if activity.get("objectType", "Activity") != "Activity":
        problems.append(f"{where}: not an Activity")
    definition = activity.get("definition")
    if definition is not None:
        problems += [*_keys("definition", definition)]
        if "type" in definition:
            problems += _iri(f"{where}.definition.type", definition["type"])
        if "name" in definition:
            problems += _language_map(f"{where}.definition.name", definition["name"])
    return problems


def _result(result: Mapping[str, Any]) -> list[str]:
    problems = [*_keys("result", result)]
    score = result.get("score")
    if score is not None:
        problems += [*_keys("score", score)]
        if not -1 <= score.get("scaled", 0) <= 1:
            problems.append("result.score.scaled: outside -1..1")
        low, high = score.get("min", float("-inf")), score.get("max", float("inf"))
        if not low < high or not low <= score.get("raw", low) <= high:
            problems.append("result.score: raw must lie between min and max, min < max")
    for name in ("success", "completion"):
        if name in result and not isinstance(result[name], bool):
            problems.append(f"result.{name}: not a boolean")
    if "duration" in result and not _DURATION.match(result["duration"]):
        problems.append(f"result.duration: not ISO 8601: {result['duration']}")
    problems += [p for key in result.get("extensions", {}) for p in _iri("result.extensions", key)]
    return problems


def _context(context: Mapping[str, Any]) -> list[str]:
    problems = [*_keys("context", context)]
    if "registration" in context:
        problems += _uuid("context.registration", context["registration"])
    if "instructor" in context:
        problems += _agent("context.instructor", context["instructor"])
    if "language" in context and not _LANGUAGE.match(context["language"]):
        problems.append("context.language: not an RFC 5646 tag")
    problems += [
        p for key in context.get("extensions", {}) for p in _iri("context.extensions", key)
    ]
    activities = context.get("contextActivities", {})
    problems += [*_keys("contextActivities", activities)]
    for kind, items in activities.items():
        if not isinstance(items, list):
            problems.append(f"context.contextActivities.{kind}: not an array")
            continue
        problems += [p for item in items for p in _activity(f"contextActivities.{kind}", item)]
    return problems


# ------------------------------------------------------------------------------ data


@pytest.fixture(scope="module")
def forklift_reports() -> dict[str, SessionReport]:
    """A passed, a failed and an incomplete (observation pending) forklift session."""
    rubric, scenario = load_rubric(find_rubric("forklift-load-handling"))
    competent = simulate(scenario, "competent", 2, seed=4).to_sessions()
    observations = {competent[0].session: {"looks_before_reversing": "pass"}}
    passed, incomplete = score_sessions(rubric, scenario, competent, observations=observations)
    flawed = simulate(scenario, "mixed", 12, seed=4, mix="competent=0,speeder=1").to_sessions()
    failed = next(r for r in score_sessions(rubric, scenario, flawed) if r.outcome == "fail")
    return {"pass": passed, "fail": failed, "incomplete": incomplete}


def facts(report: SessionReport, **changes: Any) -> SessionFacts:
    values: dict[str, Any] = {
        "session": report.session,
        "learner": "L-001",
        "source": "simulator",
        "ended_at": ENDED,
        "duration_s": 463.85,
        "scenario": "forklift-warehouse",
        "rubric_title": "Counterbalance forklift - safe load handling",
        "chain_head": "ab" * 32,
    }
    return SessionFacts(**(values | changes))


def statements(report: SessionReport, **changes: Any) -> list[dict[str, Any]]:
    return session_statements(report.to_data(), facts(report, **changes), CONFIG)


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("outcome", ["pass", "fail", "incomplete"])
@pytest.mark.parametrize("source", ["simulator", "field"])
def test_every_statement_follows_the_xapi_rules(
    forklift_reports: dict[str, SessionReport], outcome: str, source: str
) -> None:
    made = statements(forklift_reports[outcome], source=source, assessor="A-7")
    for statement in made:
        assert statement_problems(statement) == []


def test_the_checker_catches_broken_statements(forklift_reports: dict[str, SessionReport]) -> None:
    statement = statements(forklift_reports["pass"])[1]
    broken = {**statement, "id": "S-1", "verdict": "pass"}
    score = {"scaled": 2, "raw": 101, "min": 0, "max": 100}
    broken["result"] = {**statement["result"], "score": score, "duration": "463s"}
    problems = statement_problems(broken)
    assert len(problems) == 5, problems


def test_a_passed_session_is_completed_then_passed(
    forklift_reports: dict[str, SessionReport],
) -> None:
    completed, passed = statements(forklift_reports["pass"])
    assert completed["verb"] == {"id": "http://adlnet.gov/expapi/verbs/completed",
                                 "display": {"en-US": "completed"}}  # fmt: skip
    assert completed["result"] == {"completion": True, "duration": "PT7M43.85S"}
    assert passed["verb"]["id"] == "http://adlnet.gov/expapi/verbs/passed"
    assert passed["result"]["success"] is True
    assert passed["result"]["completion"] is True
    assert passed["result"]["score"] == {"scaled": 1.0, "raw": 100.0, "min": 0, "max": 100}


def test_a_failed_session_says_failed_with_its_score(
    forklift_reports: dict[str, SessionReport],
) -> None:
    report = forklift_reports["fail"]
    _, failed = statements(report)
    assert failed["verb"]["id"] == VERBS["failed"] == "http://adlnet.gov/expapi/verbs/failed"
    assert failed["result"]["success"] is False
    assert failed["result"]["score"]["raw"] == report.score
    assert failed["result"]["score"]["scaled"] == pytest.approx(report.score / 100)


def test_an_incomplete_session_is_only_completed_with_its_criteria(
    forklift_reports: dict[str, SessionReport],
) -> None:
    (completed,) = statements(forklift_reports["incomplete"])
    criteria = completed["result"]["extensions"][EXT_CRITERIA]
    assert {c["id"]: c["verdict"] for c in criteria}["looks_before_reversing"] == "pending"
    assert "success" not in completed["result"]


def test_each_criterion_is_reported_under_the_engines_extension(
    forklift_reports: dict[str, SessionReport],
) -> None:
    report = forklift_reports["fail"]
    criteria = statements(report)[1]["result"]["extensions"][EXT_CRITERIA]
    assert EXT_CRITERIA == "https://assessengine.dev/xapi/extensions/criteria"
    assert [(c["id"], c["verdict"], c["critical"], c["points"]) for c in criteria] == [
        (c.id, c.verdict, c.critical, c.points) for c in report.criteria
    ]


def test_the_learner_is_an_account_and_the_object_the_rubric_at_its_version(
    forklift_reports: dict[str, SessionReport],
) -> None:
    statement = statements(forklift_reports["pass"])[0]
    assert statement["actor"] == {
        "objectType": "Agent",
        "account": {"homePage": "https://engine.example.org", "name": "L-001"},
    }
    assert statement["object"]["id"] == (
        "https://engine.example.org/xapi/activities/rubrics/forklift-load-handling/versions/1"
    )
    assert statement["object"]["definition"]["name"] == {
        "en-US": "Counterbalance forklift - safe load handling (version 1)"
    }
    assert statement["timestamp"] == "2025-03-01T07:30:15.250Z"


def test_the_assessor_is_the_instructor_of_field_sessions_only(
    forklift_reports: dict[str, SessionReport],
) -> None:
    in_field = statements(forklift_reports["pass"], source="field", assessor="A-7")
    assert all(
        s["context"]["instructor"]["account"] == {"homePage": "https://engine.example.org",
                                                  "name": "A-7"}
        for s in in_field
    )  # fmt: skip
    simulated = statements(forklift_reports["pass"], source="simulator", assessor="A-7")
    assert all("instructor" not in s["context"] for s in simulated)
    unknown = statements(forklift_reports["pass"], source="field", assessor=None)
    assert all("instructor" not in s["context"] for s in unknown)


def test_the_registration_is_derived_from_the_session_and_ids_from_the_content(
    forklift_reports: dict[str, SessionReport],
) -> None:
    report = forklift_reports["pass"]
    first, again = statements(report), statements(report)
    assert first == again
    assert {s["context"]["registration"] for s in first} == {registration(report.session)}
    assert uuid.UUID(registration(report.session)).version == 5
    assert registration("S-1") != registration("S-2")
    assert len({s["id"] for s in first}) == 2
    for statement in first:
        assert uuid.UUID(statement["id"]).version == 5
        assert content_id(statement) == statement["id"]
        stored = {**statement, "stored": "2026-01-01T00:00:00.000Z", "id": "x"}
        assert content_id(stored) == statement["id"]  # what an LRS adds is not content
    assert first[0]["context"]["extensions"][EXT_SESSION] == report.session
    assert first[0]["context"]["extensions"][EXT_CHAIN_HEAD] == "ab" * 32


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "PT0S"), (5, "PT5S"), (463.85, "PT7M43.85S"), (3600, "PT1H"), (3723.456, "PT1H2M3.46S"),
     (60.004, "PT1M"), (0.5, "PT0.5S")],
)  # fmt: skip
def test_durations_are_iso_8601(seconds: float, text: str) -> None:
    assert iso_duration(seconds) == text
    assert _DURATION.match(text)


@pytest.mark.parametrize(
    "bad", [{"outcome": "pass"}, {"outcome": "pass", "score": 120, "criteria": []}]
)
def test_a_report_that_is_not_a_report_is_refused(
    forklift_reports: dict[str, SessionReport], bad: dict[str, Any]
) -> None:
    data = forklift_reports["pass"].to_data() | bad
    if "criteria" not in bad:
        del data["criteria"]
    with pytest.raises(XapiError):
        session_statements(data, facts(forklift_reports["pass"]), CONFIG)


def test_the_configuration_needs_http_urls() -> None:
    with pytest.raises(XapiError, match="home_page"):
        XapiConfig(home_page="engine", activity_base="https://x.example")


def test_a_statement_gets_a_new_id_when_it_changes(
    forklift_reports: dict[str, SessionReport],
) -> None:
    report = forklift_reports["incomplete"]
    (pending,) = statements(report)
    decided = report.to_data() | {"outcome": "pass", "score": 100.0, "criteria": [
        c | {"verdict": "pass"} for c in report.to_data()["criteria"]]}  # fmt: skip
    completed, passed = session_statements(decided, facts(report), CONFIG)
    assert completed["verb"] == pending["verb"]
    assert completed["id"] != pending["id"]  # same verb, same session, different content
    rescored = decided | {"score": 95.0}
    assert session_statements(rescored, facts(report), CONFIG)[1]["id"] != passed["id"]
    field = [session_statements(decided, facts(report, source="field", assessor=who), CONFIG)
             for who in ("A-1", "A-2")]  # fmt: skip
    assert {s["id"] for s in field[0]}.isdisjoint({s["id"] for s in field[1]})


def test_a_voiding_statement_refers_to_the_statement_it_voids() -> None:
    voiding = voiding_statement("0f8fad5b-d9cb-469f-a165-70867728950e", CONFIG)
    assert voiding["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"
    assert voiding["object"] == {"objectType": "StatementRef",
                                 "id": "0f8fad5b-d9cb-469f-a165-70867728950e"}  # fmt: skip
    assert voiding["actor"]["account"] == {"homePage": CONFIG.home_page, "name": "assessengine"}
    assert uuid.UUID(voiding["id"]).version == 5
    assert voiding == voiding_statement("0f8fad5b-d9cb-469f-a165-70867728950e", CONFIG)
    assert voiding["id"] != voiding_statement("d9b4fd46-03d3-59af-bad4-66456502b107", CONFIG)["id"]


@pytest.mark.parametrize("outcome", ["fail", "incomplete"])
def test_the_statement_with_the_criteria_carries_the_outcomes_reasons(
    forklift_reports: dict[str, SessionReport], outcome: str
) -> None:
    report = forklift_reports[outcome]
    reasons = tuple(r.text for r in report_reasons(report.to_data(), 80.0))
    made = statements(report, reasons=reasons)
    carrier = made[-1] if outcome == "fail" else made[0]
    assert carrier["result"]["extensions"][EXT_REASONS] == list(reasons)
    assert reasons  # a fail and an incomplete outcome always have a reason
    for statement in made:
        assert statement_problems(statement) == []


def test_without_reasons_the_statements_are_as_before(
    forklift_reports: dict[str, SessionReport],
) -> None:
    made = statements(forklift_reports["fail"])
    assert EXT_REASONS not in made[-1]["result"]["extensions"]
