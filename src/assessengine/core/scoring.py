"""Decisions -> criterion verdicts, score, outcome, evidence, session reports.

Score and outcome follow RUBRIC-LANGUAGE.md "Scoring and outcome" and docs/semantics.md
decisions 18-21.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .compiler import COUNT, METRIC, NEVER, SEQUENCE, VERDICT_NAMES, CompiledRubric
from .report import (
    CONTRIB_MAX,
    PENDING,
    CriterionResult,
    Evidence,
    Outcome,
    SessionReport,
    Value,
    Verdict,
)
from .rubric import Criterion, Rubric
from .scorer import Decisions


def score_and_outcome(rubric: Rubric, verdicts: Sequence[Verdict]) -> tuple[float, Outcome]:
    """The score (percent) and outcome for verdicts given in rubric order."""
    earned = possible = pending = 0.0
    critical_failed = False
    undecided = "pending" in verdicts
    for criterion, verdict in zip(rubric.criteria, verdicts, strict=True):
        if criterion.critical:
            critical_failed |= verdict == "fail"
            continue
        if verdict == "not_applicable":
            continue
        possible += criterion.weight
        if verdict == "pass":
            earned += criterion.weight
        elif verdict == "pending":
            pending += criterion.weight
    score = 100.0 * earned / possible if possible else 100.0
    best = 100.0 * (earned + pending) / possible if possible else 100.0
    minimum = rubric.pass_.min_score
    if critical_failed or best < minimum:
        return score, "fail"
    if not undecided and score >= minimum:
        return score, "pass"
    return score, "incomplete"


def _number(x: float) -> float | None:
    return None if x != x else x  # noqa: PLR0124 (NaN is the only value unequal to itself)


def _seq(x: int) -> int | None:
    return None if x < 0 else x


def evidence_rows(compiled: CompiledRubric, decisions: Decisions) -> list[Evidence]:
    """The evidence of every decision row, in order. Reads each column once (`tolist`): this
    runs for every decision the live engine saves."""
    d = decisions
    out: list[Evidence] = []
    kinds = compiled.kind.tolist()
    for row, (c, s, tt, ts, ss, m, raw) in enumerate(zip(
        d.criterion.tolist(), d.seq.tolist(), d.t.tolist(), d.t_start.tolist(),
        d.seq_start.tolist(), d.measured.tolist(), d.values.tolist(), strict=True,
    )):  # fmt: skip
        names = compiled.ev_names[c]
        kind = kinds[c]
        values: dict[str, Value]
        if kind == NEVER:
            values = {
                name: {"min": _number(raw[2 * k]), "max": _number(raw[2 * k + 1])}
                for k, name in enumerate(names)
            }
        else:
            values = {name: _number(raw[k]) for k, name in enumerate(names)}
        end = _number(tt)
        last = _seq(s)
        if kind in (COUNT, METRIC):
            pairs, total = _contributing(d.contrib[d.contrib_row[row]].tolist())
            evidence = Evidence(last, end, _number(ts), end, _seq(ss), last, values, _number(m),
                                contributing=pairs, contributing_total=total)  # fmt: skip
        elif kind == SEQUENCE:
            evidence = Evidence(last, end, _number(ts), end, _seq(ss), last, values, _number(m),
                                steps_done=int(d.steps_done[row]),
                                out_of_order=_seq(int(d.out_of_order[row])))  # fmt: skip
        else:
            evidence = Evidence(last, end, _number(ts), end, _seq(ss), last, values, _number(m))
        out.append(evidence)
    return out


def _contributing(contrib: list[float]) -> tuple[tuple[tuple[float, float], ...], int]:
    """The contributing intervals and their total, from a decision's `contrib` columns."""
    total = int(contrib[0])
    pairs = tuple(
        (contrib[1 + 2 * k], contrib[2 + 2 * k]) for k in range(min(total, CONTRIB_MAX))
    )
    return pairs, total


@dataclass(frozen=True, slots=True)
class Span:
    """A closed session's extent, for evidence of assessor-recorded verdicts."""

    first_seq: int | None
    first_t: float | None
    last_seq: int | None
    close_t: float


@dataclass(slots=True)
class DecisionLog:
    """Collects decisions per session: session slot -> criterion -> (verdict, evidence)."""

    compiled: CompiledRubric
    by_slot: dict[int, dict[int, tuple[Verdict, Evidence]]] = field(default_factory=dict)

    def add(self, decisions: Decisions, evidence: Sequence[Evidence] | None = None) -> None:
        """Record every decision row; `evidence` is `evidence_rows(decisions)` when the caller
        has it already."""
        found = evidence_rows(self.compiled, decisions) if evidence is None else evidence
        verdicts = decisions.verdict.tolist()
        for slot, c, v, ev in zip(
            decisions.slot.tolist(), decisions.criterion.tolist(), verdicts, found, strict=True
        ):
            verdict: Verdict = VERDICT_NAMES[v]  # type: ignore[assignment]
            self.by_slot.setdefault(slot, {})[c] = (verdict, ev)

    def pop_report(
        self,
        slot: int,
        session_id: str,
        *,
        observations: Mapping[str, Verdict] | None = None,
        span: Span | None = None,
    ) -> SessionReport:
        """The session's report; its decisions are forgotten (the slot may be reused)."""
        decided = self.by_slot.pop(slot, {})
        return build_report(self.compiled, session_id, decided, observations or {}, span)


