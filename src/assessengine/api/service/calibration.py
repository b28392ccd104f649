"""Calibration: do assessors agree with the engine, and does the simulator predict the field?

- `agreement`: per assessor and criterion, over the sessions the assessor reviewed (recorded
  an observation or override on), how often they overrode the scorer's verdict, the percent
  agreement and Cohen's kappa of their verdicts against the scorer's (a criterion they did not
  override counts as agreeing; observed items, which the scorer does not decide, are left out).
- `validity`: for learners with a pass or fail session from both sources, their latest
  simulator session against their latest field session: a confusion table of outcomes, the
  point-biserial correlation of simulator score with field pass, the Spearman correlation of
  the two scores, with the count each rests on and a warning below `MIN_PAIRS`.

- `inter_rater`: double marking (`double_marking`): per observed item and per assessor pair,
  over the items a second assessor marked blind, the first mark (the session's latest
  observation of the item) against the second: percent agreement and Cohen's kappa with the
  count they rest on, a warning below `MIN_PAIRS`.

Numbers come from the cohort index (`storage.cohorts`, brought up to date first by
`CohortService.refresh`), statistics from `core.agreement`. Who: trainers and admins
(`Action.READ_CALIBRATION`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Final

from pydantic import Field

from ...core import agreement as stats
from ...core.latest import latest_by
from ...storage.cohorts import AgreementRow
from .access import Action, Principal
from .cohorts import CohortFilters, CohortService, site_of
from .errors import ForbiddenError
from .models import Model
from .service import ReviewService

MIN_PAIRS: Final = 10  # below this many learners (or verdicts) a statistic carries a warning
OUTCOMES: Final = ("pass", "fail")
MAX_PAIRS_LISTED: Final = 1000  # `ValidityOut.pairs` (the statistics use every learner)


class CriterionAgreement(Model):
    rubric: str
    criterion: str
    title: str
    verdicts: int = Field(description="criteria of reviewed sessions compared")
    overridden: int = Field(description="verdicts the assessor changed")
    override_rate: float | None
    percent_agreement: float | None = Field(description="0..1")
    kappa: float | None = Field(description="Cohen's kappa; null when undefined (every "
                                "verdict the same on both sides, or none)")
    warning: str | None = Field(description=f"set when fewer than {MIN_PAIRS} verdicts")


class AssessorAgreement(Model):
    assessor: str
    verdicts: int
    overridden: int
    override_rate: float | None
    percent_agreement: float | None
    kappa: float | None = Field(description="over all of the assessor's verdicts")
    warning: str | None
    criteria: list[CriterionAgreement]


class AgreementOut(Model):
    min_count: int = Field(description="counts below this carry a warning")
    assessors: list[AssessorAgreement]


class ValidityPairOut(Model):
    learner: str
    simulator_outcome: str
    simulator_score: float | None
    field_outcome: str
    field_score: float | None


class ValidityOut(Model):
    learners: int = Field(description="learners with a pass or fail session from both sources")
    min_count: int
    warning: str | None = Field(description=f"set when fewer than {MIN_PAIRS} learners")
    labels: list[str] = Field(description="the confusion table's rows (simulator) and "
                              "columns (field), in this order")
    confusion: list[list[int]]
    outcome_agreement: float | None = Field(description="fraction of learners whose simulator "
                                            "and field outcomes are the same")
    kappa: float | None = Field(description="Cohen's kappa of simulator and field outcomes")
    point_biserial: float | None = Field(description="simulator score with field pass (1) / "
                                         "fail (0)")
    point_biserial_count: int = Field(description="learners with a simulator score")
    spearman: float | None = Field(description="simulator score with field score")
    spearman_count: int = Field(description="learners with both scores")
    pairs: list[ValidityPairOut] = Field(description=f"the first {MAX_PAIRS_LISTED} learners "
                                         "by name (the statistics use all of them)")


class ItemAgreement(Model):
    rubric: str
    criterion: str
    title: str
    pairs: int = Field(description="items marked by both (first mark, second mark)")
    agreed: int
    percent_agreement: float | None = Field(description="0..1")
    kappa: float | None = Field(description="Cohen's kappa of first against second marks; "
                                "null when undefined")
    warning: str | None = Field(description=f"set when fewer than {MIN_PAIRS} pairs")


class PairAgreement(Model):
    assessors: list[str] = Field(description="the two assessors, by name")
    pairs: int
    agreed: int
    percent_agreement: float | None
    kappa: float | None = Field(description="Cohen's kappa of the first-named assessor's "
                                "marks against the second-named's")
    warning: str | None


class InterRaterOut(Model):
    min_count: int
    sessions: int = Field(description="double-marked sessions counted")
    items: list[ItemAgreement]
    assessor_pairs: list[PairAgreement]


@dataclass(frozen=True, slots=True)
class MarkPair:
    """One item of a double-marked session: who marked it first (its latest observation)
    and how, who marked it second and how."""

    rubric: str
    criterion: str
    title: str
    first: str
    first_verdict: str
    second: str
    second_verdict: str


def _allow(who: Principal) -> None:
    if not who.may(Action.READ_CALIBRATION):
        raise ForbiddenError("Calibration is for trainers and admins.")


def _warning(count: int, what: str) -> str | None:
    if count >= MIN_PAIRS:
        return None
    return f"only {count} {what} (fewer than {MIN_PAIRS}): too few to rely on"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def agreement(cohorts: CohortService, who: Principal, filters: CohortFilters) -> AgreementOut:
    """Assessor-versus-engine agreement, by assessor then criterion (see the module)."""
    _allow(who)
    cohorts.refresh()
    rows = cohorts.store.agreement(filters.query())
    out: list[AssessorAgreement] = []
    for actor, mine in groupby(rows, key=lambda r: r.actor):
        own = list(mine)
        criteria = [_criterion(list(g)) for _, g in
                    groupby(own, key=lambda r: (r.rubric, r.criterion))]  # fmt: skip
        machine, assessor = [r.machine for r in own], [r.assessor for r in own]
        changed = sum(1 for r in own if r.machine != r.assessor)
        out.append(AssessorAgreement(
            assessor=actor, verdicts=len(own), overridden=changed,
            override_rate=_rate(changed, len(own)),
            percent_agreement=stats.percent_agreement(machine, assessor),
            kappa=stats.cohen_kappa(machine, assessor),
            warning=_warning(len(own), "verdicts"), criteria=criteria,
        ))  # fmt: skip
    return AgreementOut(min_count=MIN_PAIRS, assessors=out)


def _criterion(rows: Sequence[AgreementRow]) -> CriterionAgreement:
    machine, assessor = [r.machine for r in rows], [r.assessor for r in rows]
    changed = sum(1 for m, a in zip(machine, assessor, strict=True) if m != a)
    return CriterionAgreement(
        rubric=rows[0].rubric, criterion=rows[0].criterion, title=rows[0].title,
        verdicts=len(rows), overridden=changed, override_rate=_rate(changed, len(rows)),
        percent_agreement=stats.percent_agreement(machine, assessor),
        kappa=stats.cohen_kappa(machine, assessor), warning=_warning(len(rows), "verdicts"),
    )  # fmt: skip


def validity(cohorts: CohortService, who: Principal, filters: CohortFilters) -> ValidityOut:
    """Simulator-to-field validity over the learners with both (see the module)."""
    _allow(who)
    cohorts.refresh()
    pairs = cohorts.store.validity(filters.query())
    sim = [p.simulator_outcome for p in pairs]
    field = [p.field_outcome for p in pairs]
    scored = [p for p in pairs if p.simulator_score is not None]
    both = [p for p in scored if p.field_score is not None]
    return ValidityOut(
        learners=len(pairs), min_count=MIN_PAIRS, warning=_warning(len(pairs), "learners"),
        labels=list(OUTCOMES), confusion=stats.confusion(sim, field, OUTCOMES),
        outcome_agreement=stats.percent_agreement(sim, field),
        kappa=stats.cohen_kappa(sim, field),
        point_biserial=stats.point_biserial([p.simulator_score or 0.0 for p in scored],
                                            [p.field_outcome == "pass" for p in scored]),
        point_biserial_count=len(scored),
        spearman=stats.spearman([p.simulator_score or 0.0 for p in both],
                                [p.field_score or 0.0 for p in both]),
        spearman_count=len(both),
        pairs=[ValidityPairOut(learner=p.learner, simulator_outcome=p.simulator_outcome,
                               simulator_score=p.simulator_score,
                               field_outcome=p.field_outcome, field_score=p.field_score)
               for p in pairs[:MAX_PAIRS_LISTED]],
    )  # fmt: skip


def inter_rater(cohorts: CohortService, who: Principal, filters: CohortFilters) -> InterRaterOut:
    """Inter-rater agreement from double marking, per item and per assessor pair."""
    _allow(who)
    pairs, sessions = mark_pairs(cohorts.reviews, filters)
    items = []
    for (rubric, criterion), group in groupby(sorted(pairs, key=lambda p: (p.rubric,
                                              p.criterion)), key=lambda p: (p.rubric,
                                                                            p.criterion)):
        own = list(group)
        first, second = [p.first_verdict for p in own], [p.second_verdict for p in own]
        items.append(ItemAgreement(rubric=rubric, criterion=criterion, title=own[0].title,
                                   **_stats(first, second)))  # fmt: skip
    by_pair: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for p in pairs:
        (a, va), (b, vb) = sorted([(p.first, p.first_verdict), (p.second, p.second_verdict)])
        left, right = by_pair.setdefault((a, b), ([], []))
        left.append(va)
        right.append(vb)
    assessor_pairs = [PairAgreement(assessors=[a, b], **_stats(*marks))
                      for (a, b), marks in sorted(by_pair.items())]  # fmt: skip
    return InterRaterOut(min_count=MIN_PAIRS, sessions=sessions, items=items,
                         assessor_pairs=assessor_pairs)  # fmt: skip


def _stats(a: Sequence[str], b: Sequence[str]) -> dict[str, Any]:
    agreed = sum(1 for x, y in zip(a, b, strict=True) if x == y)
    return {"pairs": len(a), "agreed": agreed, "percent_agreement": stats.percent_agreement(a, b),
            "kappa": stats.cohen_kappa(a, b), "warning": _warning(len(a), "pairs")}


def mark_pairs(reviews: ReviewService, filters: CohortFilters) -> tuple[list[MarkPair], int]:
    """The (first mark, second mark) pairs of the completed double markings of the sessions
    `filters` select, and how many sessions they come from. An item without a first mark
    (not observed yet) gives no pair."""
    done = [a for a in reviews.double_marks.assignments() if a.completed_at is not None]
    chosen = sorted({a.session for a in done if _selected(reviews, a.session, filters)})
    observations = reviews.review.observations(chosen)
    latest = latest_by(observations, lambda o: (o.session, o.criterion))
    titles: dict[str, str] = {}
    out: list[MarkPair] = []
    counted: set[str] = set()
    for mark in reviews.double_marks.marks(chosen):
        first = latest.get((mark.session, mark.criterion))
        if first is None:
            continue
        record = reviews.store.session(mark.session)
        assert record is not None  # _selected found it
        rubric = record.info.rubric
        key = f"{rubric}\0{mark.criterion}"
        if key not in titles:
            titles[key] = _title(reviews, record.info.rubric, mark.criterion)
        out.append(MarkPair(rubric, mark.criterion, titles[key], first.actor, first.verdict,
                            mark.actor, mark.verdict))  # fmt: skip
        counted.add(mark.session)
    return out, len(counted)


def _selected(reviews: ReviewService, session: str, filters: CohortFilters) -> bool:
    record = reviews.store.session(session)
    if record is None:
        return False
    info, query = record.info, filters.query()
    return all((
        query.rubric in (None, info.rubric),
        query.rubric_version in (None, info.rubric_version),
        query.scenario in (None, info.scenario), query.source in (None, info.source),
        query.site in (None, site_of(session, {"metadata": info.metadata})),
        query.opened_from is None or record.opened_at >= query.opened_from,
        query.opened_to is None or record.opened_at <= query.opened_to,
    ))  # fmt: skip


def _title(reviews: ReviewService, rubric: str, criterion: str) -> str:
    entry = reviews.catalog.find(rubric)
    found = None if entry is None else next(
        (c for c in entry.rubric.criteria if c.id == criterion), None)
    return criterion if found is None else str(found.title)
