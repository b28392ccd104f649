"""The HTTP app factory: `create_app(db_path=...)` wires the store, the review service and routes.

`/health` and `/metrics` are served without a token; the JSON API lives under `/api/v1`
(OpenAPI at `/openapi.json`, docs at `/docs`), every error an RFC 9457 problem. If the module
`assessengine.api.web` exists, its `router` (the server-rendered pages) is included too; it
finds the service at ``request.app.state.service``.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse

from .. import __version__
from . import (
    badge_routes,
    cohort_routes,
    credential_routes,
    double_mark_routes,
    open_badges_routes,
    problems,
    routes,
)
from .limits import DEFAULT_BODY_LIMIT, MULTIPART_OVERHEAD, BodyLimit
from .open_badges import OpenBadgesApi
from .service import ReviewService
from .service.cohorts import CohortService
from .service.credentials import CredentialApi, CredentialSettings
from .service.public_credentials import PublicCredentials
from .service.service import MAX_UPLOAD_BYTES

if TYPE_CHECKING:
    from ..archive.cohort import ArchiveSource

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_app(
    *,
    db_path: str | Path,
    metrics: Callable[[], str] | None = None,
    rubric_dirs: Sequence[Path] = (),
    scenario_dirs: Sequence[Path] = (),
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    service: ReviewService | None = None,
    web: bool = True,
    issuer_key_path: Path | None = None,
    credentials: CredentialSettings | None = None,
    archive: ArchiveSource | None = None,
    site: str | None = None,
) -> FastAPI:
    """Build the HTTP app over the store `db_path` names (a path or a store URL, see
    `storage.url`; created when missing).

    `metrics` returns the Prometheus text exposition served at `/metrics` (empty if None);
    `rubric_dirs` are searched for rubric files (before the bundled ones) besides the uploaded
    versions; `scenario_dirs` for scenarios. `service` (tests, or a front end that already has
    one) is used instead of opening the store; the app closes only a service it opened, when
    the server shuts down. `web` False leaves the server-rendered pages out (JSON API only).
    `issuer_key_path` is the key that signs credentials (default for a store in a
    file: ``<db_path>.issuer.pem``, made on first use; a server database needs one given);
    `credentials` the engine's public URL, issuer name and LRS; `archive` the Parquet archive
    cohort re-scores read archived sessions from (setting ``archive_url``).
    `site`: the site the app runs at (field sessions uploaded here get ids ``SITE:ID``,
    `ReviewService`).
    """
    own = service is None
    review = service or ReviewService.open(
        db_path, rubric_dirs=rubric_dirs, scenario_dirs=scenario_dirs,
        max_upload_bytes=max_upload_bytes, archive=archive, site=site,
    )  # fmt: skip
    try:
        issuing = CredentialApi(review, db_path, issuer_key_path=issuer_key_path,
                                settings=credentials)  # fmt: skip
    except BaseException:
        if own:
            review.close()
        raise
    try:
        cohorts = CohortService.open(review, db_path)
    except BaseException:
        issuing.close()
        if own:
            review.close()
        raise
    badges = OpenBadgesApi(issuing, db_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        badges.close()
        issuing.close()
        cohorts.close()
        if own:
            review.close()

    app = FastAPI(
        title="assessengine",
        version=__version__,
        summary="Review scored simulator and in-field sessions",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = review
    app.state.credentials = issuing
    app.state.public_credentials = PublicCredentials(issuing)
    app.state.cohorts = cohorts
    app.state.open_badges = badges
    app.state.db_path = db_path
    problems.install(app)
    app.add_middleware(BodyLimit, default=DEFAULT_BODY_LIMIT, routes={
        f"{routes.PREFIX}/field-sessions": review.max_upload_bytes + MULTIPART_OVERHEAD,
        f"{routes.PREFIX}/rubrics": routes.MAX_RUBRIC_BYTES + MULTIPART_OVERHEAD,
        "/rubric-versions/draft": routes.MAX_RUBRIC_BYTES + MULTIPART_OVERHEAD,
        # the draft page posts the text back URL-encoded: up to 3 bytes per byte
        "/rubric-versions/publish": 3 * routes.MAX_RUBRIC_BYTES + MULTIPART_OVERHEAD,
    })  # fmt: skip

    @app.get("/health", tags=["ops"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics",
             response_class=PlainTextResponse)  # fmt: skip
    def get_metrics() -> PlainTextResponse:
        body = metrics() if metrics is not None else ""
        return PlainTextResponse(body, media_type=PROMETHEUS_CONTENT_TYPE)

    app.include_router(routes.router)
    app.include_router(credential_routes.router)
    app.include_router(credential_routes.well_known)
    app.include_router(badge_routes.router)
    app.include_router(cohort_routes.router)
    app.include_router(open_badges_routes.router)
    app.include_router(double_mark_routes.router)
    if web:
        _include_web(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _include_web(app: FastAPI) -> None:
    """Include `assessengine.api.web.router` if that module exists (the server-rendered pages)."""
    if importlib.util.find_spec("assessengine.api.web") is None:
        return
    web = importlib.import_module("assessengine.api.web")
    app.include_router(web.router)
    app.include_router(importlib.import_module("assessengine.api.web_credentials").router)
    app.include_router(importlib.import_module("assessengine.api.web_public").router)
    app.include_router(importlib.import_module("assessengine.api.web_oauth").router)
    app.include_router(importlib.import_module("assessengine.api.web_cohorts").router)
    app.include_router(importlib.import_module("assessengine.api.web_double_marks").router)
    app.include_router(importlib.import_module("assessengine.api.web_rubrics").router)
    app.include_router(importlib.import_module("assessengine.api.web_rubric_versions").router)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with the Problem schema that error responses refer to."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary,
            description=app.description, routes=app.routes, tags=_TAGS,
        )  # fmt: skip
        found = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (problems.Problem, problems.FieldError):
            found[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        found["Problem"].pop("$defs", None)
        for name in ("HTTPValidationError", "ValidationError"):
            found.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


_TAGS = [
    {"name": "sessions", "description": "Scored sessions: list, read, events; field uploads"},
    {"name": "review", "description": "In-field observations and overrides (assessors)"},
    {"name": "rubrics", "description": "Rubric versions, uploads and re-scoring (trainers)"},
    {"name": "learners", "description": "A learner's attempts and competencies"},
    {"name": "audit", "description": "Every change: who, when, what, why"},
    {"name": "credentials", "description": "Open Badges 3.0 credentials: issue, verify, "
     "revoke, status lists; xAPI statements"},
    {"name": "cohorts", "description": "The cohort dashboard's numbers (trainers)"},
    {"name": "access", "description": "Who the token is"},
    {"name": "ops", "description": "Health and metrics (no token)"},
]

_DESCRIPTION = """
Assessors review scored sessions, record in-field observations and override verdicts (with a
reason, kept beside the machine verdict) and issue credentials; trainers publish rubric
versions and re-score; learners read their own record.

**Access.** Every `/api/v1` call needs `Authorization: Bearer <token>` (from
`assessengine token create`), except verifying a credential, its status list and its
achievement, which anyone may. Roles: `admin` (everything, and the only one to revoke
credentials), `trainer` (rubrics, re-scoring, audit, field uploads, reading), `assessor`
(observations, overrides, field uploads, issuing credentials, reading), `learner` (their own
sessions, history and credentials). 401: no valid token; 403: the role may not;
404: not found, or not yours.

**Errors** are RFC 9457 problem details (`application/problem+json`).
"""
