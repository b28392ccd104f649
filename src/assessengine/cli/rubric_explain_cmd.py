"""`assessengine rubric explain`: a rubric as learners read it (attaches itself to the `rubric`
group)."""

from __future__ import annotations

from pathlib import Path

import click

from ..adapters.library import check_rubric_file
from ..core.explain import explain as explain_rubric
from ..core.explain_render import FORMATS, render
from ._app import scenario_dirs_option
from .rubric_cmd import EXIT_PROBLEMS, rubric


@rubric.command("explain")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True,
              help="Markdown, or a self-contained HTML page.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE instead of standard output.")  # fmt: skip
@scenario_dirs_option
def explain(file: Path, fmt: str, output: Path | None, scenario_dirs: tuple[Path, ...]) -> None:
    """Render rubric FILE in plain language, as a page for learners.

    Lists the competencies and, under each, every criterion with one sentence generated from
    its rule (e.g. 'Never: load above 50 kg and speed above 8 km/h, for 1 s or longer.'),
    critical criteria marked, the points of the others, and how the pass is decided. The
    server shows the same page at /rubrics/ID.

    \b
    A rubric with problems is not rendered: its problems are printed as by
    'assessengine rubric check' (FILE:LINE:COL: message), exit status 2.

    \b
    Example:
      assessengine rubric explain rubrics/forklift-load-handling.yaml --format html -o f.html
    """
    result = check_rubric_file(file, scenario_dirs=scenario_dirs)
    if not result.ok or result.rubric is None or result.scenario is None:
        for problem in result.problems:
            click.echo(str(problem))
        raise SystemExit(EXIT_PROBLEMS)
    text = render(explain_rubric(result.rubric, result.scenario), "html" if fmt == "html" else "md")
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        raise SystemExit(EXIT_PROBLEMS) from None
