"""The public, plain-language page of a rubric (`core.explain`), for learners:

    /rubrics/{id}              the newest published version
    /rubrics/{id}?version=N    that version

No sign-in: credentials link here from their achievement's `criteria`, and whoever holds a
credential (an employer, a verifier) may read what it certifies. The page is the same HTML as
`assessengine rubric explain --format html` writes; its only style is inline and allowed by
its hash in the Content-Security-Policy.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from ..core.explain import explain
from ..core.explain_render import STYLE_HASH, html_page
from ..core.model import MAX_VERSION
from .service import ReviewService
from .web import SECURITY_HEADERS, _render

router = APIRouter(include_in_schema=False)

PAGE_HEADERS: Final = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-cache",
}


def rubric_page_path(rubric: str) -> str:
    """The page's path (ids are lowercase letters, digits and '-': nothing to quote)."""
    return f"/rubrics/{rubric}"


@router.get("/rubrics/{rubric}", response_class=HTMLResponse)
def rubric_page(
    request: Request,
    rubric: str,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> Response:
    service: ReviewService = request.app.state.service
    entry = service.catalog.find(rubric, version)
    if entry is None:
        which = f"rubric {rubric!r}" + (f" version {version}" if version is not None else "")
        return _render(request, "error.html", status=404, title="Not found",
                       detail=f"There is no published {which}.")  # fmt: skip
    page = html_page(explain(entry.rubric, entry.scenario))
    return HTMLResponse(page, headers=PAGE_HEADERS)
