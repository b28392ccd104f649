"""`assessengine keys ...`: CURVE key pairs for the ingest socket (attaches itself to `main`);
`keys issuer` is in `keys_issuer_cmd`."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click
import zmq.auth

from ._app import LazyGroup, main

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@main.group(cls=LazyGroup, lazy={"issuer": "keys_issuer_cmd"})
def keys() -> None:
    """Manage keys: CURVE key pairs for the ZeroMQ ingest socket (`keys create`) and the
    Ed25519 key that signs credentials (`keys issuer`)."""


@keys.command("create")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Directory to write the key pair into (created if missing).",
)
@click.option(
    "--name",
    default="engine",
    show_default=True,
    help="Base name of the files: NAME.key (public) and NAME.key_secret (secret).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key pair of that name.")
def create(out: Path, name: str, force: bool) -> None:
    """Create a CURVE key pair: DIR/NAME.key (public) and DIR/NAME.key_secret (secret, mode 600).

    \b
    One pair for the engine, one per client (simulator, tablet gateway):
      assessengine keys create --out keys --name engine
      assessengine keys create --out keys --name sim-01
    The engine needs engine.key_secret and a directory of allowed clients' public .key files;
    each client needs its own .key_secret and the engine's public engine.key.
    Never copy a .key_secret file to another machine than the one it belongs to.
    """
    if not NAME.match(name):
        raise click.BadParameter(
            "use letters, digits, '.', '_' or '-' (at most 64)", param_hint="--name"
        )
    public, secret = out / f"{name}.key", out / f"{name}.key_secret"
    existing = [p for p in (public, secret) if p.exists()]
    if existing and not force:
        raise click.ClickException(f"{existing[0]} exists; use --force to replace the key pair")
    out.mkdir(parents=True, exist_ok=True)
    for path in existing:
        path.unlink()
    previous = os.umask(0o077)  # the secret is never readable by others, not even briefly
    try:
        zmq.auth.create_certificates(out, name)
    finally:
        os.umask(previous)
    public.chmod(0o644)
    secret.chmod(0o600)
    public_key, _ = zmq.auth.load_certificate(public)
    click.echo(f"public key  {public}  ({public_key.decode()})")
    click.echo(f"secret key  {secret}  (keep it private)")
