"""Shared pydantic building blocks: frozen models, duration, condition and step field types."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from .duration import DURATION_PATTERN, parse_duration
from .expr import Expr, ExprError, parse

ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
INT_MAX = 2**31 - 1
"""The largest count a rubric accepts (count `min`/`max`, `allow`): it fits every store's
integer columns and the kernel's counters."""
MAX_POINTS = 1_000_000
"""The most points one criterion may carry: sums of points stay finite, and so does a score."""
MAX_VERSION = 1_000_000
"""The largest version of a rubric or scenario (and a policy's `min_version`): the HTTP API's
bound on the versions it names, so every version a file may have can be asked for."""


class Frozen(BaseModel):
    """Immutable, strict-keyed model: unknown keys are errors, and so is a number that is not
    finite (``.inf``, ``.nan``, ``"1e400"``) anywhere a float is read."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=False, allow_inf_nan=False
    )


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", str(exc)) from None


def _expression(kind: str) -> Any:
    def validate(value: Any) -> Expr:
        if isinstance(value, Expr):
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            what = "a condition such as 'speed > 8'" if kind == "bool" else "an expression"
            raise PydanticCustomError(
                "expression",
                "expected {what} as text, got {got}",
                {"what": what, "got": repr(value)},
            )
        try:
            wanted = None if kind == "any" else kind
            return parse(str(value), kind=wanted)  # type: ignore[arg-type]
        except ExprError as exc:
            raise PydanticCustomError(
                "condition",
                "bad condition: {message}",
                {"message": exc.message, "offset": exc.offset},
            ) from None

    return validate


# What each custom field type accepts, as JSON Schema (core.json_schema; editors read it). It
# describes the written form only: what a condition means is checked by the engine alone.
_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "a duration: 500ms, 2s, 1.5min, 1h, or a number of seconds",
}
_CONDITION_SCHEMA = {"type": "string", "description": "a condition such as 'speed > 8'"}
_EXPRESSION_SCHEMA = {
    "type": ["string", "number"],
    "description": "an expression such as 'abs(mast_tilt)', or a condition",
}
_STEP_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": NAME_PATTERN, "description": "an event name"},
        {
            "type": "object",
            "properties": {"when": _CONDITION_SCHEMA},
            "required": ["when"],
            "additionalProperties": False,
        },
    ],
    "description": "an event name, or {when: CONDITION}",
}

Duration = Annotated[float, PlainValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]
Condition = Annotated[
    Expr,
    PlainValidator(_expression("bool")),
    PlainSerializer(str),
    WithJsonSchema(_CONDITION_SCHEMA),
]
NumericExpr = Annotated[
    Expr,
    PlainValidator(_expression("num")),
    PlainSerializer(str),
    WithJsonSchema(_EXPRESSION_SCHEMA),
]
AnyExpr = Annotated[
    Expr,
    PlainValidator(_expression("any")),
    PlainSerializer(str),
    WithJsonSchema(_EXPRESSION_SCHEMA),
]


@dataclass(frozen=True, slots=True)
class Step:
    """What 'matches' an event: an event name, or a condition that holds there."""

    event: str | None = None
    when: Expr | None = None

    @property
    def text(self) -> str:
        """Canonical text; two steps are 'written the same' when their texts are equal."""
        return self.event if self.event is not None else f"when: {self.when}"

    def to_data(self) -> str | dict[str, str]:
        return self.event if self.event is not None else {"when": str(self.when)}


def _step(value: Any) -> Step:
    if isinstance(value, Step):
        return value
    if isinstance(value, str):
        if not re.match(NAME_PATTERN, value):
            raise PydanticCustomError(
                "event_name",
                "{got} is not an event name (letters, digits, '_')",
                {"got": repr(value)},
            )
        return Step(event=value)
    if isinstance(value, dict) and set(value) == {"when"}:
        cond = value["when"]
        if not isinstance(cond, str):
            raise PydanticCustomError(
                "expression",
                "expected a condition such as 'speed > 8' as text, got {got}",
                {"got": repr(cond), "subpath": "when"},
            )
        try:
            return Step(when=parse(cond, kind="bool"))
        except ExprError as exc:
            raise PydanticCustomError(
                "condition",
                "bad condition: {message}",
                {"message": exc.message, "offset": exc.offset, "subpath": "when"},
            ) from None
    raise PydanticCustomError(
        "step", "expected an event name or {when: CONDITION}, got {got}", {"got": repr(value)}
    )


StepField = Annotated[
    Step,
    PlainValidator(_step),
    PlainSerializer(lambda s: s.to_data()),
    WithJsonSchema(_STEP_SCHEMA),
]
