"""What-if: the same sessions scored under two versions of a rubric, and what changes.

`diff_reports(old, new, ...)` compares, session by session, the reports of the old and the new
version and keeps the criteria whose verdict changes, each with the evidence of both sides
(the deciding event, the episode, the values); `rubric_changes(old, new)` lists what changed
in the rubric itself (criteria added, removed or edited, key by key; the pass rule). Both
rubrics must be for the same scenario (`scenario_mismatch`). Rendering for people is
`render_text`; `to_data` is the JSON shape. Pure: data in, data out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .codec import Columns
from .compiler import CompiledRubric
from .events import EventBatch
from .kernel_scorer import score_columns
from .report import CriterionResult, Evidence, SessionReport, Verdict
from .rubric import Rubric


@dataclass(frozen=True, slots=True)
class CriterionChange:
    """A criterion whose verdict differs; `before`/`after` None: not in that version."""

    id: str
    before: CriterionResult | None
    after: CriterionResult | None


@dataclass(frozen=True, slots=True)
class SessionDiff:
    session: str
    learner: str | None
    before: SessionReport
    after: SessionReport
    changes: tuple[CriterionChange, ...]

    @property
    def outcome_changed(self) -> bool:
        return self.before.outcome != self.after.outcome


@dataclass(frozen=True, slots=True)
class RubricDiff:
    """Every compared session (`sessions`, in the order given) and the totals."""

    old: Rubric
    new: Rubric
    rubric_changes: tuple[str, ...]
    sessions: tuple[SessionDiff, ...]
    skipped: tuple[tuple[str, str], ...] = ()   # (session, why) not compared

    @property
    def changed(self) -> tuple[SessionDiff, ...]:
        return tuple(s for s in self.sessions if s.changes or s.outcome_changed)

    def outcome_moves(self) -> Counter[tuple[str, str]]:
        """(before, after) -> sessions, for sessions whose outcome changes."""
        return Counter((s.before.outcome, s.after.outcome) for s in self.sessions
                       if s.outcome_changed)  # fmt: skip

    def criterion_moves(self) -> Counter[tuple[str, str, str]]:
        """(criterion, before, after) -> sessions; '-' for a criterion not in a version."""
        return Counter((c.id, _verdict(c.before), _verdict(c.after))
                       for s in self.sessions for c in s.changes)  # fmt: skip


def scenario_mismatch(old: Rubric, new: Rubric) -> str | None:
    """One line when the two rubrics are for different scenarios (nothing to compare)."""
    if old.scenario == new.scenario:
        return None
    return (f"the rubrics are for different scenarios: {old.rubric} v{old.version} is for"
            f" '{old.scenario}', {new.rubric} v{new.version} for '{new.scenario}'; a diff"
            " compares versions of a rubric for the same scenario")  # fmt: skip


# ===================================================================================== scoring


def score_many(
    compiled: CompiledRubric,
    sessions: Sequence[tuple[str, Columns, float]],
    observations: Mapping[str, Mapping[str, Verdict]] | None = None,
) -> list[SessionReport]:
    """Score whole sessions, each (id, its columns in seq order, its close t), in one kernel
    pass; reports in the order given. `observations`: session -> criterion -> recorded
    verdict (an assessor's, for `observed` criteria)."""
    if not sessions:
        return []
    slots = [np.full(len(cols), k, np.int32) for k, (_, cols, _) in enumerate(sessions)]
    batch = EventBatch(
        np.concatenate(slots),
        np.concatenate([cols.seq for _, cols, _ in sessions]),
        np.concatenate([cols.t for _, cols, _ in sessions]),
        np.concatenate([cols.event for _, cols, _ in sessions]),
        np.concatenate([cols.signals for _, cols, _ in sessions], axis=1),
    )
    ids = [sid for sid, _, _ in sessions]
    close_t = np.array([close for _, _, close in sessions], np.float64)
    return score_columns(compiled, batch, ids, close_t, observations=observations)


# ================================================================================= comparison


def diff_reports(
    old: Rubric,
    new: Rubric,
    before: Sequence[SessionReport],
    after: Sequence[SessionReport],
    *,
    learners: Mapping[str, str] | None = None,
    skipped: Sequence[tuple[str, str]] = (),
) -> RubricDiff:
    """Compare the reports of the same sessions (same order) under `old` and `new`."""
    learners = learners or {}
    sessions = tuple(
        SessionDiff(b.session, learners.get(b.session), b, a, _changes(b, a))
        for b, a in zip(before, after, strict=True)
    )
    return RubricDiff(old, new, tuple(rubric_changes(old, new)), sessions, tuple(skipped))


def _changes(before: SessionReport, after: SessionReport) -> tuple[CriterionChange, ...]:
    old = {c.id: c for c in before.criteria}
    new = {c.id: c for c in after.criteria}
    ids = [*old, *(k for k in new if k not in old)]
    return tuple(CriterionChange(cid, old.get(cid), new.get(cid)) for cid in ids
                 if _verdict(old.get(cid)) != _verdict(new.get(cid)))  # fmt: skip


def _verdict(result: CriterionResult | None) -> str:
    return "-" if result is None else result.verdict


def rubric_changes(old: Rubric, new: Rubric) -> list[str]:
    """What changed from `old` to `new`, one line each: criteria removed, added, or edited
    (each changed key, old value -> new value, in the canonical form), and the pass rule."""
    before = {c.id: _flat(c.model_dump(mode="json", by_alias=True, exclude_none=True))
              for c in old.criteria}  # fmt: skip
    after = {c.id: _flat(c.model_dump(mode="json", by_alias=True, exclude_none=True))
             for c in new.criteria}  # fmt: skip
    lines = [f"criterion {cid}: removed" for cid in before if cid not in after]
    lines += [f"criterion {cid}: added" for cid in after if cid not in before]
    for cid in (k for k in before if k in after):
        keys = [*before[cid], *(k for k in after[cid] if k not in before[cid])]
        edits = [f"{k} {_show(before[cid].get(k))} -> {_show(after[cid].get(k))}"
                 for k in keys if before[cid].get(k) != after[cid].get(k)]  # fmt: skip
        if edits:
            lines.append(f"criterion {cid}: {'; '.join(edits)}")
    if old.pass_.min_score != new.pass_.min_score:
        lines.append(f"pass.min_score {_show(old.pass_.min_score)} ->"
                     f" {_show(new.pass_.min_score)}")  # fmt: skip
    return lines


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``count.max``); lists stay whole values."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


