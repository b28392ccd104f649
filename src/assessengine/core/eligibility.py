"""Is a learner eligible for a credential? A pure decision over their history of attempts.

`decide(policy, history)` returns a `Decision`: eligible or not, the qualifying sessions, and,
when not eligible, one human-readable reason per unmet requirement (what is missing, and why the
attempts made so far do not count).

Rules (docs/credentials.md):

- An attempt *matches* a requirement when its rubric is the requirement's, its rubric version is
  `min_version` or later and its source is the requirement's; other attempts neither count nor
  break anything.
- A matching attempt *counts* when its outcome is ``pass`` and, with `observed_by_assessor`,
  every `observed` criterion has a recorded ``pass``/``fail`` and the attempt names its assessor.
- `consecutive`: `passes` counting attempts next to each other among the matching attempts in
  time order; a matching attempt that does not count (failed, incomplete, not observed) between
  them breaks the run.
- `window`: every qualifying session of every requirement lies within the window of the
  earliest one (``latest <= window.after(earliest)``).
- A session counts for one requirement at most. Among the sets that satisfy the policy, the
  decision keeps the most recent one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .policy import Period, Policy, Requirement, Source

Outcome = Literal["pass", "fail", "incomplete"]
Verdict = Literal["pass", "fail", "pending", "not_applicable"]


@dataclass(frozen=True, slots=True)
class CriterionVerdict:
    """One criterion of an attempt's report; `observed` marks an assessor-judged criterion."""

    id: str
    title: str
    verdict: Verdict
    critical: bool = False
    points: float | None = None
    observed: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """One scored, closed session of the learner: what the decision and the credential need.

    ended_at:    when the session closed (timezone-aware)
    chain_head:  hex sha256 head of the session's stored event chain
    assessor:    who assessed it (field sessions, observations), when known
    """

    session: str
    rubric: str
    rubric_version: int
    source: Source
    outcome: Outcome
    score: float
    ended_at: datetime
    chain_head: str
    criteria: tuple[CriterionVerdict, ...] = ()
    assessor: str | None = None

    def unrecorded_observations(self) -> tuple[str, ...]:
        """Ids of `observed` criteria without an assessor's pass/fail."""
        return tuple(
            c.id for c in self.criteria if c.observed and c.verdict not in ("pass", "fail")
        )


