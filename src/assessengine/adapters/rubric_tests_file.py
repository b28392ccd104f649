"""Rubric test files on disk: find the tests beside a rubric, load and check them, locate
every problem as FILE:LINE:COL (the same way `library.check_rubric_file` does for rubrics).

``rubrics/NAME.yaml`` is tested by ``rubrics/NAME.tests.yaml``. Examples that draw their
session from the simulator (``simulate: {profile: ..., seed: ...}``) are checked here too: the
rubric's scenario must have a simulator model, and the profile must be one of its profiles.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.events import SessionEvents
from ..core.problems import DataPath, Problem, did_you_mean
from ..core.rubric import Rubric
from ..core.rubric_testing import CoverageSummary, coverage_gaps, run_tests
from ..core.rubric_tests import (
    TESTS_SUFFIX,
    Example,
    RubricTests,
    check_tests,
    table_session,
    valid_examples,
)
from ..core.scenario import Scenario
from ..errors import LocatedProblem, Location
from ..sim import MODELS, simulate
from .library import check_rubric_file, locate_all
from .yaml_source import YamlDocument, load_yaml


def is_tests_file(path: Path) -> bool:
    """Whether `path` names a rubric test file (``*.tests.yaml``)."""
    return path.name.endswith(TESTS_SUFFIX)


def path_of_tests(rubric_path: Path) -> Path:
    """``NAME.tests.yaml`` beside ``NAME.yaml`` (or ``NAME.yml``)."""
    return rubric_path.with_name(rubric_path.name.rsplit(".", 1)[0] + TESTS_SUFFIX)


def rubric_of_tests(tests_path: Path) -> Path:
    """The rubric that ``NAME.tests.yaml`` tests: ``NAME.yaml`` beside it."""
    return tests_path.with_name(tests_path.name.removesuffix(TESTS_SUFFIX) + ".yaml")


@dataclass(frozen=True, slots=True)
class TestsCheck:
    """A loaded test file: valid exactly when `problems` is empty. `doc` keeps the positions of
    every value, to locate failed expectations later."""

    __test__ = False  # not a pytest test class, whatever its name

    path: Path
    tests: RubricTests | None
    doc: YamlDocument | None
    problems: tuple[LocatedProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.tests is not None

    def where(self, path: DataPath, *, at_key: bool = False) -> Location:
        """The place in the file of the value (or key) at `path`."""
        if self.doc is None:
            return Location(str(self.path), 1, 1)
        mark = self.doc.positions.key(path) if at_key else self.doc.positions.value(path)
        return Location(str(self.path), mark.line, mark.column)


def check_tests_file(path: Path, rubric: Rubric, scenario: Scenario) -> TestsCheck:
    """Load the test file at `path` and check it against `rubric` and its `scenario`; never
    raises for a bad file. Problems are in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "the file is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc
        problem = LocatedProblem(Location(str(path), 1, 1), f"cannot read: {reason}")
        return TestsCheck(path, None, None, (problem,))
    doc = load_yaml(text)
    if doc.data is None and doc.problems:
        return TestsCheck(path, None, doc, tuple(locate_all(path, doc, [])))
    if not isinstance(doc.data, dict):
        shown = "the file is empty" if doc.data is None else "the file is not a mapping"
        empty = Problem((), f"{shown}; a test file starts with 'examples:'")
        return TestsCheck(path, None, doc, tuple(locate_all(path, doc, [empty])))
    tests, problems = check_tests(doc.data, rubric, scenario)
    problems += _simulations(valid_examples(doc.data), scenario)
    located = locate_all(path, doc, problems)
    located.sort(key=lambda p: (p.location.line, p.location.column))
    return TestsCheck(path, tests if not located else None, doc, tuple(located))


def _simulations(examples: list[tuple[int, Example]], scenario: Scenario) -> Iterator[Problem]:
    for index, example in examples:
        if example.simulate is None:
            continue
        at: DataPath = ("examples", index, "simulate")
        model = MODELS.get(scenario.scenario)
        if model is None:
            known = ", ".join(sorted(MODELS))
            yield Problem(
                at,
                f"the simulator has no model of scenario '{scenario.scenario}' "
                f"(it has {known}); write the events instead",
                at_key=True,
            )
        elif example.simulate.profile not in model.profiles:
            profile = example.simulate.profile
            known = ", ".join(model.profiles)
            hint = did_you_mean(profile, model.profiles) or f" (profiles: {known})"
            yield Problem((*at, "profile"), f"unknown profile '{profile}'{hint}")