# ================================================================================== rendering


def render_text(diff: RubricDiff) -> str:
    """The diff for people: what changed in the rubric, then each session whose verdicts or
    outcome change with the evidence of both versions, then the totals."""
    old, new = diff.old, diff.new
    lines = [f"{old.rubric} v{old.version} -> {new.rubric} v{new.version}"
             f" ({len(diff.sessions)} session(s) scored under both)", ""]  # fmt: skip
    lines += ["rubric changes:", *(f"  {c}" for c in diff.rubric_changes or ["(none)"]), ""]
    for s in diff.changed:
        who = f" ({s.learner})" if s.learner else ""
        lines.append(f"{s.session}{who}: {s.before.outcome} {s.before.score:.1f}"
                     f" -> {s.after.outcome} {s.after.score:.1f}")  # fmt: skip
        for c in s.changes:
            lines.append(f"  {c.id}: {_verdict(c.before)} -> {_verdict(c.after)}")
            lines.append(f"    before: {_why(c.before)}")
            lines.append(f"    after:  {_why(c.after)}")
    if diff.changed:
        lines.append("")
    lines += _totals(diff)
    return "\n".join(lines) + "\n"


def _totals(diff: RubricDiff) -> list[str]:
    changed = diff.changed
    verdicts = sum(len(s.changes) for s in diff.sessions)
    lines = [f"totals: {len(changed)} of {len(diff.sessions)} session(s) change,"
             f" {verdicts} verdict(s) change, {sum(diff.outcome_moves().values())} outcome(s)"
             " change"]  # fmt: skip
    lines += [f"  outcome {b} -> {a}: {n}" for (b, a), n in sorted(diff.outcome_moves().items())]
    lines += [f"  {cid}: {b} -> {a}: {n}"
              for (cid, b, a), n in sorted(diff.criterion_moves().items())]  # fmt: skip
    if diff.skipped:
        lines.append(f"not compared: {len(diff.skipped)} session(s)")
        lines += [f"  {sid}: {why}" for sid, why in diff.skipped]
    return lines


def _why(result: CriterionResult | None) -> str:
    """A decision and its evidence in one line."""
    if result is None:
        return "not in this version"
    if result.verdict == "pending":
        return "pending (not decided)"
    return f"{result.verdict} {describe_evidence(result.evidence)}"


def describe_evidence(e: Evidence) -> str:
    """``at t=45.2 s (seq 452), episode t=44.1-45.2 s; speed 8.6..9.3, load 60``."""
    parts = []
    where = "at" if e.seq is not None else "at the close,"
    if e.t is not None:
        parts.append(f"{where} t={_num(e.t)} s" + (f" (seq {e.seq})" if e.seq is not None
                                                    else ""))  # fmt: skip
    if e.t_start is not None and e.t_end is not None and e.t_start != e.t_end:
        parts.append(f"window t={_num(e.t_start)}-{_num(e.t_end)} s")
    text = ", ".join(parts)
    details = []
    if e.measured is not None:
        details.append(f"measured {_num(e.measured)}")
    for name, value in sorted((e.values or {}).items()):
        if isinstance(value, Mapping):
            low, high = value.get("min"), value.get("max")
            shown = _num(low) if low == high else f"{_num(low)}..{_num(high)}"
        else:
            shown = _num(value)
        details.append(f"{name} {shown}")
    return f"{text}; {', '.join(details)}" if details else text


def _num(value: object) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float | int):
        return f"{value:g}"
    return str(value)


# ====================================================================================== JSON


def to_data(diff: RubricDiff) -> dict[str, Any]:
    """The JSON shape of a diff (``rubric diff --json``)."""
    return {
        "old": {"rubric": diff.old.rubric, "version": diff.old.version,
                "sha256": diff.old.sha256()},
        "new": {"rubric": diff.new.rubric, "version": diff.new.version,
                "sha256": diff.new.sha256()},
        "rubric_changes": list(diff.rubric_changes),
        "sessions": len(diff.sessions),
        "changed_sessions": len(diff.changed),
        "changed_verdicts": sum(len(s.changes) for s in diff.sessions),
        "changed": [_session_data(s) for s in diff.changed],
        "skipped": [{"session": sid, "why": why} for sid, why in diff.skipped],
    }  # fmt: skip


def _session_data(s: SessionDiff) -> dict[str, Any]:
    return {
        "session": s.session, "learner": s.learner,
        "before": {"outcome": s.before.outcome, "score": s.before.score},
        "after": {"outcome": s.after.outcome, "score": s.after.score},
        "criteria": [{"id": c.id,
                      "before": None if c.before is None else c.before.to_data(),
                      "after": None if c.after is None else c.after.to_data()}
                     for c in s.changes],
    }  # fmt: skip
