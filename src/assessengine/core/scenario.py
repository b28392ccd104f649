"""Scenario model: the signals and event names that sessions of one kind of exercise carry."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from .expr import RESERVED
from .model import ID_PATTERN, MAX_VERSION, NAME_PATTERN, Frozen

SAMPLE = "sample"
"""The event name of a telemetry sample; every scenario has it, implicitly."""

Identifier = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class Signal(Frozen):
    """One telemetry channel: its unit, the range of plausible values, and its sample rate."""

    unit: str
    range: tuple[float, float]
    rate: float | None = Field(default=None, gt=0, description="samples per second")
    description: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> Signal:
        if self.range[0] > self.range[1]:
            raise ValueError("range must be [low, high] with low <= high")
        return self


class Scenario(Frozen):
    """A scenario file: ``scenario``, ``title``, ``signals`` (name -> Signal) and ``events``
    (name -> description)."""

    scenario: Annotated[str, StringConstraints(pattern=ID_PATTERN)]
    version: int = Field(default=1, ge=1, le=MAX_VERSION)
    title: str
    task: str = ""
    signals: dict[Identifier, Signal]
    events: dict[Identifier, str]

    @model_validator(mode="after")
    def _names(self) -> Scenario:
        clash = sorted((set(self.signals) | set(self.events)) & RESERVED)
        if clash:
            raise ValueError(f"reserved words cannot be names: {', '.join(clash)}")
        if SAMPLE in self.events:
            raise ValueError(f"'{SAMPLE}' is implicit; do not list it under events")
        return self

    @cached_property
    def signal_names(self) -> tuple[str, ...]:
        """Signal column order, as declared."""
        return tuple(self.signals)

    @cached_property
    def event_names(self) -> tuple[str, ...]:
        """Event codes: index in this tuple. ``sample`` is code 0."""
        return (SAMPLE, *self.events)

    @cached_property
    def event_code(self) -> dict[str, int]:
        return {name: code for code, name in enumerate(self.event_names)}

    @cached_property
    def signal_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.signal_names)}
