"""The Open Badges API's OAuth endpoints under hostile input: hypothesis draws the parameters of
authorization, token and registration requests (known good values mixed with edge text:
quotes, backslashes, control and non-ASCII characters, repeats, over-long values) and of the
resource endpoints' queries; every answer must be a 4xx or a redirect, never a 5xx."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assessengine.api.app import create_app
from assessengine.api.oauth import CREDENTIAL_READ, PROFILE_READ
from assessengine.api.service.credentials import CredentialSettings

from .test_api_support import copy_template

CALLBACK = "http://127.0.0.1:9/cb"
EDGE = st.sampled_from([
    "", " ", '"', "\\", "\x00", "\x7f", "é", "\u202e", "a" * 5000, "%00", "S256", "plain",
    "code", "token", CALLBACK, CALLBACK + "x", CREDENTIAL_READ, f"{CREDENTIAL_READ} {PROFILE_READ}",
    f'{CREDENTIAL_READ} "x"', "authorization_code", "refresh_token", "A" * 43, "https://x/\\",
])  # fmt: skip
TEXT = EDGE | st.text(max_size=60)
KEYS = st.sampled_from([
    "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
    "code_challenge_method", "grant_type", "code", "code_verifier", "refresh_token", "token",
    "token_type_hint",
])  # fmt: skip
PAIRS = st.lists(st.tuples(KEYS, TEXT), max_size=10)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("oauth-fuzz")
    db, _ = copy_template(tmp_path_factory, folder)
    app = create_app(db_path=Path(db), web=True,
                     credentials=CredentialSettings(base_url="http://127.0.0.1:8080"))  # fmt: skip
    with TestClient(app, raise_server_exceptions=False) as found:
        registered = found.post("/oauth/register", json={
            "client_name": "W", "redirect_uris": [CALLBACK],
            "scope": f"{CREDENTIAL_READ} {PROFILE_READ}"})  # fmt: skip
        assert registered.status_code == 201
        yield found, registered.json()


def _fill(pairs: list[tuple[str, str]], client: dict[str, Any]) -> list[tuple[str, str]]:
    """Mostly the registered client's id, so that the requests get past the first check."""
    return [(k, client["client_id"] if k == "client_id" and v == "" else v) for k, v in pairs]


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=PAIRS, with_client=st.booleans())
def test_authorization_requests_are_never_answered_5xx(
    client: tuple[TestClient, dict[str, Any]], pairs: list[tuple[str, str]], with_client: bool
) -> None:
    http, registered = client
    query = _fill(pairs, registered)
    if with_client:
        query = [("client_id", registered["client_id"]), ("redirect_uri", CALLBACK), *query]
    answer = http.get("/oauth/authorize", params=query, follow_redirects=False)
    assert answer.status_code < 500, (query, answer.text[:300])


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=PAIRS, auth=st.sampled_from(["good", "bad", "none", "garbage"]))
def test_token_and_revocation_requests_are_never_answered_5xx(
    client: tuple[TestClient, dict[str, Any]], pairs: list[tuple[str, str]], auth: str
) -> None:
    http, registered = client
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth in ("good", "bad"):
        secret = registered["client_secret"] if auth == "good" else "x"
        basic = base64.b64encode(f"{registered['client_id']}:{secret}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    elif auth == "garbage":
        headers["Authorization"] = "Basic %%%"
    answer = http.post("/oauth/token", content=urlencode(pairs), headers=headers)
    assert 400 <= answer.status_code < 500, (pairs, answer.text[:300])
    revoked = http.post("/oauth/revoke", content=urlencode(pairs), headers=headers)
    assert revoked.status_code < 500, (pairs, revoked.text[:300])


METADATA = st.dictionaries(
    st.sampled_from(["client_name", "redirect_uris", "scope", "grant_types", "response_types",
                     "token_endpoint_auth_method", "client_uri", "logo_uri", "contacts",
                     "software_id", "jwks", "jwks_uri", "software_statement"]) | TEXT,
    TEXT | st.lists(TEXT, max_size=3) | st.integers() | st.none() | st.just({}),
    max_size=6,
)  # fmt: skip


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metadata=METADATA, raw=st.sampled_from([None, "{", "[]", '"x"', "1e999", "\xff"]))
def test_registrations_are_never_answered_5xx(
    client: tuple[TestClient, dict[str, Any]], metadata: dict[str, Any], raw: str | None
) -> None:
    http, _ = client
    body = json.dumps(metadata) if raw is None else raw
    answer = http.post("/oauth/register", content=body,
                       headers={"Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code in (201, 400), (metadata, raw, answer.text[:300])


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.lists(st.tuples(st.sampled_from(["limit", "offset", "since"]), TEXT),
                      max_size=4),
       token=TEXT)  # fmt: skip
def test_resource_requests_are_never_answered_5xx(
    client: tuple[TestClient, dict[str, Any]], query: list[tuple[str, str]], token: str
) -> None:
    http, _ = client
    for path in ("/ims/ob/v3p0/credentials", "/ims/ob/v3p0/profile"):
        printable = "".join(c for c in token if " " <= c <= "~")  # what a header can carry
        headers = {"Authorization": f"Bearer {printable}"}
        answer = http.get(path, params=query, headers=headers)
        assert 400 <= answer.status_code < 500, (path, query, answer.text[:300])


@pytest.mark.parametrize(("key", "value"), [
    ('x"y\\', "a" * 5000),               # a key that may not go into an error description
    ("response_type", 'code"'), ("redirect_uri", "https://x/\\"),
])  # fmt: skip
def test_input_that_cannot_go_into_an_error_description_is_refused_400(
    client: tuple[TestClient, dict[str, Any]], key: str, value: str
) -> None:
    http, registered = client
    if key in ("response_type", "redirect_uri"):
        answer = http.get("/oauth/authorize", params={"client_id": registered["client_id"],
                                                      key: value}, follow_redirects=False)
    else:
        answer = http.post("/oauth/register", json={"client_name": "W",
                                                    "redirect_uris": [CALLBACK], key: value})
    assert answer.status_code == 400, answer.text[:300]
