"""The HTTP app factory: `create_app(db_path=...)` wires the store, the review service and routes.

`/health` and `/metrics` are served without a token; everything else lives under `/api/v1`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_app(
    *,
    db_path: Path,
    metrics: Callable[[], str] | None = None,
    rubric_dirs: Sequence[Path] = (),
) -> FastAPI:
    """Build the HTTP app over the SQLite store at `db_path`.

    `metrics` returns the Prometheus text exposition served at `/metrics` (empty if None);
    `rubric_dirs` are searched for rubric files besides the uploaded versions.
    """
    app = FastAPI(title="assessengine", version="1")
    app.state.db_path = Path(db_path)
    app.state.rubric_dirs = tuple(Path(d) for d in rubric_dirs)

    @app.get("/health", tags=["ops"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics",
             response_class=PlainTextResponse)
    def get_metrics() -> PlainTextResponse:
        body = metrics() if metrics is not None else ""
        return PlainTextResponse(body, media_type=PROMETHEUS_CONTENT_TYPE)

    _include_web(app)
    return app


def _include_web(app: FastAPI) -> None:
    """Include `assessengine.api.web.router` if that module exists (the server-rendered pages)."""
    if importlib.util.find_spec("assessengine.api.web") is None:
        return
    web = importlib.import_module("assessengine.api.web")
    app.include_router(web.router)
