"""`assessengine credential ...` and `assessengine keys issuer`: microcredentials from the CLI.

Issuing, revoking, publishing and verifying against a store go through the same
`api.service.credentials.CredentialApi` as the HTTP API (so the CLI counts the assessors'
observations, audits what it does, and uses the key `serve` uses: ``<db>.issuer.pem`` beside
the store unless ``--issuer-key`` says otherwise); it acts as an admin named ``cli:<user>``.
`credential verify FILE` without ``--db`` is `credential_verify.verify` offline. Settings
come from options or the environment (``ASSESSENGINE_ISSUER_KEY``, ``ASSESSENGINE_BASE_URL``,
``ASSESSENGINE_ISSUER_NAME``, ``ASSESSENGINE_ISSUER_URL``, ``ASSESSENGINE_TRUSTED_ISSUERS``),
read here only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from ..adapters.baking import MAX_BAKED_BYTES, BakingError, extract, image_kind
from ..adapters.did_web import DidWebError, did_document, did_document_url, did_web
from ..adapters.issuer import (
    did_web_settings,
    key_resolver,
    read_did_document,
    read_public_key,
)
from ..adapters.policies import check_policy_file, load_policy
from ..adapters.signer import IssuerKey
from ..api.service import Principal, ReviewService, ServiceError
from ..api.service.credentials import (
    EMAIL_PATTERN,
    MAX_REASON,
    CredentialApi,
    CredentialSettings,
    IneligibleError,
    RevokeIn,
)
from ..api.service.public_credentials import PublicCredentials
from ..core.credentials import CredentialError, IssuerProfile, renewed_credential
from ..core.policy import Policy, PolicyError
from ..credential_service import DEFAULT_BASE_URL, EngineUrls
from ..credential_verify import VerificationResult, trusted_issuers, verify
from ..errors import LocatedProblem, Location
from ..storage import local_file
from ..storage.port import StoreError
from ._app import EXIT_INPUT, LazyGroup, main
from .keys_cmd import keys
from .token_cmd import actor

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


@main.group(cls=LazyGroup, lazy={"badge": "badge_cmd", "certificate": "badge_cmd",
                                 "share": "share_cmd", "hide": "share_cmd",
                                 "expiring": "share_cmd"})  # fmt: skip
def credential() -> None:
    """Issue, verify and revoke Open Badges 3.0 microcredentials.

    \b
    A credential policy (credentials/<id>.yaml) says what a learner must pass; the engine
    checks the learner's sessions in its store against it and signs the credential:
      assessengine credential issue --db engine.db --learner L-1 --policy forklift-operator \\
          --out L-1.json
      assessengine credential verify L-1.json --db engine.db
      assessengine credential revoke --db engine.db --id urn:uuid:... --reason "..."
      assessengine credential status-list --db engine.db --out status-1.json
      assessengine credential verify L-1.json --status-list status-1.json \\
          --trusted-issuer did:key:z6Mk...
    The key is the one `serve` uses: DB.issuer.pem beside the store (made on the first issue),
    or --issuer-key FILE (`assessengine keys issuer --out FILE`). See docs/credentials.md.
    """


def _db_option(required: bool) -> Callable[[Any], Any]:
    return click.option(
        "--db",
        "db",
        required=required,
        metavar="URL",
        help="The engine's store: a SQLite file, sqlite:///PATH or postgresql://USER@HOST/DBNAME."
        + ("" if required else " Verify as the engine does: its key, its current status list."),
    )


def _key_option(function: Any) -> Any:
    return click.option(
        "--issuer-key",
        "--key",  # the name before `serve`'s --issuer-key was adopted here too
        "key_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar="ASSESSENGINE_ISSUER_KEY",
        metavar="FILE",
        help="Issuer key (from `keys issuer`), as `serve --issuer-key` takes it; default: "
        "DB.issuer.pem beside a SQLite store, as `serve` makes it (a PostgreSQL store needs it "
        "given). --key is the same option. Env ASSESSENGINE_ISSUER_KEY.",
    )(function)


def _trust_option(function: Any) -> Any:
    return click.option(
        "--trusted-issuer",
        "trusted",
        multiple=True,
        envvar="ASSESSENGINE_TRUSTED_ISSUERS",
        metavar="DID",
        help="An issuer whose credentials are valid here besides the engine's own key "
        "(repeatable); env ASSESSENGINE_TRUSTED_ISSUERS (DIDs separated by spaces).",
    )(function)


def _did_web_options(function: Any) -> Any:
    function = click.option(
        "--issuer-retired-keys",
        "retired",
        multiple=True,
        envvar="ASSESSENGINE_ISSUER_RETIRED_KEYS",
        metavar="FILE",
        help="With --issuer-did-web: a key that signed before a rotation (PEM, private or "
        "public; repeatable), trusted as the engine's own; env ASSESSENGINE_ISSUER_RETIRED_KEYS "
        "(files separated by commas or spaces).",
    )(function)
    return click.option(
        "--issuer-did-web",
        "did_web_host",
        envvar="ASSESSENGINE_ISSUER_DID_WEB",
        metavar="HOST",
        help="Issue and verify as did:web:HOST (as `serve --issuer-did-web`), not as the "
        "key's did:key; env ASSESSENGINE_ISSUER_DID_WEB.",
    )(function)


def _base_url_option(function: Any) -> Any:
    return click.option(
        "--base-url",
        envvar="ASSESSENGINE_BASE_URL",
        default=DEFAULT_BASE_URL,
        show_default=True,
        metavar="URL",
        help="The engine's public URL (sessions, status lists), as `serve` has it; env "
        "ASSESSENGINE_BASE_URL.",
    )(function)


def _issuer_options(function: Any) -> Any:
    for name, env, metavar, text in (
        ("--issuer-image", "ASSESSENGINE_ISSUER_IMAGE", "URL", "URL of the issuer's logo"),
        ("--issuer-email", "ASSESSENGINE_ISSUER_EMAIL", "ADDRESS", "The issuer's contact email"),
        ("--issuer-description", "ASSESSENGINE_ISSUER_DESCRIPTION", "TEXT",
         "The issuer's description"),
    ):
        function = click.option(name, envvar=env, metavar=metavar,
                                help=f"{text} in credentials; env {env}.")(function)
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
    return _base_url_option(function)


@credential.command("issue")
@_db_option(required=True)
@click.option("--learner", required=True, metavar="ID", help="The learner's id.")
@click.option("--policy", "policy_ref", required=True, metavar="ID|FILE", help="Policy id or file.")
@click.option("--email", metavar="ADDRESS", help="The learner's email: the credential carries "
              "its salted sha256 (credentialSubject.identifier), never the address.")
@_key_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the credential here (default: standard output).",
)
@_issuer_options
@_did_web_options
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
    policy = _policy(policy_ref)
    if email is not None and not re.match(EMAIL_PATTERN, email):
        raise click.BadParameter(f"not an email address: {email!r}", param_hint="--email")
    settings = _settings(base_url, issuer_name, issuer_url, did_web=(did_web_host, retired),
                         profile=(issuer_description, issuer_email, issuer_image))
    with _engine(db, key_file, settings) as api:
        try:
            issued = api.issue_policy(_admin(), learner, policy, email=email)
        except ServiceError as error:
            _refuse(error, f"{learner} for {policy.policy}")
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
@_db_option(required=False)
@_key_option
@_trust_option
@_base_url_option
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
@_did_web_options
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
    settings = _settings(base_url, trusted=trust, did_web=(did_web_host, retired),
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
        with _engine(db, key_file, settings) as api:
            if status_list is None and isinstance(document, dict):
                return api.verification(document)
            key = api.key.get(make=False)
    else:
        key = None if key_file is None else _key(key_file)
    keys = [*([] if key is None else [key.public_key]), *settings.retired_keys]
    own = settings.did_web or (None if key is None else key.did)
    trusted = settings.trusted_issuers | set(settings.did_documents) | ({own} if own else set())
    return verify(document, trusted=trusted, status_list=status_list,
                  resolve=key_resolver(own or "", settings.did_web, keys,
                                       settings.did_documents))  # fmt: skip


@credential.command("revoke")
@_db_option(required=True)
@click.option("--id", "credential_id", required=True, metavar="CREDENTIAL_ID")
@click.option("--reason", required=True, help="Why (kept with the revocation, audited).")
@click.option("--by", "by", default=None, help="Who revokes (default: cli:<user>).")
@_key_option
def revoke(db: str, credential_id: str, reason: str, by: str | None,
           key_file: Path | None) -> None:  # fmt: skip
    """Revoke an issued credential (publish the status list again for verifiers to see it)."""
    try:
        body = RevokeIn(reason=reason)
    except ValidationError:
        raise click.BadParameter(f"1 to {MAX_REASON} characters", param_hint="--reason") from None
    who = _admin(by)
    with _engine(db, key_file, CredentialSettings()) as api:
        try:
            done = api.revoke(who, credential_id, body)
        except ServiceError as error:
            _refuse(error, credential_id)
    where = f" (status list {done.status_list} index {done.status_index})"
    click.echo(f"revoked {done.id}{where} by {who.name}: {body.reason}")


@credential.command("status-list")
@_db_option(required=True)
@_key_option
@click.option("--list", "list_id", default=1, show_default=True, help="Which list.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write it here (default: standard output).",
)
@_issuer_options
@_did_web_options
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
    with _engine(db, key_file, _settings(base_url, issuer_name, issuer_url, profile=(
            issuer_description, issuer_email, issuer_image),
            did_web=(did_web_host, retired))) as api:  # fmt: skip
        try:
            document = api.status_list(list_id)
        except ServiceError as error:
            raise click.ClickException(error.detail) from None
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@credential.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Check credential policy files; prints FILE:LINE:COL: message for each problem and
    exits with status 2 (as `rubric check` does)."""
    failed = 0
    for file in files:
        result = check_policy_file(file)
        for problem in result.problems:
            click.echo(str(problem))
        failed += not result.ok
        if result.ok:
            click.echo(f"{file}: ok")
    if failed:
        raise SystemExit(EXIT_INPUT)


