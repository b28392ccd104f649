"""Credential policies: what a learner must show to earn a microcredential. Pure: no files, no YAML.

A policy file (``credentials/<id>.yaml``) names the achievement it awards and its requirements::

    policy: forklift-operator
    achievement:
      name: Counterbalance forklift operator
      description: ...
      achievement_type: MicroCredential          # the Open Badges 3.0 achievementType
      criteria: ...                              # narrative; default: the requirements in words
      competencies:
        - {code: MH-101, name: ..., framework: ..., url: https://...}
    requirements:
      - {rubric: forklift-load-handling, min_version: 1, source: simulator, passes: 2,
         consecutive: true}
      - {rubric: forklift-load-handling, source: field, passes: 1, observed_by_assessor: true}
    window: 90 days                              # every qualifying session within this span
    valid_for: 3 years                           # validUntil = issue time + this
    recertification:                             # optional: renewing an active credential
      within: 90 days                            # opens this long before its validUntil
      requirements:                              # a shorter set, on the policy's rubrics
        - {rubric: forklift-load-handling, source: field, passes: 1, observed_by_assessor: true}
      window: 30 days                            # optional, as above

`check_policy` validates the structure and, given the rubrics, the meaning (known rubrics,
reachable versions, competencies that a required rubric assesses); problems are located by data
path, as for rubrics. The decision over a learner's history is in `core.eligibility`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import AssessEngineError, LocatedProblem
from .model import ID_PATTERN, MAX_VERSION, Frozen
from .problems import Problem, did_you_mean, problems_from_validation
from .rubric import Rubric

PolicyId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Source = Literal["simulator", "field"]

#: The ``achievementType`` values of Open Badges 3.0 (its AchievementType enumeration).
ACHIEVEMENT_TYPES: Final = (
    "Achievement", "ApprenticeshipCertificate", "Assessment", "Assignment", "AssociateDegree",
    "Award", "Badge", "BachelorDegree", "Certificate", "CertificateOfCompletion",
    "Certification", "CommunityService", "Competency", "Course", "CoCurricular", "Degree",
    "Diploma", "DoctoralDegree", "Fieldwork", "GeneralEducationDevelopment",
    "JourneymanCertificate", "LearningProgram", "License", "Membership",
    "ProfessionalDoctorate", "QualityAssuranceCredential", "MasterCertificate", "MasterDegree",
    "MicroCredential", "ResearchDoctorate", "SecondarySchoolDiploma",
)  # fmt: skip
AchievementType = Literal[
    "Achievement", "ApprenticeshipCertificate", "Assessment", "Assignment", "AssociateDegree",
    "Award", "Badge", "BachelorDegree", "Certificate", "CertificateOfCompletion",
    "Certification", "CommunityService", "Competency", "Course", "CoCurricular", "Degree",
    "Diploma", "DoctoralDegree", "Fieldwork", "GeneralEducationDevelopment",
    "JourneymanCertificate", "LearningProgram", "License", "Membership",
    "ProfessionalDoctorate", "QualityAssuranceCredential", "MasterCertificate", "MasterDegree",
    "MicroCredential", "ResearchDoctorate", "SecondarySchoolDiploma",
]  # fmt: skip

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")


class PolicyError(AssessEngineError):
    """A policy file is invalid or cannot be found; `problems` says where and why."""

    def __init__(self, problems: Sequence[LocatedProblem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[LocatedProblem, ...] = ()
            super().__init__(problems)
        else:
            self.problems = tuple(problems)
            super().__init__("\n".join(str(p) for p in self.problems))


# ---------------------------------------------------------------------------------- periods

_UNITS: Final = {
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "week": "weeks", "weeks": "weeks",
    "mo": "months", "month": "months", "months": "months",
    "y": "years", "year": "years", "years": "years",
}  # fmt: skip
_LONGEST: Final = {"days": 36525, "weeks": 5218, "months": 1200, "years": 100}
"""The longest period in each unit: 100 years (dates stay far inside the calendar's range)."""
_PERIOD = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period: ``90 days``, ``2 weeks``, ``6 months``, ``3 years``.

    Months and years move the calendar date and keep the time of day; a day that does not
    exist in the target month becomes its last day (31 January + 1 month = 28/29 February).
    """

    amount: int
    unit: Literal["days", "weeks", "months", "years"]

    def after(self, moment: datetime) -> datetime:
        """`moment` moved forward by this period."""
        if self.unit == "days":
            return moment + timedelta(days=self.amount)
        if self.unit == "weeks":
            return moment + timedelta(weeks=self.amount)
        months = self.amount * (12 if self.unit == "years" else 1)
        index = moment.month - 1 + months
        year, month = moment.year + index // 12, index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)

    def before(self, moment: datetime) -> datetime:
        """`moment` moved back by this period (the same calendar rules as `after`)."""
        if self.unit in ("days", "weeks"):
            return moment - (self.after(moment) - moment)
        months = self.amount * (12 if self.unit == "years" else 1)
        index = moment.month - 1 - months
        year, month = moment.year + index // 12, index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)

    def __str__(self) -> str:
        unit = self.unit if self.amount != 1 else self.unit[:-1]
        return f"{self.amount} {unit}"


def parse_period(value: object) -> Period:
    """``"90 days"``, ``"90d"``, ``"3 years"``, ``"6 months"``, ``"2 weeks"`` -> `Period`;
    ValueError with a trainer-readable message otherwise (at least 1 unit, at most 100
    years)."""
    if isinstance(value, Period):
        return value
    match = _PERIOD.match(value.lower()) if isinstance(value, str) else None
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(
            f"expected a period such as '90 days', '6 months' or '3 years', got {value!r}"
        )
    unit = _UNITS[match.group(2)]
    digits = match.group(1).lstrip("0") or "0"
    amount = int(digits) if len(digits) <= 9 else _LONGEST[unit] + 1
    if amount < 1:
        raise ValueError(f"a period must be at least 1 {unit[:-1]}")
    if amount > _LONGEST[unit]:
        in_unit = "" if unit == "years" else f" ({_LONGEST[unit]} {unit})"
        raise ValueError(f"a period is at most 100 years{in_unit}")
    return Period(amount, unit)  # type: ignore[arg-type]


def _period(value: Any) -> Period:
    try:
        return parse_period(value)
    except ValueError as exc:
        raise PydanticCustomError("period", str(exc)) from None


def _iri(value: Any) -> str:
    if not isinstance(value, str) or not _IRI.match(value):
        raise PydanticCustomError(
            "iri", "expected an absolute URL such as https://..., got {got}", {"got": repr(value)}
        )
    return value


def _period_pattern() -> str:
    """`_PERIOD` with its units spelled out, in any letter case (as `parse_period` reads it)."""
    units = "|".join(
        "".join(f"[{c}{c.upper()}]" for c in unit) for unit in sorted(_UNITS, key=len, reverse=True)
    )
    return rf"^\s*\d+\s*({units})\s*$"


_PERIOD_SCHEMA = {
    "type": "string",
    "pattern": _period_pattern(),
    "description": "a period such as '90 days', '6 months' or '3 years' (at most 100 years)",
}
_IRI_SCHEMA = {
    "type": "string",
    "pattern": _IRI.pattern,
    "description": "an absolute URL such as https://...",
}
PeriodField = Annotated[
    Period, PlainValidator(_period), PlainSerializer(str), WithJsonSchema(_PERIOD_SCHEMA)
]
AbsoluteIri = Annotated[str, PlainValidator(_iri), WithJsonSchema(_IRI_SCHEMA)]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
ImageFile = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(png|svg)$")]
"""A badge image's file name, in the policy's own directory (no path: nothing outside it)."""


# ----------------------------------------------------------------------------------- models


class PolicyCompetency(Frozen):
    """A competency the credential certifies: an Open Badges ``alignment``."""

    code: Text
    name: Text
    url: AbsoluteIri  # the alignment's targetUrl: where the competency is defined
    framework: Text | None = None
    description: Text | None = None


class PolicyAchievement(Frozen):
    """What the credential says the learner achieved."""

    name: Text
    description: Text
    achievement_type: AchievementType = "MicroCredential"
    criteria: Text | None = None  # narrative; default: `describe_requirements`
    competencies: tuple[PolicyCompetency, ...] = ()
    id: AbsoluteIri | None = None  # default: the engine's achievement URL for the policy
    image: ImageFile | None = None  # a PNG or SVG beside the policy file; default: generated

    @model_validator(mode="after")
    def _no_fragment(self) -> PolicyAchievement:
        if self.id is not None and "#" in self.id:
            raise ValueError("the achievement id must not have a fragment ('#')")
        return self


class Requirement(Frozen):
    """Pass `rubric` (version `min_version` or later) `passes` times from `source`.

    consecutive:           the passes are consecutive attempts: among this rubric's attempts
                           from `source` (at `min_version` or later), in time order, no attempt
                           that did not pass (failed or still incomplete) lies between them
    observed_by_assessor:  every `observed` criterion of each counted session has an assessor's
                           recorded verdict, and the session names its assessor
    """

    rubric: PolicyId
    source: Source
    min_version: int = Field(default=1, ge=1, le=MAX_VERSION)
    passes: int = Field(default=1, ge=1, le=100)
    consecutive: bool = False
    observed_by_assessor: bool = False

    def describe(self) -> str:
        """The requirement in words: ``pass rubric X (version 1 or later) in 2 consecutive
        simulator attempts``."""
        where = {"simulator": "simulator", "field": "in-field"}[self.source]
        many = self.passes > 1
        times = f"{self.passes} consecutive" if self.consecutive and many else str(self.passes)
        text = (
            f"pass rubric `{self.rubric}` (version {self.min_version} or later)"
            f" in {times} {where} attempt{'s' if many else ''}"
        )
        if self.observed_by_assessor:
            text += ", every observed item recorded by a named assessor"
        return text


def _distinct_requirements(requirements: Sequence[Requirement]) -> None:
    seen: set[tuple[str, str]] = set()
    for requirement in requirements:
        key = (requirement.rubric, requirement.source)
        if key in seen:
            raise ValueError(
                f"two requirements for rubric '{key[0]}' from the {key[1]}: merge them"
                " (raise `passes`)"
            )
        seen.add(key)


class Recertification(Frozen):
    """Renewing an active credential with less than earning it: `requirements` (on the
    policy's own rubrics), met by sessions that end inside the renewal window, which opens
    `within` before the held credential's ``validUntil``; `window` as the policy's."""

    within: PeriodField
    requirements: tuple[Requirement, ...] = Field(min_length=1)
    window: PeriodField | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Recertification:
        _distinct_requirements(self.requirements)
        return self

    def opens(self, valid_until: datetime) -> datetime:
        """When renewing a credential valid until `valid_until` becomes possible."""
        return self.within.before(valid_until)


_REFERENCE: Final = datetime(2000, 1, 1)
"""A fixed date to compare two periods at (months and years vary in length)."""


class Policy(Frozen):
    """A credential policy: the achievement, its requirements and the credential's validity;
    optionally how an active credential is renewed (`recertification`)."""

    policy: PolicyId
    achievement: PolicyAchievement
    requirements: tuple[Requirement, ...] = Field(min_length=1)
    window: PeriodField | None = None  # the span that holds every qualifying session
    valid_for: PeriodField | None = None  # None: the credential does not expire
    recertification: Recertification | None = None

    @model_validator(mode="after")
    def _distinct(self) -> Policy:
        _distinct_requirements(self.requirements)
        return self

    def renewal(self) -> Policy:
        """The policy a renewal is decided by: the recertification's requirements and
        window (ValueError when the policy has no recertification)."""
        if self.recertification is None:
            raise ValueError(f"policy '{self.policy}' has no recertification")
        return self.model_copy(update={"requirements": self.recertification.requirements,
                                       "window": self.recertification.window,
                                       "recertification": None})  # fmt: skip

    @property
    def rubrics(self) -> tuple[str, ...]:
        """The rubric ids the requirements name, in order, without duplicates."""
        return tuple(dict.fromkeys(r.rubric for r in self.requirements))

    def criteria_narrative(self) -> str:
        """The achievement's criteria narrative: as written, else `describe_requirements`."""
        return self.achievement.criteria or describe_requirements(self)


def describe_requirements(policy: Policy) -> str:
    """The requirements as one Markdown paragraph (the default criteria narrative)."""
    parts = [r.describe() for r in policy.requirements]
    text = "; and ".join(parts)
    text = text[:1].upper() + text[1:]
    if policy.window is not None:
        text += f"; all within {policy.window}"
    text += "."
    if policy.valid_for is not None:
        text += f" The credential is valid for {policy.valid_for}."
    return text


# ------------------------------------------------------------------------------------ check


def check_policy(
    data: object, rubrics: Mapping[str, Rubric | None] | None
) -> tuple[Policy | None, list[Problem]]:
    """Validate `data` as a policy and, given `rubrics`, check its meaning.

    `rubrics` maps every known rubric id to its rubric (None: known but not loadable); a
    requirement naming another id is a problem. None skips the checks against rubrics. The
    policy is valid exactly when the returned list is empty.
    """
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        return None, problems_from_validation(exc, Policy)
    problems = _renewal_structure(policy)
    if rubrics is None or problems:
        return policy, problems
    return policy, list(_meaning(policy, rubrics))


def _renewal_structure(policy: Policy) -> list[Problem]:
    """A recertification needs an expiry to renew before, and a window shorter than it."""
    if policy.recertification is None:
        return []
    if policy.valid_for is None:
        return [Problem(("recertification",), "`recertification` needs `valid_for`: a "
                        "credential that never expires is never renewed")]  # fmt: skip
    within = policy.recertification.within
    if within.after(_REFERENCE) >= policy.valid_for.after(_REFERENCE):
        return [Problem(("recertification", "within"), f"`recertification.within` ({within}) "
                        f"must be shorter than `valid_for` ({policy.valid_for})")]  # fmt: skip
    return []


def _meaning(policy: Policy, rubrics: Mapping[str, Rubric | None]) -> list[Problem]:
    problems: list[Problem] = []
    assessed: set[str] = set()
    for i, requirement in enumerate(policy.requirements):
        path: tuple[str | int, ...] = ("requirements", i)
        if requirement.rubric not in rubrics:
            hint = did_you_mean(requirement.rubric, rubrics) or (
                f"; known rubrics: {', '.join(sorted(rubrics)) or 'none'}"
            )
            problems.append(Problem((*path, "rubric"), f"unknown rubric '{requirement.rubric}'"
                                    f"{hint}"))  # fmt: skip
            continue
        rubric = rubrics[requirement.rubric]
        if rubric is None:
            problems.append(Problem((*path, "rubric"), f"rubric '{requirement.rubric}' is invalid"))
            continue
        assessed |= {c.code for c in rubric.competencies}
        if requirement.min_version > rubric.version:
            problems.append(
                Problem(
                    (*path, "min_version"),
                    f"rubric '{rubric.rubric}' is at version {rubric.version}: min_version"
                    f" {requirement.min_version} cannot be met",
                )
            )
    if policy.recertification is not None:
        problems += _recertification_meaning(policy, policy.recertification, rubrics)
    if problems:
        return problems
    for j, competency in enumerate(policy.achievement.competencies):
        if competency.code not in assessed:
            listed = ", ".join(sorted(assessed)) or "none"
            problems.append(
                Problem(
                    ("achievement", "competencies", j, "code"),
                    f"competency '{competency.code}' is not assessed by any required rubric"
                    f" (they assess: {listed}){did_you_mean(competency.code, assessed)}",
                )
            )
    return problems


def _recertification_meaning(policy: Policy, recertification: Recertification,
                             rubrics: Mapping[str, Rubric | None]) -> list[Problem]:  # fmt: skip
    """A renewal re-checks what the credential certifies: each requirement names one of the
    policy's own rubrics, at a version that exists."""
    problems = []
    for i, requirement in enumerate(recertification.requirements):
        path = ("recertification", "requirements", i)
        if requirement.rubric not in policy.rubrics:
            problems.append(Problem((*path, "rubric"), f"rubric '{requirement.rubric}' is not "
                                    f"one the policy requires ({', '.join(policy.rubrics)}): a "
                                    "renewal re-checks what the credential certifies"))  # fmt: skip
            continue
        rubric = rubrics.get(requirement.rubric)
        if rubric is not None and requirement.min_version > rubric.version:
            problems.append(Problem((*path, "min_version"), f"rubric '{rubric.rubric}' is at "
                                    f"version {rubric.version}: min_version "
                                    f"{requirement.min_version} cannot be met"))  # fmt: skip
    return problems
