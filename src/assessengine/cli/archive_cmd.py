"""`assessengine archive export|verify`: closed sessions to Parquet, and checking an archive."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path

import click

from ..adapters.library import load_scenario
from ..archive.export import export
from ..archive.layout import require_manifest
from ..archive.location import ArchiveError, ArchiveRoot, ArchiveUnreachableError, s3_options
from ..archive.verify import verify
from ..core.scenario import Scenario
from ..storage import open_existing
from ..storage.port import StoreError
from ._app import main, scenario_dirs_option
from .where import moment

EXIT_FAILED = 1
EXIT_USAGE = 2


def open_root(url: str) -> ArchiveRoot:
    """The archive at `url`, with S3 options from the standard AWS environment variables."""
    try:
        return ArchiveRoot.open(url, storage_options=s3_options(os.environ))
    except ArchiveError as exc:
        raise click.UsageError(str(exc)) from None


def scenario_loader(scenario_dirs: tuple[Path, ...]) -> Callable[[str], Scenario]:
    cache: dict[str, Scenario] = {}

    def load(scenario_id: str) -> Scenario:
        if scenario_id not in cache:
            cache[scenario_id] = load_scenario(scenario_id, scenario_dirs=scenario_dirs)
        return cache[scenario_id]

    return load


def parse_since(value: str | None, flag: str = "--since") -> datetime | None:
    """An ISO date or date-time (UTC unless it says otherwise); UsageError when not."""
    return None if value is None else moment(value, flag)


def fail(exc: Exception) -> SystemExit:
    """Print `exc` as one line; the exit status says whether the run could not start (2: the
    archive or store unreachable) or found a problem (1)."""
    click.echo(f"error: {exc}", err=True)
    return SystemExit(EXIT_USAGE if isinstance(exc, ArchiveUnreachableError) else EXIT_FAILED)


@main.group("archive")
def archive() -> None:
    """Closed sessions as Parquet on a disk or S3-compatible storage (see docs/operations.md).

    \b
    assessengine archive export --db engine.db --out archive/
    assessengine archive verify archive/ --db engine.db
    """


@archive.command("export")
@click.option("--db", "db_url", required=True, metavar="PATH|URL",
              help="The store: a SQLite file (PATH, sqlite:///PATH) or postgresql://...")
@click.option("--out", "out", required=True, metavar="DIR|s3://BUCKET/PREFIX",
              help="The archive: a directory (created if missing) or an S3 prefix.")
@click.option("--since", "since", metavar="ISO-DATE",
              help="Only sessions closed at or after this date (UTC unless it says).")
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
@scenario_dirs_option
def export_cmd(db_url: str, out: str, since: str | None, quiet: bool,
               scenario_dirs: tuple[Path, ...]) -> None:  # fmt: skip
    """Archive the store's closed sessions as Parquet (zstd): one events table per scenario,
    partitioned by scenario and day, and a sessions table (learner, rubric, times, stored
    report, chain head).

    \b
    Each session's hash chain is checked while its batches are read; a session whose chain
    does not hold, or whose batches do not decode, is refused by name and not archived (the
    others are). Sessions already archived are skipped: running it again writes nothing new.
    New files are written under temporary names and only the manifest, written last, makes
    them part of the archive.

    \b
    Object storage: s3://BUCKET/PREFIX with the standard AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL (an S3-compatible server).

    \b
    Exit status: 0 when every closed session is archived; 1 when some were refused (named
    on stderr), 2 when the store or the archive cannot be reached.
    """
    root = open_root(out)
    moment = parse_since(since)
    with closing(open_existing(db_url, read_only=True)) as store:
        try:
            result = export(store, root, load_scenario=scenario_loader(scenario_dirs),
                            since=moment, progress=None if quiet else _progress())  # fmt: skip
        except (ArchiveError, StoreError) as exc:
            if not quiet:
                click.echo("", err=True)
            raise fail(exc) from None
    if not quiet:
        click.echo("", err=True)
    for session, why in result.refused.items():
        click.echo(f"refused: {why}" if session in why else f"refused {session!r}: {why}",
                   err=True)  # fmt: skip
    per_event = result.bytes / result.events if result.events else 0.0
    rate = result.events / result.seconds if result.seconds else 0.0
    click.echo(f"archived {result.sessions} session(s), {result.events} events in "
               f"{len(result.files)} file(s), {result.bytes} bytes ({per_event:.1f} bytes/event, "
               f"{rate:,.0f} events/s); {result.skipped} already archived; "
               f"{len(result.refused)} refused -> {root.where()}")  # fmt: skip
    if result.refused:
        raise SystemExit(EXIT_FAILED)


def _progress() -> Callable[[int], None]:
    def show(done: int) -> None:
        if done % 100 == 0:
            click.echo(f"\r{done} session(s) exported", nl=False, err=True)

    return show


@archive.command("verify")
@click.argument("url", metavar="DIR|URL")
@click.option("--db", "db_url", metavar="PATH|URL",
              help="Also check every archived session's chain head against this store.")
@scenario_dirs_option
def verify_cmd(url: str, db_url: str | None, scenario_dirs: tuple[Path, ...]) -> None:
    """Check an archive: every file its manifest lists is there with its size, every
    session's rows give its events digest, and (with --db) every archived session's chain
    head equals the store's.

    \b
    Exit status: 0 when all holds; 1 when something does not (each problem on a line);
    2 when the archive or the store cannot be reached.
    """
    root = open_root(url)
    try:
        manifest = require_manifest(root)
        if db_url is None:
            result = verify(root, manifest, load_scenario=scenario_loader(scenario_dirs))
        else:
            with closing(open_existing(db_url, read_only=True)) as store:
                result = verify(root, manifest, load_scenario=scenario_loader(scenario_dirs),
                                store=store)  # fmt: skip
    except (ArchiveError, StoreError) as exc:
        raise fail(exc) from None
    for note in result.notes:
        click.echo(f"note: {note}")
    for problem in result.problems:
        click.echo(f"problem: {problem}")
    state = "ok" if result.ok else f"FAILED ({len(result.problems)} problem(s))"
    checked = " and the store's chain heads" if db_url else ""
    click.echo(f"archive {root.where()}: {result.files} file(s), {result.sessions} session(s), "
               f"{result.events} events{checked}: {state}")  # fmt: skip
    if not result.ok:
        raise SystemExit(EXIT_FAILED)
