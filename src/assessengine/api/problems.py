"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API answers is a `Problem`: ``type`` (a URN naming the kind of problem, or
``about:blank`` for a plain HTTP status), ``title``, ``status``, ``detail``, ``instance`` (the
request path), and for invalid input ``errors``: one entry per field (``name`` such as
``query.limit`` or ``body.reason``, ``reason``, and ``line``/``column`` inside an uploaded file).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..storage.port import StoreError, disk_full, unavailable
from .service import FieldProblem, ServiceError, UnauthenticatedError
from .service.errors import InsufficientStorageError, StoreUnavailableError

log = logging.getLogger(__name__)

MEDIA_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:assessengine:problem:"


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="where: query.X, path.X, body.X, header.X, or file")
    reason: str
    line: int | None = Field(default=None, description="1-based line in an uploaded file")
    column: int | None = Field(default=None, description="1-based column in an uploaded file")


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description="URN of the problem type, or about:blank")
    title: str
    status: int
    detail: str
    instance: str = Field(description="the request path")
    errors: list[FieldError] | None = Field(
        default=None, description="invalid fields (validation problems only)"
    )


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    errors: list[FieldProblem] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body = Problem(
        type=TYPE_PREFIX + slug if slug else "about:blank",
        title=title or phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=None if errors is None else [
            FieldError(name=e.name, reason=e.reason, line=e.line, column=e.column) for e in errors
        ],
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers,
                        media_type=MEDIA_TYPE)  # fmt: skip


def service_problem(request: Request, exc: ServiceError, *, close: bool = False) -> JSONResponse:
    """The problem answering `exc` (with ``WWW-Authenticate`` for a 401). `close`: the request's
    body was not read, so the answer closes the connection (``Connection: close``)."""
    errors = list(getattr(exc, "errors", ())) or None
    headers = {"WWW-Authenticate": 'Bearer realm="assessengine"'} if isinstance(
        exc, UnauthenticatedError) else {}  # fmt: skip
    if isinstance(exc, InsufficientStorageError | StoreUnavailableError):
        headers["Retry-After"] = str(exc.retry_after_s)
    if close:
        headers["Connection"] = "close"
    return problem_response(request, exc.status, exc.detail, slug=exc.slug, title=exc.title,
                            errors=errors, headers=headers or None)  # fmt: skip


def install(app: FastAPI) -> None:
    """Answer every error of `app` with a problem."""

    async def service_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ServiceError)
        return service_problem(request, exc)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [_field(e) for e in exc.errors()]
        detail = "; ".join(f"{e.name}: {e.reason}" for e in errors[:5]) or "invalid request"
        return problem_response(request, 422, detail, slug="validation", title="Invalid input",
                                errors=errors)  # fmt: skip

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(request, exc.status_code, detail, slug=getattr(exc, "slug", None),
                                headers=dict(exc.headers or {}) or None)  # fmt: skip

    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        if disk_full(exc):  # whatever the write: 507, with Retry-After
            log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
            return service_problem(request, InsufficientStorageError(
                f"the server's disk is full; nothing was kept, retry later ({exc})"))
        if unavailable(exc):  # the server gone, no pooled connection in time, a lock: 503
            log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
            return service_problem(request, StoreUnavailableError(
                f"the store is unavailable for now; nothing was kept, retry later ({exc})"))
        return await server_error(request, exc)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "an internal error occurred; it has been logged",
                                slug="internal")  # fmt: skip

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    for storage in (StoreError, OSError):  # the stores raise only StoreError (and OSError)
        app.add_exception_handler(storage, storage_error)
    app.add_exception_handler(Exception, server_error)


def _field(error: Any) -> FieldProblem:
    loc = [str(part) for part in error.get("loc", ())]
    name = ".".join(loc) or "request"
    return FieldProblem(name, str(error.get("msg", "invalid")))


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error responses (problem+json) for a route."""
    what = {
        400: "The body could not be parsed (malformed JSON or multipart)",
        401: "No token, or the token is unknown or revoked",
        403: "The token's role may not do this",
        404: "Not found (or not yours: learners see only their own records)",
        409: "Conflicts with the current state",
        413: "Content too large",
        503: "The store is unavailable for now: nothing was kept; retry after `Retry-After`",
        422: "Invalid input; `errors` names each field",
        507: "The server's disk is full: nothing was kept; retry after `Retry-After` seconds",
    }
    schema = {"$ref": "#/components/schemas/Problem"}
    return {s: {"description": what[s], "content": {MEDIA_TYPE: {"schema": schema}}}
            for s in statuses}  # fmt: skip
