"""`assessengine credential badge` and `credential certificate`: an issued credential as a baked
badge image or a one-page PDF certificate, from the engine's store.

Both go through `api.service.badges` as the HTTP API does (so a revoked credential is refused
the same way) and act as an admin named ``cli:<user>``, like the other credential commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click

from ..adapters.baking import ImageKind
from ..api.service import ServiceError
from ..api.service import badges as badge_service
from ..api.service.credentials import CredentialApi
from .credential_cmd import credential
from .credential_options import (
    EXIT_REFUSED,
    base_url_option,
    cli_admin,
    credential_api,
    credential_settings,
    db_option,
    key_option,
)


@credential.command("badge")
@db_option(required=True)
@click.option("--id", "credential_id", required=True, metavar="CREDENTIAL_ID")
@click.option("--format", "kind", type=click.Choice(["png", "svg"]), default=None,
              help="PNG or SVG (default: from --out's suffix).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Where to write the baked badge (FILE.png or FILE.svg).")
@key_option
@base_url_option
def badge(db: str, credential_id: str, kind: str | None, out: Path, key_file: Path | None,
          base_url: str) -> None:  # fmt: skip
    """Write the credential baked into its badge image (Open Badges 3.0 baking): a PNG with an
    openbadgecredential iTXt chunk or an SVG with an openbadges:credential element. A policy's
    own image comes only in its own kind; a generated badge in both. `credential verify FILE`
    reads it back. Exit 1 for an unknown or revoked credential."""
    chosen = kind or out.suffix.lower().lstrip(".")
    if chosen not in ("png", "svg"):
        raise click.BadParameter("give --format png|svg, or an --out ending in .png or .svg",
                                 param_hint="--format")  # fmt: skip
    image_kind: ImageKind = "png" if chosen == "png" else "svg"
    with credential_api(db, key_file, credential_settings(base_url)) as api:
        try:
            held = api.credential_by_id(cli_admin(), credential_id)
            image = badge_service.baked_badge(api, cli_admin(), held.learner, held.id, image_kind)
        except ServiceError as error:
            _refused(error)
    out.write_bytes(image.data)
    click.echo(f"baked {held.id} into {out} ({image.kind.upper()}, {len(image.data)} bytes)")


@credential.command("certificate")
@db_option(required=True)
@click.option("--id", "credential_id", required=True, metavar="CREDENTIAL_ID")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.pdf", help="Where to write the PDF.")
@click.option("--name", "learner_name", metavar="TEXT",
              help="The learner's name to print (default: the learner id).")
@click.option("--public-url", metavar="URL",
              help="Where the QR code points (default: the credential's page on --base-url).")
@key_option
@base_url_option
def certificate(db: str, credential_id: str, out: Path, learner_name: str | None,
                public_url: str | None, key_file: Path | None, base_url: str) -> None:  # fmt: skip
    """Write the credential's one-page PDF certificate: learner, achievement, competencies,
    dates, issuer, and a QR code to the credential's page. Exit 1 for an unknown or revoked
    credential."""
    if learner_name is not None and not learner_name.strip():
        raise click.BadParameter("must not be empty", param_hint="--name")
    with credential_api(db, key_file, credential_settings(base_url)) as api:
        pdf = _certificate(api, credential_id, learner_name, public_url)
    out.write_bytes(pdf)
    click.echo(f"certificate of {credential_id} -> {out} ({len(pdf)} bytes)")


def _certificate(api: CredentialApi, credential_id: str, learner_name: str | None,
                 public_url: str | None) -> bytes:  # fmt: skip
    try:
        held = api.credential_by_id(cli_admin(), credential_id)
        return badge_service.certificate(api, cli_admin(), held.learner, held.id,
                                         learner_name=learner_name, public_url=public_url)
    except ServiceError as error:
        _refused(error)


def _refused(error: ServiceError) -> NoReturn:
    click.echo(f"refused: {error.detail}", err=True)
    raise SystemExit(EXIT_REFUSED)
