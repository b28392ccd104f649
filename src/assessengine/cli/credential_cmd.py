"""`assessengine credential ...` and `assessengine keys issuer`: microcredentials from the CLI.

Thin wrappers over `credential_service.CredentialService` and `credential_verify.verify`;
the HTTP API wraps the same calls. Settings come from options or the environment
(``ASSESSENGINE_ISSUER_KEY``, ``ASSESSENGINE_BASE_URL``, ``ASSESSENGINE_ISSUER_NAME``,
``ASSESSENGINE_ISSUER_URL``), read here only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..adapters.credential_store import CredentialStoreError, SqliteCredentialStore
from ..adapters.policies import check_policy_file, load_policy
from ..adapters.signer import IssuerKey
from ..adapters.sqlite_store import SqliteStore
from ..adapters.store import StoreError
from ..core.credentials import CredentialError
from ..core.policy import Policy, PolicyError
from ..credential_service import (
    DEFAULT_BASE_URL,
    AlreadyIssuedError,
    CredentialService,
    EngineUrls,
    NotEligibleError,
)
from ..credential_verify import verify
from ._app import main
from .keys_cmd import keys

EXIT_REFUSED = 1  # not eligible, invalid credential, unknown credential


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
def issuer_key(out: Path, force: bool) -> None:
    """Create the Ed25519 key that signs credentials; prints its did:key (the issuer id).

    \b
      assessengine keys issuer --out issuer.pem
      assessengine credential issue --key issuer.pem ...
    Keep the file private and backed up: credentials verify against its did:key forever.
    """
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
    click.echo(f"issuer id   {key.did}")


@main.group()
def credential() -> None:
    """Issue, verify and revoke Open Badges 3.0 microcredentials.

    \b
    A credential policy (credentials/<id>.yaml) says what a learner must pass; the engine
    checks the learner's sessions in its store against it and signs the credential:
      assessengine keys issuer --out issuer.pem
      assessengine credential issue --db engine.db --learner L-1 --policy forklift-operator \\
          --key issuer.pem --out L-1.json
      assessengine credential status-list --db engine.db --key issuer.pem --out status-1.json
      assessengine credential verify L-1.json --status-list status-1.json
      assessengine credential revoke --db engine.db --id urn:uuid:... --reason "..."
    See docs/credentials.md.
    """


def _db_option(function: Any) -> Any:
    return click.option(
        "--db",
        "db",
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        metavar="PATH",
        help="The engine's store (SQLite file).",
    )(function)


def _key_option(function: Any) -> Any:
    return click.option(
        "--key",
        "key_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar="ASSESSENGINE_ISSUER_KEY",
        metavar="FILE",
        help="Issuer key (from `keys issuer`); env ASSESSENGINE_ISSUER_KEY.",
    )(function)


def _issuer_options(function: Any) -> Any:
    function = click.option(
        "--issuer-url",
        envvar="ASSESSENGINE_ISSUER_URL",
        metavar="URL",
        help="The issuer's home page; default: the base URL. Env ASSESSENGINE_ISSUER_URL.",
    )(function)
    function = click.option(
        "--issuer-name",
        envvar="ASSESSENGINE_ISSUER_NAME",
        default="assessengine",
        show_default=True,
        help="The issuer's name in credentials; env ASSESSENGINE_ISSUER_NAME.",
    )(function)
    return click.option(
        "--base-url",
        envvar="ASSESSENGINE_BASE_URL",
        default=DEFAULT_BASE_URL,
        show_default=True,
        metavar="URL",
        help="The engine's public URL (sessions, status lists); env ASSESSENGINE_BASE_URL.",
    )(function)


@credential.command("issue")
@_db_option
@click.option("--learner", required=True, metavar="ID", help="The learner's id.")
@click.option("--policy", "policy_ref", required=True, metavar="ID|FILE", help="Policy id or file.")
@_key_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the credential here (default: standard output).",
)
@_issuer_options
def issue(
    db: Path,
    learner: str,
    policy_ref: str,
    key_file: Path | None,
    out: Path | None,
    base_url: str,
    issuer_name: str,
    issuer_url: str | None,
) -> None:
    """Issue a signed credential to LEARNER when their sessions meet the policy.

    Exit 1 with what is missing when they do not (or when they already hold one).
    """
    policy = _policy(policy_ref)
    key = _key(key_file)
    with _service(db, key, base_url, issuer_name, issuer_url) as service:
        try:
            issued = service.issue(learner, policy)
        except NotEligibleError as refusal:
            click.echo(f"not eligible: {learner} for {policy.policy}", err=True)
            for reason in refusal.reasons:
                click.echo(f"  - {reason}", err=True)
            raise SystemExit(EXIT_REFUSED) from None
        except AlreadyIssuedError as refusal:
            click.echo(f"refused: {refusal}", err=True)
            raise SystemExit(EXIT_REFUSED) from None
        except CredentialError as error:
            raise click.ClickException(str(error)) from None
    text = json.dumps(issued.document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
    until = issued.valid_until.strftime("%Y-%m-%d") if issued.valid_until else "no expiry"
    click.echo(
        f"issued {issued.id} to {learner} ({policy.policy}), valid until {until},"
        f" status list {issued.status.list_id} index {issued.status.index}"
        + (f" -> {out}" if out else ""),
        err=True,
    )


@credential.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--status-list",
    "status_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The issuer's published status list credential (else revocation is not checked).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def verify_command(file: Path, status_file: Path | None, as_json: bool) -> None:
    """Verify a credential offline: proof, schema, validity period, revocation status.

    Exit 0 when no check failed (a skipped check does not fail), else 1.
    """
    document = _read_json(file)
    status_list = _read_json(status_file) if status_file else None
    if status_file is not None and not isinstance(status_list, dict):
        raise click.BadParameter("not a JSON object", param_hint="--status-list")
    result = verify(document, status_list=status_list)
    if as_json:
        click.echo(json.dumps(result.to_data(), indent=2))
    else:
        for check in result.checks:
            status = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[check.status]
            click.echo(f"{status:<8} {check.name:<10} {check.detail}")
        click.echo("valid" if result.ok else "INVALID")
    if not result.ok:
        raise SystemExit(EXIT_REFUSED)


@credential.command("revoke")
@_db_option
@click.option("--id", "credential_id", required=True, metavar="CREDENTIAL_ID")
@click.option("--reason", required=True, help="Why (kept with the revocation).")
@click.option("--by", "by", default="admin", show_default=True, help="Who revokes.")
def revoke(db: Path, credential_id: str, reason: str, by: str) -> None:
    """Revoke an issued credential (publish the status list again for verifiers to see it)."""
    with _service(db, None, DEFAULT_BASE_URL, "assessengine", None) as service:
        try:
            revocation = service.revoke(credential_id, reason=reason, by=by)
        except CredentialStoreError as error:
            click.echo(f"refused: {error}", err=True)
            raise SystemExit(EXIT_REFUSED) from None
        issued = service.credentials.issued(credential_id)
    where = f" (status list {issued.status.list_id} index {issued.status.index})" if issued else ""
    click.echo(f"revoked {credential_id}{where} by {revocation.revoked_by}: {revocation.reason}")


@credential.command("status-list")
@_db_option
@_key_option
@click.option("--list", "list_id", default=1, show_default=True, help="Which list.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write it here (default: standard output).",
)
@_issuer_options
def status_list(
    db: Path,
    key_file: Path | None,
    list_id: int,
    out: Path | None,
    base_url: str,
    issuer_name: str,
    issuer_url: str | None,
) -> None:
    """The signed revocation list (BitstringStatusListCredential) to publish at its URL."""
    with _service(db, _key(key_file), base_url, issuer_name, issuer_url) as service:
        try:
            document = service.status_list_credential(list_id)
        except CredentialError as error:
            raise click.ClickException(str(error)) from None
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@credential.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Check credential policy files; prints FILE:LINE:COL: message for each problem."""
    failed = 0
    for file in files:
        result = check_policy_file(file)
        for problem in result.problems:
            click.echo(str(problem))
        failed += not result.ok
        if result.ok:
            click.echo(f"{file}: ok")
    if failed:
        raise SystemExit(EXIT_REFUSED)


