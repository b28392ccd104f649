"""`assessengine site add / list / remove`: sites and a hub on PostgreSQL logical replication
(docs/operations.md, "Several sites"). The SQL is `storage.replication`'s; this module parses
flags and prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

import click

from ._app import main

if TYPE_CHECKING:
    from ..storage.replication import Site, SiteStep

T = TypeVar("T")
EXIT_USAGE = 2

HUB_OPTION = click.option("--hub", required=True, metavar="URL",
                          help="The hub's database: postgresql://USER:PASSWORD@HOST:PORT/DBNAME "
                          "(the sites' servers connect to it with this URL too).")  # fmt: skip


def _run(call: Callable[[ModuleType], T]) -> T:
    """`call(storage.replication)`; a ReplicationError is one line on stderr and exit status
    2. The module is imported here, when a command runs: it needs psycopg (the ``postgres``
    extra), and listing the commands must not."""
    from ..storage import replication  # noqa: PLC0415

    try:
        return call(replication)
    except replication.ReplicationError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None


@main.group("site")
def site() -> None:
    """Sites that replicate to a hub (PostgreSQL logical replication).

    \b
    Each site runs its own engine on its own PostgreSQL database, with site_id set to the
    site's name (ASSESSENGINE_SITE_ID=NAME); the hub's database receives every site's
    sessions, batches, reports, reviews, audit entries and credentials, and serves them
    (assessengine serve --no-ingest --db HUB_URL). Reviews made at the hub go back to the
    site that owns the session. Both servers need wal_level = logical.
    """


@site.command("add")
@HUB_OPTION
@click.option("--site", "site_url", required=True, metavar="URL",
              help="The site's database (the hub's server connects to it with this URL).")
@click.option("--name", required=True, metavar="NAME",
              help="The site's name: its engine's site_id (a-z 0-9 _, up to 32).")  # fmt: skip
def add(hub: str, site_url: str, name: str) -> None:
    """Join a site's database to the hub: ids get the site's range, the hub copies what the
    site holds and follows it from then on, and the hub's reviews of the site's sessions
    flow back to it.

    \b
    Example:
      assessengine site add --hub postgresql://repl:PW@hub.example/assess \\
          --site postgresql://repl:PW@north.example/assess --name north
    """
    number: int = _run(lambda r: r.add_site(hub, site_url, name))
    click.echo(f"site {name} added (site number {number}); the hub is copying what it holds")


@site.command("list")
@HUB_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per site, in a list.")
def list_(hub: str, as_json: bool) -> None:
    """The hub's sites and how their replication stands: whether the hub receives from each
    (and when it last heard from it), its replication errors, and whether the site
    receives the hub's reviews (bytes of hub WAL it has not confirmed yet)."""
    sites: list[Site] = _run(lambda r: r.list_sites(hub))
    if as_json:
        click.echo(json.dumps([_row(s) for s in sites], indent=2))
        return
    if not sites:
        click.echo("no sites")
        return
    for s in sites:
        state = "receiving" if s.receiving else ("disabled" if not s.enabled else "NOT receiving")
        back = "sending reviews" if s.sending else "NOT connected for reviews"
        click.echo(f"{s.name} (#{s.number}) {s.site}: {state}, last message "
                   f"{s.last_message or 'never'}, {s.apply_errors} error(s); {back}"
                   f"{'' if s.unsent_bytes is None else f', {s.unsent_bytes} byte(s) behind'}")


def _row(s: Site) -> dict[str, object]:
    return {"name": s.name, "number": s.number, "enabled": s.enabled, "site": s.site,
            "receiving": s.receiving, "last_message": s.last_message,
            "errors": s.apply_errors, "sending": s.sending, "unsent_bytes": s.unsent_bytes}


@site.command("remove")
@HUB_OPTION
@click.option("--name", required=True, metavar="NAME", help="The site's name.")
def remove(hub: str, name: str) -> None:
    """Stop replicating a site (its subscription and publication at both ends). The hub
    keeps every row it received; the site keeps running on its own."""
    left: list[str] = _run(lambda r: r.remove_site(hub, name))
    click.echo(f"site {name} removed")
    for line in left:
        click.echo(f"warning: {line}", err=True)


@site.command("refresh")
@HUB_OPTION
def refresh(hub: str) -> None:
    """After an upgrade (the hub first, then the sites): migrate the hub and every site,
    bring each publication to the tables this version replicates, and have the
    subscriptions pick them up. Prints one line per site; a site out of reach is a warning
    (run it again later) and exit status 1."""
    _report(_run(lambda r: r.refresh_sites(hub)))


@site.command("failover")
@HUB_OPTION
def failover(hub: str) -> None:
    """After the hub's standby was promoted (pg_ctl promote): point every site at it (--hub
    is the promoted server, as the sites' servers reach it). Its subscriptions to the sites
    go on by themselves; this makes each site's slot there and moves the site's
    subscription for the hub's reviews. Prints one line per site; a site out of reach is a
    warning (run it again later) and exit status 1."""
    _report(_run(lambda r: r.fail_over(hub)))


def _report(steps: list[SiteStep]) -> None:
    """One line per site (on stderr as a warning when not done); exit 1 if any was not."""
    if not steps:
        click.echo("no sites")
    for step in steps:
        if step.done:
            click.echo(f"site {step.name}: {step.text}")
        else:
            click.echo(f"warning: site {step.name}: {step.text}", err=True)
    if not all(step.done for step in steps):
        raise SystemExit(1)
