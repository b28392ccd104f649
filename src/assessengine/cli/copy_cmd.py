"""`assessengine copy --from URL --to URL`: every session of one store into another."""

from __future__ import annotations

from contextlib import closing

import click
import sqlalchemy as sa

from ..adapters.store import StoreError
from ..storage import open_existing, open_store, parse_url
from ..storage.copy import Copied, copy_store, copy_times
from ..storage.engines import engine_for
from ._app import main

EXIT_FAILED = 1


@main.command("copy")
@click.option("--from", "source", required=True, metavar="PATH|URL",
              help="The store to copy: a SQLite file (PATH, sqlite:///PATH) or postgresql://...")
@click.option("--to", "target", required=True, metavar="PATH|URL",
              help="The store to copy into (created and migrated when new).")  # fmt: skip
def copy(source: str, target: str) -> None:
    """Copy every session of one store into another: sessions, raw batches (byte for byte,
    so every chain value is the same), decisions, reports, closes, and the times the source
    recorded (opened, received, closed, decided, reported).

    \b
    Running it again adds only what the source gained since: nothing is duplicated. A
    target holding other data under a session's id is refused, naming the session. Stop the
    engine writing to the source first, or run the copy again once it has stopped.

    \b
    Exit status: 0 when everything was copied; 1 when a session could not be (the message
    names it; the sessions before it are copied); 2 when a store cannot be opened.

    \b
    Example:
      assessengine copy --from engine.db --to postgresql://assess@db.example/assess
    """
    if parse_url(source) == parse_url(target):
        raise click.UsageError("--from and --to name the same store")
    with closing(open_existing(source, recover=False)) as src, \
            closing(open_store(target)) as dst:  # fmt: skip
        try:
            copied = copy_store(src, dst)
            sessions = [record.info.session for record in src.sessions()]
        except StoreError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(EXIT_FAILED) from None
    try:
        copy_times(engine_for(source), engine_for(target), sessions)
    except sa.exc.SQLAlchemyError as exc:
        click.echo(f"error: copying the recorded times: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    click.echo(_summary(copied, parse_url(target)))


def _summary(copied: Copied, target: object) -> str:
    return (
        f"copied into {target}: {copied.sessions:,} new session(s), {copied.batches:,} "
        f"batch(es) ({copied.payload_bytes / 1e6:,.1f} MB of payload), {copied.decisions:,} "
        f"decision(s), {copied.reports:,} report(s), {copied.closed:,} close(s)"
    )
