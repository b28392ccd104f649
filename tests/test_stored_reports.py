"""A stored report whose numbers are not finite (null as today's store writes NaN and infinities,
or NaN / Infinity tokens as an older store wrote them) still renders and serialises: the
session, the learner's history, the session list, the learner page and the review queue all
answer 200, with strict JSON."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assessengine.api.app import create_app
from assessengine.core.report import finite
from assessengine.credential_service import attempt_from
from assessengine.storage.port import SessionInfo, SessionRecord

from .test_api_support import LEARNER, Stored, copy_template, make_tokens

NUMBERS = ("score", "points", "t", "t_start", "t_end", "measured", "values")
POISON = {"null": None, "nan": math.nan, "inf": math.inf}


def _poisoned(data: Any, value: float | None, key: str | None = None) -> Any:
    """`data` with every number under a key of NUMBERS replaced by `value` (seqs kept)."""
    if isinstance(data, dict):
        return {k: _poisoned(v, value, k if k in NUMBERS else key) for k, v in data.items()}
    if isinstance(data, list):
        return [_poisoned(v, value, key) for v in data]
    if key is not None and isinstance(data, int | float) and not isinstance(data, bool):
        return value
    return data


def _strict(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in a JSON answer")

    return json.loads(text, parse_constant=refuse)


class Site:
    def __init__(self, client: TestClient, stored: Stored, tokens: dict[str, str]) -> None:
        self.client, self.stored, self.tokens = client, stored, tokens

    def api(self, url: str) -> Any:
        answer = self.client.get(url, headers={"Authorization": f"Bearer {self.tokens['admin']}"})
        assert answer.status_code == 200, answer.text
        return _strict(answer.text)

    def page(self, url: str) -> str:
        self.client.cookies.set("ae_token", self.tokens["admin"])
        answer = self.client.get(url)
        assert answer.status_code == 200, answer.text
        return answer.text


@pytest.fixture(params=sorted(POISON))
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> Iterator[Site]:
    db, stored = copy_template(tmp_path_factory, tmp_path)
    sid = stored.forklift_mixed[0]
    with sqlite3.connect(db) as con:
        query = "SELECT r.report FROM reports r JOIN sessions s ON s.id = r.session_id WHERE "
        (text,) = con.execute(query + "s.session = ?", (sid,)).fetchone()
        bad = json.dumps(_poisoned(json.loads(text), POISON[request.param]))
        con.execute("UPDATE reports SET report = ? WHERE session_id = (SELECT id FROM sessions "
                    "WHERE session = ?)", (bad, sid))  # fmt: skip
    app = create_app(db_path=db, metrics=lambda: "")
    tokens = make_tokens(app.state.service)
    with TestClient(app) as client:
        yield Site(client, stored, tokens)


def test_the_session_answers_with_null_for_numbers_that_are_not_finite(site: Site) -> None:
    sid = site.stored.forklift_mixed[0]
    detail = site.api(f"/api/v1/sessions/{sid}")
    assert detail["scored"]["score"] is None
    assert {c["points"] for c in detail["criteria"]} == {None}
    assert detail["machine"]["score"] is not None  # the rubric's own points score it again


def test_lists_and_history_answer_200_with_strict_json(site: Site) -> None:
    sid = site.stored.forklift_mixed[0]
    listed = site.api(f"/api/v1/sessions?learner={LEARNER}")
    assert sid in {s["session"] for s in listed["items"]}
    history = site.api(f"/api/v1/learners/{LEARNER}/history")
    sessions = {a["session"] for r in history["rubrics"] for a in r["attempts"]}
    assert sid in sessions


@pytest.mark.parametrize("kind", ["session", "learner", "review"])
def test_pages_render(site: Site, kind: str) -> None:
    sid = site.stored.forklift_mixed[0]
    url = {"session": f"/sessions/{sid}", "learner": f"/learners/{LEARNER}",
           "review": "/review"}[kind]  # fmt: skip
    html = site.page(url)
    assert re.search(r"\b(nan|inf|NaN|Infinity)\b", html) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (2.5, 2.5), (None, None), (math.nan, None), (-math.inf, None), (True, None),
     ("3", None), (10**400, None)],
)  # fmt: skip
def test_finite_reads_only_finite_numbers(value: object, expected: float | None) -> None:
    assert finite(value) == expected


@pytest.mark.parametrize("score", [None, math.nan, math.inf])
def test_a_stored_report_without_a_finite_score_is_no_attempt_toward_a_credential(
    score: float | None,
) -> None:
    info = SessionInfo("s-1", "learner-1", "forklift-warehouse", "forklift-load-handling", 1,
                       "0" * 64)  # fmt: skip
    record = SessionRecord(info, "closed", "2026-12-06T00:00:00Z", 10, "0" * 64, 1, 9.0,
                           "2026-12-06T00:10:00Z")  # fmt: skip
    report = {"outcome": "pass", "score": 100.0, "criteria": [
        {"id": "a", "title": "A", "verdict": "pass", "critical": False, "points": math.inf}]}
    attempt = attempt_from(record, report)
    assert attempt is not None
    assert attempt.criteria[0].points is None
    assert attempt_from(record, {**report, "score": score}) is None
