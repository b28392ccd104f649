"""`assessengine credential issue`, `verify`, `revoke` and `status-list`: signed
microcredentials from the CLI, through the engine's credential service
(`credential_options`). `credential verify FILE` without ``--db`` is
`credential_verify.verify` offline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from ..adapters.baking import MAX_BAKED_BYTES, BakingError, extract, image_kind
from ..adapters.issuer import key_resolver
from ..api.service import ServiceError
from ..api.service.credentials import EMAIL_PATTERN, MAX_REASON, CredentialSettings, RevokeIn
from ..api.service.public_credentials import PublicCredentials
from ..core.credentials import CredentialError, renewed_credential
from ..credential_verify import VerificationResult, trusted_issuers, verify
from ..errors import LocatedProblem, Location
from ._app import EXIT_INPUT
from .credential_cmd import credential
from .credential_options import (
    EXIT_REFUSED,
    base_url_option,
    cli_admin,
    credential_api,
    credential_settings,
    db_option,
    did_web_options,
    issuer_options,
    key_option,
    policy_named,
    read_issuer_key,
    refuse,
    trust_option,
)


@credential.command("issue")
@db_option(required=True)
@click.option("--learner", required=True, metavar="ID", help="The learner's id.")
@click.option("--policy", "policy_ref", required=True, metavar="ID|FILE", help="Policy id or file.")
@click.option("--email", metavar="ADDRESS", help="The learner's email: the credential carries "
              "its salted sha256 (credentialSubject.identifier), never the address.")
@key_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the credential here (default: standard output).",
)
@issuer_options
@did_web_options
def issue(
    db: str,
    learner: str,
    policy_ref: str,
    email: str | None,
    key_file: Path | None,
    out: Path | None,
    base_url: str,
    issuer_name: str,
    issuer_url: str | None,
    issuer_description: str | None,
    issuer_email: str | None,
    issuer_image: str | None,
    did_web_host: str | None,
    retired: tuple[str, ...],
) -> None:
    """Issue a signed credential to LEARNER when their sessions meet the policy.

    Counts what `serve` counts: the scorer's verdicts plus the observations assessors recorded
    (over HTTP or on the web pages). Exit 1 with what is missing when they do not (or when
    they already hold one).
    """
    policy = policy_named(policy_ref)
    if email is not None and not re.match(EMAIL_PATTERN, email):
        raise click.BadParameter(f"not an email address: {email!r}", param_hint="--email")
    settings = credential_settings(base_url, issuer_name, issuer_url,
                                   did_web=(did_web_host, retired),
                                   profile=(issuer_description, issuer_email, issuer_image))
    with credential_api(db, key_file, settings) as api:
        try:
            issued = api.issue_policy(cli_admin(), learner, policy, email=email)
        except ServiceError as error:
            refuse(error, f"{learner} for {policy.policy}")
        page = PublicCredentials(api).public_url(issued.id)
    text = json.dumps(issued.document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
    until = issued.valid_until.strftime("%Y-%m-%d") if issued.valid_until else "no expiry"
    renewed = renewed_credential(issued.document)
    click.echo(
        f"issued {issued.id} to {learner} ({policy.policy}), valid until {until},"
        + (f" renewing {renewed}," if renewed else "") +
        f" status list {issued.status.list_id} index {issued.status.index}"
        + (f" -> {out}" if out else ""),
        err=True,
    )
    click.echo(f"public page {page}", err=True)


@credential.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option(required=False)
@key_option
@trust_option
@base_url_option
@click.option(
    "--status-list",
    "status_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The issuer's published status list credential (else, with --db, the engine's "
    "current list; without, revocation is not checked).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--trusted-did-document", "partners", multiple=True, metavar="FILE",
              envvar="ASSESSENGINE_TRUSTED_DID_DOCUMENTS",
              help="A partner did:web issuer's DID document (its did.json; repeatable): its "
              "credentials are valid here, by the keys it lists (nothing is fetched); env "
              "ASSESSENGINE_TRUSTED_DID_DOCUMENTS (files separated by commas or spaces).")
@did_web_options
def verify_command(
    file: Path,
    db: str | None,
    key_file: Path | None,
    trusted: tuple[str, ...],
    base_url: str,
    status_file: Path | None,
    as_json: bool,
    partners: tuple[str, ...],
    did_web_host: str | None,
    retired: tuple[str, ...],
) -> None:
    """Verify a credential: proof, issuer, schema, validity period, revocation status.

    FILE is the credential (JSON) or a baked badge (PNG or SVG) that carries it.

    Valid means correctly signed AND issued by a trusted issuer: the engine's own key (--db:
    the key beside the store; --issuer-key FILE), under its did:web with --issuer-did-web
    (the keys of its DID document, read from the key files, never fetched), or one given with
    --trusted-issuer. A correct signature by anyone else is reported (signature ok, issuer
    FAILED) and is not valid.
    Exit 0 when no check failed (a skipped check does not fail), else 1.
    """
    document = _read_credential(file)
    status_list = _read_json(status_file) if status_file else None
    if status_file is not None and not isinstance(status_list, dict):
        raise click.BadParameter("not a JSON object", param_hint="--status-list")
    try:
        trust = trusted_issuers(trusted)
    except CredentialError as error:
        raise click.BadParameter(str(error), param_hint="--trusted-issuer") from None
    settings = credential_settings(base_url, trusted=trust, did_web=(did_web_host, retired),
                                   partners=partners)
    result = _verification(document, db, key_file, settings, status_list)
    if as_json:
        click.echo(json.dumps(result.to_data(), indent=2))
    else:
        for check in result.checks:
            status = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[check.status]
            click.echo(f"{status:<8} {check.name:<10} {check.detail}")
        click.echo("valid" if result.ok else f"INVALID: {result.reason}")
    if not result.ok:
        raise SystemExit(EXIT_REFUSED)


def _verification(
    document: Any,
    db: str | None,
    key_file: Path | None,
    settings: CredentialSettings,
    status_list: dict[str, Any] | None,
) -> VerificationResult:
    """With --db as the engine verifies (its key, its current status list); else offline:
    trusting the key (under the did:web when given) and the trusted issuers, resolving the
    did:web's keys from the key files."""
    if db is not None:
        with credential_api(db, key_file, settings) as api:
            if status_list is None and isinstance(document, dict):
                return api.verification(document)
            key = api.key.get(make=False)
    else:
        key = None if key_file is None else read_issuer_key(key_file)
    keys = [*([] if key is None else [key.public_key]), *settings.retired_keys]
    own = settings.did_web or (None if key is None else key.did)
    trusted = settings.trusted_issuers | set(settings.did_documents) | ({own} if own else set())
    return verify(document, trusted=trusted, status_list=status_list,
                  resolve=key_resolver(own or "", settings.did_web, keys,
                                       settings.did_documents))  # fmt: skip


