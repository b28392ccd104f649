"""What the credential commands share (`credential_signing_cmd`, `badge_cmd`, `share_cmd`):
their options, their settings and the engine's credential service over a store.

The commands go through the same `api.service.credentials.CredentialApi` as the HTTP API (so
the CLI counts the assessors' observations, audits what it does, and uses the key `serve`
uses: ``<db>.issuer.pem`` beside the store unless ``--issuer-key`` says otherwise); they act
as an admin named ``cli:<user>``. Settings come from options or the environment
(``ASSESSENGINE_ISSUER_KEY``, ``ASSESSENGINE_BASE_URL``, ``ASSESSENGINE_ISSUER_NAME``,
``ASSESSENGINE_ISSUER_URL``, ``ASSESSENGINE_TRUSTED_ISSUERS``), read here only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from ..adapters.issuer import did_web_settings, read_did_document
from ..adapters.policies import load_policy
from ..adapters.signer import IssuerKey
from ..api.service import Principal, ReviewService, ServiceError
from ..api.service.credentials import CredentialApi, CredentialSettings, IneligibleError
from ..core.credentials import CredentialError, IssuerProfile
from ..core.policy import Policy, PolicyError
from ..credential_service import DEFAULT_BASE_URL, EngineUrls
from ..storage import local_file
from ..storage.port import StoreError
from .token_cmd import actor

EXIT_REFUSED = 1  # not eligible, invalid credential, unknown credential


def db_option(required: bool) -> Callable[[Any], Any]:
    return click.option(
        "--db",
        "db",
        required=required,
        metavar="URL",
        help="The engine's store: a SQLite file, sqlite:///PATH or postgresql://USER@HOST/DBNAME."
        + ("" if required else " Verify as the engine does: its key, its current status list."),
    )


def key_option(function: Any) -> Any:
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


def trust_option(function: Any) -> Any:
    return click.option(
        "--trusted-issuer",
        "trusted",
        multiple=True,
        envvar="ASSESSENGINE_TRUSTED_ISSUERS",
        metavar="DID",
        help="An issuer whose credentials are valid here besides the engine's own key "
        "(repeatable); env ASSESSENGINE_TRUSTED_ISSUERS (DIDs separated by spaces).",
    )(function)


def did_web_options(function: Any) -> Any:
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


def base_url_option(function: Any) -> Any:
    return click.option(
        "--base-url",
        envvar="ASSESSENGINE_BASE_URL",
        default=DEFAULT_BASE_URL,
        show_default=True,
        metavar="URL",
        help="The engine's public URL (sessions, status lists), as `serve` has it; env "
        "ASSESSENGINE_BASE_URL.",
    )(function)


def issuer_options(function: Any) -> Any:
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
    return base_url_option(function)


def policy_named(reference: str) -> Policy:
    try:
        return load_policy(reference)
    except PolicyError as error:
        raise click.BadParameter(str(error), param_hint="--policy") from None


def read_issuer_key(key_file: Path) -> IssuerKey:
    try:
        return IssuerKey.from_pem(key_file.read_bytes())
    except (ValueError, TypeError, CredentialError) as error:
        raise click.BadParameter(
            f"{key_file}: not an issuer key ({error})", param_hint="--issuer-key"
        ) from None


def credential_settings(
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
        did, retired = did_web_settings(did_web[0], listed_files(did_web[1]))
    except CredentialError as error:
        raise click.BadParameter(str(error), param_hint="--issuer-did-web") from None
    try:
        documents = dict(read_did_document(path) for path in listed_files(partners))
    except CredentialError as error:
        raise click.BadParameter(str(error), param_hint="--trusted-did-document") from None
    return CredentialSettings(did_web=did, retired_keys=retired, did_documents=documents,
                              base_url=base_url.rstrip("/"), issuer_name=issuer_name,
                              issuer_url=issuer_url, trusted_issuers=trusted,
                              issuer_description=profile[0], issuer_email=profile[1],
                              issuer_image=profile[2])  # fmt: skip


def listed_files(values: tuple[str, ...]) -> list[Path]:
    """The files of repeated options whose values may each name several, separated by commas
    or spaces (as their environment variables do)."""
    return [Path(f) for value in values for f in value.replace(",", " ").split()]


def cli_admin(name: str | None = None) -> Principal:
    """Whoever runs the CLI on the store file acts as an admin (they hold the file)."""
    return Principal("cli", name or actor(), "admin")


def refuse(error: ServiceError, what: str) -> NoReturn:
    """Exit 1 with the refusal (not eligible: each missing requirement)."""
    if isinstance(error, IneligibleError):
        click.echo(f"not eligible: {what}", err=True)
        for reason in error.reasons:
            click.echo(f"  - {reason}", err=True)
    else:
        click.echo(f"refused: {error.detail}", err=True)
    raise SystemExit(EXIT_REFUSED)


@contextmanager
def credential_api(
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
