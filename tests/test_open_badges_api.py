"""The Open Badges 3.0 API (read side) end to end: a real uvicorn server on loopback, and a host
played by authlib's httpx OAuth2Client: discovery -> dynamic registration -> authorization
code with PKCE (S256), the learner signing in and consenting through the pages -> token ->
getCredentials (paged) and getProfile -> the credentials verify; refresh tokens rotate. Then
every refusal the specification and RFC 6749 / 7591 / 7636 / 6750 ask for: wrong redirect URI,
bad PKCE verifier, unknown or over-broad scope, reused code, a staff member consenting, a
token without the scope, a bad page size; and that no secret is stored in clear."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from openapi_spec_validator import validate

from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.oauth import CREDENTIAL_READ, PROFILE_READ
from assessengine.api.service.credentials import CredentialSettings
from assessengine.credential_verify import verify

from .browser_support import listening, serving
from .stored_payloads import copy_store
from .test_api_credentials import MINE, OBSERVED, POLICY, template  # noqa: F401 (fixture)
from .test_api_support import LEARNER, make_tokens
from .test_web_support import csrf_of

CALLBACK = "http://127.0.0.1:9/callback"  # never called: the test reads the redirect
UPSERT = "https://purl.imsglobal.org/spec/ob/v3p0/scope/credential.upsert"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@dataclass
class Engine:
    url: str
    tokens: dict[str, str]
    db: Path
    discovery: dict[str, Any]
    hosts: list[OAuth2Client] = field(default_factory=list)

    @property
    def flows(self) -> dict[str, Any]:
        scheme = self.discovery["components"]["securitySchemes"]["OAuth2ACG"]
        return {"registration": scheme["x-imssf-registrationUrl"],
                **scheme["flows"]["authorizationCode"]}  # fmt: skip

    def register(self, **metadata: Any) -> dict[str, Any]:
        body = {"client_name": "Wallet", "client_uri": "http://127.0.0.1:9/",
                "redirect_uris": [CALLBACK], "scope": f"{CREDENTIAL_READ} {PROFILE_READ}",
                **metadata}  # fmt: skip
        answer = httpx.post(self.flows["registration"], json=body)
        assert answer.status_code == 201, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def host(self, client: dict[str, Any], scope: str | None = None) -> OAuth2Client:
        host = OAuth2Client(client["client_id"], client["client_secret"],
                            scope=scope or client["scope"], redirect_uri=CALLBACK,
                            code_challenge_method="S256",
                            token_endpoint_auth_method="client_secret_basic")  # fmt: skip
        self.hosts.append(host)  # closed when the module's server stops
        return host


@pytest.fixture(scope="module")
def engine(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:  # noqa: F811
    """The server with a credential issued to LEARNER (its observed items recorded)."""
    folder = tmp_path_factory.mktemp("open-badges")
    db = folder / "engine.db"
    copy_store(template, db)
    key = folder / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    sock = listening()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(db_path=db, credentials=CredentialSettings(base_url=base),
                     issuer_key_path=key)  # fmt: skip
    tokens = make_tokens(app.state.service)
    with serving(app, sock) as url:
        staff = {"Authorization": f"Bearer {tokens['assessor']}"}
        for session in MINE:
            for criterion in OBSERVED:
                answer = httpx.post(f"{url}/api/v1/sessions/{session}/observations", json={
                    "criterion": criterion, "verdict": "pass", "note": "seen"}, headers=staff)
                assert answer.status_code == 201, answer.text
        issued = httpx.post(f"{url}/api/v1/credentials/issue", headers=staff,
                            json={"learner": LEARNER, "policy": POLICY})  # fmt: skip
        assert issued.status_code == 201, issued.text
        discovery = httpx.get(f"{url}/ims/ob/v3p0/discovery").json()
        found = Engine(url, tokens, db, discovery)
        yield found
        for host in found.hosts:
            host.close()


def consent(engine: Engine, authorize_url: str, *, role: str = "learner",
            decision: str = "allow") -> httpx.Response:  # fmt: skip
    """The learner's browser: open the host's authorization URL, sign in (sent there first),
    answer the consent page; returns the final answer (the redirect back to the host)."""
    with httpx.Client(base_url=engine.url) as browser:
        first = browser.get(authorize_url)
        assert first.status_code == 303
        assert first.headers["location"].startswith("/signin?")
        page = browser.get(first.headers["location"])
        target = parse_qs(urlsplit(first.headers["location"]).query)["next"][0]
        signed = browser.post("/signin", data={"token": engine.tokens[role],
                                               "csrf": csrf_of(page.text), "next": target})
        assert signed.status_code == 303, signed.text
        assert signed.headers["location"] == target  # a learner lands back on the request
        form = browser.get(target)
        if form.status_code != 200:
            return form
        fields = [(k, unescape(v)) for k, v in HIDDEN.findall(form.text)]
        return browser.post("/oauth/authorize", content=urlencode([*fields, ("decision",
                            decision)]),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})


def authorized(engine: Engine, host: OAuth2Client, verifier: str) -> str:
    """The redirect URI the learner's consent sends back to the host (with the code)."""
    url, _ = host.create_authorization_url(engine.flows["authorizationUrl"],
                                           code_verifier=verifier)  # fmt: skip
    answer = consent(engine, url)
    assert answer.status_code == 302, answer.text
    location: str = answer.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return location


