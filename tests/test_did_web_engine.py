"""The engine issuing under did:web (setting ``issuer_did_web``): a real uvicorn server on
127.0.0.1 serves its own DID document at /.well-known/did.json; credentials and status lists
are signed under did:web:127.0.0.1%3APORT; the engine verifies them from its configured keys
(no network), and Digital Bazaar's verifier fetches the DID document from the running server.
Across a key rotation (restart with a new key, the old one retired) both the old and the new
credentials stay valid; dropping the retired key makes the old ones fail. Foreign did:web
credentials are never resolved; no did:web configured is a 404 problem; the CLI and the
settings take the host and the retired keys, and refuse bad ones in one line."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from assessengine.adapters.did_web import did_document, did_web
from assessengine.adapters.signer import IssuerKey, sign_credential
from assessengine.api.app import create_app
from assessengine.api.service.credentials import CredentialSettings
from assessengine.compose import credential_settings
from assessengine.settings import Settings
from assessengine.storage.sqlite import SqliteStore

from .browser_support import serving
from .independent_verify import independent_verification
from .stored_payloads import copy_store
from .test_api_support import make_tokens
from .test_credentials import _credential
from .test_credentials_e2e import FORKLIFT, record_sessions, run

POLICY = "forklift-operator"
FIRST, SECOND = "L-DW-1", "L-DW-2"
HISTORY = [("simulator", "competent"), ("simulator", "competent"), ("field", "competent")]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two learners, each eligible for the forklift credential (observations recorded)."""
    path = tmp_path_factory.mktemp("did-web") / "engine.db"
    with SqliteStore(path, synchronous="OFF") as store:
        for n, learner in enumerate((FIRST, SECOND)):
            record_sessions(store, FORKLIFT, learner, [
                (f"DW-{n}-{k}", source, kind) for k, (source, kind) in enumerate(HISTORY)])
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "engine.db"
    copy_store(template, path)
    return path


def _key_file(folder: Path, name: str) -> tuple[Path, IssuerKey]:
    key = IssuerKey.generate()
    path = folder / name
    path.write_bytes(key.to_pem())
    path.chmod(0o600)
    return path, key


