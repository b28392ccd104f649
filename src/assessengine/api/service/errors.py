"""The service's refusals. The HTTP layer turns each into an RFC 9457 problem with its status;
the web pages and the CLI show `detail`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...core.ids import id_problem
from ...errors import AssessEngineError


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid input field: where (``body.reason``, ``query.limit``, ``file``) and why.
    `line`/`column` place it inside an uploaded file when known (1-based)."""

    name: str
    reason: str
    line: int | None = None
    column: int | None = None


class ServiceError(AssessEngineError):
    """A request the service refuses. `status` is the HTTP status; `slug` names the problem
    type."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnauthenticatedError(ServiceError):
    status, slug, title = 401, "unauthenticated", "Authentication required"


class ForbiddenError(ServiceError):
    status, slug, title = 403, "forbidden", "Not allowed for this role"


class NotFoundError(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class ConflictError(ServiceError):
    status, slug, title = 409, "conflict", "Conflict with the current state"


class TooLargeError(ServiceError):
    status, slug, title = 413, "too-large", "Content too large"


class InsufficientStorageError(ServiceError):
    """The server's disk is full: nothing of the request was kept; retry once space is freed
    (the answer carries ``Retry-After``)."""

    status, slug, title = 507, "storage-full", "The server's disk is full"
    retry_after_s = 60


class StoreUnavailableError(ServiceError):
    """The store cannot be reached for now (its server is down or restarting, no connection
    came free in time, the database is locked): nothing of the request was kept; retry (the
    answer carries ``Retry-After``)."""

    status, slug, title = 503, "store-unavailable", "The store is unavailable"
    retry_after_s = 5


class InvalidError(ServiceError):
    """Input that fails validation; `errors` name each field."""

    status, slug, title = 422, "validation", "Invalid input"

    def __init__(self, detail: str, errors: Sequence[FieldProblem] = ()) -> None:
        super().__init__(detail)
        self.errors = tuple(errors)


class RubricProblemsError(InvalidError):
    """An uploaded rubric does not pass `assessengine rubric check`; each problem has its line
    and column in the uploaded text."""

    slug, title = "rubric-problems", "The rubric has problems"


def check_ids(**ids: str | None) -> None:
    """Raise InvalidError naming each given id (``session=...``, ``learner=...``) that does
    not follow the id rule (`core.ids`); None means not given."""
    problems = [FieldProblem(name, problem) for name, value in ids.items()
                if value is not None and (problem := id_problem(value, name)) is not None]
    if problems:
        raise InvalidError("; ".join(p.reason for p in problems), problems)
