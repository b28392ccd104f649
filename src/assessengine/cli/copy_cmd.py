"""`assessengine copy --from URL --to URL`: a whole store into another (the engine's sessions,
then the HTTP app's reviews, tokens, audit log and credentials)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing

import click

from ..storage import open_existing, open_store, parse_url
from ..storage.copy import Copied, copy_rest, copy_store, refresh_statistics
from ..storage.copy_tables import TableCopied
from ..storage.port import StoreError
from ._app import main

EXIT_FAILED = 1
PROGRESS_SESSIONS = 1000  # sessions between two progress lines of a long copy


@main.command("copy")
@click.option("--from", "source", required=True, metavar="PATH|URL",
              help="The store to copy: a SQLite file (PATH, sqlite:///PATH) or postgresql://...")
@click.option("--to", "target", required=True, metavar="PATH|URL",
              help="The store to copy into (created and migrated when new).")  # fmt: skip
def copy(source: str, target: str) -> None:
    """Copy a whole store into another: every session, its raw batches (byte for byte, so
    every chain value is the same), decisions, reports, closes, and the times the source
    recorded (opened, received, closed, decided, reported); then the HTTP app's tables
    (tokens, rubric versions, re-scorings, observations, overrides, outcomes, audit log,
    status lists, issued credentials, revocations, published status lists) with their keys.

    \b
    Running it again adds only what the source gained since: nothing is duplicated. A
    target holding other data under a session's id, or under a row's key, is refused,
    naming the session, or the table and the key. Stop the engine and the HTTP API writing
    to the source first, or run the copy again once they have stopped. The issuer key is
    not in the store: serve the target with the source's (--issuer-key).

    \b
    Exit status: 0 when everything was copied; 1 when a session or a row could not be (the
    message names it; what came before it is copied); 2 when a store cannot be opened.

    \b
    Example:
      assessengine copy --from engine.db --to postgresql://assess@db.example/assess
    """
    if parse_url(source) == parse_url(target):
        raise click.UsageError("--from and --to name the same store")
    with closing(open_existing(source, recover=False)) as src, \
            closing(open_store(target)) as dst:  # fmt: skip
        try:
            copied = copy_store(src, dst, progress=_session_progress())
            sessions = [record.info.session for record in src.sessions()]
        except StoreError as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(EXIT_FAILED) from None
    click.echo(_summary(copied, parse_url(target)))
    try:
        tables = copy_rest(source, target, sessions, progress=_table_progress)
        analyzed = refresh_statistics(target)
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    added, updated = sum(t.added for t in tables), sum(t.updated for t in tables)
    click.echo(f"copied the HTTP app's tables: {added:,} row(s) added, {updated:,} updated")
    if analyzed:
        click.echo("refreshed the target's planner statistics (ANALYZE)")


def _table_progress(done: TableCopied) -> None:
    if not done.finished:
        click.echo(f"  {done.table}: {done.read:,} row(s) read so far, {done.added:,} added, "
                   f"{done.updated:,} updated")  # fmt: skip
        return
    click.echo(f"  {done.table}: {done.added:,} row(s) added, {done.updated:,} updated")


def _session_progress() -> Callable[[str, Copied], None]:
    """Prints a line after every `PROGRESS_SESSIONS` sessions of a long copy."""
    seen = 0

    def report(session: str, copied: Copied) -> None:
        nonlocal seen
        seen += 1
        if seen % PROGRESS_SESSIONS == 0:
            click.echo(f"  sessions: {seen:,} read so far, {copied.sessions:,} new, "
                       f"{copied.batches:,} batch(es) added")  # fmt: skip

    return report


def _summary(copied: Copied, target: object) -> str:
    return (
        f"copied into {target}: {copied.sessions:,} new session(s), {copied.batches:,} "
        f"batch(es) ({copied.payload_bytes / 1e6:,.1f} MB of payload), {copied.decisions:,} "
        f"decision(s), {copied.reports:,} report(s), {copied.closed:,} close(s)"
    )