def _reusable_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _socket(port: int) -> socket.socket:
    """A listening socket on `port` that can be bound again right after a restart."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


@dataclass
class Running:
    url: str
    admin: dict[str, str]


@contextmanager
def engine(db: Path, port: int, key: Path, retired: tuple[Path, ...] = ()) -> Iterator[Running]:
    """`assessengine serve` as configured with ASSESSENGINE_ISSUER_DID_WEB=127.0.0.1:PORT (and
    ASSESSENGINE_ISSUER_RETIRED_KEYS): the settings go through `compose.credential_settings`,
    the app runs in uvicorn on `port`."""
    settings = Settings(base_url=f"http://127.0.0.1:{port}", issuer_did_web=f"127.0.0.1:{port}",
                        issuer_retired_keys=list(retired))  # fmt: skip
    app = create_app(db_path=db, issuer_key_path=key,
                     credentials=credential_settings(settings, host="127.0.0.1", port=port))
    tokens = make_tokens(app.state.service)
    with serving(app, _socket(port)) as url:
        yield Running(url, {"Authorization": f"Bearer {tokens['admin']}"})


def _issue(running: Running, learner: str) -> dict[str, Any]:
    answer = httpx.post(f"{running.url}/api/v1/credentials/issue", headers=running.admin,
                        json={"learner": learner, "policy": POLICY}, timeout=60)  # fmt: skip
    assert answer.status_code == 201, answer.text
    issued: dict[str, Any] = answer.json()
    return issued


def _checks(running: Running, document: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{running.url}/api/v1/credentials/verify", json=document, timeout=60)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result | {c["name"]: c["status"] for c in result["checks"]}


def _method(document: dict[str, Any]) -> str:
    return str(document["proof"][0]["verificationMethod"])


def _multikey(key: IssuerKey) -> str:
    return did_document("did:web:x.org", [key.public_key])["verificationMethod"][0][
        "publicKeyMultibase"]


def test_the_engine_issues_under_its_did_web_and_old_credentials_survive_a_rotation(
    db: Path, tmp_path: Path
) -> None:
    port = _reusable_port()
    did = did_web(f"127.0.0.1:{port}")
    first_file, first = _key_file(tmp_path, "issuer-1.pem")
    with engine(db, port, first_file) as running:
        served = httpx.get(f"{running.url}/.well-known/did.json")
        assert served.status_code == 200, served.text
        assert served.headers["content-type"] == "application/did+json"
        assert served.json() == did_document(did, [first.public_key])

        old = _issue(running, FIRST)
        assert old["issuer"]["id"] == did
        assert _method(old) == f"{did}#{_multikey(first)}"
        checks = _checks(running, old)
        assert checks["valid"] is True, checks
        assert checks["trusted"] is True
        assert checks["status"] == "ok"  # the status list is signed under the did:web too
        status_list = httpx.get(f"{running.url}/api/v1/credentials/status/1").json()
        assert status_list["issuer"] == did
        assert status_list["proof"][0]["verificationMethod"] == _method(old)
        assert independent_verification(old, did_web_http=True) == {
            "verified": True, "error": None}

    second_file, second = _key_file(tmp_path, "issuer-2.pem")
    with engine(db, port, second_file, retired=(first_file,)) as running:
        served = httpx.get(f"{running.url}/.well-known/did.json").json()
        assert served == did_document(did, [second.public_key, first.public_key])
        new = _issue(running, SECOND)
        assert _method(new) == f"{did}#{_multikey(second)}"
        status_list = httpx.get(f"{running.url}/api/v1/credentials/status/1").json()
        assert status_list["proof"][0]["verificationMethod"] == _method(new)  # signed afresh
        for document in (old, new):
            checks = _checks(running, document)
            assert checks["valid"] is True, checks
            assert independent_verification(document, did_web_http=True) == {
                "verified": True, "error": None}

        stranger = sign_credential(_credential(did), IssuerKey.generate(),
                                   created=datetime.now(UTC), controller=did)  # fmt: skip
        checks = _checks(running, stranger)
        assert (checks["key"], checks["signature"], checks["valid"]) == (
            "failed", "failed", False)
        assert f"is not an assertion method of {did}" in checks["reason"]
        assert independent_verification(stranger, did_web_http=True)["verified"] is False
        tampered = copy.deepcopy(old)
        tampered["credentialSubject"]["result"][0]["value"] = "1"
        assert _checks(running, tampered)["signature"] == "failed"
        assert independent_verification(tampered, did_web_http=True)["verified"] is False

    with engine(db, port, second_file) as running:  # the retired key dropped: old ones fail
        checks = _checks(running, old)
        assert (checks["key"], checks["valid"]) == ("failed", False), checks
        assert independent_verification(old, did_web_http=True)["verified"] is False
        assert _checks(running, new)["valid"] is True


def test_the_public_page_shows_the_did_web_issuer_trusted_with_its_did_document(
    db: Path, tmp_path: Path
) -> None:
    key_file, _ = _key_file(tmp_path, "issuer.pem")
    port = _reusable_port()
    with engine(db, port, key_file) as running:
        issued = _issue(running, FIRST)
        share = httpx.get(f"{running.url}/api/v1/credentials/{issued['id']}/share",
                          headers=running.admin).json()  # fmt: skip
        page = httpx.get(share["url"], headers={"Accept": "text/html"})
    assert page.status_code == 200
    did = did_web(f"127.0.0.1:{port}")
    assert '<p class="issuer-trust" data-trusted="true">' in page.text
    assert f"<code>{did}</code>" in page.text
    assert f'href="https://127.0.0.1:{port}/.well-known/did.json"' in page.text
    assert 'data-check="issuer" data-status="ok"' in page.text
    assert 'data-check="key" data-status="ok"' in page.text


def _client(db: Path, key: Path | None, *, did: str | None) -> TestClient:
    app = create_app(db_path=db, issuer_key_path=key, credentials=CredentialSettings(
        base_url="https://engine.example.org", did_web=did))  # fmt: skip
    return TestClient(app)


def test_without_a_did_web_the_did_document_is_a_404_problem(db: Path, tmp_path: Path) -> None:
    key_file, _ = _key_file(tmp_path, "issuer.pem")
    with _client(db, key_file, did=None) as client:
        answer = client.get("/.well-known/did.json")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert "issues as did:key: no did:web is configured" in answer.json()["detail"]


def test_before_its_first_key_the_did_document_is_a_404_problem(db: Path) -> None:
    with _client(db, None, did=did_web("engine.example.org")) as client:
        answer = client.get("/.well-known/did.json")
    assert answer.status_code == 404
    assert "has no key yet" in answer.json()["detail"]


def test_a_foreign_did_web_is_never_resolved_even_when_trusted(db: Path, tmp_path: Path) -> None:
    key_file, _ = _key_file(tmp_path, "issuer.pem")
    foreign = did_web("partner.example.org")
    document = sign_credential(_credential(foreign), IssuerKey.generate(),
                               created=datetime.now(UTC), controller=foreign)  # fmt: skip
    app = create_app(db_path=db, issuer_key_path=key_file, credentials=CredentialSettings(
        did_web=did_web("engine.example.org"), trusted_issuers=frozenset({foreign})))
    with TestClient(app) as client:
        result = client.post("/api/v1/credentials/verify", json=document).json()
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["issuer"]["status"] == "ok"
    assert checks["key"]["status"] == "failed"
    assert "fetches no DID documents" in checks["key"]["detail"]
    assert result["valid"] is False


# ------------------------------------------------------------------------------ the CLI


def _public_pem(key: IssuerKey, path: Path) -> Path:
    path.write_bytes(key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def test_the_command_line_issues_and_verifies_under_the_did_web(db: Path, tmp_path: Path) -> None:
    key_file, key = _key_file(tmp_path, "issuer.pem")
    host = "engine.example.org"
    did = did_web(host)
    out = tmp_path / "L.json"
    issued = run("credential", "issue", "--db", str(db), "--learner", FIRST, "--policy", POLICY,
                 "--issuer-key", str(key_file), "--issuer-did-web", host, "--out", str(out))
    assert issued.exit_code == 0, issued.output
    document = json.loads(out.read_text())
    assert document["issuer"]["id"] == did
    assert _method(document).startswith(f"{did}#z6Mk")

    offline = run("credential", "verify", str(out), "--issuer-key", str(key_file),
                  "--issuer-did-web", host)  # fmt: skip
    assert offline.exit_code == 0, offline.output
    assert f"ok       key        Ed25519 key {_multikey(key)} of {did}" in offline.output
    assert f"ok       issuer     {did} is a trusted issuer" in offline.output
    public_only = run("credential", "verify", str(out), "--issuer-did-web", host,
                      "--issuer-retired-keys", str(_public_pem(key, tmp_path / "pub.pem")))
    assert public_only.exit_code == 0, public_only.output
    as_did_key = run("credential", "verify", str(out), "--issuer-key", str(key_file))
    assert as_did_key.exit_code == 1
    assert "FAILED   key" in as_did_key.output

    listing = tmp_path / "status-1.json"
    made = run("credential", "status-list", "--db", str(db), "--issuer-key", str(key_file),
               "--issuer-did-web", host, "--out", str(listing))  # fmt: skip
    assert made.exit_code == 0, made.output
    assert json.loads(listing.read_text())["issuer"] == did
    with_list = run("credential", "verify", str(out), "--issuer-key", str(key_file),
                    "--issuer-did-web", host, "--status-list", str(listing))  # fmt: skip
    assert with_list.exit_code == 0, with_list.output
    assert "ok       status     not revoked" in with_list.output


def test_the_command_line_takes_the_did_web_from_the_environment(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file, _ = _key_file(tmp_path, "issuer.pem")
    old_file, old = _key_file(tmp_path, "old.pem")
    monkeypatch.setenv("ASSESSENGINE_ISSUER_DID_WEB", "engine.example.org")
    monkeypatch.setenv("ASSESSENGINE_ISSUER_RETIRED_KEYS", str(old_file))
    monkeypatch.setenv("ASSESSENGINE_ISSUER_KEY", str(key_file))
    out = tmp_path / "L.json"
    assert run("credential", "issue", "--db", str(db), "--learner", FIRST, "--policy", POLICY,
               "--out", str(out)).exit_code == 0  # fmt: skip
    as_engine = run("credential", "verify", str(out), "--db", str(db))
    assert as_engine.exit_code == 0, as_engine.output
    before = sign_credential(_credential(did_web("engine.example.org")), old,
                             created=datetime.now(UTC), controller=did_web("engine.example.org"))
    signed_before = tmp_path / "before.json"
    signed_before.write_text(json.dumps(before))
    retired = run("credential", "verify", str(signed_before), "--db", str(db))
    assert "ok       key" in retired.output, retired.output


@pytest.mark.parametrize(("args", "message"), [
    (["--issuer-did-web", "https://engine.example.org"], "not a host name for did:web"),
    (["--issuer-retired-keys", "KEY"], "retired issuer keys go with a did:web issuer"),
    (["--issuer-did-web", "engine.example.org", "--issuer-retired-keys", "NOPE"],
     "cannot read the key"),
])  # fmt: skip
def test_the_command_line_refuses_a_bad_did_web_setting_in_one_line(
    db: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    key_file, _ = _key_file(tmp_path, "issuer.pem")
    args = [str(key_file) if a == "KEY" else str(tmp_path / "nope.pem") if a == "NOPE" else a
            for a in args]  # fmt: skip
    out = tmp_path / "L.json"
    result = run("credential", "issue", "--db", str(db), "--learner", FIRST, "--policy", POLICY,
                 "--issuer-key", str(key_file), "--out", str(out), *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--issuer-did-web", "engine.example.org/path"], "not a host name for did:web"),
    (["--issuer-retired-keys", "KEY"], "retired issuer keys go with a did:web issuer"),
    (["--issuer-did-web", "x.org", "--issuer-retired-keys", "NOPE"], "does not exist"),
])  # fmt: skip
def test_serve_refuses_a_bad_did_web_setting_before_starting(
    db: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    key_file, _ = _key_file(tmp_path, "issuer.pem")
    args = [str(key_file) if a == "KEY" else str(tmp_path / "nope.pem") if a == "NOPE" else a
            for a in args]  # fmt: skip
    result = run("serve", "--db", str(db), "--no-ingest", "--http", "127.0.0.1:0", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_serve_reads_the_did_web_and_the_retired_keys_from_the_settings(tmp_path: Path) -> None:
    old_file, old = _key_file(tmp_path, "old.pem")
    public = _public_pem(IssuerKey.generate(), tmp_path / "older.pub.pem")
    settings = Settings.load(environ={"ASSESSENGINE_ISSUER_DID_WEB": "Engine.Example.org:8443",
                                      "ASSESSENGINE_ISSUER_RETIRED_KEYS": f"{old_file},{public}"})
    made = credential_settings(settings, host="127.0.0.1", port=8080)
    assert made.did_web == "did:web:engine.example.org%3A8443"
    assert made.retired_keys[0] == old.public_key
    assert len(made.retired_keys) == 2


# ------------------------------------------------------------------------------ partners

PARTNER = did_web("partner.example.org")


def _partner(tmp_path: Path) -> tuple[IssuerKey, Path]:
    """A partner did:web issuer's key and its DID document, saved as the file it publishes."""
    key = IssuerKey.generate()
    path = tmp_path / "partner-did.json"
    path.write_text(json.dumps(did_document(PARTNER, [key.public_key])))
    return key, path


