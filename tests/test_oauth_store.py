"""The OAuth store's contract on memory, SQLite and PostgreSQL (a grant is used once, a reused
code's descendants are revoked), and the authorization server's clock: an expired code or
access token is refused."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from authlib.oauth2.rfc6749.errors import OAuth2Error

from assessengine.api.oauth import (
    CODE_TTL_S,
    CREDENTIAL_READ,
    BodyRequest,
    FormRequest,
    OAuthServer,
)
from assessengine.storage import open_store
from assessengine.storage.oauth import (
    MemoryOAuthStore,
    OAuthClient,
    OAuthGrant,
    OAuthStore,
    OAuthStoreError,
    SqlOAuthStore,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CALLBACK = "http://127.0.0.1:9/cb"
BASE = "http://127.0.0.1:8080"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OAuthStore]:
    if request.param == "memory":
        yield MemoryOAuthStore()
        return
    if request.param == "sqlite":
        url = str(tmp_path / "engine.db")
    else:
        url = request.getfixturevalue("pg_store_url")
    open_store(url).close()  # the migrations make the tables
    found = SqlOAuthStore(url)
    yield found
    found.close()


def _client(client_id: str = "c1") -> OAuthClient:
    return OAuthClient(client_id, "ab" * 32, {"redirect_uris": [CALLBACK]}, T0)


def _grant(digest: str, kind: str = "code", origin: str | None = None) -> OAuthGrant:
    return OAuthGrant(digest=digest, kind=kind, client_id="c1", learner="L-1",  # type: ignore[arg-type]
                      scope=CREDENTIAL_READ, issued_at=T0, expires_at=T0 + timedelta(minutes=5),
                      redirect_uri=CALLBACK, origin=origin)  # fmt: skip


def test_a_grant_is_used_once_and_reads_back_as_saved(store: OAuthStore) -> None:
    store.save_client(_client())
    assert store.client("c1") == _client()
    assert store.client("nobody") is None
    store.save_grant(_grant("d1"))
    assert store.grant("d1") == _grant("d1")
    assert store.use("d1", T0) is True
    assert store.use("d1", T0) is False
    found = store.grant("d1")
    assert found is not None
    assert found.used_at == T0
    assert store.use("unknown", T0) is False


def test_revoking_a_codes_descendants_marks_only_theirs(store: OAuthStore) -> None:
    store.save_client(_client())
    for digest, kind, origin in (("code", "code", None), ("a1", "access", "code"),
                                 ("r1", "refresh", "code"), ("a2", "access", "other")):
        store.save_grant(_grant(digest, kind, origin))  # fmt: skip
    assert store.revoke_descendants("code", T0) == 2
    assert store.revoke_descendants("code", T0) == 0
    used = {d: store.grant(d).used_at for d in ("code", "a1", "r1", "a2")}  # type: ignore[union-attr]
    assert used == {"code": None, "a1": T0, "r1": T0, "a2": None}


def test_taken_ids_and_unknown_clients_are_refused(store: OAuthStore) -> None:
    store.save_client(_client())
    with pytest.raises(OAuthStoreError, match="taken"):
        store.save_client(_client())
    store.save_grant(_grant("d1"))
    with pytest.raises(OAuthStoreError, match="taken"):
        store.save_grant(_grant("d1"))
    with pytest.raises(OAuthStoreError, match="no client"):
        store.save_grant(OAuthGrant("d2", "code", "nobody", "L-1", "", T0, T0))


# ================================================================================ the clock


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _server(clock: Clock) -> OAuthServer:
    return OAuthServer(MemoryOAuthStore(), clock=clock, endpoints={
        "authorization": f"{BASE}/oauth/authorize", "token": f"{BASE}/oauth/token",
        "registration": f"{BASE}/oauth/register", "revocation": f"{BASE}/oauth/revoke"})


def _code(server: OAuthServer) -> tuple[dict[str, str], str, str]:
    """A registered client, a code for L-1, and its verifier."""
    registered = server.register(BodyRequest("POST", f"{BASE}/oauth/register", {}, {
        "client_name": "Wallet", "redirect_uris": [CALLBACK], "scope": CREDENTIAL_READ}))
    assert registered.status == 201
    client = dict(registered.body)  # type: ignore[arg-type]
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = [("response_type", "code"), ("client_id", client["client_id"]),
             ("redirect_uri", CALLBACK), ("scope", CREDENTIAL_READ),
             ("code_challenge", challenge.rstrip(b"=").decode()),
             ("code_challenge_method", "S256")]  # fmt: skip
    request = FormRequest("GET", f"{BASE}/oauth/authorize", {}, query, [])
    answer = server.authorize(request, server.consent(request), "L-1")
    location = dict(answer.headers)["Location"]
    return client, location.split("code=", 1)[1].split("&", 1)[0], verifier


def _token_request(client: dict[str, str], code: str, verifier: str) -> FormRequest:
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode())
    form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CALLBACK),
            ("code_verifier", verifier)]  # fmt: skip
    return FormRequest("POST", f"{BASE}/oauth/token",
                       {"Authorization": f"Basic {basic.decode()}"}, [], form)  # fmt: skip


def test_an_expired_code_is_invalid_grant() -> None:
    clock = Clock()
    server = _server(clock)
    client, code, verifier = _code(server)
    clock.now = T0 + timedelta(seconds=CODE_TTL_S)
    answer = server.token(_token_request(client, code, verifier))
    assert answer.status == 400
    assert answer.body["error"] == "invalid_grant"  # type: ignore[index]


def test_an_expired_access_token_is_invalid_token() -> None:
    clock = Clock()
    server = _server(clock)
    client, code, verifier = _code(server)
    answer = server.token(_token_request(client, code, verifier))
    assert answer.status == 200
    token = answer.body["access_token"]  # type: ignore[index]
    request = FormRequest("GET", f"{BASE}/ims/ob/v3p0/credentials",
                          {"Authorization": f"Bearer {token}"}, [], [])  # fmt: skip
    assert server.bearer(request, CREDENTIAL_READ).learner == "L-1"
    clock.now = T0 + timedelta(seconds=answer.body["expires_in"])  # type: ignore[index]
    with pytest.raises(OAuth2Error) as refused:
        server.bearer(request, CREDENTIAL_READ)
    assert refused.value.error == "invalid_token"
