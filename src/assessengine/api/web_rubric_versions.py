"""The trainers' rubric page: published versions, and a new version tried before it is published
(server-rendered, in the style of `api.web`, whose sign-in, cookies, CSRF and error pages it
uses):

    GET  /rubric-versions            the versions, and the form to try a new one
    POST /rubric-versions/draft      (multipart: file) checked; what it would change on the
                                     newest closed sessions, against the published version
    POST /rubric-versions/publish    (form: text, filename) the ordinary upload

A draft is not stored: the diff page carries its text to the publish form, and publishing
checks it again. Trainers and admins only (the upload's permission).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from ..core.report import CriterionResult
from ..core.rubric_diff import describe_evidence
from .guard import GuardedRoute
from .service import Principal, ReviewService
from .service.access import Action
from .service.catalog import MAX_RUBRIC_BYTES
from .service.errors import ForbiddenError, RubricProblemsError
from .web import SIGNED_IN, _action, _page, _redirect, _render

router = APIRouter(include_in_schema=False, route_class=GuardedRoute)


def _allowed(who: Principal) -> None:
    if not who.may(Action.UPLOAD_RUBRIC):
        raise ForbiddenError("only trainers and admins manage rubric versions")


def _list(request: Request, who: Principal, service: ReviewService, *, status: int = 200,
          **context: Any) -> Response:  # fmt: skip
    _allowed(who)
    versions = service.rubric_versions(who)
    context.setdefault("flash", None)
    context.setdefault("error", None)
    context.setdefault("problems", [])
    return _render(request, "rubric_versions.html", status=status, who=who, versions=versions,
                   **context)  # fmt: skip


@router.get("/rubric-versions")
def rubric_versions(request: Request, published: str | None = None) -> Response:
    flash = f"Published {published}." if published else None
    return _page(request, lambda who, service: _list(request, who, service, flash=flash))


@router.post("/rubric-versions/draft", dependencies=[SIGNED_IN])
def try_draft(
    request: Request,
    file: Annotated[UploadFile, File()],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    def build(who: Principal, service: ReviewService) -> Response:
        _allowed(who)
        data = file.file.read(MAX_RUBRIC_BYTES + 1)
        filename = file.filename or "rubric.yaml"
        try:
            preview = service.preview_rubric(who, filename, data)
        except RubricProblemsError as exc:
            return _refused(request, who, service, exc)
        return _draft_page(request, who, preview, filename, data.decode("utf-8-sig"))

    return _action(request, csrf, build)


@router.post("/rubric-versions/publish", dependencies=[SIGNED_IN])
def publish(
    request: Request,
    text: Annotated[str, Form(max_length=MAX_RUBRIC_BYTES)],
    filename: Annotated[str, Form(max_length=200)] = "rubric.yaml",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    def build(who: Principal, service: ReviewService) -> Response:
        _allowed(who)
        # a form sends its line breaks as CRLF: the text is published as it was uploaded
        data = text.replace("\r\n", "\n").encode("utf-8")
        try:
            version, _ = service.upload_rubric(who, filename, data)
        except RubricProblemsError as exc:
            return _refused(request, who, service, exc)
        return _redirect(f"/rubric-versions?published={version.rubric}%20v{version.version}")

    return _action(request, csrf, build)


def _refused(
    request: Request, who: Principal, service: ReviewService, exc: RubricProblemsError
) -> Response:
    problems = [{"line": p.line, "column": p.column, "reason": p.reason} for p in exc.errors]
    return _list(request, who, service, status=422, error=exc.detail, problems=problems)


def _draft_page(request: Request, who: Principal, preview: Any, filename: str,
                text: str) -> Response:  # fmt: skip
    diff = preview.diff
    context: dict[str, Any] = {"p": preview, "draft": preview.draft.rubric, "d": diff,
                               "filename": filename, "text": text, "why": _why}  # fmt: skip
    if diff is not None:
        context |= {
            "verdicts": sum(len(s.changes) for s in diff.sessions),
            "outcomes": sum(diff.outcome_moves().values()),
            "outcome_moves": sorted(diff.outcome_moves().items()),
            "criterion_moves": sorted(diff.criterion_moves().items()),
        }
    return _render(request, "rubric_draft.html", who=who, **context)


def _why(result: CriterionResult | None) -> str:
    if result is None:
        return "not in this version"
    return f"{result.verdict} {describe_evidence(result.evidence)}".strip()
