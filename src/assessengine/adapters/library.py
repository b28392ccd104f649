"""Rubric and scenario files: find, load, validate, and report problems as FILE:LINE:COL.

A scenario is found by id, as ``<id>.yaml``, in the first of these places that has it:

1. ``<rubric's directory>/../scenarios/`` (a project laid out as ``rubrics/`` + ``scenarios/``);
2. the directories given explicitly (``scenario_dirs``, e.g. ``--scenarios DIR``), in order;
3. the scenarios bundled with the package (``assessengine/_data/scenarios``);
4. for an editable install, the repository's own ``scenarios/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from pydantic import ValidationError

from ..core.check import check_rubric
from ..core.model import ID_PATTERN
from ..core.problems import Problem, did_you_mean, problems_from_validation
from ..core.rubric import Rubric
from ..core.rubric_tests import TESTS_SUFFIX
from ..core.scenario import Scenario
from ..errors import LocatedProblem, Location, RubricError, ScenarioError
from .yaml_source import SourceMap, YamlDocument, load_yaml

SUFFIX = ".yaml"


@dataclass(frozen=True, slots=True)
class RubricCheck:
    """The outcome of checking one rubric file: valid exactly when `problems` is empty."""

    path: Path
    rubric: Rubric | None
    scenario: Scenario | None
    problems: tuple[LocatedProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.rubric is not None


# ==================================================================================== rubrics


def check_rubric_file(path: Path | str, *, scenario_dirs: Sequence[Path] = ()) -> RubricCheck:
    """Check one rubric file against its scenario; never raises for a bad file.

    Problems are sorted by position (the rubric's own first, then any in its scenario file).
    An unreadable file gives a single problem at 1:1.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return RubricCheck(path, None, None, (_at(path, 1, 1, f"cannot read: {_reason(exc)}"),))
    doc = load_yaml(text)
    if doc.data is None and doc.problems:
        return RubricCheck(path, None, None, tuple(locate_all(path, doc, [])))
    scenario, problems, elsewhere = _scenario_for(doc, path, scenario_dirs)
    rubric, more = check_rubric(doc.data, scenario)
    located = locate_all(path, doc, [*problems, *more]) + elsewhere
    located.sort(key=lambda p: (p.location.file != str(path), p.location.line, p.location.column))
    return RubricCheck(path, rubric, scenario, tuple(located))


def load_rubric(path: Path | str, *, scenario_dirs: Sequence[Path] = ()) -> tuple[Rubric, Scenario]:
    """The valid rubric at `path` and its scenario; raises RubricError listing every problem."""
    result = check_rubric_file(path, scenario_dirs=scenario_dirs)
    if result.problems or result.rubric is None or result.scenario is None:
        raise RubricError(result.problems)
    return result.rubric, result.scenario


def _scenario_for(
    doc: YamlDocument, rubric_path: Path, scenario_dirs: Sequence[Path]
) -> tuple[Scenario | None, list[Problem], list[LocatedProblem]]:
    """The rubric's scenario; else None, the problem at the rubric's `scenario` value and the
    problems of an invalid scenario file."""
    data = doc.data
    scenario_id = data.get("scenario") if isinstance(data, dict) else None
    if not isinstance(scenario_id, str) or re.match(ID_PATTERN, scenario_id) is None:
        return None, [], []  # the structural check reports it
    places = search_path(rubric_path=rubric_path, scenario_dirs=scenario_dirs)
    found = _find(scenario_id, places)
    if found is None:
        message = f"unknown scenario '{scenario_id}'{_suggest(scenario_id, places)}"
        return None, [Problem(("scenario",), message)], []
    try:
        return _load_scenario_file(found), [], []
    except _ScenarioFileError as exc:
        problem = Problem(("scenario",), f"scenario '{scenario_id}' is invalid (see {found})")
        return None, [problem], list(exc.problems)


def _suggest(scenario_id: str, places: Sequence[Traversable]) -> str:
    known = sorted(_ids_in(places))
    hint = did_you_mean(scenario_id, known)
    if hint:
        return hint
    listed = ", ".join(known) if known else "none"
    return f"; known scenarios: {listed} (add a directory with --scenarios DIR)"


# ================================================================================== scenarios


def search_path(
    *, rubric_path: Path | None = None, scenario_dirs: Sequence[Path] = ()
) -> list[Traversable]:
    """The directories searched for scenarios, in order, without duplicates or missing ones."""
    candidates: list[Traversable] = []
    if rubric_path is not None:
        candidates.append(rubric_path.resolve().parent.parent / "scenarios")
    candidates += [Path(d) for d in scenario_dirs]
    candidates.append(resources.files("assessengine") / "_data" / "scenarios")
    candidates += _repo_scenarios()
    return _unique_dirs(candidates)


def _repo_scenarios() -> list[Path]:
    package = Path(__file__).resolve().parents[1]
    root = package.parent.parent  # <repo>/src/assessengine
    is_repo = package.parent.name == "src" and (root / "pyproject.toml").is_file()
    return [root / "scenarios"] if is_repo else []


def _unique_dirs(candidates: Iterable[Traversable]) -> list[Traversable]:
    seen: set[str] = set()
    result: list[Traversable] = []
    for place in candidates:
        key = str(Path(str(place)).resolve()) if isinstance(place, Path) else str(place)
        if key not in seen and place.is_dir():
            seen.add(key)
            result.append(place)
    return result


def find_scenario(
    scenario_id: str, *, rubric_path: Path | None = None, scenario_dirs: Sequence[Path] = ()
) -> Traversable:
    """The file of scenario `scenario_id`; raises ScenarioError naming the places searched."""
    places = search_path(rubric_path=rubric_path, scenario_dirs=scenario_dirs)
    found = _find(scenario_id, places)
    if found is None:
        searched = ", ".join(str(p) for p in places) or "no scenario directory"
        raise ScenarioError(f"scenario '{scenario_id}' not found (searched: {searched})")
    return found


def load_scenario(id_or_path: str | Path, *, scenario_dirs: Sequence[Path] = ()) -> Scenario:
    """A valid scenario, by id (searched as above) or by file path.

    Raises ScenarioError when it cannot be found or is invalid (one FILE:LINE:COL line each).
    """
    text = str(id_or_path)
    if isinstance(id_or_path, Path) or text.endswith((SUFFIX, ".yml")) or os.sep in text:
        source: Traversable = Path(id_or_path)
        if not source.is_file():
            raise ScenarioError(f"scenario file not found: {source}")
    else:
        source = find_scenario(text, scenario_dirs=scenario_dirs)
    try:
        return _load_scenario_file(source)
    except _ScenarioFileError as exc:
        raise ScenarioError("\n".join(str(p) for p in exc.problems)) from None


def list_scenarios(*, scenario_dirs: Sequence[Path] = ()) -> list[str]:
    """The ids of every scenario file found in the search path (sorted, without duplicates)."""
    return sorted(_ids_in(search_path(scenario_dirs=scenario_dirs)))


def _find(scenario_id: str, places: Sequence[Traversable]) -> Traversable | None:
    for place in places:
        candidate = place / f"{scenario_id}{SUFFIX}"
        if candidate.is_file():
            return candidate
    return None


def _ids_in(places: Iterable[Traversable]) -> set[str]:
    return {
        entry.name.removesuffix(SUFFIX)
        for place in places
        for entry in place.iterdir()
        if entry.name.endswith(SUFFIX) and entry.is_file()
    }


class _ScenarioFileError(Exception):
    def __init__(self, problems: Sequence[LocatedProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = tuple(problems)


def _load_scenario_file(source: Traversable) -> Scenario:
    """Parse and validate a scenario file; raises _ScenarioFileError with located problems."""
    name = str(source)
    doc = load_yaml(source.read_text(encoding="utf-8"))
    if doc.data is None:
        message = "the file is empty; a scenario starts with 'scenario: <id>'"
        raise _ScenarioFileError(locate_all(name, doc, []) or [_at(name, 1, 1, message)])
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        problems = problems_from_validation(exc, Scenario)
        raise _ScenarioFileError(locate_all(name, doc, problems)) from None
    if doc.problems:
        raise _ScenarioFileError(locate_all(name, doc, []))
    return scenario


# =================================================================================== location


def locate_all(file: Path | str, doc: YamlDocument, problems: Sequence[Problem]) -> list[
    LocatedProblem
]:  # fmt: skip
    """The YAML problems of `doc`, then `problems` placed in the file; a problem at the very
    place of a YAML problem is left out (a value the YAML layer refused reads as nothing, and
    "expected a number, got nothing" would only repeat it)."""
    located = [_at(file, p.mark.line, p.mark.column, p.message) for p in doc.problems]
    refused = {(p.mark.line, p.mark.column) for p in doc.problems}
    for problem in problems:
        placed = _locate(file, doc.positions, problem)
        if (placed.location.line, placed.location.column) not in refused:
            located.append(placed)
    return located


def _locate(
    file: Path | str, positions: SourceMap, problem: Problem | LocatedProblem
) -> LocatedProblem:
    """Place a core problem in the file (key, value, or a character inside a condition)."""
    if isinstance(problem, LocatedProblem):
        return problem
    if problem.offset is not None:
        mark = positions.inside(problem.path, problem.offset)
    elif problem.at_key:
        mark = positions.key(problem.path)
    else:
        mark = positions.value(problem.path)
    message = problem.message
    if problem.first is not None:
        message += f" (first at line {positions.value(problem.first).line})"
    return _at(file, mark.line, mark.column, message)


def _at(file: Path | str, line: int, column: int, message: str) -> LocatedProblem:
    return LocatedProblem(Location(str(file), line, column), message)


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "the file is not UTF-8 text"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


# ==================================================================================== rubrics


def rubric_dirs() -> list[Path]:
    """Where the shipped rubrics are: the bundled copy, else (editable installs) the repo's."""
    bundled = resources.files("assessengine") / "_data" / "rubrics"
    candidates = [Path(str(bundled))] + [p.parent / "rubrics" for p in _repo_scenarios()]
    return [p for p in candidates if p.is_dir()]


def rubric_files(folder: Path) -> list[Path]:
    """The rubric files in `folder`, sorted: ``*.yaml`` and ``*.yml``, but not the rubric test
    files beside them (``*.tests.yaml``, see `core.rubric_tests`). Every place that loads the
    rubrics of a directory lists them with this."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.suffix in (SUFFIX, ".yml") and not p.name.endswith((TESTS_SUFFIX, ".tests.yml"))
    )


def find_rubric(rubric_id: str) -> Path:
    """The shipped rubric file with this id; raises ScenarioError naming the places searched."""
    for place in rubric_dirs():
        candidate = place / f"{rubric_id}{SUFFIX}"
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(p) for p in rubric_dirs()) or "no rubric directory"
    raise ScenarioError(f"rubric '{rubric_id}' not found (searched: {searched})")
