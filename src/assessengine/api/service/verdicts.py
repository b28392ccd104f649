"""A session's verdicts side by side: the scorer's (stored report), the rubric's with in-field
observations, and the assessors' overrides; the outcome with and without the overrides.

The rules are `core.scoring`'s: `build_report` decides pending `observed` criteria from
observations, and `score_and_outcome` scores any list of verdicts. Overrides never change the
stored report; they are applied here, beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from ...core.latest import latest_by
from ...core.report import Evidence, Verdict, finite
from ...core.scoring import build_report, score_and_outcome
from ...storage.reviews import ObservationRow, OutcomeRow, OverrideRow
from .catalog import Entry
from .models import CriterionOut, ObservationOut, OutcomeScore, OverrideOut


@dataclass(frozen=True, slots=True)
class Reviewed:
    """The verdicts of one scored session, as the API shows them."""

    criteria: list[CriterionOut]
    scored: OutcomeScore
    machine: OutcomeScore
    with_overrides: OutcomeScore

    @property
    def overridden(self) -> bool:
        return any(c.override is not None for c in self.criteria)

    def outcome_row(self) -> OutcomeRow | None:
        """The row the review tables keep; None when a score is not a finite number (only a
        stored report's can be, and it is shown as it is, not kept)."""
        overrides = sum(c.override is not None for c in self.criteria)
        machine, overridden = self.machine.score, self.with_overrides.score
        if machine is None or overridden is None:
            return None
        return OutcomeRow(self.machine.outcome, machine, self.with_overrides.outcome,
                          overridden, overrides)  # fmt: skip


def observation_out(row: ObservationRow) -> ObservationOut:
    return ObservationOut(
        id=row.id, criterion=row.criterion, verdict=cast(Any, row.verdict), note=row.note,
        observed_at=row.observed_at, t=row.t, location=row.location, by=row.actor,
        recorded_at=row.recorded_at,
    )  # fmt: skip


def override_out(row: OverrideRow) -> OverrideOut:
    return OverrideOut(
        id=row.id, criterion=row.criterion, verdict=cast(Any, row.verdict),
        machine_verdict=cast(Any, row.machine_verdict), reason=row.reason, by=row.actor,
        recorded_at=row.recorded_at,
    )  # fmt: skip


def review(
    session: str,
    report: Mapping[str, Any],
    entry: Entry | None,
    observations: Sequence[ObservationRow],
    overrides: Sequence[OverrideRow],
) -> Reviewed:
    """Apply the latest observation and the latest override of each criterion (by the time
    each was recorded, `core.latest`; the rows may come in any order) to the stored
    `report`. Without the rubric (`entry` None) observations cannot be applied and overrides
    cannot be scored: the report's outcome stands for all three."""
    observed = latest_by(observations, _criterion_of)
    overridden = latest_by(overrides, _criterion_of)
    stored = report.get("criteria", [])
    scored = OutcomeScore(outcome=report["outcome"], score=finite(report.get("score")))
    if entry is None or [c.id for c in entry.rubric.criteria] != [c["id"] for c in stored]:
        rows = [_criterion(c, None, c["verdict"], None, overridden.get(c["id"])) for c in stored]
        return Reviewed(rows, scored, scored, scored)
    rubric = entry.rubric
    decided = {k: (cast(Verdict, c["verdict"]), _evidence(c["evidence"]))
               for k, c in enumerate(stored)}  # fmt: skip
    verdicts = {cid: cast(Verdict, o.verdict) for cid, o in observed.items()}
    rebuilt = build_report(entry.compiled, session, decided, verdicts, None)
    rows = []
    for k, (criterion, result) in enumerate(zip(rubric.criteria, rebuilt.criteria, strict=True)):
        rows.append(_criterion(
            stored[k], criterion.competency, result.verdict, observed.get(criterion.id),
            overridden.get(criterion.id), template=criterion.template,
            by_observation=result.verdict != stored[k]["verdict"],
        ))  # fmt: skip
    machine = OutcomeScore(outcome=rebuilt.outcome, score=rebuilt.score)
    score, outcome = score_and_outcome(rubric, [r.final_verdict for r in rows])
    return Reviewed(rows, scored, machine, OutcomeScore(outcome=outcome, score=score))


def _criterion_of(row: ObservationRow | OverrideRow) -> str:
    return row.criterion


def _criterion(
    stored: Mapping[str, Any],
    competency: str | None,
    verdict: str,
    observation: ObservationRow | None,
    override: OverrideRow | None,
    *,
    template: str | None = None,
    by_observation: bool = False,
) -> CriterionOut:
    scorer = stored["verdict"]
    if by_observation:
        decided_by = "observation"
    else:
        decided_by = "pending" if verdict == "pending" else "scorer"
    return CriterionOut(
        id=stored["id"], title=stored["title"], competency=competency,
        critical=bool(stored["critical"]), points=finite(stored.get("points")), template=template,
        scorer_verdict=scorer, verdict=cast(Any, verdict), decided_by=cast(Any, decided_by),
        evidence=dict(stored["evidence"]),
        observation=None if observation is None else observation_out(observation),
        override=None if override is None else override_out(override),
        final_verdict=cast(Any, verdict if override is None else override.verdict),
    )  # fmt: skip


def _evidence(data: Mapping[str, Any]) -> Evidence:
    return Evidence(
        seq=data.get("seq"), t=data.get("t"), t_start=data.get("t_start"),
        t_end=data.get("t_end"), seq_start=data.get("seq_start"), seq_end=data.get("seq_end"),
        values=data.get("values"), measured=data.get("measured"),
    )  # fmt: skip