def verifier() -> str:
    return secrets.token_urlsafe(48)


# ================================================================================ the flow


def test_the_service_description_is_valid_openapi_with_the_oauth_flow(engine: Engine) -> None:
    validate(engine.discovery)
    flows = engine.flows
    assert flows["authorizationUrl"] == f"{engine.url}/oauth/authorize"
    assert flows["tokenUrl"] == flows["refreshUrl"] == f"{engine.url}/oauth/token"
    assert set(flows["scopes"]) == {CREDENTIAL_READ, PROFILE_READ}
    paths = engine.discovery["paths"]
    assert paths["/credentials"]["get"]["operationId"] == "getCredentials"
    assert paths["/profile"]["get"]["operationId"] == "getProfile"
    assert engine.discovery["servers"] == [{"url": f"{engine.url}/ims/ob/v3p0"}]
    meta = httpx.get(f"{engine.url}/.well-known/oauth-authorization-server").json()
    assert meta["code_challenge_methods_supported"] == ["S256"]


def test_a_host_registers_is_authorised_and_reads_credentials_that_verify(
    engine: Engine,
) -> None:
    client = engine.register()
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    host = engine.host(client)
    code_verifier = verifier()
    location = authorized(engine, host, code_verifier)
    token = host.fetch_token(engine.flows["tokenUrl"], authorization_response=location,
                             code_verifier=code_verifier)  # fmt: skip
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == 3600
    assert set(token["scope"].split()) == {CREDENTIAL_READ, PROFILE_READ}

    answer = host.get(f"{engine.url}/ims/ob/v3p0/credentials")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-total-count"] == "1"
    assert 'rel="first"' in answer.headers["link"]
    assert 'rel="last"' in answer.headers["link"]
    credentials = answer.json()["credential"]
    assert len(credentials) == 1
    document = credentials[0]
    checked = httpx.post(f"{engine.url}/api/v1/credentials/verify", json=document).json()
    assert checked["valid"] is True, checked
    offline = verify(document, trusted={document["issuer"]["id"]})
    assert offline.ok, offline.to_data()

    profile = host.get(f"{engine.url}/ims/ob/v3p0/profile")
    assert profile.status_code == 200
    assert profile.json()["id"] == f"{engine.url}/api/v1/learners/{LEARNER}"
    assert profile.json()["type"] == ["Profile"]

    old = token["refresh_token"]
    renewed = host.refresh_token(engine.flows["tokenUrl"])
    assert renewed["refresh_token"] != old
    assert host.get(f"{engine.url}/ims/ob/v3p0/profile").status_code == 200
    again = httpx.post(engine.flows["tokenUrl"], auth=(client["client_id"],
                       client["client_secret"]),
                       data={"grant_type": "refresh_token", "refresh_token": old})
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_credentials_are_paged_with_the_specification_headers(engine: Engine) -> None:
    client = engine.register()
    host = engine.host(client)
    code_verifier = verifier()
    location = authorized(engine, host, code_verifier)
    host.fetch_token(engine.flows["tokenUrl"], authorization_response=location,
                     code_verifier=code_verifier)  # fmt: skip
    url = f"{engine.url}/ims/ob/v3p0/credentials"
    page = host.get(url, params={"limit": 1, "offset": 1})
    assert page.status_code == 200
    assert page.json() == {"credential": []}
    assert page.headers["x-total-count"] == "1"
    assert 'rel="prev"' in page.headers["link"]
    later = host.get(url, params={"since": "2999-01-01T00:00:00Z"})
    assert later.json() == {"credential": []}
    assert later.headers["x-total-count"] == "0"
    for bad in ({"limit": "0"}, {"limit": "x"}, {"offset": "-1"}, {"since": "yesterday"}):
        refused = host.get(url, params=bad)
        assert refused.status_code == 400, bad
        body = refused.json()
        assert body["imsx_codeMajor"] == "failure"
        field = body["imsx_codeMinor"]["imsx_codeMinorField"][0]
        assert field["imsx_codeMinorFieldValue"] == "invalid_query_parameter"


