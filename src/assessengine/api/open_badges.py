"""The 1EdTech Open Badges 3.0 API, read side: what hosts and wallets call.

`OpenBadgesApi` joins the authorization server (`api.oauth.OAuthServer`, over the OAuth store
in the engine's database) and the credentials (`CredentialApi`): a host that a learner
authorised reads that learner's credentials (`getCredentials`) and profile (`getProfile`),
through the same role checks as the learner's own token (the host acts as the learner, read
only). The service description document (`discovery`) is the OpenAPI 3.0 document the
specification asks for at ``/ims/ob/v3p0/discovery``, with the OAuth endpoints and scopes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from .. import __version__
from ..storage.oauth import OAuthStore, OAuthStoreError, SqlOAuthStore
from .oauth import CREDENTIAL_READ, PROFILE_READ, SCOPES, OAuthServer
from .service import ConflictError, Principal
from .service.credentials import CredentialApi

BASE_PATH: Final = "/ims/ob/v3p0"
AUTHORIZE_PATH: Final = "/oauth/authorize"
TOKEN_PATH: Final = "/oauth/token"
REGISTER_PATH: Final = "/oauth/register"
REVOKE_PATH: Final = "/oauth/revoke"
METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000


@dataclass(frozen=True, slots=True)
class CredentialPage:
    """One page of a learner's credentials: the signed documents and how many there are."""

    documents: list[dict[str, Any]]
    total: int