# ------------------------------------------------------------------------------ helpers


def _policy(reference: str) -> Policy:
    try:
        return load_policy(reference)
    except PolicyError as error:
        raise click.BadParameter(str(error), param_hint="--policy") from None


def _key(key_file: Path | None) -> IssuerKey:
    if key_file is None:
        raise click.UsageError(
            "no issuer key: pass --key FILE or set ASSESSENGINE_ISSUER_KEY"
            " (make one with `assessengine keys issuer --out FILE`)"
        )
    try:
        return IssuerKey.from_pem(key_file.read_bytes())
    except (ValueError, TypeError, CredentialError) as error:
        raise click.BadParameter(
            f"{key_file}: not an issuer key ({error})", param_hint="--key"
        ) from None


@contextmanager
def _service(
    db: Path, key: IssuerKey | None, base_url: str, issuer_name: str, issuer_url: str | None
) -> Iterator[CredentialService]:
    try:
        urls = EngineUrls(base_url.rstrip("/"))
    except CredentialError as error:
        raise click.BadParameter(str(error), param_hint="--base-url") from None
    try:
        store = SqliteStore(db)
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    try:
        with SqliteCredentialStore(db) as credentials:
            yield CredentialService(
                store,
                credentials,
                key=key,
                issuer_name=issuer_name,
                issuer_url=issuer_url,
                urls=urls,
            )
    except (CredentialStoreError, StoreError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        store.close()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise click.BadParameter(f"{path}: not a JSON file ({error})") from None
