"""Access: every role is refused what it must not do (401 without a valid token, 403 for the
wrong role, 404 for another learner's records), and `assessengine token` manages tokens."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assessengine.cli import main

from .test_api_support import FORKLIFT, LEARNER, OTHER_LEARNER, Api, open_api

ALL = frozenset({"admin", "trainer", "assessor", "learner"})


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path_factory, tmp_path)


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    allowed: frozenset[str]
    json: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None

    def send(self, api: Api, headers: dict[str, str]) -> Any:
        if self.method == "GET":
            return api.client.get(self.url, headers=headers)
        files = None if self.files is None else {
            k: (name, content) for k, (name, content) in self.files.items()
        }  # fmt: skip
        return api.client.post(self.url, headers=headers, json=self.json, files=files,
                               data=self.data)  # fmt: skip


def calls(api: Api) -> list[Call]:
    own = _own_session(api)
    csv = "t,event,speed\n0,,0\n1,,1\n"
    return [
        Call("GET", "/api/v1/me", ALL),
        Call("GET", "/api/v1/sessions", ALL),
        Call("GET", f"/api/v1/sessions/{own}", ALL),
        Call("GET", f"/api/v1/sessions/{own}/events?buckets=5", ALL),
        Call("POST", f"/api/v1/sessions/{own}/observations", frozenset({"admin", "assessor"}),
             json={"criterion": "looks_before_reversing", "verdict": "pass", "note": "ok"}),
        Call("POST", f"/api/v1/sessions/{own}/overrides", frozenset({"admin", "assessor"}),
             json={"criterion": "loaded_speed", "verdict": "pass", "reason": "ok"}),
        Call("POST", "/api/v1/field-sessions", frozenset({"admin", "trainer", "assessor"}),
             files={"file": ("log.csv", csv.encode())},
             data={"learner": LEARNER, "rubric": "forklift-load-handling"}),
        Call("GET", "/api/v1/rubrics", frozenset({"admin", "trainer", "assessor"})),
        Call("POST", "/api/v1/rubrics", frozenset({"admin", "trainer"}),
             files={"file": ("forklift.yaml", FORKLIFT.read_bytes())}),
        Call("GET", "/api/v1/rubrics/forklift-load-handling/1",
             frozenset({"admin", "trainer", "assessor"})),
        Call("POST", "/api/v1/rescores", frozenset({"admin", "trainer"}),
             json={"rubric": "forklift-load-handling", "version": 1, "sessions": [own]}),
        Call("GET", "/api/v1/rescores/1", frozenset({"admin", "trainer"})),
        Call("GET", f"/api/v1/learners/{LEARNER}/history", ALL),
        Call("GET", "/api/v1/audit", frozenset({"admin", "trainer"})),
        Call("GET", "/api/v1/review-queue", frozenset({"admin", "trainer", "assessor"})),
        Call("GET", "/api/v1/review-queue.csv", frozenset({"admin", "trainer", "assessor"})),
        Call("GET", "/api/v1/dashboard", frozenset({"admin", "trainer", "assessor"})),
        Call("GET", "/api/v1/sessions.csv", ALL),
        Call("GET", f"/api/v1/learners/{LEARNER}/progress", ALL),
    ]  # fmt: skip


def _own_session(api: Api) -> str:
    """A closed forklift session of LEARNER (the learner token's learner)."""
    return next(
        sid for sid in api.stored.forklift_competent
        if api.service.store.session(sid).info.learner == LEARNER  # type: ignore[union-attr]
    )  # fmt: skip


def test_without_a_token_every_api_call_is_401(api: Api) -> None:
    for call in calls(api):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
            answer = call.send(api, headers)
            assert answer.status_code == 401, (call.url, headers, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", sorted(ALL))
def test_each_role_is_refused_exactly_what_it_may_not_do(api: Api, role: str) -> None:
    for call in calls(api):
        answer = call.send(api, api.headers(role))
        if role in call.allowed:
            assert answer.status_code not in (401, 403), (role, call.url, answer.text)
        else:
            assert answer.status_code == 403, (role, call.url, answer.text)
            assert answer.json()["type"] == "urn:assessengine:problem:forbidden"


def test_a_learner_sees_only_their_own_sessions(api: Api) -> None:
    mine = api.get("/api/v1/sessions?limit=500", "learner").json()["items"]
    assert mine
    assert {s["learner"] for s in mine} == {LEARNER}
    other = api.get(f"/api/v1/sessions?learner={OTHER_LEARNER}", "learner").json()["items"]
    assert other == []


def test_another_learners_session_and_history_are_404_not_403(api: Api) -> None:
    own = _own_session(api)
    for url in (f"/api/v1/sessions/{own}", f"/api/v1/sessions/{own}/events?buckets=3",
                f"/api/v1/learners/{LEARNER}/history"):  # fmt: skip
        answer = api.get(url, "learner2")
        assert answer.status_code == 404, url
        assert answer.json()["type"] == "urn:assessengine:problem:not-found"
        assert api.get(url, "learner").status_code == 200


def test_me_names_the_token(api: Api) -> None:
    me = api.get("/api/v1/me", "learner").json()
    assert (me["role"], me["learner"], me["name"]) == ("learner", LEARNER, "learner-1")


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["token", *args])


def test_token_create_prints_the_token_once_and_stores_only_its_hash(api: Api) -> None:
    result = run("create", "--role", "assessor", "--name", "Sam (tablet)", "--db", str(api.db))
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("aet_")
    assert api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()[
        "name"
    ] == "Sam (tablet)"
    db = sqlite3.connect(api.db)
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert secret not in dump
    listed = json.loads(run("list", "--db", str(api.db), "--json").stdout)
    assert "Sam (tablet)" in [t["name"] for t in listed]
    assert secret not in json.dumps(listed)


def test_a_revoked_token_gets_401(api: Api) -> None:
    created = run("create", "--role", "trainer", "--name", "temp", "--db", str(api.db))
    secret = created.stdout.strip()
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/api/v1/me", headers=headers).status_code == 200
    revoked = run("revoke", "temp", "--db", str(api.db))
    assert revoked.exit_code == 0, revoked.output
    assert api.client.get("/api/v1/me", headers=headers).status_code == 401
    again = run("revoke", "temp", "--db", str(api.db))
    assert again.exit_code == 1
    listed = run("list", "--db", str(api.db)).stdout
    assert "revoked" in listed


def test_token_create_checks_role_and_learner(tmp_path: Path) -> None:
    db = str(tmp_path / "new.db")
    assert run("create", "--role", "boss", "--name", "x", "--db", db).exit_code == 2
    assert run("create", "--role", "learner", "--name", "x", "--db", db).exit_code == 2
    assert run("create", "--role", "admin", "--name", "x", "--learner", "L", "--db",
               db).exit_code == 2  # fmt: skip
    for bad in ("crew/7", "L" * 129, "L\x01"):
        refused = run("create", "--role", "learner", "--name", "x", "--learner", bad, "--db", db)
        assert refused.exit_code == 2
        assert "learner" in refused.output
        assert "not a valid id" in refused.output or "at most 128" in refused.output
    made = run("create", "--role", "learner", "--name", "x", "--learner", "L", "--db", db)
    assert made.exit_code == 0, made.output
