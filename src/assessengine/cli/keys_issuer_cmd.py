"""`assessengine keys issuer`: the Ed25519 key that signs credentials (attaches itself to the
`keys` group, whose registry names this module)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..adapters.did_web import DidWebError, did_document, did_document_url, did_web
from ..adapters.issuer import read_public_key
from ..adapters.signer import IssuerKey
from ..core.credentials import CredentialError
from ._app import EXIT_INPUT
from .keys_cmd import keys


@keys.command("issuer")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="File to write the private key to (PKCS#8 PEM, mode 600).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--did-web", "did_web_host", metavar="HOST", default=None,
              help="Issue as did:web:HOST instead of did:key: also writes the DID document to "
              "publish at https://HOST/.well-known/did.json.")  # fmt: skip
@click.option("--retired", "retired", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="With --did-web: a key signed with before (PEM; repeat it). It stays in the "
              "DID document, so credentials it signed keep verifying after a rotation.")
@click.option("--did-document", "did_document_out", metavar="FILE", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Where --did-web writes the DID document (default: did.json beside --out).")
def issuer_key(out: Path, force: bool, did_web_host: str | None, retired: tuple[Path, ...],
               did_document_out: Path | None) -> None:  # fmt: skip
    """Create the Ed25519 key that signs credentials; prints its did:key (the issuer id).

    \b
      assessengine keys issuer --out issuer.pem
      assessengine credential issue --issuer-key issuer.pem ...
      assessengine keys issuer --out issuer-2.pem --did-web engine.example.org \\
          --retired issuer.pem
    Keep the file private and backed up: credentials verify against its did:key forever
    (with --did-web: as long as the DID document that lists it is published). `serve` issues
    under the did:web and serves the DID document itself with ASSESSENGINE_ISSUER_DID_WEB=HOST
    (and ASSESSENGINE_ISSUER_RETIRED_KEYS=OLD.pem after a rotation): docs/credentials.md.
    """
    did: str | None = None
    document_path: Path | None = None
    keys: list[bytes] = []
    if did_web_host is not None:
        did, document_path, keys = _did_web_plan(did_web_host, retired, did_document_out, out)
    elif retired or did_document_out is not None:
        click.echo("error: --retired and --did-document go with --did-web", err=True)
        raise SystemExit(EXIT_INPUT)
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; use --force to replace it")
    key = IssuerKey.generate()
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(out, flags, 0o600)  # never readable by others, not even briefly
    with os.fdopen(descriptor, "wb") as file:
        file.write(key.to_pem())
    out.chmod(0o600)
    click.echo(f"issuer key  {out}  (keep it private)")
    if did is None or document_path is None:
        click.echo(f"issuer id   {key.did}")
        return
    document = did_document(did, [key.public_key, *keys])
    document_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    click.echo(f"issuer id   {did}")
    click.echo(f"DID document  {document_path}  (publish it at {did_document_url(did)}; "
               f"{len(keys)} retired key(s) kept in it)")


def _did_web_plan(host: str, retired: tuple[Path, ...], document: Path | None, out: Path,
                  ) -> tuple[str, Path, list[bytes]]:  # fmt: skip
    """The did:web, where its document goes and the retired public keys; one line and exit 2
    for a host that cannot be a did:web or a retired key file that is not a key."""
    try:
        did = did_web(host)
        keys = [read_public_key(path) for path in retired]
    except (DidWebError, ValueError, TypeError, OSError, CredentialError) as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(EXIT_INPUT) from None
    return did, document or out.with_name("did.json"), keys

