"""Credentials through the public interfaces only: a real `assessengine serve`, sessions streamed
with the client, observations recorded over HTTP, credentials issued, revoked and verified by
both the HTTP API and the `assessengine credential` commands, which share one issuing path, one
issuer key (beside the store) and one default public URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import click
import httpx
import pytest
from click.testing import CliRunner

from assessengine.adapters.library import load_scenario
from assessengine.adapters.signer import IssuerKey
from assessengine.cli import main
from assessengine.cli.credential_signing_cmd import issue
from assessengine.cli.serve_cmd import parse_address
from assessengine.client import EngineClient
from assessengine.compose import credential_settings
from assessengine.settings import Settings
from assessengine.sim.generate import simulate

from .test_engine_helpers import FAST, Served, serve
from .waits import WAIT_S

API = "/api/v1"
RUBRIC = "forklift-load-handling"
POLICY = "forklift-operator"
LEARNER = "L-0042"
PLAN: tuple[tuple[str, Literal["simulator", "field"]], ...] = (
    ("S-1", "simulator"), ("S-2", "simulator"), ("F-1", "field"))
"""What the forklift-operator policy asks for: two simulator passes, then one in the field."""


def assessengine(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it (a process of its own, no settings in the
    environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSESSENGINE_")}
    return subprocess.run([sys.executable, "-m", "assessengine", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)  # fmt: skip


def token(db: Path, role: str, name: str) -> str:
    made = CliRunner().invoke(main, ["token", "create", "--role", role, "--name", name, "--db",
                                     str(db)])  # fmt: skip
    assert made.exit_code == 0, made.output
    return made.stdout.strip()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = serve(tmp_path / "engine.db")
    try:
        yield running
        assert running.terminate() == 0, running.log()
    finally:
        if running.process.poll() is None:
            running.kill()


def stream_competent_sessions(endpoint: str) -> None:
    scenario = load_scenario("forklift-warehouse")
    with EngineClient(endpoint, client_id="simulator", **FAST) as client:
        for k, (session, source) in enumerate(PLAN):
            (events,) = simulate(scenario, "competent", 1, seed=1, first=k).to_sessions()
            client.open(session, learner=LEARNER, scenario=scenario.scenario, rubric=RUBRIC,
                        source=source, timeout=WAIT_S)  # fmt: skip
            client.send(session, events.events)
            client.close(session, events.end_t)
        client.flush(WAIT_S)


def wait_until_scored(http: httpx.Client, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + WAIT_S  # serve compiled or loaded the kernel before it served
    for session, _ in PLAN:
        while True:
            answer = http.get(f"{API}/sessions/{session}", headers=headers)
            if answer.status_code == 200 and answer.json()["machine"] is not None:
                assert answer.json()["machine"]["outcome"] == "incomplete"  # observed: pending
                break
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.1)


def test_the_cli_issues_over_what_assessors_recorded_with_the_key_serve_made(
    served: Served, tmp_path: Path
) -> None:
    db = tmp_path / "engine.db"
    assessor = {"Authorization": f"Bearer {token(db, 'assessor', 'Sam Okafor')}"}
    stream_competent_sessions(served.zmq)
    with httpx.Client(base_url=served.http, timeout=WAIT_S) as http:
        wait_until_scored(http, assessor)
        waiting = assessengine("credential", "issue", "--db", str(db), "--learner", LEARNER,
                               "--policy", POLICY)  # fmt: skip
        assert waiting.returncode == 1, waiting.stderr
        assert f"not eligible: {LEARNER} for {POLICY}" in waiting.stderr
        assert "pending: looks_before_reversing" in waiting.stderr

        for session, _ in PLAN:
            observed = http.post(f"{API}/sessions/{session}/observations", headers=assessor,
                                 json={"criterion": "looks_before_reversing", "verdict": "pass",
                                       "note": "looked over the shoulder"})  # fmt: skip
            assert observed.status_code == 201, observed.text
        over_http = http.post(f"{API}/credentials/issue", headers=assessor,
                              json={"learner": LEARNER, "policy": POLICY})  # fmt: skip
        assert over_http.status_code == 201, over_http.text
        key_file = db.with_name("engine.db.issuer.pem")
        serve_did = IssuerKey.from_pem(key_file.read_bytes()).did
        assert over_http.json()["issuer"]["id"] == serve_did

        revoked = assessengine("credential", "revoke", "--db", str(db), "--id",
                               over_http.json()["id"], "--reason", "issued twice")  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        out = tmp_path / "L-0042.json"
        issued = assessengine("credential", "issue", "--db", str(db), "--learner", LEARNER,
                              "--policy", POLICY, "--out", str(out))  # fmt: skip
        assert issued.returncode == 0, issued.stderr
        document = json.loads(out.read_text())
        assert document["issuer"]["id"] == serve_did  # the key serve made beside the store
        evidence = [e["id"].rsplit("/", 1)[1] for e in document["evidence"]]
        assert evidence == [session for session, _ in PLAN]
        assert "Assessor: Sam Okafor." in document["evidence"][2]["narrative"]

        checked = http.post(f"{API}/credentials/verify", json=document).json()
        assert (checked["valid"], checked["trusted"]) == (True, True), checked
        status = {c["name"]: c["status"] for c in checked["checks"]}["status"]
        assert status == "ok"  # the CLI's URLs are the server's: its list is found and read
        first = http.post(f"{API}/credentials/verify", json=over_http.json()).json()
        assert first["valid"] is False
        assert first["reason"].startswith("status: revoked")
        audit = http.get(f"{API}/audit?action=credential.issue", headers={
            "Authorization": f"Bearer {token(db, 'admin', 'root')}"}).json()["items"]  # fmt: skip
        assert [a["actor"].split(":")[0] for a in audit] == ["cli", "Sam Okafor"]
    again = assessengine("credential", "verify", str(out), "--db", str(db))
    assert again.returncode == 0, again.stdout + again.stderr


def _default(command: click.Command, name: str) -> Any:
    return next(p.default for p in command.params if p.name == name)


def test_the_cli_and_serve_write_the_same_public_url_by_default() -> None:
    settings = Settings.load(environ={})  # what serve runs with when nothing is configured
    address = parse_address(settings.http)
    served_url = credential_settings(settings, host=address.host, port=address.port).base_url
    assert _default(issue, "base_url") == served_url == "http://127.0.0.1:8080"