@dataclass(frozen=True, slots=True)
class RequirementResult:
    """How one requirement stands: met or not, the sessions used, and what is missing."""

    requirement: Requirement
    met: bool
    sessions: tuple[Attempt, ...]
    missing: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The decision for one learner and one policy.

    qualifying:  the sessions the credential rests on (requirement order, then time order);
                 empty when not eligible
    reasons:     what is missing, one sentence per problem; empty when eligible
    """

    policy: str
    eligible: bool
    qualifying: tuple[Attempt, ...]
    reasons: tuple[str, ...]
    requirements: tuple[RequirementResult, ...]


def decide(policy: Policy, history: Iterable[Attempt]) -> Decision:
    """Decide eligibility from the learner's `history` (any order; duplicates by session id are
    an error: ValueError)."""
    attempts = _ordered(history)
    alone = [_best(r, attempts, set(), None) for r in policy.requirements]
    if policy.window is None or not all(a is not None for a in alone):
        chosen = _choose(policy, attempts, None)
    else:
        chosen = _within_window(policy, policy.window, attempts)
    if chosen is not None:
        results = tuple(
            RequirementResult(r, True, s) for r, s in zip(policy.requirements, chosen, strict=True)
        )
        qualifying = tuple(a for sessions in chosen for a in sessions)
        return Decision(policy.policy, True, qualifying, (), results)
    results = tuple(
        RequirementResult(r, found is not None, found or (), _missing(r, attempts, found))
        for r, found in zip(policy.requirements, alone, strict=True)
    )
    reasons = [r.missing for r in results if r.missing is not None]
    if not reasons and policy.window is not None:
        reasons.append(
            f"every requirement is met on its own, but never all within {policy.window}:"
            " the qualifying sessions are too far apart"
        )
    return Decision(policy.policy, False, (), tuple(reasons), results)


# --------------------------------------------------------------------------------- choosing

Span = tuple[datetime, datetime] | None


def _ordered(history: Iterable[Attempt]) -> list[Attempt]:
    attempts = sorted(history, key=lambda a: (a.ended_at, a.session))
    seen: set[str] = set()
    for attempt in attempts:
        if attempt.session in seen:
            raise ValueError(f"session {attempt.session!r} appears twice in the history")
        seen.add(attempt.session)
    return attempts


def _within_window(
    policy: Policy, window: Period, attempts: Sequence[Attempt]
) -> list[tuple[Attempt, ...]] | None:
    """The most recent choice whose sessions all lie within the window of the earliest: the
    earliest chosen session is always some counting attempt, so trying each as the start (the
    latest first) finds a choice whenever one exists."""
    starts = sorted({a.ended_at for a in attempts if _is_candidate(policy, a)}, reverse=True)
    for start in starts:
        chosen = _choose(policy, attempts, (start, window.after(start)))
        if chosen is not None:
            return chosen
    return None


def _is_candidate(policy: Policy, attempt: Attempt) -> bool:
    return any(_matches(r, attempt) and _counts(r, attempt) for r in policy.requirements)


def _choose(
    policy: Policy, attempts: Sequence[Attempt], span: Span
) -> list[tuple[Attempt, ...]] | None:
    used: set[str] = set()
    chosen: list[tuple[Attempt, ...]] = []
    for requirement in policy.requirements:
        found = _best(requirement, attempts, used, span)
        if found is None:
            return None
        used |= {a.session for a in found}
        chosen.append(found)
    return chosen


def _best(
    requirement: Requirement, attempts: Sequence[Attempt], used: set[str], span: Span
) -> tuple[Attempt, ...] | None:
    """The most recent sessions that meet `requirement` within `span`, avoiding `used`."""
    matching = [a for a in attempts if _matches(requirement, a)]
    n = requirement.passes
    if requirement.consecutive:
        for end in range(len(matching), n - 1, -1):
            run = matching[end - n : end]
            if all(_usable(requirement, a, used, span) for a in run):
                return tuple(run)
        return None
    usable = [a for a in matching if _usable(requirement, a, used, span)]
    return tuple(usable[-n:]) if len(usable) >= n else None


def _matches(requirement: Requirement, attempt: Attempt) -> bool:
    return (
        attempt.rubric == requirement.rubric
        and attempt.source == requirement.source
        and attempt.rubric_version >= requirement.min_version
    )


def _counts(requirement: Requirement, attempt: Attempt) -> bool:
    if attempt.outcome != "pass":
        return False
    if requirement.observed_by_assessor:
        return not attempt.unrecorded_observations() and bool(attempt.assessor)
    return True


def _usable(requirement: Requirement, attempt: Attempt, used: set[str], span: Span) -> bool:
    inside = span is None or span[0] <= attempt.ended_at <= span[1]
    return inside and attempt.session not in used and _counts(requirement, attempt)


# ---------------------------------------------------------------------------------- reasons


def _missing(
    requirement: Requirement, attempts: Sequence[Attempt], found: tuple[Attempt, ...] | None
) -> str | None:
    """Why `requirement` is not met by the history alone (None when it is)."""
    if found is not None:
        return None
    matching = [a for a in attempts if _matches(requirement, a)]
    counting = [a for a in matching if _counts(requirement, a)]
    goal = requirement.describe()
    if requirement.consecutive:
        have = f"the longest run so far is {_longest_run(requirement, matching)}"
    else:
        have = f"{len(counting)} so far"
    parts = [f"{goal[:1].upper()}{goal[1:]}: {have} (needed: {requirement.passes})"]
    notes = [_why_not(requirement, a) for a in matching[-5:] if not _counts(requirement, a)]
    notes = [n for n in notes if n]
    older = sorted(
        {
            a.rubric_version
            for a in attempts
            if a.rubric == requirement.rubric
            and a.source == requirement.source
            and a.rubric_version < requirement.min_version
        }
    )
    if older:
        listed = ", ".join(str(v) for v in older)
        notes.append(f"attempts on rubric version {listed} do not count")
    if not matching and not older:
        notes.append("no attempt yet")
    return parts[0] + ("; " + "; ".join(notes) if notes else "") + "."


def _longest_run(requirement: Requirement, matching: Sequence[Attempt]) -> int:
    best = current = 0
    for attempt in matching:
        current = current + 1 if _counts(requirement, attempt) else 0
        best = max(best, current)
    return best


def _why_not(requirement: Requirement, attempt: Attempt) -> str:
    name = f"{attempt.session} ({attempt.ended_at.date().isoformat()})"
    if attempt.outcome == "fail":
        failed = [c.id for c in attempt.criteria if c.verdict == "fail"]
        detail = f" on {', '.join(failed[:4])}" if failed else ""
        return f"{name} failed{detail}"
    if attempt.outcome == "incomplete":
        pending = [c.id for c in attempt.criteria if c.verdict == "pending"]
        detail = f" (pending: {', '.join(pending[:4])})" if pending else ""
        return f"{name} is incomplete{detail}"
    unrecorded = attempt.unrecorded_observations()
    if unrecorded:
        return f"{name} has no assessor's verdict on {', '.join(unrecorded)}"
    if requirement.observed_by_assessor and not attempt.assessor:
        return f"{name} passed but names no assessor"
    return ""
