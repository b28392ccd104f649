"""did:web issuers (`adapters.did_web`, `keys issuer --did-web`): a credential signed under
did:web:HOST verifies with the key its verification method names in the DID document fetched
from a real HTTP server on 127.0.0.1 (the test's document loader); after a rotation the DID
document keeps the retired key, so what it signed still verifies; a key the document does not
list, or a changed credential, fails; hosts that cannot be a did:web exit 2 in one line."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from assessengine.adapters.did_web import (
    DidWebError,
    did_document,
    did_document_url,
    did_web,
    key_from_document,
)
from assessengine.adapters.signer import IssuerKey, sign_credential
from assessengine.credential_verify import verify

from .independent_verify import independent_verification
from .test_credentials import _credential
from .test_credentials_e2e import run
from .waits import WAIT_S

CREATED = datetime(2025, 3, 1, 7, 0, 5, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving `tmp_path/site` (the issuer's web site): the
    folder and the did:web host (``127.0.0.1:PORT``)."""
    root = tmp_path / "site"
    (root / ".well-known").mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT_S)


def resolve_key(method: str) -> bytes:
    """The test's document loader: fetch the DID document of `method`'s did:web over HTTP
    (the server runs without TLS) and take the key it lists."""
    did = method.partition("#")[0]
    answer = httpx.get(did_document_url(did, scheme="http"), timeout=WAIT_S)
    answer.raise_for_status()
    return key_from_document(answer.json(), method)


def _signed(key: IssuerKey, did: str) -> dict[str, Any]:
    return sign_credential(_credential(did), key, created=CREATED, controller=did)


def _verified(document: dict[str, Any], did: str) -> dict[str, str]:
    method = document["proof"][0]["verificationMethod"]
    try:
        public_key: bytes | None = resolve_key(method)
    except DidWebError:
        public_key = None
    result = verify(document, trusted={did}, now=NOW, public_key=public_key)
    return {c.name: c.status for c in result.checks}


def test_a_did_web_credential_verifies_through_the_published_did_document_across_a_rotation(
    site: tuple[Path, str], tmp_path: Path
) -> None:
    root, host = site
    first = tmp_path / "issuer-1.pem"
    made = run("keys", "issuer", "--out", str(first), "--did-web", host,
               "--did-document", str(root / ".well-known" / "did.json"))  # fmt: skip
    assert made.exit_code == 0, made.output
    did = did_web(host)
    assert f"issuer id   {did}" in made.output
    old_key = IssuerKey.from_pem(first.read_bytes())
    old = _signed(old_key, did)
    assert old["proof"][0]["verificationMethod"].startswith(f"{did}#z6Mk")
    checks = _verified(old, did)
    assert checks["key"] == checks["signature"] == checks["issuer"] == "ok", checks

    second = tmp_path / "issuer-2.pem"  # the rotation: a new key, the old one retired
    rotated = run("keys", "issuer", "--out", str(second), "--did-web", host, "--retired",
                  str(first), "--did-document", str(root / ".well-known" / "did.json"))  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    assert "1 retired key(s)" in rotated.output
    new = _signed(IssuerKey.from_pem(second.read_bytes()), did)
    for document in (old, new):
        checks = _verified(document, did)
        assert checks["key"] == checks["signature"] == "ok", checks
    published = json.loads((root / ".well-known" / "did.json").read_text())
    assert len(published["verificationMethod"]) == 2
    assert published["assertionMethod"] == [m["id"] for m in published["verificationMethod"]]

    for document in (old, new):  # Digital Bazaar's verifier, the DID document fetched too
        assert independent_verification(document, did_web_http=True) == {
            "verified": True, "error": None}

    stranger = _signed(IssuerKey.generate(), did)  # a key the document does not list
    assert independent_verification(stranger, did_web_http=True)["verified"] is False
    assert _verified(stranger, did)["key"] == "failed"
    tampered = copy.deepcopy(new)
    tampered["credentialSubject"]["result"][0]["value"] = "1"
    assert _verified(tampered, did)["signature"] == "failed"
    assert independent_verification(tampered, did_web_http=True)["verified"] is False


def test_a_verification_method_outside_the_assertion_methods_is_refused() -> None:
    did = did_web("engine.example.org")
    key = IssuerKey.generate().public_key
    document = did_document(did, [key])
    method = document["assertionMethod"][0]
    assert key_from_document(document, method) == key
    for broken, message in [
        ({**document, "assertionMethod": []}, "not an assertion method"),
        ({**document, "id": "did:web:other.example.org"}, "not 'did:web:engine"),
        ({**document, "verificationMethod": [{**document["verificationMethod"][0],
                                              "controller": "did:web:x.org"}]}, "Multikey"),
    ]:  # fmt: skip
        with pytest.raises(DidWebError, match=message):
            key_from_document(broken, method)


@pytest.mark.parametrize(("host", "did"), [
    ("engine.example.org", "did:web:engine.example.org"),
    ("Engine.Example.org", "did:web:engine.example.org"),
    ("engine.example.org:8443", "did:web:engine.example.org%3A8443"),
    ("localhost:8080", "did:web:localhost%3A8080"),
])
def test_a_host_gives_its_did_web(host: str, did: str) -> None:
    assert did_web(host) == did
    assert did_document_url(did).endswith("/.well-known/did.json")


BAD_HOSTS = ["https://engine.example.org", "engine.example.org/path", "user@engine.example.org",
             "", "intranet", "-engine.example.org", "engine..example.org", "engine.example.org:0",
             "engine.example.org:99999", "engine.example.org:", "a" * 64 + ".org", "é.example.org"]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_a_host_that_cannot_be_a_did_web_is_refused(host: str) -> None:
    with pytest.raises(DidWebError):
        did_web(host)


@pytest.mark.parametrize("host", BAD_HOSTS[:4])
def test_keys_issuer_refuses_a_bad_host_in_one_line_and_writes_nothing(
    host: str, tmp_path: Path
) -> None:
    out = tmp_path / "issuer.pem"
    result = run("keys", "issuer", "--out", str(out), "--did-web", host)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith("error: not a host name for did:web")
    assert not out.exists()
    assert not (tmp_path / "did.json").exists()


def test_retired_keys_need_did_web(tmp_path: Path) -> None:
    key = tmp_path / "old.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    result = run("keys", "issuer", "--out", str(tmp_path / "new.pem"), "--retired", str(key))
    assert result.exit_code == 2
    assert "go with --did-web" in result.output


def test_a_retired_key_may_be_given_as_its_public_key_alone(tmp_path: Path) -> None:
    old = IssuerKey.generate()
    public = tmp_path / "old.pub.pem"
    public.write_bytes(old.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    document = tmp_path / "did.json"
    made = run("keys", "issuer", "--out", str(tmp_path / "new.pem"), "--did-web",
               "engine.example.org", "--retired", str(public), "--did-document", str(document))
    assert made.exit_code == 0, made.output
    new = IssuerKey.from_pem((tmp_path / "new.pem").read_bytes())
    assert json.loads(document.read_text()) == did_document(
        did_web("engine.example.org"), [new.public_key, old.public_key])
    not_a_key = tmp_path / "junk.pem"
    not_a_key.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    refused = run("keys", "issuer", "--out", str(tmp_path / "other.pem"), "--did-web",
                  "engine.example.org", "--retired", str(not_a_key))  # fmt: skip
    assert refused.exit_code == 2
    assert refused.output.startswith(f"error: {not_a_key}: not a PEM key")
    assert not (tmp_path / "other.pem").exists()
