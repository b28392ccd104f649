"""The review service: what the HTTP API, the web pages and the CLI share. No web framework
here; errors are `ServiceError`s with an HTTP status the front ends may use."""

from __future__ import annotations

from .access import ROLES, Action, Principal, Role
from .errors import (
    ConflictError,
    FieldProblem,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    RubricProblemsError,
    ServiceError,
    TooLargeError,
    UnauthenticatedError,
)
from .service import FieldUpload, ReviewService, SessionFilters

__all__ = [
    "ROLES",
    "Action",
    "ConflictError",
    "FieldProblem",
    "FieldUpload",
    "ForbiddenError",
    "InvalidError",
    "NotFoundError",
    "Principal",
    "ReviewService",
    "Role",
    "RubricProblemsError",
    "ServiceError",
    "SessionFilters",
    "TooLargeError",
    "UnauthenticatedError",
]
