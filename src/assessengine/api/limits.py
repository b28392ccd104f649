"""Request bodies are bounded as they stream in, whether their length is declared or not.

`BodyLimit` is ASGI middleware: each request's cap is its path's entry in `routes` (uploads
need more than the default), else `default`. A declared ``Content-Length`` over the cap is
refused at once; a body without one (chunked) or that is longer than declared is counted as
the app reads it, and the read that passes the cap raises `BodyTooLarge`. Either way the
answer is a 413 problem (``urn:assessengine:problem:too-large``) that closes the connection,
so the rest of the body is never read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import problems

DEFAULT_BODY_LIMIT: Final = 1 * 2**20
"""Every JSON body and form of the API and the pages (the largest, a credential to verify, is
at most 1 MiB); uploads have their own caps."""
MULTIPART_OVERHEAD: Final = 64 * 1024
"""Room for a multipart body's boundaries, headers and form fields beside its file."""


class BodyTooLarge(HTTPException):
    """The request body passed its cap while it was read."""

    slug = "too-large"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes",
                         headers={"Connection": "close"})  # fmt: skip


class BodyLimit:
    """Refuses (413 problem) a request body larger than its path's cap, declared or streamed."""

    def __init__(self, app: ASGIApp, *, default: int, routes: Mapping[str, int]) -> None:
        self.app, self.default, self.routes = app, default, dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get(scope["path"], self.default)
        if _declared(scope) > limit:
            await _refuse(scope, receive, send, BodyTooLarge(limit))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside a route (routes answer it themselves)
            if started:
                raise
            await _refuse(scope, receive, send, exc)


def _declared(scope: Scope) -> int:
    """The declared Content-Length (0 when there is none; the server refuses a malformed one)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: BodyTooLarge) -> None:
    response = problems.problem_response(Request(scope), 413, str(exc.detail), slug=exc.slug,
                                         headers=dict(exc.headers or {}))  # fmt: skip
    await response(scope, receive, send)