def example_sessions(tests: RubricTests, scenario: Scenario) -> list[SessionEvents]:
    """One session per example, in order (ids ``example-1``, ``example-2``, ...): the event
    table as written, or the simulated session. `tests` must have passed `check_tests_file`."""
    return [
        _session(example, scenario, f"example-{i + 1}") for i, example in enumerate(tests.examples)
    ]


def _session(example: Example, scenario: Scenario, session_id: str) -> SessionEvents:
    if example.simulate is None:
        return table_session(example, session_id)
    spec = example.simulate
    batch = simulate(scenario, spec.profile, 1, seed=spec.seed, first=spec.session)
    (session,) = batch.to_sessions()
    return SessionEvents(session_id, session.events, session.open, session.close_t)


def files_for(paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(rubric, tests) pairs for the given files, each rubric once, in the order first named:
    a rubric file names itself and the tests beside it; a ``*.tests.yaml`` names the rubric
    beside it. So ``rubrics/*.yaml`` (which matches both) gives every rubric once."""
    pairs: dict[Path, Path] = {}
    for path in paths:
        rubric = rubric_of_tests(path) if is_tests_file(path) else path
        pairs.setdefault(rubric, path if is_tests_file(path) else path_of_tests(path))
    return list(pairs.items())


# ==================================================================================== running


@dataclass(frozen=True, slots=True)
class RubricTestResult:
    """What `run_rubric_tests` found for one rubric.

    problems:     the rubric's or the test file's problems (then nothing ran)
    failures:     ``FILE:LINE:COL: example 'NAME': ...`` for each failed expectation
    missing:      the test file does not exist (nothing ran, nothing is wrong)
    examples, expectations: how many ran
    coverage:     the counts and the gaps (located in the rubric), when the examples ran
    """

    rubric_path: Path
    tests_path: Path
    problems: tuple[LocatedProblem, ...] = ()
    failures: tuple[LocatedProblem, ...] = ()
    missing: bool = False
    examples: int = 0
    expectations: int = 0
    coverage: CoverageSummary | None = None
    gaps: tuple[LocatedProblem, ...] = ()


def run_rubric_tests(
    rubric_path: Path, tests_path: Path, *, scenario_dirs: Sequence[Path] = ()
) -> RubricTestResult:
    """Check the rubric and its test file, run every example on the kernel and the reference
    scorer, and compare; never raises for a bad file (its problems are in the result)."""
    checked = check_rubric_file(rubric_path, scenario_dirs=scenario_dirs)
    if not checked.ok or checked.rubric is None or checked.scenario is None:
        return RubricTestResult(rubric_path, tests_path, problems=checked.problems)
    if not tests_path.exists():
        return RubricTestResult(rubric_path, tests_path, missing=True)
    rubric, scenario = checked.rubric, checked.scenario
    loaded = check_tests_file(tests_path, rubric, scenario)
    if not loaded.ok or loaded.tests is None:
        return RubricTestResult(rubric_path, tests_path, problems=loaded.problems)
    run = run_tests(rubric, scenario, loaded.tests, example_sessions(loaded.tests, scenario))
    failures = tuple(LocatedProblem(loaded.where(f.path), str(f)) for f in run.failures)
    summary = coverage_gaps(rubric, run.coverage)
    doc = load_yaml(rubric_path.read_text(encoding="utf-8"))
    return RubricTestResult(
        rubric_path,
        tests_path,
        failures=failures,
        examples=len(loaded.tests.examples),
        expectations=run.expectations,
        coverage=summary,
        gaps=tuple(locate_all(rubric_path, doc, summary.gaps)),
    )


def check_tests_beside(tests_path: Path, *, scenario_dirs: Sequence[Path] = ()) -> TestsCheck:
    """Check a test file against the rubric beside it (``NAME.tests.yaml`` -> ``NAME.yaml``),
    without running it (`rubric check` on a test file). An invalid or missing rubric gives its
    own problems (or one at the test file's 1:1)."""
    rubric_path = rubric_of_tests(tests_path)
    if not rubric_path.exists():
        message = f"no rubric beside these tests (expected {rubric_path.name})"
        return TestsCheck(tests_path, None, None, (LocatedProblem(Location(str(tests_path), 1, 1),
                                                                  message),))  # fmt: skip
    checked = check_rubric_file(rubric_path, scenario_dirs=scenario_dirs)
    if not checked.ok or checked.rubric is None or checked.scenario is None:
        return TestsCheck(tests_path, None, None, checked.problems)
    return check_tests_file(tests_path, checked.rubric, checked.scenario)
