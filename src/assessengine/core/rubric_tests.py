"""Rubric test files (``rubrics/NAME.tests.yaml``): named examples and the verdicts expected.

A trainer writes, beside ``rubrics/NAME.yaml``::

    rubric: forklift-load-handling          # optional: the id of the rubric under test
    examples:
      - name: late horn
        events:                              # one row per event, in time order; row i has seq i
          - [0, engine_start]
          - [1.5, {speed: 3.2, load: 0}]     # [t, {signals}] is a telemetry sample
          - [12.4, intersection_entered, {speed: 4}]
        close: 30                            # optional: the close time (default: the last t)
        observations: {looks_before_reversing: pass}   # what an assessor recorded
        expect:
          horn_at_intersections: fail                  # a verdict, or
          loaded_speed: {verdict: fail, t: 12.4, seq: 2}   # verdict with its deciding event
        outcome: fail                        # optional: pass, fail or incomplete
        score: 85                            # optional: the session's score
      - name: a speeder from the simulator
        simulate: {profile: speeder, seed: 3}          # instead of `events`
        expect: {loaded_speed: fail}

A row is ``[t, event]``, ``[t, event, {signal: value, ...}]`` or ``[t, {signal: value, ...}]``
(a ``sample``). `t` is seconds since the session started (a number, or a duration such as
``1.5min``); signals are sample-and-hold as in every session, and ``null`` means not reported.

Pure (no files, no YAML). The structure: `RubricTests.model_validate(data)` refuses
unknown keys and wrong shapes with errors that `core.problems.problems_from_validation`
translates, located by data path (a row's cell is ``(..., "events", ROW, CELL)``). Checks that
need the rubric and its scenario (names of criteria, events and signals, rows in time order)
are `check_tests`; running the examples is `core.rubric_testing`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .duration import parse_duration
from .events import Event, SessionEvents
from .model import ID_PATTERN, INT_MAX, NAME_PATTERN, Duration, Frozen
from .problems import DataPath, Problem, did_you_mean, problems_from_validation
from .rubric import Rubric
from .scenario import SAMPLE, Scenario

__all__ = [
    "Example",
    "ExpectedVerdict",
    "Row",
    "RubricTests",
    "Simulate",
    "check_tests",
    "table_session",
    "valid_examples",
    "validate_tests",
]

TESTS_SUFFIX = ".tests.yaml"
"""A rubric's tests live beside it: ``NAME.yaml`` -> ``NAME.tests.yaml``."""
MAX_ROWS = 100_000
"""The most rows one example's event table may have (a test is a short, hand-written stream)."""
MAX_EXAMPLES = 10_000
"""The most examples one test file may have."""

Verdict = Literal["pass", "fail", "pending", "not_applicable"]
Outcome = Literal["pass", "fail", "incomplete"]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]

_ROW_SHAPE = "a row is [t, event], [t, event, {signal: value}] or [t, {signal: value}]"


# ======================================================================================= rows


@dataclass(frozen=True, slots=True)
class Row:
    """One event of an example's table: its time, its name (``sample`` for [t, {signals}]) and
    the signal values reported there (None: not reported)."""

    t: float
    event: str
    signals: Mapping[str, float | None] = field(default_factory=dict)

    def to_data(self) -> list[Any]:
        if self.event == SAMPLE and self.signals:
            return [self.t, dict(self.signals)]
        return [self.t, self.event, dict(self.signals)] if self.signals else [self.t, self.event]


def _row_error(message: str, subpath: Sequence[str | int], **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError("row", message, {"subpath": tuple(subpath), **ctx})


def _row(value: Any) -> Row:
    if isinstance(value, Row):
        return value
    if not isinstance(value, list | tuple) or not 2 <= len(value) <= 3:
        got = f"a list of {len(value)}" if isinstance(value, list | tuple) else _kind(value)
        raise _row_error(f"{_ROW_SHAPE}; got {got}", ())
    t = _row_time(value[0])
    if isinstance(value[1], dict):
        if len(value) == 3:
            raise _row_error(f"{_ROW_SHAPE}; the signals come last", (2,))
        return Row(t, SAMPLE, _signals(value[1], 1))
    name = value[1]
    if not isinstance(name, str) or not name:
        raise _row_error(
            "expected an event name or {{signal: value}}, got {got}", (1,), got=_kind(name)
        )
    signals = _signals(value[2], 2) if len(value) == 3 else {}
    return Row(t, name, signals)


def _row_time(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError:
        raise _row_error(
            "expected the time t in seconds (a number >= 0, or a duration such as 1.5min), "
            "got {got}",
            (0,),
            got=_kind(value),
        ) from None


def _signals(value: Any, cell: int) -> dict[str, float | None]:
    if not isinstance(value, dict):
        raise _row_error("expected {{signal: value, ...}}, got {got}", (cell,), got=_kind(value))
    signals: dict[str, float | None] = {}
    for name, number in value.items():
        if number is None:
            signals[str(name)] = None
            continue
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _row_error(
                "expected a number or null, got {got}", (cell, str(name)), got=_kind(number)
            )
        as_float = float(number)
        if not math.isfinite(as_float):
            raise _row_error("expected a finite number, got {got}", (cell, str(name)), got=number)
        signals[str(name)] = as_float
    return signals


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float):
        return str(value)
    return "a list" if isinstance(value, list | tuple) else "a mapping"


_SIGNALS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"type": ["number", "null"]},
}
_TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|sec|min|h)?\s*$"},
    ]
}
ROW_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": _ROW_SHAPE,
    "minItems": 2,
    "maxItems": 3,
    "prefixItems": [
        _TIME_SCHEMA,
        {"anyOf": [{"type": "string", "pattern": NAME_PATTERN}, _SIGNALS_SCHEMA]},
        _SIGNALS_SCHEMA,
    ],
}

