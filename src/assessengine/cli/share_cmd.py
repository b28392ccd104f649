"""`assessengine credential share`, `credential hide` and `credential expiring`: a credential's
public page link and the credentials that expire soon, from the engine's store.

They go through the same services as ``PUT``/``DELETE /api/v1/credentials/{id}/share`` and
``GET /api/v1/credentials/expiring`` (`api.service.public_credentials`,
`CredentialApi.expiring`), audited the same way, acting as an admin named ``cli:<user>`` like
the other credential commands.
"""

from __future__ import annotations

import json

import click

from ..api.credential_routes import MAX_EXPIRING_DAYS
from ..api.service import ServiceError
from ..api.service.public_credentials import PublicCredentials
from ..credential_service import DEFAULT_BASE_URL
from .credential_cmd import credential
from .credential_options import (
    base_url_option,
    cli_admin,
    credential_api,
    credential_settings,
    db_option,
    refuse,
)


@credential.command("share")
@db_option(required=True)
@click.option("--id", "credential_id", required=True, metavar="CREDENTIAL_ID")
@click.option("--by", "by", default=None, help="Who shares it (default: cli:<user>).")
@base_url_option
def share(db: str, credential_id: str, by: str | None, base_url: str) -> None:
    """Share a credential's public page (no sign-in needed) and print its URL: the active
    link, or a new one never used before when it was hidden. Exit 1 for an unknown
    credential."""
    with credential_api(db, None, credential_settings(base_url)) as api:
        try:
            out = PublicCredentials(api).share(cli_admin(by), credential_id)
        except ServiceError as error:
            refuse(error, credential_id)
    click.echo(f"shared {out.credential}: {out.url}")


@credential.command("hide")
@db_option(required=True)
@click.option("--id", "credential_id", required=True, metavar="CREDENTIAL_ID")
@click.option("--by", "by", default=None, help="Who hides it (default: cli:<user>).")
def hide(db: str, credential_id: str, by: str | None) -> None:
    """Hide a credential's public page for good: its link, subject and evidence IRIs answer
    404 from now on (`credential share` makes a new link). Exit 1 for an unknown
    credential."""
    with credential_api(db, None, credential_settings(DEFAULT_BASE_URL)) as api:
        try:
            out = PublicCredentials(api).hide(cli_admin(by), credential_id)
        except ServiceError as error:
            refuse(error, credential_id)
    click.echo(f"hidden {out.credential}: its public page answers 404 from now on")


@credential.command("expiring")
@db_option(required=True)
@click.option("--within-days", "within_days", default=90, show_default=True,
              type=click.IntRange(1, MAX_EXPIRING_DAYS),
              help="How far ahead to look, in days.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def expiring(db: str, within_days: int, as_json: bool) -> None:
    """List the active credentials that expire within N days and are not renewed yet, soonest
    first (as GET /api/v1/credentials/expiring): whom to schedule for a refresher."""
    with credential_api(db, None, credential_settings(DEFAULT_BASE_URL)) as api:
        try:
            found = api.expiring(cli_admin(), within_days)
        except ServiceError as error:
            refuse(error, "expiring credentials")
    if as_json:
        click.echo(json.dumps([item.model_dump(mode="json") for item in found], indent=2))
        return
    for item in found:
        renew = "renewable now" if item.renewable_now else (
            f"renewable from {item.renewal_opens:%Y-%m-%d}" if item.renewal_opens
            else "not renewable")  # fmt: skip
        click.echo(f"{item.valid_until:%Y-%m-%d}  {item.days_left:>4} days  {item.learner}  "
                   f"{item.policy}  {item.id}  ({renew})")  # fmt: skip
    click.echo(f"{len(found)} credential(s) expire within {within_days} days", err=True)