def _by(key: IssuerKey) -> dict[str, Any]:
    return sign_credential(_credential(PARTNER), key, created=datetime.now(UTC),
                           controller=PARTNER)  # fmt: skip


def test_a_partner_did_web_verifies_by_its_configured_did_document(
    db: Path, tmp_path: Path
) -> None:
    key, document = _partner(tmp_path)
    key_file, _ = _key_file(tmp_path, "issuer.pem")
    settings = Settings.load(environ={"ASSESSENGINE_TRUSTED_DID_DOCUMENTS": str(document)})
    made = credential_settings(settings, host="127.0.0.1", port=8080)
    assert set(made.did_documents) == {PARTNER}
    with TestClient(create_app(db_path=db, issuer_key_path=key_file,
                               credentials=made)) as client:  # fmt: skip
        answer = client.post("/api/v1/credentials/verify", json=_by(key)).json()
        stranger = client.post("/api/v1/credentials/verify",
                               json=_by(IssuerKey.generate())).json()  # fmt: skip
    assert answer["valid"] is True, answer
    assert answer["trusted"] is True
    checks = {c["name"]: c["detail"] for c in answer["checks"]}
    assert checks["key"].endswith(f"of {PARTNER}")
    assert stranger["valid"] is False
    assert {c["name"]: c["status"] for c in stranger["checks"]}["key"] == "failed"