# ================================================================================ refusals


def test_a_wrong_redirect_uri_is_an_error_page_never_a_redirect(engine: Engine) -> None:
    client = engine.register()
    for uri in ("http://127.0.0.1:9/elsewhere", "https://attacker.example/callback"):
        query = {"response_type": "code", "client_id": client["client_id"],
                 "redirect_uri": uri, "scope": CREDENTIAL_READ, "state": "s",
                 "code_challenge": _challenge(verifier()), "code_challenge_method": "S256"}
        answer = httpx.get(f"{engine.url}/oauth/authorize", params=query)
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert "Redirect URI" in answer.text
    unknown = httpx.get(f"{engine.url}/oauth/authorize", params={
        "response_type": "code", "client_id": "nobody", "redirect_uri": CALLBACK})
    assert unknown.status_code == 400
    assert "location" not in unknown.headers


@pytest.mark.parametrize(("change", "error"), [
    ({"scope": UPSERT}, "invalid_scope"),                      # not a scope served here
    ({"scope": "https://example.org/everything"}, "invalid_scope"),
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),  # no PKCE
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
])  # fmt: skip
def test_a_bad_authorization_request_goes_back_to_the_host_with_the_error(
    engine: Engine, change: dict[str, str | None], error: str
) -> None:
    client = engine.register()
    query = {"response_type": "code", "client_id": client["client_id"],
             "redirect_uri": CALLBACK, "scope": CREDENTIAL_READ, "state": "xyz",
             "code_challenge": _challenge(verifier()), "code_challenge_method": "S256", **change}
    sent = {k: v for k, v in query.items() if v is not None}
    answer = httpx.get(f"{engine.url}/oauth/authorize", params=sent)
    assert answer.status_code == 302, answer.text
    back = parse_qs(urlsplit(answer.headers["location"]).query)
    assert back["error"] == [error]
    assert back["state"] == ["xyz"]
    assert "code" not in back


def test_a_scope_the_client_did_not_register_is_over_broad(engine: Engine) -> None:
    client = engine.register(scope=CREDENTIAL_READ)
    host = engine.host(client, scope=f"{CREDENTIAL_READ} {PROFILE_READ}")
    url, _ = host.create_authorization_url(engine.flows["authorizationUrl"],
                                           code_verifier=verifier())  # fmt: skip
    answer = httpx.get(url)
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_scope"]


def test_a_token_without_the_scope_is_refused_403(engine: Engine) -> None:
    client = engine.register(scope=PROFILE_READ)
    host = engine.host(client)
    code_verifier = verifier()
    location = authorized(engine, host, code_verifier)
    host.fetch_token(engine.flows["tokenUrl"], authorization_response=location,
                     code_verifier=code_verifier)  # fmt: skip
    answer = host.get(f"{engine.url}/ims/ob/v3p0/credentials")
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    assert host.get(f"{engine.url}/ims/ob/v3p0/profile").status_code == 200
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        refused = httpx.get(f"{engine.url}/ims/ob/v3p0/profile", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].lower().startswith("bearer ")