class Outline(NamedTuple):
    """What a summary reads of a report: its session, outcome, score and each criterion's
    verdict (in the rubric's order), equal to `Outline.of` the session's `SessionReport`. A
    tuple: a Dask worker pickles 720 of them in a fraction of the time of the reports' JSON
    shape; `VerdictLog` gives them without building evidence or reports."""

    session: str
    outcome: str
    score: float
    verdicts: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, report: SessionReport) -> Outline:
        return cls(report.session, report.outcome, report.score,
                   tuple((c.id, c.verdict) for c in report.criteria))  # fmt: skip

    def to_data(self) -> dict[str, Any]:
        """The fields of `SessionReport.to_data()` it has, in that shape (criteria: id and
        verdict only), as `archive.compare.Summary.add` reads them."""
        return {"session": self.session, "outcome": self.outcome, "score": self.score,
                "criteria": [{"id": c, "verdict": v} for c, v in self.verdicts]}  # fmt: skip


@dataclass(slots=True)
class VerdictLog:
    """`DecisionLog` for callers that need only outlines (verdicts, score, outcome): keeps each
    decision's verdict code and builds neither evidence nor reports, which were about a quarter
    of scoring's CPU time on the LHD archive (docs/performance.md). `pop_outline` equals
    `Outline.of(DecisionLog.pop_report(...))` for the same decisions and observations."""

    compiled: CompiledRubric
    by_slot: dict[int, dict[int, int]] = field(default_factory=dict)

    def add(self, decisions: Decisions) -> None:
        """Record every decision row (a later decision of a criterion replaces an earlier)."""
        for slot, c, v in zip(decisions.slot.tolist(), decisions.criterion.tolist(),
                              decisions.verdict.tolist(), strict=True):  # fmt: skip
            self.by_slot.setdefault(slot, {})[c] = v

    def pop_outline(
        self, slot: int, session_id: str, *, observations: Mapping[str, Verdict] | None = None
    ) -> Outline:
        """The session's outline; its decisions are forgotten (the slot may be reused)."""
        decided = self.by_slot.pop(slot, {})
        recorded = observations or {}
        rubric = self.compiled.rubric
        verdicts: list[Verdict] = []
        for c, criterion in enumerate(rubric.criteria):
            code = decided.get(c)
            verdict: Verdict = "pending" if code is None else VERDICT_NAMES[code]  # type: ignore[assignment]
            verdicts.append(_recorded(criterion, verdict, recorded.get(criterion.id)) or verdict)
        score, outcome = score_and_outcome(rubric, verdicts)
        pairs = tuple((c.id, v) for c, v in zip(rubric.criteria, verdicts, strict=True))
        return Outline(session_id, outcome, score, pairs)


def _recorded(criterion: Criterion, verdict: Verdict, recorded: Verdict | None) -> Verdict | None:
    """The assessor's recorded verdict when it replaces the kernel's `verdict` (the criterion
    is `observed`, still pending, and pass or fail was recorded), else None."""
    if criterion.observed is not None and verdict == "pending" and recorded in ("pass", "fail"):
        return recorded
    return None


def build_report(
    compiled: CompiledRubric,
    session_id: str,
    decided: Mapping[int, tuple[Verdict, Evidence]],
    observations: Mapping[str, Verdict],
    span: Span | None,
) -> SessionReport:
    """Assemble a report; `observations` decide pending `observed` criteria."""
    rubric = compiled.rubric
    results: list[CriterionResult] = []
    for c, criterion in enumerate(rubric.criteria):
        verdict, evidence = decided.get(c, ("pending", PENDING))
        recorded = _recorded(criterion, verdict, observations.get(criterion.id))
        if recorded is not None:
            verdict, evidence = recorded, _observed_evidence(span)
        results.append(
            CriterionResult(
                id=criterion.id,
                title=criterion.title,
                critical=criterion.critical,
                points=criterion.weight,
                verdict=verdict,
                evidence=evidence,
            )
        )
    score, outcome = score_and_outcome(rubric, [r.verdict for r in results])
    return SessionReport(
        session=session_id,
        rubric=rubric.rubric,
        rubric_version=rubric.version,
        rubric_sha256=compiled.sha256,
        outcome=outcome,
        score=score,
        criteria=tuple(results),
    )


def _observed_evidence(span: Span | None) -> Evidence:
    if span is None:
        return PENDING
    return Evidence(
        seq=span.last_seq,
        t=span.close_t,
        t_start=span.first_t,
        t_end=span.close_t,
        seq_start=span.first_seq,
        seq_end=span.last_seq,
        values={},
    )
