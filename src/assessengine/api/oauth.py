"""The Open Badges API's OAuth 2.0 authorization server, on authlib (never by hand).

authlib's framework-agnostic `AuthorizationServer`, grants and `ResourceProtector`, adapted to
Starlette: a route reads the request's query and form (async), wraps them in `FormRequest`,
and calls `OAuthServer` in a worker thread (the store is synchronous); authlib's answers come
back as `OAuthAnswer` (status, body, headers) for the route to send.

What the server grants, as the Open Badges 3.0 API asks:

- **Dynamic client registration** (RFC 7591), open (no initial access token): a host posts its
  metadata (`redirect_uris`, `client_name`, `client_uri`, `scope`, ...) and gets a
  `client_id` and `client_secret` (``client_secret_basic`` at the token endpoint).
- **Authorization code grant with PKCE**: the code challenge is required, ``S256`` only; a
  code lives `CODE_TTL_S` and is redeemed once (a second redemption is refused and revokes
  every token made from the code).
- **Refresh tokens**, rotated: each refresh answers a new refresh token and retires the old.
- **Token revocation** (RFC 7009): revoking a token revokes its whole authorization.
- **Scopes** `SCOPES`: the read side only (credential.readonly, profile.readonly); any other
  scope, or one the client did not register, is ``invalid_scope``.

Secrets (client secrets, codes, tokens) are kept as their sha256 only (`storage.oauth`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from authlib.oauth2 import rfc6749, rfc6750, rfc7009, rfc7591, rfc7636
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError, OAuth2Error
from authlib.oauth2.rfc6749.requests import JsonPayload, JsonRequest, OAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list

from ..storage.oauth import OAuthClient, OAuthGrant, OAuthStore

SCOPE_BASE: Final = "https://purl.imsglobal.org/spec/ob/v3p0/scope/"
CREDENTIAL_READ: Final = SCOPE_BASE + "credential.readonly"
PROFILE_READ: Final = SCOPE_BASE + "profile.readonly"
SCOPES: Final = {
    CREDENTIAL_READ: "Permission to read the learner's credentials (getCredentials)",
    PROFILE_READ: "Permission to read the learner's profile (getProfile)",
}
"""The scopes this server grants (the Open Badges API's read side), with what they allow."""

CODE_TTL_S: Final = 300
ACCESS_TTL_S: Final = 3600
REFRESH_TTL_S: Final = 30 * 24 * 3600
MAX_REDIRECT_URIS: Final = 10
MAX_METADATA_TEXT: Final = 2000
"""At most this many characters in any one registered metadata value (a URI, a name)."""


def digest(secret: str) -> str:
    """What is stored of a secret: its sha256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class OAuthAnswer:
    """An answer of the authorization server: status, JSON body (a dict, or "" for none) and
    headers, for the route to send as it is."""

    status: int
    body: Mapping[str, Any] | str
    headers: list[tuple[str, str]]


# ============================================================================ requests


class _FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, values: list[tuple[str, str]]) -> None:
        self._list: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in values:
            self._list[key].append(value)
        self._data = {key: items[0] for key, items in self._list.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._list


_CHECKED: Final = ("response_type", "grant_type", "scope", "code_challenge_method",
                   "redirect_uri", "client_id", "state")  # fmt: skip
"""Parameters authlib may repeat inside an error's description or redirect: RFC 6749 (appendix
A) allows them only printable ASCII; the description must not hold a quote or a backslash."""


class FormRequest(rfc6749.OAuth2Request):  # type: ignore[misc]
    """An OAuth request read off a Starlette request: method, URL, headers, and the query and
    form parameters (both lists of pairs, repeats kept: a repeated parameter is refused).

    InvalidRequestError (never naming the value) when a parameter of `_CHECKED` holds a
    character outside RFC 6749's set for error descriptions: authlib would otherwise fail
    building its error answer."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 query: list[tuple[str, str]], form: list[tuple[str, str]]) -> None:  # fmt: skip
        for key, value in query + form:
            if key in _CHECKED and invalid_error_characters(value):
                raise InvalidRequestError(f"'{key}' holds characters RFC 6749 does not allow")
        super().__init__(method, uri, headers=headers)
        self._query = dict(query)
        self._form = dict(form)
        self.payload = _FormPayload(query + form)

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _JsonBody(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class BodyRequest(JsonRequest):  # type: ignore[misc]
    """A JSON request (client registration): the body already parsed into an object."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 data: Mapping[str, Any]) -> None:  # fmt: skip
        super().__init__(method, uri, headers)
        self.payload = _JsonBody(data)


# ============================================================================ models


class Client(rfc6749.ClientMixin):  # type: ignore[misc]
    """A registered client, as authlib asks for it."""

    def __init__(self, record: OAuthClient) -> None:
        self.record = record
        self.client_id = record.client_id
        self.metadata = record.metadata

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.redirect_uris
        return uris[0] if len(uris) == 1 else None

    @property
    def redirect_uris(self) -> list[str]:
        return [str(u) for u in self.metadata.get("redirect_uris", [])]

    @property
    def name(self) -> str:
        return str(self.metadata.get("client_name") or self.client_id)

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The requested scope when the client registered all of it (None otherwise: authlib
        answers ``invalid_scope``); the registered scope when none is asked for."""
        registered = scope_to_list(self.metadata.get("scope", "")) or []
        if not scope:
            return " ".join(registered)
        asked = scope_to_list(scope)
        return " ".join(asked) if set(asked) <= set(registered) else None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match (RFC 9700 2.1)

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(digest(client_secret), self.record.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return bool(method == self.metadata.get("token_endpoint_auth_method",
                                                    "client_secret_basic"))  # fmt: skip
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.metadata.get("response_types", ["code"])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.metadata.get("grant_types", ["authorization_code"])


class Code(rfc6749.AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, grant: OAuthGrant) -> None:
        self.grant = grant
        self.code_challenge = grant.code_challenge
        self.code_challenge_method = grant.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.grant.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope


class Token(rfc6749.TokenMixin):  # type: ignore[misc]
    """An access or refresh token; expired or used (revoked, rotated) ones are refused."""

    def __init__(self, grant: OAuthGrant, now: datetime) -> None:
        self.grant = grant
        self._now = now

    def check_client(self, client: Client) -> bool:
        return bool(client.client_id == self.grant.client_id)

    def get_scope(self) -> str:
        return self.grant.scope

    def get_expires_in(self) -> int:
        return int((self.grant.expires_at - self.grant.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return self.grant.expires_at <= self._now

    def is_revoked(self) -> bool:
        return self.grant.used_at is not None

    def get_user(self) -> str:
        return self.grant.learner

    def get_client(self) -> Any:
        return None


# ============================================================================ grants


class S256Challenge(rfc7636.CodeChallenge):  # type: ignore[misc]
    """PKCE as the Open Badges API requires it: every authorization request carries a
    ``code_challenge`` with ``code_challenge_method=S256`` ("plain" is refused)."""

    SUPPORTED_CODE_CHALLENGE_METHOD: Final = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD: Final = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge' (PKCE is required)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be 'S256'")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: Final = ["client_secret_basic"]
    AUTHORIZATION_CODE_LENGTH: Final = 48

    @property
    def _server(self) -> OAuthServer:
        server: OAuthServer = self.server
        return server

    def save_authorization_code(self, code: str, request: FormRequest) -> None:
        now = self._server.now()
        data = request.payload.data
        self._server.store.save_grant(OAuthGrant(
            digest=digest(code), kind="code", client_id=request.client.client_id,
            learner=str(request.user), scope=request.scope or "", issued_at=now,
            expires_at=now + timedelta(seconds=CODE_TTL_S),
            redirect_uri=data.get("redirect_uri"), code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
        ))  # fmt: skip

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        """The code, redeemed by this very call (so a code serves once even when two requests
        race); a code redeemed before revokes what was made from it."""
        server = self._server
        found = server.store.grant(digest(code))
        if found is None or found.kind != "code" or found.client_id != client.client_id:
            return None
        now = server.now()
        if not server.store.use(found.digest, now):
            server.store.revoke_descendants(found.digest, now)
            return None
        if found.expires_at <= now:
            return None
        return Code(found)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        """Nothing: `query_authorization_code` redeemed it already."""

    def authenticate_user(self, authorization_code: Code) -> str:
        return authorization_code.grant.learner


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: Final = ["client_secret_basic"]
    INCLUDE_NEW_REFRESH_TOKEN: Final = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        """The refresh token, retired by this very call (rotation: it serves once)."""
        server: OAuthServer = self.server
        found = server.store.grant(digest(refresh_token))
        now = server.now()
        if found is None or found.kind != "refresh" or found.expires_at <= now:
            return None
        if not server.store.use(found.digest, now):
            return None
        return Token(found, now)

    def authenticate_user(self, refresh_token: Token) -> str:
        return refresh_token.grant.learner

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Nothing: `authenticate_refresh_token` retired it already."""


class Revocation(rfc7009.RevocationEndpoint):  # type: ignore[misc]
    """Token revocation (RFC 7009), the client authenticated by HTTP Basic: revoking an access
    or a refresh token revokes every token of the same authorization (made from one code)."""

    CLIENT_AUTH_METHODS: Final = ["client_secret_basic"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        server: OAuthServer = self.server
        found = server.store.grant(digest(token_string))
        if found is None or found.kind == "code":
            return None
        return Token(found, server.now())

    def revoke_token(self, token: Token, request: FormRequest) -> None:
        server: OAuthServer = self.server
        now = server.now()
        server.store.use(token.grant.digest, now)
        if token.grant.origin is not None:
            server.store.revoke_descendants(token.grant.origin, now)


class Registration(rfc7591.ClientRegistrationEndpoint):  # type: ignore[misc]
    """Open dynamic registration (RFC 7591), checked against the server's metadata."""

    def authenticate_token(self, request: BodyRequest) -> bool:
        return True  # the Open Badges API registers hosts without an initial access token

    def get_server_metadata(self) -> dict[str, Any]:
        server: OAuthServer = self.server
        return server.metadata()

    def extract_client_metadata(self, request: BodyRequest) -> dict[str, Any]:
        data = request.payload.data
        _check_registration(data)
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        metadata.setdefault("token_endpoint_auth_method", "client_secret_basic")
        metadata.setdefault("grant_types", ["authorization_code", "refresh_token"])
        metadata.setdefault("response_types", ["code"])
        metadata.setdefault("scope", " ".join(SCOPES))
        return metadata

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any],
                    request: BodyRequest) -> Client:  # fmt: skip
        server: OAuthServer = self.server
        record = OAuthClient(
            client_id=client_info["client_id"],
            secret_hash=digest(client_info["client_secret"]),
            metadata=client_metadata,
            issued_at=datetime.fromtimestamp(client_info["client_id_issued_at"], UTC),
        )
        server.store.save_client(record)
        return Client(record)


def _check_registration(data: Mapping[str, Any]) -> None:
    """What RFC 7591 leaves to the server: redirect URIs present (https, or http on a
    loopback address), and no value past `MAX_METADATA_TEXT` characters."""
    uris = data.get("redirect_uris")
    if not isinstance(uris, list) or not uris or len(uris) > MAX_REDIRECT_URIS:
        raise rfc7591.InvalidRedirectURIError(
            f"'redirect_uris' must list 1 to {MAX_REDIRECT_URIS} URIs")
    for uri in uris:
        if not isinstance(uri, str) or not _redirect_ok(uri):
            raise rfc7591.InvalidRedirectURIError(
                "each redirect URI must be https (or http on a loopback address), without a "
                "fragment")
    for key, value in data.items():
        if len(str(value)) > MAX_METADATA_TEXT * (len(uris) if key == "redirect_uris" else 1):
            raise rfc7591.InvalidClientMetadataError(
                f"a metadata value is too long (at most {MAX_METADATA_TEXT} characters)")
    if not isinstance(data.get("client_name"), str) or not data["client_name"].strip():
        raise rfc7591.InvalidClientMetadataError("'client_name' is required")


def _redirect_ok(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    if parts.fragment or not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")


# ============================================================================ server


class OAuthServer(rfc6749.AuthorizationServer):  # type: ignore[misc]
    """The authorization server over `store`. `endpoints` maps ``authorization``, ``token``,
    ``registration``, ``revocation`` to their public URLs (what the metadata and discovery
    documents say); `clock` gives the time (tests move it)."""

    def __init__(self, store: OAuthStore, *, endpoints: Mapping[str, str],
                 clock: Callable[[], datetime] | None = None) -> None:  # fmt: skip
        super().__init__(scopes_supported=list(SCOPES))
        self.store = store
        self.endpoints = dict(endpoints)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.register_token_generator("default", rfc6750.BearerTokenGenerator(
            access_token_generator=lambda **_: secrets.token_urlsafe(32),
            refresh_token_generator=lambda **_: secrets.token_urlsafe(32),
            expires_generator=lambda client, grant_type: ACCESS_TTL_S,
        ))  # fmt: skip
        self.register_grant(CodeGrant, [S256Challenge(required=True)])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Registration(self))
        self.register_endpoint(Revocation(self))
        self.protector = rfc6749.ResourceProtector()
        self.protector.register_token_validator(_Validator(self))

    def now(self) -> datetime:
        return self._clock()

    def metadata(self) -> dict[str, Any]:
        """The server's metadata (RFC 8414 names)."""
        return {
            "authorization_endpoint": self.endpoints["authorization"],
            "token_endpoint": self.endpoints["token"],
            "registration_endpoint": self.endpoints["registration"],
            "revocation_endpoint": self.endpoints["revocation"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
        }

    # ---------------------------------------------------------------- authlib's hooks

    def query_client(self, client_id: str) -> Client | None:
        found = self.store.client(client_id)
        return None if found is None else Client(found)

    def save_token(self, token: dict[str, Any], request: FormRequest) -> None:
        now = self.now()
        code = request.authorization_code
        origin = code.grant.digest if code is not None else request.refresh_token.grant.origin
        common = {"client_id": request.client.client_id, "learner": str(request.user),
                  "scope": token.get("scope", ""), "issued_at": now, "origin": origin}
        self.store.save_grant(OAuthGrant(
            digest=digest(token["access_token"]), kind="access",
            expires_at=now + timedelta(seconds=int(token["expires_in"])), **common))
        if "refresh_token" in token:
            self.store.save_grant(OAuthGrant(
                digest=digest(token["refresh_token"]), kind="refresh",
                expires_at=now + timedelta(seconds=REFRESH_TTL_S), **common))

    def create_oauth2_request(self, request: FormRequest) -> FormRequest:
        return request

    def create_json_request(self, request: BodyRequest) -> BodyRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthAnswer:
        return OAuthAnswer(status, body, list(headers or []))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals."""

    # ---------------------------------------------------------------- what routes call

    def consent(self, request: FormRequest) -> Any:
        """The validated authorization request (authlib's grant: ``.client``, ``.request
        .scope``, ``.redirect_uri``); OAuth2Error when it is not valid (its ``redirect_uri``
        set when the error may go back to the client)."""
        return self.get_consent_grant(request)

    def authorize(self, request: FormRequest, grant: Any, learner: str | None) -> OAuthAnswer:
        """The redirect back to the client: a code for `learner`, or ``access_denied``."""
        answer: OAuthAnswer = self.create_authorization_response(
            request, grant_user=learner, grant=grant)
        return answer

    def token(self, request: FormRequest) -> OAuthAnswer:
        answer: OAuthAnswer = self.create_token_response(request)
        return answer

    def revoke(self, request: FormRequest) -> OAuthAnswer:
        """RFC 7009: 200 whether or not the token was known (an unknown one is not an error)."""
        answer: OAuthAnswer = self.create_endpoint_response("revocation", request)
        return answer

    def register(self, request: BodyRequest) -> OAuthAnswer:
        answer: OAuthAnswer = self.create_endpoint_response("client_registration", request)
        return answer

    def bearer(self, request: FormRequest, scope: str) -> OAuthGrant:
        """The access token of `request`, which must be live and hold `scope`; OAuth2Error
        (401 ``invalid_token``, 403 ``insufficient_scope``) otherwise."""
        token: Token = self.protector.validate_request([scope], request)
        return token.grant

    def validate_requested_scope(self, scope: str | None) -> None:
        if scope and not set(scope_to_list(scope)) <= set(SCOPES):
            unknown = sorted(set(scope_to_list(scope)) - set(SCOPES))
            raise InvalidScopeError(f"unknown scope: {' '.join(unknown)}")


class _Validator(rfc6750.BearerTokenValidator):  # type: ignore[misc]
    def __init__(self, server: OAuthServer) -> None:
        super().__init__()
        self.server = server

    def authenticate_token(self, token_string: str) -> Token | None:
        found = self.server.store.grant(digest(token_string))
        if found is None or found.kind != "access":
            return None
        return Token(found, self.server.now())


def error_answer(error: OAuth2Error) -> OAuthAnswer:
    """An OAuth2Error as authlib answers it (a redirect when it carries a redirect URI)."""
    status, body, headers = error()
    return OAuthAnswer(status, dict(body) if isinstance(body, list) else body, list(headers))
