"""`assessengine rubric ...`: work with rubric files (attaches itself to the root group)."""

from __future__ import annotations

from pathlib import Path

import click

from ..adapters.library import check_rubric_file
from ..adapters.rubric_tests_file import check_tests_beside, is_tests_file
from ._app import LazyGroup, main, scenario_dirs_option

EXIT_PROBLEMS = 2


@main.group(cls=LazyGroup, lazy={"diff": "rubric_diff_cmd", "explain": "rubric_explain_cmd",
                                 "test": "rubric_test_cmd"})  # fmt: skip
def rubric() -> None:
    """Work with rubric files (trainers' YAML; the guide is docs/rubrics.md).

    \b
      assessengine rubric check rubrics/*.yaml
    """


@rubric.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@scenario_dirs_option
def check(files: tuple[Path, ...], scenario_dirs: tuple[Path, ...]) -> None:
    """Check rubric FILEs against the rubric language and their scenario.

    A rubric test file (NAME.tests.yaml) is checked against the rubric beside it (NAME.yaml),
    without running its examples (`rubric test` runs them).

    Prints 'FILE: ok (N criteria)' for each valid file. Otherwise prints one line per
    problem, 'FILE:LINE:COL: message', and exits with status 2.

    \b
    A rubric's scenario (its `scenario:` id) is looked up as <id>.yaml in:
      1. the scenarios/ directory beside the rubric's directory (../scenarios/),
      2. each --scenarios DIR, in order,
      3. the scenarios bundled with assessengine.

    \b
    Example:
      assessengine rubric check rubrics/*.yaml
      rubrics/forklift.yaml:14:22: unknown signal 'sped' (did you mean 'speed'?)
    """
    failed = 0
    for path in files:
        if is_tests_file(path):
            failed += not _check_tests(path, scenario_dirs)
            continue
        result = check_rubric_file(path, scenario_dirs=scenario_dirs)
        if result.ok and result.rubric is not None:
            click.echo(f"{path}: ok ({len(result.rubric.criteria)} criteria)")
            continue
        failed += 1
        for problem in result.problems:
            click.echo(str(problem))
    if failed:
        click.echo(f"{failed} of {len(files)} rubric file(s) have problems", err=True)
        raise SystemExit(EXIT_PROBLEMS)


def _check_tests(path: Path, scenario_dirs: tuple[Path, ...]) -> bool:
    """Check a rubric test file (``NAME.tests.yaml``) against the rubric beside it, without
    running it (that is `rubric test`); print 'FILE: ok (N examples)' or its problems."""
    result = check_tests_beside(path, scenario_dirs=scenario_dirs)
    if result.ok and result.tests is not None:
        click.echo(f"{path}: ok ({len(result.tests.examples)} examples)")
        return True
    for problem in result.problems:
        click.echo(str(problem))
    return False
