"""`assessengine schema KIND`: the JSON Schema of a trainer's file kind, for editors."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.json_schema import kinds, schema_text
from ._app import main


@main.command("schema")
@click.argument("kind", type=click.Choice(kinds()))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the schema to FILE instead of standard output.",
)
def schema(kind: str, output: Path | None) -> None:
    """Print the JSON Schema of a KIND file: rubric, scenario, policy or tests.

    The schema is generated from the models that read the files, so it always matches the
    installed assessengine. A YAML language server (VS Code's YAML extension, and others)
    uses it when a file's first line names it:

    \b
      # yaml-language-server: $schema=../schemas/rubric.schema.json

    \b
    Example:
      assessengine schema rubric -o .schemas/rubric.schema.json
    """
    text = schema_text(kind)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        raise SystemExit(2) from None