@pytest.mark.parametrize("metadata", [
    {"redirect_uris": []},
    {"redirect_uris": ["http://wallet.example/callback"]},     # plain http off loopback
    {"redirect_uris": ["https://wallet.example/cb#frag"]},
    {"scope": UPSERT},                                         # a scope not served here
    {"client_name": ""},
    {"grant_types": ["client_credentials"]},
    {"token_endpoint_auth_method": "none"},
])  # fmt: skip
def test_registration_refuses_bad_metadata(engine: Engine, metadata: dict[str, Any]) -> None:
    body = {"client_name": "Wallet", "redirect_uris": [CALLBACK], **metadata}
    answer = httpx.post(engine.flows["registration"], json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")
    assert "client_id" not in answer.json()


def test_a_bad_pkce_verifier_gets_invalid_grant_and_burns_the_code(engine: Engine) -> None:
    client = engine.register()
    host = engine.host(client)
    code_verifier = verifier()
    location = authorized(engine, host, code_verifier)
    code = parse_qs(urlsplit(location).query)["code"][0]
    auth = (client["client_id"], client["client_secret"])
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    wrong = httpx.post(engine.flows["tokenUrl"], auth=auth,
                       data={**form, "code_verifier": verifier()})  # fmt: skip
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert "access_token" not in wrong.text
    right = httpx.post(engine.flows["tokenUrl"], auth=auth,
                       data={**form, "code_verifier": code_verifier})  # fmt: skip
    assert right.status_code == 400
    assert right.json()["error"] == "invalid_grant"


def test_a_reused_code_is_refused_and_revokes_its_tokens(engine: Engine) -> None:
    client = engine.register()
    host = engine.host(client)
    code_verifier = verifier()
    location = authorized(engine, host, code_verifier)
    token = host.fetch_token(engine.flows["tokenUrl"], authorization_response=location,
                             code_verifier=code_verifier)  # fmt: skip
    assert host.get(f"{engine.url}/ims/ob/v3p0/profile").status_code == 200
    code = parse_qs(urlsplit(location).query)["code"][0]
    again = httpx.post(engine.flows["tokenUrl"], auth=(client["client_id"],
                       client["client_secret"]), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": code_verifier})  # fmt: skip
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert host.get(f"{engine.url}/ims/ob/v3p0/profile").status_code == 401
    refresh = httpx.post(engine.flows["tokenUrl"], auth=(client["client_id"],
                         client["client_secret"]),
                         data={"grant_type": "refresh_token",
                               "refresh_token": token["refresh_token"]})  # fmt: skip
    assert refresh.status_code == 400


def test_a_wrong_client_secret_or_another_clients_code_is_refused(engine: Engine) -> None:
    client, other = engine.register(), engine.register()
    host = engine.host(client)
    code_verifier = verifier()
    location = authorized(engine, host, code_verifier)
    code = parse_qs(urlsplit(location).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": code_verifier}
    bad_secret = httpx.post(engine.flows["tokenUrl"], data=form,
                            auth=(client["client_id"], "wrong"))  # fmt: skip
    assert bad_secret.status_code == 401
    assert bad_secret.json()["error"] == "invalid_client"
    stolen = httpx.post(engine.flows["tokenUrl"], data=form,
                        auth=(other["client_id"], other["client_secret"]))  # fmt: skip
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"


def test_the_learner_may_deny_and_staff_may_not_consent(engine: Engine) -> None:
    client = engine.register()
    host = engine.host(client)
    url, _ = host.create_authorization_url(engine.flows["authorizationUrl"],
                                           code_verifier=verifier())  # fmt: skip
    denied = consent(engine, url, decision="deny")
    assert denied.status_code == 302
    assert parse_qs(urlsplit(denied.headers["location"]).query)["error"] == ["access_denied"]
    refused = consent(engine, url, role="assessor")
    assert refused.status_code == 403
    assert "Only a learner" in refused.text


def test_no_secret_is_stored_in_clear(engine: Engine) -> None:
    client = engine.register()
    host = engine.host(client)
    code_verifier = verifier()
    location = authorized(engine, host, code_verifier)
    token = host.fetch_token(engine.flows["tokenUrl"], authorization_response=location,
                             code_verifier=code_verifier)  # fmt: skip
    code = parse_qs(urlsplit(location).query)["code"][0]
    stored = b"".join(p.read_bytes() for p in engine.db.parent.glob("engine.db*") if p.is_file())
    for secret in (client["client_secret"], code, token["access_token"],
                   token["refresh_token"]):  # fmt: skip
        assert secret.encode() not in stored
        assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored


def _challenge(code_verifier: str) -> str:
    digest = hashlib.sha256(code_verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_a_revoked_token_ends_the_whole_authorization(engine: Engine) -> None:
    client, other = engine.register(), engine.register()
    host = engine.host(client)
    code_verifier = verifier()
    location = authorized(engine, host, code_verifier)
    token = host.fetch_token(engine.flows["tokenUrl"], authorization_response=location,
                             code_verifier=code_verifier)  # fmt: skip
    assert host.get(f"{engine.url}/ims/ob/v3p0/profile").status_code == 200
    meta = httpx.get(f"{engine.url}/.well-known/oauth-authorization-server").json()
    revoke = meta["revocation_endpoint"]
    stranger = httpx.post(revoke, data={"token": token["access_token"]},
                          auth=(other["client_id"], other["client_secret"]))  # fmt: skip
    assert stranger.status_code == 400  # not its token: refused, and nothing revoked
    assert host.get(f"{engine.url}/ims/ob/v3p0/profile").status_code == 200
    done = httpx.post(revoke, data={"token": token["refresh_token"],
                                    "token_type_hint": "refresh_token"},
                      auth=(client["client_id"], client["client_secret"]))  # fmt: skip
    assert done.status_code == 200
    assert host.get(f"{engine.url}/ims/ob/v3p0/profile").status_code == 401
    unknown = httpx.post(revoke, data={"token": "never-issued"},
                         auth=(client["client_id"], client["client_secret"]))  # fmt: skip
    assert unknown.status_code == 200  # RFC 7009 2.2: an unknown token is not an error