class OpenBadgesApi:
    """The Open Badges API over `credentials` (and its engine URLs); the OAuth store is opened
    on `db_path` when first needed (or `store` is used: tests)."""

    def __init__(self, credentials: CredentialApi, db_path: str | Path, *,
                 store: OAuthStore | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:  # fmt: skip
        self.credentials = credentials
        self.base = credentials.urls.base
        self._db_path = db_path
        self._store = store
        self._own_store = store is None
        self._clock = clock
        self._server: OAuthServer | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            store, self._store = self._store, None
            self._server = None
        if store is not None and self._own_store:
            store.close()

    @property
    def server(self) -> OAuthServer:
        """The authorization server (ConflictError when the OAuth store cannot be opened)."""
        with self._lock:
            if self._server is None:
                if self._store is None:
                    try:
                        self._store = SqlOAuthStore(self._db_path)
                    except OAuthStoreError as error:
                        raise ConflictError(f"the OAuth store: {error}") from None
                self._server = OAuthServer(self._store, endpoints={
                    "authorization": self.base + AUTHORIZE_PATH,
                    "token": self.base + TOKEN_PATH,
                    "registration": self.base + REGISTER_PATH,
                    "revocation": self.base + REVOKE_PATH,
                }, clock=self._clock)  # fmt: skip
            return self._server

    # ---------------------------------------------------------------------------- reading

    def credential_page(self, who: Principal, *, limit: int, offset: int,
                        since: datetime | None) -> CredentialPage:  # fmt: skip
        """`who`'s credentials, oldest first, issued at or after `since` (all when None),
        `limit` of them from `offset`."""
        learner = who.learner or ""
        found = [c for c in self.credentials.credentials_of(who, learner)
                 if since is None or c.issued_at >= since]  # fmt: skip
        return CredentialPage([c.document for c in found[offset:offset + limit]], len(found))

    def profile(self, who: Principal) -> dict[str, Any]:
        """The learner's Open Badges `Profile`: their record's URL as id (each credential's
        ``credentialSubject.id`` is its own public subject URL, unlinkable across
        credentials; the host, holding all of them, learns no more from this id)."""
        learner = who.learner or ""
        info = self.credentials.learner(who, learner)
        return {
            "@context": ["https://www.w3.org/ns/credentials/v2",
                         "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"],
            "id": self.credentials.urls.learner(info.learner),
            "type": ["Profile"],
            "name": info.learner,
        }  # fmt: skip

    # ---------------------------------------------------------------------------- discovery

    def server_metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return {"issuer": self.base, **self.server.metadata()}

    def discovery(self) -> dict[str, Any]:
        """The service description document (an OpenAPI 3.0 document, as the Open Badges API
        specifies it): the endpoints this engine serves, their scopes, and the OAuth 2.0
        authorization code flow with the registration URL."""
        terms = self.credentials.settings.issuer_url or self.base
        return {
            "openapi": "3.0.1",
            "info": {
                "title": f"{self.credentials.settings.issuer_name} Open Badges API",
                "description": "The Open Badges 3.0 API (read side) of an assessengine "
                               "server: a learner's credentials and profile.",
                "version": __version__,
                "termsOfService": terms,
                "x-imssf-privacyPolicyUrl": terms,
            },
            "servers": [{"url": self.base + BASE_PATH}],
            "tags": [{"name": "OpenBadgeCredentials"}, {"name": "Profile"},
                     {"name": "Discovery"}],
            "paths": _PATHS,
            "components": {
                "securitySchemes": {"OAuth2ACG": {
                    "type": "oauth2",
                    "description": "OAuth 2.0 authorization code grant with PKCE (S256); "
                                   "clients register dynamically (RFC 7591).",
                    "x-imssf-registrationUrl": self.base + REGISTER_PATH,
                    "flows": {"authorizationCode": {
                        "authorizationUrl": self.base + AUTHORIZE_PATH,
                        "tokenUrl": self.base + TOKEN_PATH,
                        "refreshUrl": self.base + TOKEN_PATH,
                        "scopes": dict(SCOPES),
                    }},
                }},
                "schemas": _SCHEMAS,
            },
        }  # fmt: skip


_IMSX: Final = {"$ref": "#/components/schemas/Imsx_StatusInfo"}
_ERRORS: Final = {
    str(status): {"description": text, "content": {"application/json": {"schema": _IMSX}}}
    for status, text in ((400, "Invalid query parameter"), (401, "No valid access token"),
                         (403, "The token lacks the scope"), (500, "Server error"))
}  # fmt: skip
_PATHS: Final = {
    "/credentials": {"get": {
        "operationId": "getCredentials", "tags": ["OpenBadgeCredentials"],
        "summary": "The authorising learner's OpenBadgeCredentials, oldest first",
        "security": [{"OAuth2ACG": [CREDENTIAL_READ]}],
        "parameters": [
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
            {"name": "offset", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0}},
            {"name": "since", "in": "query", "required": False,
             "schema": {"type": "string", "format": "date-time"}},
        ],
        "responses": {"200": {
            "description": "The credentials",
            "headers": {
                "X-Total-Count": {"schema": {"type": "integer"},
                                  "description": "How many credentials match"},
                "Link": {"schema": {"type": "string"},
                         "description": "RFC 8288 links: first, last, next, prev"},
            },
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/GetOpenBadgeCredentialsResponse"}}},
        }, **_ERRORS},
    }},
    "/profile": {"get": {
        "operationId": "getProfile", "tags": ["Profile"],
        "summary": "The authorising learner's profile",
        "security": [{"OAuth2ACG": [PROFILE_READ]}],
        "responses": {"200": {"description": "The profile", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Profile"}}}}, **_ERRORS},
    }},
    "/discovery": {"get": {
        "operationId": "getServiceDescription", "tags": ["Discovery"],
        "summary": "This document",
        "responses": {"200": {"description": "The service description document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }},
}  # fmt: skip
_SCHEMAS: Final = {
    "GetOpenBadgeCredentialsResponse": {"type": "object", "properties": {
        "credential": {"type": "array", "items": {"type": "object"}},
        "compactJwsStrings": {"type": "array", "items": {"type": "string"}},
    }},
    "Profile": {"type": "object", "required": ["id", "type"], "properties": {
        "id": {"type": "string", "format": "uri"},
        "type": {"type": "array", "items": {"type": "string"}},
        "name": {"type": "string"},
    }},
    "Imsx_StatusInfo": {"type": "object",
                        "required": ["imsx_codeMajor", "imsx_severity"], "properties": {
        "imsx_codeMajor": {"type": "string", "enum": ["failure", "processing", "success",
                                                      "unsupported"]},
        "imsx_severity": {"type": "string", "enum": ["error", "status", "warning"]},
        "imsx_description": {"type": "string"},
        "imsx_codeMinor": {"type": "object"},
    }},
}  # fmt: skip