def test_the_command_line_verifies_a_partner_did_web_offline(tmp_path: Path) -> None:
    key, document = _partner(tmp_path)
    credential = tmp_path / "partner.json"
    credential.write_text(json.dumps(_by(key)))
    unknown = run("credential", "verify", str(credential))
    assert unknown.exit_code == 1
    assert "neither this engine's DID" in unknown.output
    known = run("credential", "verify", str(credential), "--trusted-did-document", str(document))
    assert known.exit_code == 0, known.output
    assert f"ok       issuer     {PARTNER} is a trusted issuer" in known.output


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "partner-did.json:1:2: not JSON"),
    (json.dumps({"id": "did:key:z6Mk"}), "not a DID document of a did:web"),
    ("[]", "not a DID document of a did:web"),
    ("x" * (256 * 1024 + 1), "a DID document is at most 262144 bytes"),
])  # fmt: skip
def test_a_partner_did_document_that_is_none_is_refused_in_one_line(
    db: Path, tmp_path: Path, content: str, message: str
) -> None:
    document = tmp_path / "partner-did.json"
    document.write_text(content)
    credential = tmp_path / "c.json"
    credential.write_text("{}")
    verified = run("credential", "verify", str(credential), "--trusted-did-document",
                   str(document))  # fmt: skip
    assert verified.exit_code == 2, verified.output
    assert message in verified.output
    served = run("serve", "--db", str(db), "--no-ingest", "--http", "127.0.0.1:0",
                 "--trusted-did-documents", str(document))  # fmt: skip
    assert served.exit_code == 2, served.output
    assert message in served.output
