"""`assessengine backup`: a consistent copy of a store while the engine runs."""

from __future__ import annotations

from pathlib import Path

import click

from ..storage.backup import backup_store
from ..storage.port import StoreError
from ._app import main

EXIT_USAGE = 2


@main.command("backup")
@click.option(
    "--db",
    "db_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The store to copy (the engine may keep running).",
)
@click.argument("target", type=click.Path(path_type=Path))
def backup(db_path: Path, target: Path) -> None:
    """Copy the store at --db into TARGET, a new file, and its payload files into the folder
    TARGET-payloads/ beside it.

    The copy is consistent while the engine writes: SQLite's online backup takes a snapshot
    of the database, then the payload bytes that snapshot names are copied (payload files
    only grow). Everything is synced to disk before the command ends. A plain ``cp`` of the
    database is not a backup: it misses the WAL's latest transactions and every payload.

    \b
    Exit status: 0 done; 2 when the store cannot be read or TARGET exists.

    \b
    Example:
      assessengine backup --db /var/lib/assessengine/engine.db /backup/engine-2026-11-28.db
      assessengine audit S-0042 --db /backup/engine-2026-11-28.db
    """
    shown = -1

    def progress(copied: int, total: int) -> None:
        nonlocal shown
        percent = copied * 100 // max(total, 1)
        if percent // 10 != shown // 10:
            shown = percent
            click.echo(f"payloads: {copied / 1e6:,.0f} of {total / 1e6:,.0f} MB", err=True)

    try:
        result = backup_store(db_path, target, progress)
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    click.echo(
        f"backed up {result.sessions:,} sessions, {result.batches:,} batches and "
        f"{result.payload_bytes / 1e6:,.1f} MB of payloads in {result.segments} file(s) "
        f"to {result.path}"
    )