# ------------------------------------------------------------------------------ helpers


def _policy(reference: str) -> Policy:
    try:
        return load_policy(reference)
    except PolicyError as error:
        raise click.BadParameter(str(error), param_hint="--policy") from None


def _key(key_file: Path) -> IssuerKey:
    try:
        return IssuerKey.from_pem(key_file.read_bytes())
    except (ValueError, TypeError, CredentialError) as error:
        raise click.BadParameter(
            f"{key_file}: not an issuer key ({error})", param_hint="--issuer-key"
        ) from None


def _settings(
    base_url: str,
    issuer_name: str = "assessengine",
    issuer_url: str | None = None,
    *,
    trusted: frozenset[str] = frozenset(),
    profile: tuple[str | None, str | None, str | None] = (None, None, None),
    did_web: tuple[str | None, tuple[str, ...]] = (None, ()),
    partners: tuple[str, ...] = (),
) -> CredentialSettings:
    """`profile`: the issuer's description, email and image URL; `did_web`: the did:web host
    (None: did:key) and the retired key files; `partners`: partner DID document files (each
    value of a list may name several files, separated by commas)."""
    try:
        EngineUrls(base_url.rstrip("/"))
        IssuerProfile("did:key:check", issuer_name, issuer_url, *profile)
    except CredentialError as error:
        raise click.BadParameter(str(error)) from None
    try:
        did, retired = did_web_settings(did_web[0], _files(did_web[1]))
    except CredentialError as error:
        raise click.BadParameter(str(error), param_hint="--issuer-did-web") from None
    try:
        documents = dict(read_did_document(path) for path in _files(partners))
    except CredentialError as error:
        raise click.BadParameter(str(error), param_hint="--trusted-did-document") from None
    return CredentialSettings(did_web=did, retired_keys=retired, did_documents=documents,
                              base_url=base_url.rstrip("/"), issuer_name=issuer_name,
                              issuer_url=issuer_url, trusted_issuers=trusted,
                              issuer_description=profile[0], issuer_email=profile[1],
                              issuer_image=profile[2])  # fmt: skip