RowField = Annotated[
    Row,
    PlainValidator(_row),
    PlainSerializer(lambda row: row.to_data()),
    WithJsonSchema(ROW_SCHEMA),
]


# =================================================================================== examples


class ExpectedVerdict(Frozen):
    """The verdict expected of one criterion and, optionally, where it is decided: the `t`
    (within 1 microsecond) and the `seq` of the deciding event. Written as the bare verdict
    (``fail``) or as ``{verdict: fail, t: 12.4, seq: 37}``."""

    verdict: Verdict
    t: float | None = Field(default=None, ge=0)
    seq: int | None = Field(default=None, ge=0)


def _verdict_shorthand(value: Any) -> Any:
    return {"verdict": value} if isinstance(value, str) else value


Expected = Annotated[
    ExpectedVerdict,
    BeforeValidator(_verdict_shorthand, json_schema_input_type=Verdict | ExpectedVerdict),
]


class Simulate(Frozen):
    """A session drawn from the simulator: session `session` (0 = the first) of the run with
    `seed`, every session operated by `profile` (see ``assessengine simulate --help``)."""

    profile: Annotated[str, StringConstraints(pattern=ID_PATTERN)]
    seed: int = Field(default=0, ge=0, le=INT_MAX)
    session: int = Field(default=0, ge=0, le=INT_MAX)


class Example(Frozen):
    """One named example: a short session and what the rubric should decide about it."""

    # the validator's rules, for editors (core.json_schema)
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": ["events"]}, {"required": ["simulate"]}],
            "anyOf": [{"required": ["expect"]}, {"required": ["outcome"]},
                      {"required": ["score"]}],
            "dependentRequired": {"close": ["events"]},
        }
    )  # fmt: skip

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    events: tuple[RowField, ...] | None = Field(default=None, max_length=MAX_ROWS)
    simulate: Simulate | None = None
    close: Duration | None = None
    observations: dict[Name, Literal["pass", "fail"]] = Field(default_factory=dict)
    expect: dict[Name, Expected] = Field(default_factory=dict)
    outcome: Outcome | None = None
    score: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _shape(self) -> Example:
        if (self.events is None) == (self.simulate is None):
            raise ValueError("an example needs exactly one of `events` or `simulate`")
        if self.simulate is not None and self.close is not None:
            raise ValueError("`close` goes with `events` (a simulated session closes itself)")
        if not self.expect and self.outcome is None and self.score is None:
            raise ValueError("an example needs `expect`, `outcome` or `score`: what it checks")
        return self


class RubricTests(Frozen):
    """A rubric test file: the rubric's id (optional) and its examples."""

    rubric: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None
    examples: tuple[Example, ...] = Field(min_length=1, max_length=MAX_EXAMPLES)


def validate_tests(data: object) -> tuple[RubricTests | None, list[Problem]]:
    """The structural layer: the test file, or None and its translated validation errors."""
    try:
        return RubricTests.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from_validation(exc, RubricTests)


# ===================================================================================== checks


def check_tests(
    data: object, rubric: Rubric, scenario: Scenario
) -> tuple[RubricTests | None, list[Problem]]:
    """Validate `data` as a test file and check it against `rubric` and its `scenario`.

    Returns the tests (None when the structure is invalid) and every problem found: the
    structural ones, then, for every example that is valid on its own (even when others are
    not), the rubric id, duplicate example names, unknown events and signals in rows, rows out
    of time order, a close before the last row, and expectations or observations naming
    criteria the rubric does not have (or that cannot take that verdict). Positions are the
    caller's business; sort by them for file order.
    """
    tests, problems = validate_tests(data)
    examples = list(enumerate(tests.examples)) if tests is not None else valid_examples(data)
    declared = data.get("rubric") if isinstance(data, dict) else None
    if isinstance(declared, str) and declared != rubric.rubric:
        problems.append(
            Problem(
                ("rubric",),
                f"these tests are for rubric '{declared}', "
                f"but the rubric beside them is '{rubric.rubric}'",
            )
        )
    first: dict[str, DataPath] = {}
    for index, example in examples:
        base: DataPath = ("examples", index)
        if example.name in first:
            problems.append(
                Problem(
                    (*base, "name"),
                    f"duplicate example name '{example.name}'",
                    first=first[example.name],
                )
            )
        first.setdefault(example.name, (*base, "name"))
        problems += _rows(base, example, scenario)
        problems += _expectations(base, example, rubric)
    return tests, problems


