"""Who may do what: roles, the principal a token stands for, and the permission table."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

Role = Literal["admin", "trainer", "assessor", "learner"]
ROLES: Final[tuple[Role, ...]] = ("admin", "trainer", "assessor", "learner")
TOKEN_PREFIX: Final = "aet_"


class Action(StrEnum):
    """Everything the service does on someone's behalf."""

    READ_SESSIONS = "read_sessions"      # learners: their own only
    READ_LEARNERS = "read_learners"      # learners: their own only
    OBSERVE = "observe"
    OVERRIDE = "override"
    UPLOAD_FIELD_SESSION = "upload_field_session"
    READ_RUBRICS = "read_rubrics"
    UPLOAD_RUBRIC = "upload_rubric"
    RESCORE = "rescore"
    READ_AUDIT = "read_audit"
    ISSUE_CREDENTIALS = "issue_credentials"
    REVOKE_CREDENTIALS = "revoke_credentials"
    READ_CREDENTIALS = "read_credentials"  # learners: their own only
    FORWARD_XAPI = "forward_xapi"
    READ_COHORTS = "read_cohorts"          # the review queue and the cohort dashboard
    READ_CALIBRATION = "read_calibration"  # assessor agreement, simulator-to-field validity
    ASSIGN_DOUBLE_MARKING = "assign_double_marking"  # ask a second assessor to mark blind
    SHARE_CREDENTIALS = "share_credentials"  # a credential's public page; learners: their own


PERMISSIONS: Final[dict[Action, frozenset[Role]]] = {
    Action.READ_SESSIONS: frozenset(ROLES),
    Action.READ_LEARNERS: frozenset(ROLES),
    Action.OBSERVE: frozenset({"admin", "assessor"}),
    Action.OVERRIDE: frozenset({"admin", "assessor"}),
    Action.UPLOAD_FIELD_SESSION: frozenset({"admin", "trainer", "assessor"}),
    Action.READ_RUBRICS: frozenset({"admin", "trainer", "assessor"}),
    Action.UPLOAD_RUBRIC: frozenset({"admin", "trainer"}),
    Action.RESCORE: frozenset({"admin", "trainer"}),
    Action.READ_AUDIT: frozenset({"admin", "trainer"}),
    Action.ISSUE_CREDENTIALS: frozenset({"admin", "trainer", "assessor"}),
    Action.REVOKE_CREDENTIALS: frozenset({"admin"}),
    Action.READ_CREDENTIALS: frozenset({"admin", "trainer", "assessor", "learner"}),
    Action.FORWARD_XAPI: frozenset({"admin"}),
    Action.READ_COHORTS: frozenset({"admin", "trainer", "assessor"}),
    Action.READ_CALIBRATION: frozenset({"admin", "trainer"}),
    Action.ASSIGN_DOUBLE_MARKING: frozenset({"admin", "trainer"}),
    Action.SHARE_CREDENTIALS: frozenset({"admin", "learner"}),
}
"""Action -> the roles allowed to take it. A learner's reads are narrowed to their own
records by the service (another learner's session is reported as not found)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a token's id, name and role; `learner` for the learner role."""

    token_id: str
    name: str
    role: Role
    learner: str | None = None

    def may(self, action: Action) -> bool:
        return self.role in PERMISSIONS[action]

    def sees_learner(self, learner: str) -> bool:
        """Whether this principal may see records of `learner`."""
        return self.role != "learner" or self.learner == learner


def new_token() -> str:
    """A fresh secret token: the prefix and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: the sha256 of its text, hex. (Tokens carry 256 random bits,
    so a fast hash is enough: there is nothing to guess.)"""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