def _files(values: tuple[str, ...]) -> list[Path]:
    """The files of repeated options whose values may each name several, separated by commas
    or spaces (as their environment variables do)."""
    return [Path(f) for value in values for f in value.replace(",", " ").split()]


def _admin(name: str | None = None) -> Principal:
    """Whoever runs the CLI on the store file acts as an admin (they hold the file)."""
    return Principal("cli", name or actor(), "admin")


def _refuse(error: ServiceError, what: str) -> NoReturn:
    """Exit 1 with the refusal (not eligible: each missing requirement)."""
    if isinstance(error, IneligibleError):
        click.echo(f"not eligible: {what}", err=True)
        for reason in error.reasons:
            click.echo(f"  - {reason}", err=True)
    else:
        click.echo(f"refused: {error.detail}", err=True)
    raise SystemExit(EXIT_REFUSED)


@contextmanager
def _engine(
    db: str, key_file: Path | None, settings: CredentialSettings
) -> Iterator[CredentialApi]:
    """The engine's credential service over the store at `db`, as `serve` builds it (a store
    file must exist: credentials live in an engine's store)."""
    try:
        found = local_file(db)
        if found is not None and not found.is_file():
            raise click.ClickException(f"no store at {found}")
        reviews = ReviewService.open(db)
    except StoreError as error:
        raise click.ClickException(str(error)) from None
    try:
        api = CredentialApi(reviews, db, issuer_key_path=key_file, settings=settings)
    except CredentialError as error:
        reviews.close()
        raise click.ClickException(str(error)) from None
    try:
        yield api
    finally:
        api.close()
        reviews.close()


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
