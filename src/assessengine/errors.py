"""The exception tree. Every error the engine raises on purpose derives from `AssessEngineError`.

    AssessEngineError
    ├── RubricError            a rubric file is invalid; carries a list of located problems
    ├── ScenarioError          a scenario file is invalid or cannot be found
    ├── EventsError            an events file or record is malformed (names the line)
    └── ScoringError           the scorer was used against its contract (unknown session, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class AssessEngineError(Exception):
    """Root of every error raised on purpose by assessengine."""


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class LocatedProblem:
    """One problem in a source file, printable as ``FILE:LINE:COL: message``."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class RubricError(AssessEngineError):
    """A rubric (or the scenario it needs) is invalid; `problems` says where and why."""

    def __init__(self, problems: Sequence[LocatedProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ScenarioError(AssessEngineError):
    """A scenario file is invalid or cannot be found."""


class EventsError(AssessEngineError):
    """An events file or record is malformed; the message names the line."""


class ScoringError(AssessEngineError):
    """The scorer was used against its contract."""
