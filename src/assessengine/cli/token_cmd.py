"""`assessengine token ...`: API tokens for the HTTP API (attaches itself to `main`).

Only a token's sha256 is stored (in the store file's review tables); the token itself is
printed once, when it is created.
"""

from __future__ import annotations

import getpass
import json

import click

from ..api.service import ROLES, InvalidError, NotFoundError, ReviewService
from ..storage.port import StoreError
from ._app import main

DB_OPTION = click.option(
    "--db",
    "db_path",
    required=True,
    metavar="URL",
    help="The engine's store: a SQLite file (created if missing), sqlite:///PATH or "
    "postgresql://USER@HOST/DBNAME.",
)


def actor() -> str:
    """Who runs the CLI, as the audit log names them: ``cli:<user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _open(db_path: str) -> ReviewService:
    try:
        return ReviewService.open(db_path)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def token() -> None:
    """Manage API tokens (roles: admin, trainer, assessor, learner).

    \b
      assessengine token create --role assessor --name "Sam (tablet)" --db engine.db
      assessengine token list --db engine.db
      assessengine token revoke tok_1a2b3c4d5e6f --db engine.db
    """


@token.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the token may do.")
@click.option("--name", required=True, help="Who or what holds it (shown in the audit log).")
@click.option("--learner", default=None, help="The learner id (role learner only).")
@DB_OPTION
def create(role: str, name: str, learner: str | None, db_path: str) -> None:
    """Create a token and print it ONCE (only its hash is kept: store it now).

    Send it as 'Authorization: Bearer <token>'. A learner token needs --learner: it sees only
    that learner's sessions and history.
    """
    service = _open(db_path)
    try:
        row, secret = service.create_token(name=name, role=role, learner=learner, actor=actor())
    except InvalidError as exc:
        raise click.UsageError(exc.detail) from None
    finally:
        service.close()
    click.echo(secret)
    learner_note = f", learner {row.learner}" if row.learner else ""
    click.echo(f"created {row.id} ({row.role}{learner_note}) for {row.name!r}; "
               "this is the only time the token is shown", err=True)  # fmt: skip


@token.command("list")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_tokens(db_path: str, as_json: bool) -> None:
    """List tokens (id, role, learner, name, created, revoked); never the secrets."""
    service = _open(db_path)
    try:
        rows = service.tokens()
    finally:
        service.close()
    if as_json:
        click.echo(json.dumps([{"id": r.id, "name": r.name, "role": r.role,
                                "learner": r.learner, "created_at": r.created_at,
                                "revoked_at": r.revoked_at} for r in rows], indent=2))  # fmt: skip
        return
    for r in rows:
        state = f"revoked {r.revoked_at}" if r.revoked_at else "live"
        click.echo(f"{r.id}  {r.role:<8}  {r.learner or '-':<16}  {r.created_at}  {state:<8}  "
                   f"{r.name}")  # fmt: skip


@token.command("revoke")
@click.argument("token_id")
@DB_OPTION
def revoke(token_id: str, db_path: str) -> None:
    """Revoke the token with id (or name) TOKEN_ID; requests with it get 401 from now on."""
    service = _open(db_path)
    try:
        revoked = service.revoke_token(token_id, actor=actor())
    except NotFoundError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        service.close()
    for row in revoked:
        click.echo(f"revoked {row.id} ({row.role}) {row.name!r}")
