"""`assessengine serve --db postgresql://...` as a process: ingest, scoring and the HTTP API
on one PostgreSQL database (the engine's tables and the app's: tokens, reviews, credentials)."""

from __future__ import annotations

from pathlib import Path

import httpx
from click.testing import CliRunner

from assessengine.adapters.signer import IssuerKey
from assessengine.api.service import ReviewService
from assessengine.cli import main
from assessengine.client import EngineClient
from assessengine.storage import open_store
from assessengine.streaming import stream_sessions

from .pg_server import PASSWORD
from .test_engine_helpers import FAST, audit, offline_reports, serve, sessions
from .waits import WAIT_S


def test_serve_on_postgres_ingests_scores_and_serves_the_reports_over_http(
    pg_store_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    served = serve(pg_store_url, "--issuer-key", str(key))
    lab = sessions("network-lab", 3, seed=2)
    try:
        with EngineClient(served.zmq, client_id="t", **FAST) as client:
            stream_sessions(client, lab)
        service = ReviewService.open(pg_store_url)
        try:
            _, token = service.create_token(name="a", role="assessor", learner=None, actor="t")
        finally:
            service.close()
        expected = offline_reports(lab, tmp_path)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=served.http, headers=headers, timeout=WAIT_S) as http:
            listed = http.get("/api/v1/sessions?limit=10").json()["items"]
            assert sorted(row["session"] for row in listed) == sorted(lab.session_ids)
            for sid in lab.session_ids:
                machine = http.get(f"/api/v1/sessions/{sid}").json()["machine"]
                assert machine == {"outcome": expected[sid]["outcome"],
                                   "score": expected[sid]["score"]}  # fmt: skip
        code = served.terminate()
    finally:
        if served.process.poll() is None:
            served.kill()
    assert code == 0, served.log()
    assert PASSWORD not in served.log()
    with open_store(pg_store_url) as store:
        assert {sid: store.report(sid) for sid in lab.session_ids} == expected
    assert audit(pg_store_url, lab.session_ids[-1])[0] == 0


def test_the_token_and_credential_commands_take_a_postgres_url(
    pg_store_url: str, tmp_path: Path
) -> None:
    open_store(pg_store_url).close()
    made = CliRunner().invoke(main, ["token", "create", "--role", "assessor", "--name", "sam",
                                     "--db", pg_store_url])  # fmt: skip
    assert made.exit_code == 0, made.output
    listed = CliRunner().invoke(main, ["token", "list", "--db", pg_store_url])
    assert listed.exit_code == 0, listed.output
    assert "sam" in listed.output
    refused = CliRunner().invoke(main, ["credential", "revoke", "--id", "urn:uuid:nope", "--reason",
                                        "x", "--db", pg_store_url])  # fmt: skip
    assert refused.exit_code == 1  # a server database keeps no key beside it: one line
    assert refused.output == ("Error: a store on a database server keeps no issuer key beside "
                              "it: give one (--issuer-key FILE)\n")  # fmt: skip
    key = tmp_path / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    unknown = CliRunner().invoke(main, ["credential", "revoke", "--id", "urn:uuid:nope",
                                        "--reason", "x", "--key", str(key),
                                        "--db", pg_store_url])  # fmt: skip
    assert unknown.exit_code != 0
    assert "urn:uuid:nope" in unknown.output, unknown.output
    assert PASSWORD not in unknown.output
    assert PASSWORD not in made.output + listed.output + refused.output
