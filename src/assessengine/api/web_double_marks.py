"""Double marking on the web pages (the session page's part is `double_mark_view`): its
two forms: a trainer or admin asks a second assessor (POST
``/sessions/{id}/double-marking``), the assigned assessor submits their blind marks (POST
``/sessions/{id}/double-marks``). Both answer 303 back to the session page, or the session
page again with the error (4xx)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from .guard import GuardedRoute
from .service import Principal, ReviewService, double_marking
from .service.double_marking import AssignIn, SecondMarkIn, SecondMarksIn
from .service.errors import ServiceError
from .web import _action, _problem_text, _redirect, _session_response

router = APIRouter(include_in_schema=False, route_class=GuardedRoute)
_NO_FORM = {"kind": "double-marking", "criterion": ""}  # no review form's text to keep


@router.post("/sessions/{session_id}/double-marking")
async def assign(request: Request, session_id: str) -> Response:
    form = await request.form()

    def record(who: Principal, service: ReviewService) -> str:
        body = AssignIn(assessor=str(form.get("assessor", "")))
        double_marking.assign(service, who, session_id, body)
        return "double-marking"

    return await _post(request, session_id, str(form.get("csrf", "")), record)


@router.post("/sessions/{session_id}/double-marks")
async def submit(request: Request, session_id: str) -> Response:
    form = await request.form()

    def record(who: Principal, service: ReviewService) -> str:
        marks = [SecondMarkIn(criterion=str(c), verdict=str(form.get(f"verdict-{c}", "")),
                              note=str(form.get(f"note-{c}", "")))
                 for c in form.getlist("criterion")]  # fmt: skip
        double_marking.submit(service, who, session_id, SecondMarksIn(marks=marks))
        return "double-marks"

    return await _post(request, session_id, str(form.get("csrf", "")), record)


async def _post(
    request: Request, session_id: str, csrf: str,
    record: Callable[[Principal, ReviewService], str],
) -> Response:  # fmt: skip
    """`record` (which returns what was done), then 303 to the session page; refused input
    gives the session page again with the error and its status."""

    def build(who: Principal, service: ReviewService) -> Response:
        try:
            done = record(who, service)
        except ValidationError as exc:
            return _session_response(request, who, service, session_id, status=422,
                                     error=_problem_text(exc), form=_NO_FORM)  # fmt: skip
        except ServiceError as exc:
            if exc.status == 404 and service.store.session(session_id) is None:
                raise
            return _session_response(request, who, service, session_id, status=exc.status,
                                     error=exc.detail, form=_NO_FORM)  # fmt: skip
        query = urlencode({"done": done})
        return _redirect(f"/sessions/{quote(session_id, safe='')}?{query}#double-marking")

    return await run_in_threadpool(_action, request, csrf, build)
