"""Several API servers on one PostgreSQL database (runtime issue #17): one `assessengine serve`
(ingest, scoring and HTTP) and two `serve --no-ingest` (HTTP only) as processes on the test
server. What an assessor records through one API server (an in-field observation, an override)
is what the other one serves at once: the session's review and the audit log."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from assessengine.adapters.signer import IssuerKey
from assessengine.cli import main
from assessengine.client import EngineClient
from assessengine.streaming import stream_sessions

from .pg_server import PASSWORD
from .test_engine_helpers import FAST, Served, serve, sessions
from .waits import WAIT_S


def _stop(servers: list[Served]) -> list[int]:
    """SIGTERM every server still running, then their exit codes (killed if one hangs)."""
    for served in servers:
        if served.process.poll() is None:
            served.process.terminate()
    codes = []
    for served in servers:
        try:
            codes.append(served.wait(WAIT_S))
        except Exception:  # killed by wait: the test reports the code it never gave
            codes.append(-9)
    return codes


def _start(url: str, *options: tuple[str, ...]) -> list[Served]:
    """`serve` with each of `options`, started at once (in threads); every one stopped if one
    does not start."""
    with ThreadPoolExecutor(len(options)) as pool:
        futures = [pool.submit(serve, url, *opts) for opts in options]
    started = [f.result() for f in futures if f.exception() is None]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        _stop(started)
        raise AssertionError(f"a server did not start: {failed[0]}")
    return started


def _scored(http: httpx.Client, sid: str, timeout: float = WAIT_S) -> dict[str, Any]:
    """The session's review once its report is saved (scoring may still be in flight)."""
    deadline = time.monotonic() + timeout
    while True:
        got = http.get(f"/api/v1/sessions/{sid}")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        if body["machine"] is not None:
            return body
        assert time.monotonic() < deadline, f"{sid} not scored in {timeout} s: {body}"
        time.sleep(0.1)


def test_what_one_api_server_records_the_other_serves_at_once(
    pg_store_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    issuer = ("--issuer-key", str(key))
    servers = _start(pg_store_url, issuer, ("--no-ingest", *issuer), ("--no-ingest", *issuer))
    engine, a, b = servers
    try:
        assert len({s.http for s in servers}) == 3
        assert (a.zmq, b.zmq) == ("", "")
        lab = sessions("network-lab", 2, seed=17)
        with EngineClient(engine.zmq, client_id="t", **FAST) as client:
            stream_sessions(client, lab)
        made = CliRunner().invoke(main, ["token", "create", "--role", "admin", "--name",
                                         "Sam (tablet)", "--db", pg_store_url])  # fmt: skip
        assert made.exit_code == 0, made.output
        headers = {"Authorization": f"Bearer {made.output.splitlines()[0]}"}
        sid, other = lab.session_ids
        with httpx.Client(base_url=a.http, headers=headers, timeout=WAIT_S) as via_a, \
                httpx.Client(base_url=b.http, headers=headers,
                             timeout=WAIT_S) as via_b:  # fmt: skip
            before = _scored(via_b, sid)  # B has read the session before A changes it
            assert (before["observations"], before["overrides"]) == ([], [])
            assert _scored(via_a, other)["machine"] is not None
            assert via_b.get("/api/v1/audit", params={"session": sid}).json()["items"] == []

            observed = via_a.post(f"/api/v1/sessions/{sid}/observations", json={
                "criterion": "cabling_dressed", "verdict": "pass",
                "note": "cables dressed and labelled; port map updated", "t": 12.5})  # fmt: skip
            assert observed.status_code == 201, observed.text
            overridden = via_a.post(f"/api/v1/sessions/{sid}/overrides", json={
                "criterion": "correct_ports", "verdict": "not_applicable",
                "reason": "work order changed on the day"})  # fmt: skip
            assert overridden.status_code == 201, overridden.text
            written = overridden.json()

            for read in (via_b, via_a):
                got = read.get(f"/api/v1/sessions/{sid}").json()
                assert got == written
                assert [(o["criterion"], o["verdict"], o["note"]) for o in got["observations"]] \
                    == [("cabling_dressed", "pass",
                         "cables dressed and labelled; port map updated")]  # fmt: skip
                assert [(o["criterion"], o["verdict"], o["reason"]) for o in got["overrides"]] \
                    == [("correct_ports", "not_applicable",
                         "work order changed on the day")]  # fmt: skip
                assert got["overridden"] is True
                log = read.get("/api/v1/audit", params={"session": sid}).json()["items"]
                assert [(e["action"], e["actor"], e["reason"]) for e in log] == [
                    ("override.create", "Sam (tablet)", "work order changed on the day"),
                    ("observation.create", "Sam (tablet)",
                     "cables dressed and labelled; port map updated"),
                ]  # fmt: skip
            untouched = via_b.get(f"/api/v1/sessions/{other}").json()
            assert (untouched["observations"], untouched["overrides"]) == ([], [])
            assert untouched["overridden"] is False
    finally:
        codes = _stop(servers)
    assert codes == [0] * len(servers), "\n".join(s.log() for s in servers)


def test_token_commands_take_a_postgresql_url(pg_store_url: str) -> None:
    """`token create|list|revoke --db postgresql://...` work on the server database (the
    option was a file path: the URL became ``postgresql:/...``, a SQLite file that could not
    be made, and the error showed the password); a refused login is one line, no password."""
    runner = CliRunner()
    made = runner.invoke(main, ["token", "create", "--role", "assessor", "--name", "Sam",
                                "--db", pg_store_url])  # fmt: skip
    assert made.exit_code == 0, made.output
    listed = runner.invoke(main, ["token", "list", "--json", "--db", pg_store_url])
    assert listed.exit_code == 0, listed.output
    assert [(t["name"], t["role"]) for t in json.loads(listed.output)] == [("Sam", "assessor")]
    revoked = runner.invoke(main, ["token", "revoke", "Sam", "--db", pg_store_url])
    assert revoked.exit_code == 0, revoked.output
    assert revoked.output.startswith("revoked tok_")
    wrong = pg_store_url.replace(PASSWORD, "not-the-password")
    refused = runner.invoke(main, ["token", "list", "--db", wrong])
    assert refused.exit_code == 1
    assert len(refused.output.strip().splitlines()) == 1, refused.output
    assert "not-the-password" not in refused.output
    assert PASSWORD not in made.output + listed.output + revoked.output
