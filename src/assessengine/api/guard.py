"""Who a request is, decided before its body is read.

A route that needs a token takes its principal from a `Requires` dependency:

    who: Annotated[Principal, Depends(Requires(Action.RESCORE))]

FastAPI reads (and validates) a request's body before it solves any dependency, so on its own a
request without a token would have its whole body read and be answered 422 with validation
details. The routers of the JSON API therefore use `GuardedRoute`: before the body is touched,
it runs the route's `Requires` (401 without a valid token, 403 when the role may not take the
action) and keeps the principal on ``request.state``, where the dependency finds it again. A
refusal closes the connection (``Connection: close``), so a client still sending is cut off
instead of having its body read and thrown away. The pages' form POSTs use the same route
class with their own guard (the token cookie: to the sign-in form without it).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Protocol, cast

from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from . import problems
from .service import Principal, ReviewService, ServiceError
from .service.access import Action
from .service.errors import ForbiddenError

bearer = HTTPBearer(
    auto_error=False,
    description="A token from `assessengine token create`; send `Authorization: Bearer <token>`.",
)
_STATE_KEY = "principal"


class Requires:
    """A dependency: the principal of the request's bearer token (401 problem without a valid
    one), which must be allowed `action` when one is given (403 problem otherwise)."""

    def __init__(self, action: Action | None = None) -> None:
        self.action = action

    def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        who: Principal | None = getattr(request.state, _STATE_KEY, None)
        if who is None:
            service: ReviewService = request.app.state.service
            who = service.authenticate(None if credentials is None else credentials.credentials)
            setattr(request.state, _STATE_KEY, who)
        if self.action is not None and not who.may(self.action):
            raise ForbiddenError(
                f"role {who.role!r} may not {self.action.value.replace('_', ' ')}"
            )
        return who

    async def before_body(self, request: Request) -> Response | None:
        """Run this check from the request's headers alone (the body stays unread)."""
        credentials = await bearer(request)
        await run_in_threadpool(self, request, credentials)
        return None


class Guard(Protocol):
    """A dependency that can decide from the request's headers alone: `before_body` returns
    the answer that refuses the request (or raises a ServiceError), or None to let it in."""

    async def before_body(self, request: Request) -> Response | None: ...


class GuardedRoute(APIRoute):
    """A route that runs its guard dependency (`Requires`, or any with `before_body`) before
    it reads the request body; a refusal closes the connection."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guard = _guard(self.dependant)
        if guard is None:
            return handler

        async def guarded(request: Request) -> Response:
            try:
                refused = await guard.before_body(request)
            except ServiceError as exc:
                return problems.service_problem(request, exc, close=True)
            if refused is not None:
                refused.headers["Connection"] = "close"
                return refused
            return await handler(request)

        return guarded


def _guard(dependant: Dependant) -> Guard | None:
    """The route's guard dependency (searched depth first), if it has one."""
    for sub in dependant.dependencies:
        if callable(getattr(sub.call, "before_body", None)):
            return cast(Guard, sub.call)
        found = _guard(sub)
        if found is not None:
            return found
    return None
