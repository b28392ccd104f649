"""Rubric models (rubric language v1). Frozen, unknown keys refused, conditions parsed.

A `Rubric` is validated structurally here; checks that need the scenario (names of signals and
events, machine reachability) live in `check.py`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator
from pydantic.config import JsonValue
from pydantic_core import PydanticCustomError

from .model import (
    ID_PATTERN,
    INT_MAX,
    MAX_POINTS,
    MAX_VERSION,
    NAME_PATTERN,
    AnyExpr,
    Condition,
    Duration,
    Frozen,
    StepField,
)

RubricId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
EventName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Verdict = Literal["pass", "fail", "pending", "not_applicable"]

TEMPLATES = (
    "never",
    "always",
    "all_before",
    "sequence",
    "count",
    "response",
    "precede",
    "duration",
    "metric",
    "observed",
    "machine",
)
AGGREGATES = ("max", "min", "mean", "sum", "last", "count", "time_true")
OPTION_TEMPLATES: Final = {
    "for": ("never", "always"),
    "allow": ("never", "always"),
    "within": ("sequence",),
}
"""The criterion-level options and the templates each goes with (`Criterion` refuses the rest;
its JSON Schema says the same, and a test holds the two together)."""


def _one_of(*keys: str) -> list[JsonValue]:
    """JSON Schema: one ``{"required": [key]}`` per key (for oneOf / anyOf)."""
    return [{"required": [key]} for key in keys]


class Competency(Frozen):
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    framework: str | None = None


class AllBefore(Frozen):
    events: tuple[EventName, ...] = Field(min_length=1)
    before: EventName
    if_never: Literal["fail", "pass", "not_applicable"] = "fail"


class Count(Frozen):
    model_config = ConfigDict(
        json_schema_extra={"oneOf": _one_of("event", "when"), "anyOf": _one_of("min", "max")}
    )

    event: EventName | None = None
    when: Condition | None = None
    min: int | None = Field(default=None, ge=0, le=INT_MAX)
    max: int | None = Field(default=None, ge=0, le=INT_MAX)

    @model_validator(mode="after")
    def _shape(self) -> Count:
        if (self.event is None) == (self.when is None):
            raise ValueError("count needs exactly one of `event` or `when`")
        if self.min is None and self.max is None:
            raise ValueError("count needs `min`, `max` or both")
        if self.max is None and not self.min:
            raise ValueError("count without `max` needs `min` of at least 1")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("count `min` is larger than `max`")
        return self


class Response(Frozen):
    after: StepField
    expect: StepField
    within: Duration


class Precede(Frozen):
    event: EventName
    by: StepField
    within: Duration | None = None


class DurationTemplate(Frozen):
    model_config = ConfigDict(json_schema_extra={"anyOf": _one_of("max", "min")})

    from_: StepField = Field(alias="from")
    to: StepField
    max: Duration | None = None
    min: Duration | None = None

    @model_validator(mode="after")
    def _bounds(self) -> DurationTemplate:
        if self.max is None and self.min is None:
            raise ValueError("duration needs `max`, `min` or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError("duration `min` is larger than `max`")
        return self


class Metric(Frozen):
    model_config = ConfigDict(json_schema_extra={"anyOf": _one_of("at_most", "at_least")})

    aggregate: Literal["max", "min", "mean", "sum", "last", "count", "time_true"]
    of: AnyExpr
    where: Condition | None = None
    at_most: float | None = None
    at_least: float | None = None

    @model_validator(mode="after")
    def _shape(self) -> Metric:
        wants = "bool" if self.aggregate in ("count", "time_true") else "num"
        if self.of.kind != wants:
            what = "a condition" if wants == "bool" else "a number expression"
            raise ValueError(f"aggregate `{self.aggregate}` needs `of` to be {what}")
        if self.at_most is None and self.at_least is None:
            raise ValueError("metric needs `at_most`, `at_least` or both")
        return self


class Observed(Frozen):
    item: str = Field(min_length=1)


class Transition(Frozen):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": _one_of("on", "when", "after"),
            "dependentRequired": {"for": ["when"]},
        }
    )

    on: EventName | None = None
    when: Condition | None = None
    for_: Duration | None = Field(default=None, alias="for")
    after: Duration | None = None
    to: EventName

    @model_validator(mode="after")
    def _shape(self) -> Transition:
        if self.on is None and self.when is None and self.after is None:
            raise ValueError("a transition needs at least one of `on`, `when`, `after`")
        if self.for_ is not None and self.when is None:
            raise ValueError("`for` needs `when`")
        return self


def _terminal_states_are_built_in(schema: dict[str, Any]) -> None:
    schema["properties"]["states"].setdefault("propertyNames", {})["not"] = {
        "enum": ["pass", "fail"]
    }


class Machine(Frozen):
    model_config = ConfigDict(json_schema_extra=_terminal_states_are_built_in)

    initial: EventName
    at_end: Literal["pass", "fail"] = "fail"
    states: dict[EventName, tuple[Transition, ...]]


class Criterion(Frozen):
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": _one_of(*TEMPLATES),
            "dependentSchemas": {
                option: {"anyOf": _one_of(*templates)}
                for option, templates in OPTION_TEMPLATES.items()
            },
            # a critical criterion is a gate: no points (0 is allowed, as `points` is optional)
            "if": {"properties": {"critical": {"enum": [True, "yes"]}}, "required": ["critical"]},
            "then": {"properties": {"points": {"maximum": 0}}},
        }
    )

    id: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    title: str = Field(min_length=1)
    competency: str | None = None
    critical: bool = False
    points: float | None = Field(default=None, ge=0, le=MAX_POINTS)
    # templates: exactly one is set
    never: Condition | None = None
    always: Condition | None = None
    all_before: AllBefore | None = None
    sequence: tuple[StepField, ...] | None = Field(default=None, min_length=1)
    count: Count | None = None
    response: Response | None = None
    precede: Precede | None = None
    duration: DurationTemplate | None = None
    metric: Metric | None = None
    observed: Observed | None = None
    machine: Machine | None = None
    # template options
    for_: Duration | None = Field(default=None, alias="for")
    allow: int | None = Field(default=None, ge=0, le=INT_MAX)
    within: Duration | None = None

    @model_validator(mode="after")
    def _one_template(self) -> Criterion:
        present = [name for name in TEMPLATES if getattr(self, name) is not None]
        if len(present) != 1:
            listed = ", ".join(TEMPLATES)
            found = ", ".join(present) if present else "none"
            raise ValueError(
                f"a criterion needs exactly one template key ({listed}); found {found}"
            )
        kind = present[0]
        for key, value in (("for", self.for_), ("allow", self.allow)):
            if kind not in ("never", "always") and value is not None:
                raise _misplaced(key, f"`{key}` goes with `never` or `always` only")
        if kind != "sequence" and self.within is not None:
            raise _misplaced("within", "`within` at criterion level goes with `sequence` only")
        if self.critical and self.points:
            raise _misplaced(
                "points",
                "a critical criterion has no points: remove `points` (a critical criterion is "
                "a gate, not a weight)",
            )
        return self

    @property
    def template(self) -> str:
        """The template key this criterion uses."""
        return next(name for name in TEMPLATES if getattr(self, name) is not None)

    @property
    def weight(self) -> float:
        """Points in the score: as written, else 1 (0 for critical criteria)."""
        if self.critical:
            return 0.0
        return 1.0 if self.points is None else float(self.points)


def _misplaced(key: str, message: str) -> PydanticCustomError:
    """A criterion key that does not belong with the rest of the criterion: the error names
    the key (``ctx["key"]``), so the check points at it and checks the criterion without it."""
    return PydanticCustomError("misplaced_key", message, {"key": key})


class PassPolicy(Frozen):
    min_score: float = Field(default=100.0, ge=0, le=100)


class Rubric(Frozen):
    rubric: RubricId
    version: int = Field(ge=1, le=MAX_VERSION)
    title: str = Field(min_length=1)
    scenario: RubricId
    description: str = ""
    competencies: tuple[Competency, ...] = ()
    criteria: tuple[Criterion, ...] = Field(min_length=1)
    pass_: PassPolicy = Field(default_factory=PassPolicy, alias="pass")

    def canonical_json(self) -> str:
        """The canonical form: normalised values (durations in seconds, conditions printed
        canonically), keys sorted, no whitespace. Its sha256 identifies the rubric's content."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def criterion(self, criterion_id: str) -> Criterion:
        return next(c for c in self.criteria if c.id == criterion_id)