@credential.command("revoke")
@db_option(required=True)
@click.option("--id", "credential_id", required=True, metavar="CREDENTIAL_ID")
@click.option("--reason", required=True, help="Why (kept with the revocation, audited).")
@click.option("--by", "by", default=None, help="Who revokes (default: cli:<user>).")
@key_option
def revoke(db: str, credential_id: str, reason: str, by: str | None,
           key_file: Path | None) -> None:  # fmt: skip
    """Revoke an issued credential (publish the status list again for verifiers to see it)."""
    try:
        body = RevokeIn(reason=reason)
    except ValidationError:
        raise click.BadParameter(f"1 to {MAX_REASON} characters", param_hint="--reason") from None
    who = cli_admin(by)
    with credential_api(db, key_file, CredentialSettings()) as api:
        try:
            done = api.revoke(who, credential_id, body)
        except ServiceError as error:
            refuse(error, credential_id)
    where = f" (status list {done.status_list} index {done.status_index})"
    click.echo(f"revoked {done.id}{where} by {who.name}: {body.reason}")


@credential.command("status-list")
@db_option(required=True)
@key_option
@click.option("--list", "list_id", default=1, show_default=True, help="Which list.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write it here (default: standard output).",
)
@issuer_options
@did_web_options
def status_list(
    db: str,
    key_file: Path | None,
    list_id: int,
    out: Path | None,
    base_url: str,
    issuer_name: str,
    issuer_url: str | None,
    issuer_description: str | None,
    issuer_email: str | None,
    issuer_image: str | None,
    did_web_host: str | None,
    retired: tuple[str, ...],
) -> None:
    """The signed revocation list (BitstringStatusListCredential) to publish at its URL."""
    settings = credential_settings(base_url, issuer_name, issuer_url,
                                   profile=(issuer_description, issuer_email, issuer_image),
                                   did_web=(did_web_host, retired))
    with credential_api(db, key_file, settings) as api:
        try:
            document = api.status_list(list_id)
        except ServiceError as error:
            raise click.ClickException(error.detail) from None
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")



def _read_credential(path: Path) -> Any:
    """The credential in `path`: a JSON document, or the one a baked PNG or SVG badge carries
    (said on standard error). A corrupt badge, or one that carries no credential or two, is
    one line ``FILE: message`` and exit status 2."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BAKED_BYTES + 1)
    except OSError as error:
        click.echo(f"{path}: cannot read ({error.strerror})", err=True)
        raise SystemExit(EXIT_INPUT) from None
    if image_kind(data) is None:
        return _read_json(path)
    try:
        kind, document = extract(data)
    except BakingError as error:
        click.echo(f"{path}: {error}", err=True)
        raise SystemExit(EXIT_INPUT) from None
    click.echo(f"{path}: the credential baked into this {kind.upper()}", err=True)
    return document


def _read_json(path: Path) -> Any:
    """The JSON document in `path`; a file that is not JSON is one line, ``FILE:LINE:COL:
    not JSON (...)`` (``FILE: ...`` when it cannot be read at all), and exit status 2."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        where = Location(str(path), error.lineno, error.colno)
        problem = str(LocatedProblem(where, f"not JSON ({error.msg})"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        problem = f"{path}: not a JSON file ({error})"
    click.echo(problem, err=True)
    raise SystemExit(EXIT_INPUT)
