"""`assessengine rubric test`: run the examples of rubric test files (attaches itself to the
`rubric` group)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..adapters.rubric_tests_file import RubricTestResult, files_for, run_rubric_tests
from ..errors import LocatedProblem, Location
from ._app import scenario_dirs_option
from .rubric_cmd import rubric

EXIT_FAILED = 1
EXIT_PROBLEMS = 2


@rubric.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--coverage",
    is_flag=True,
    help="Also list the criteria verdicts, machine states and transitions no example reaches.",
)
@scenario_dirs_option
def test(files: tuple[Path, ...], coverage: bool, scenario_dirs: tuple[Path, ...]) -> None:
    """Run the tests of rubric FILEs on the kernel and on the reference scorer.

    The tests of rubrics/NAME.yaml are rubrics/NAME.tests.yaml (named examples, each an event
    table or a simulated session, with the verdicts expected; see docs/rubrics.md, "Testing
    your rubric"). Give rubric files, test files or both: each rubric runs once.

    \b
    Prints 'TESTS: ok (N examples, M expectations)' for each passing test file, and one line
    per failed expectation:
      rubrics/forklift.tests.yaml:12:30: example 'late horn': horn_at_intersections
      expected fail, got pass (decided at t=12.4 s, seq 37)

    \b
    Exit status: 0 when every expectation holds; 1 when one does not; 2 when a rubric or a
    test file has problems (FILE:LINE:COL: message, as `rubric check` prints them).
    """
    results = [
        _named_but_missing(run_rubric_tests(r, t, scenario_dirs=scenario_dirs), files)
        for r, t in files_for(files)
    ]
    for result in results:
        _print(result, coverage=coverage)
    malformed = sum(1 for r in results if r.problems)
    failed = sum(1 for r in results if r.failures)
    untested = sum(1 for r in results if r.missing)
    if untested:
        click.echo(f"{untested} rubric(s) without tests", err=True)
    if malformed:
        click.echo(f"{malformed} of {len(results)} rubric(s) or test file(s) have problems",
                   err=True)  # fmt: skip
        raise SystemExit(EXIT_PROBLEMS)
    if failed:
        click.echo(f"{failed} of {len(results)} test file(s) have failed expectations", err=True)
        raise SystemExit(EXIT_FAILED)


def _named_but_missing(result: RubricTestResult, named: tuple[Path, ...]) -> RubricTestResult:
    """A test file named on the command line that does not exist is a problem (a rubric
    without tests, named by the rubric, is only a note)."""
    if not (result.missing and result.tests_path in named):
        return result
    problem = LocatedProblem(Location(str(result.tests_path), 1, 1), "cannot read: no such file")
    return dataclasses.replace(result, missing=False, problems=(problem,))


def _print(result: RubricTestResult, *, coverage: bool) -> None:
    for problem in result.problems:
        click.echo(str(problem))
    if result.missing:
        click.echo(f"{result.rubric_path}: no tests (write {result.tests_path})")
        return
    for failure in result.failures:
        click.echo(str(failure))
    if result.problems:
        return
    if not result.failures:
        click.echo(
            f"{result.tests_path}: ok ({result.examples} examples, {result.expectations} "
            "expectations, on the kernel and the reference scorer)"
        )
    if coverage and result.coverage is not None:
        click.echo(f"{result.rubric_path}: coverage: {result.coverage}")
        for gap in result.gaps:
            click.echo(f"{gap}")
