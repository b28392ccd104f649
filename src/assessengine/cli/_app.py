"""The root command group. Subcommands live in sibling modules and attach themselves here."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .. import __version__
from ..core.policy import PolicyError
from ..errors import EventsError, RubricError, ScenarioError
from ..storage.port import StoreOpenError
from ._settings import fused_from_environment

EXIT_INPUT = 2
"""Exit status of a command given a store it cannot open or an input file it cannot use."""
INPUT_FILE_ERRORS = (RubricError, ScenarioError, PolicyError, EventsError)
"""The loaders' errors: an input file malformed or invalid (each line ``FILE:LINE:COL:
message``), or not found."""


class _Main(click.Group):
    """The root group: a store that cannot be opened (`StoreOpenError`, from any command that
    opens one through `storage.open_store`) is one line on stderr and exit status 2; an input
    file that cannot be used (`INPUT_FILE_ERRORS`, from any command that loads one) is one
    ``FILE:LINE:COL: message`` line per problem on stderr and exit status 2, as `rubric check`
    answers."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except StoreOpenError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_INPUT)
        except INPUT_FILE_ERRORS as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_INPUT)


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="assessengine")
def main() -> None:
    """assessengine: score simulator and in-field sessions against trainers' rubrics.

    \b
    Start here:
      assessengine rubric check rubrics/*.yaml     validate rubrics (FILE:LINE:COL: message)
      assessengine score --rubric R.yaml EV.jsonl  score recorded sessions offline
    """
    fused_from_environment(os.environ)  # the settings fused_kernel, fused_cache


scenario_dirs_option = click.option(
    "--scenarios",
    "scenario_dirs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    metavar="DIR",
    help="Also look for scenario files (<id>.yaml) in DIR. Repeatable.",
)
"""`--scenarios DIR`, shared by every command that loads scenarios (passed as `scenario_dirs`)."""
