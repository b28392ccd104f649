"""The root command group. Subcommands live in sibling modules and attach themselves here;
each group names the module of each of its subcommands (`LazyGroup`), imported when the
command is looked up."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..core.policy import PolicyError
from ..errors import EventsError, RubricError, ScenarioError
from ..extras import missing_extra
from ..storage.port import StoreOpenError
from ._settings import fused_from_environment

EXIT_INPUT = 2
"""Exit status of a command given a store it cannot open or an input file it cannot use."""
INPUT_FILE_ERRORS = (RubricError, ScenarioError, PolicyError, EventsError)
"""The loaders' errors: an input file malformed or invalid (each line ``FILE:LINE:COL:
message``), or not found."""


class LazyGroup(click.Group):
    """A group whose subcommands are defined in sibling modules (`lazy`: command name ->
    module of this package, which attaches the command to the group when imported), imported
    when a command is looked up: a command starts with the imports it uses, not those of
    every command (numba, SQLAlchemy, FastAPI, the credential stack: 1.2 s of imports).
    Listing the commands (``--help``) imports them all."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            importlib.import_module(f"{__package__}.{self.lazy[cmd_name]}")
        return self.commands.get(cmd_name)


class _Main(LazyGroup):
    """The root group: a store that cannot be opened (`StoreOpenError`, from any command that
    opens one through `storage.open_store`) is one line on stderr and exit status 2; an input
    file that cannot be used (`INPUT_FILE_ERRORS`, from any command that loads one) is one
    ``FILE:LINE:COL: message`` line per problem on stderr and exit status 2, as `rubric check`
    answers; so is a command that needs an optional extra not installed (`extras`)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except StoreOpenError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_INPUT)
        except INPUT_FILE_ERRORS as exc:
            click.echo(str(exc), err=True)
            ctx.exit(EXIT_INPUT)
        except ModuleNotFoundError as exc:
            message = missing_extra(exc)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            ctx.exit(EXIT_INPUT)


COMMANDS = {
    "archive": "archive_cmd", "audit": "audit_cmd", "backup": "backup_cmd",
    "copy": "copy_cmd", "credential": "credential_cmd", "demo": "demo_cmd",
    "keys": "keys_cmd", "rescore": "rescore_cmd", "rubric": "rubric_cmd",
    "schema": "schema_cmd", "score": "score_cmd", "serve": "serve_cmd",
    "simulate": "simulate_cmd", "site": "site_cmd", "token": "token_cmd",
}  # fmt: skip
"""The root's commands: name -> the module that defines it."""


@click.group(
    cls=_Main,
    lazy=COMMANDS,
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