def valid_examples(data: object) -> list[tuple[int, Example]]:
    """The examples of a test file's `data` that are valid on their own, with their indexes.

    An example whose only faults are entries of `expect` or `observations` counts, without
    those entries (so its other problems are still found in the same run)."""
    items = data.get("examples") if isinstance(data, dict) else None
    valid: list[tuple[int, Example]] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        example = _lenient_example(item)
        if example is not None:
            valid.append((index, example))
    return valid


def _lenient_example(item: object) -> Example | None:
    try:
        return Example.model_validate(item)
    except ValidationError as exc:
        locs = [tuple(e["loc"]) for e in exc.errors(include_url=False)]
    if not isinstance(item, dict) or any(
        len(loc) < 2 or loc[0] not in ("expect", "observations") for loc in locs
    ):
        return None
    pruned = dict(item)
    for field_name in ("expect", "observations"):
        bad = {loc[1] for loc in locs if loc[0] == field_name}
        if bad and isinstance(item.get(field_name), dict):
            pruned[field_name] = {k: v for k, v in item[field_name].items() if k not in bad}
    try:
        return Example.model_validate(pruned)
    except ValidationError:
        return None


def _rows(base: DataPath, example: Example, scenario: Scenario) -> Iterator[Problem]:
    rows = example.events or ()
    last_t: float | None = None
    for j, row in enumerate(rows):
        at: DataPath = (*base, "events", j)
        if last_t is not None and row.t < last_t:
            yield Problem(
                (*at, 0),
                f"t={row.t:g} is before the row above (t={last_t:g}); write the rows in time order",
            )
        last_t = row.t if last_t is None else max(last_t, row.t)
        if row.event != SAMPLE and row.event not in scenario.event_code:
            yield Problem((*at, 1), _unknown("event", row.event, scenario))
        cell = 1 if row.event == SAMPLE else 2
        for name in row.signals:
            if name not in scenario.signal_index:
                yield Problem((*at, cell, name), _unknown("signal", name, scenario), at_key=True)
    if example.close is not None and last_t is not None and example.close < last_t:
        yield Problem(
            (*base, "close"), f"close t={example.close:g} is before the last row (t={last_t:g})"
        )


def _unknown(what: str, name: str, scenario: Scenario) -> str:
    other = scenario.signal_index if what == "event" else scenario.event_code
    if name in other:
        other_kind = "signal" if what == "event" else "event"
        return f"'{name}' is a {other_kind} of scenario '{scenario.scenario}', not an {what}"
    known = scenario.event_names[1:] if what == "event" else scenario.signal_names
    hint = did_you_mean(name, known)
    if hint:
        return f"unknown {what} '{name}'{hint}"
    return f"unknown {what} '{name}': scenario '{scenario.scenario}' does not define it"


def _expectations(base: DataPath, example: Example, rubric: Rubric) -> Iterator[Problem]:
    criteria = {c.id: c for c in rubric.criteria}
    for key, expected in example.expect.items():
        criterion = criteria.get(key)
        if criterion is None:
            yield Problem((*base, "expect", key), _unknown_criterion(key, rubric), at_key=True)
        elif expected.verdict == "pending" and criterion.observed is None:
            yield Problem(
                (*base, "expect", key),
                f"'{key}' is decided by the rubric, so it is "
                "never pending after the close; expect pass, fail or not_applicable",
            )
    for key in example.observations:
        criterion = criteria.get(key)
        if criterion is None:
            yield Problem(
                (*base, "observations", key), _unknown_criterion(key, rubric), at_key=True
            )
        elif criterion.observed is None:
            yield Problem(
                (*base, "observations", key),
                f"'{key}' is not an `observed` "
                "criterion: the rubric decides it, an assessor does not",
                at_key=True,
            )


def _unknown_criterion(key: str, rubric: Rubric) -> str:
    ids = [c.id for c in rubric.criteria]
    hint = did_you_mean(key, ids)
    if hint:
        return f"unknown criterion '{key}'{hint}"
    return f"unknown criterion '{key}': rubric '{rubric.rubric}' has {', '.join(ids)}"


# =================================================================================== sessions


def table_session(example: Example, session: str) -> SessionEvents:
    """The session an example's event table describes: row i is the event of seq i; closed at
    `close`, else at the last row's t. Call on examples that `check_tests` found no problem in
    (rows in time order)."""
    events = [
        Event(seq, row.t, row.event, {k: v for k, v in row.signals.items() if v is not None})
        for seq, row in enumerate(example.events or ())
    ]
    return SessionEvents(session, events, {}, example.close)
