"""The composition root: the one module that turns `Settings` into a store, an ingest
transport, a scoring backend, an engine and an HTTP app. The CLI builds the settings and calls
these; nothing else chooses an implementation of a port.

    settings = Settings.load(flags=..., environ=os.environ, config=...)   # the CLI
    store = open_store(settings.db, **store_options(settings))
    library, skipped = load_library(settings)
    engine = build_engine(settings, store, library)
    app = build_app(settings, metrics=engine.metrics_text)

Errors are the domain's (`SettingsError`, `IngestConfigError`, `StoreError`...): the CLI turns
them into one line and exit status 2.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .adapters.library import rubric_dirs
from .ingest.port import TransportFactory
from .ingest.sites import at_site
from .ingest.zmq import CurveConfig, IngestConfigError, zmq_transport
from .runtime.engine import Engine
from .runtime.pipeline import RubricLibrary
from .runtime.scoring import ScoringBackend, ThreadScoring
from .runtime.scoring_process import START_TIMEOUT_S, RemoteScorer
from .settings import Settings, SettingsError
from .storage import local_file, open_owners, open_store
from .storage.owners import Owners
from .storage.port import Store

__all__ = ["ScoringKind", "build_app", "build_engine", "build_owners", "open_store",
           "scoring_backend"]

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from .api.service.credentials import CredentialSettings
    from .archive.cohort import ArchiveSource

ScoringKind = Literal["thread", "process"]
SERVER_KEY = "engine"
"""Base name of the engine's key pair in the CURVE key directory (engine.key, .key_secret)."""


# ================================================================================ store


def check_store(settings: Settings) -> Path | None:
    """What `serve` checks of the store before opening it: the URL is one it knows
    (StoreOpenError), and the issuer key is given when the store has no file to keep it
    beside (SettingsError). Returns the store's file, None for a database on a server."""
    found = local_file(database(settings))
    if found is None and settings.issuer_key is None:
        raise SettingsError("issuer_key: a store on a database server keeps no file beside it; "
                            "give --issuer-key FILE (assessengine keys issuer --out "
                            "FILE makes one)")  # fmt: skip
    return found


def store_options(settings: Settings) -> dict[str, Any]:
    """The store's options from `settings` (for the engine's store and the scoring process)."""
    return {"synchronous": settings.synchronous.upper()}


def open_engine_store(url: str | Path, settings: Settings) -> Store:
    """The engine's own store (``serve``, ``demo``): `open_store` with the settings' options,
    exclusive (a second engine on a store only one engine may write is refused,
    StoreOpenError "... is in use by another engine (pid N) ...", before it touches it)."""
    return open_store(url, exclusive=True, **store_options(settings))


def database(settings: Settings) -> str:
    """The store URL of `settings`; SettingsError when none is set."""
    if settings.db is None:
        raise SettingsError("db: no store given (--db URL, ASSESSENGINE_DB or db in --config)")
    return settings.db


# ================================================================================ engine


def load_library(settings: Settings) -> tuple[RubricLibrary, list[str]]:
    """The rubrics of `settings.rubrics`, then the bundled ones; and the files skipped."""
    return RubricLibrary.load([*settings.rubrics, *rubric_dirs()])


def curve_from(keys: Path) -> CurveConfig:
    """CURVE from a key directory: KEYS/engine.key_secret is the engine's pair, every other
    KEYS/*.key an allowed client. IngestConfigError when one is missing or unreadable."""
    secret = keys / f"{SERVER_KEY}.key_secret"
    if not secret.is_file():
        raise IngestConfigError(f"{secret} not found (assessengine keys create --out {keys})")
    allowed = [p for p in sorted(keys.glob("*.key")) if p.stem != SERVER_KEY]
    if not allowed:
        raise IngestConfigError(
            f"no client public keys (*.key besides {SERVER_KEY}.key) in {keys}"
        )
    return CurveConfig.from_files(secret, allowed)


def transport(settings: Settings) -> TransportFactory:
    """The ZeroMQ transport of `settings` (IngestConfigError for an unsafe bind or bad keys);
    at a site (`settings.site_id`), ids are qualified with the site's name (`ingest.sites`)."""
    curve = curve_from(settings.curve_keys) if settings.curve_keys is not None else None
    made = zmq_transport(settings.zmq, curve=curve, insecure=settings.insecure,
                         max_frame_bytes=settings.max_frame_bytes,
                         max_header_bytes=settings.max_header_bytes,
                         rcvhwm=settings.rcvhwm)  # fmt: skip
    return made if settings.site_id is None else at_site(made, settings.site_id)


def scoring_backend(
    kind: ScoringKind,
    store: Store,
    library: RubricLibrary,
    *,
    url: str | Path | None = None,
    store_options: dict[str, Any] | None = None,
    start_timeout: float = START_TIMEOUT_S,
) -> ScoringBackend:
    """The scoring backend `kind` names: ``thread`` (the `Scorer` in the engine's scoring
    thread, on `store`) or ``process`` (a `RemoteScorer`: the scoring process opens the store
    `url` names itself, with `store_options`). ValueError for ``process`` without a `url`
    (a store in memory cannot be shared with another process) or an unknown kind."""
    if kind == "thread":
        return ThreadScoring(store, library)
    if kind != "process":
        raise ValueError(f"scoring must be 'thread' or 'process', got {kind!r}")
    if url is None:
        raise ValueError("scoring='process' needs a store URL (the scoring process opens the "
                         "store itself; a store in memory cannot be shared)")  # fmt: skip
    opener = functools.partial(open_store, url, **(store_options or {}), recover=False)
    return RemoteScorer(opener, library, start_timeout=start_timeout)


def build_owners(settings: Settings) -> Owners:
    """Who owns which session, for the store of `settings` (`storage.open_owners`): on a
    database several engines share, locks named after this process and host (and the
    engine's ZeroMQ endpoint once bound); otherwise the engine is the store's only one.
    StoreOpenError when the server cannot be reached."""
    name = f"assessengine pid {os.getpid()} on {socket.gethostname()}"  # + the endpoint
    return open_owners(database(settings), name=name)


def build_engine(settings: Settings, store: Store, library: RubricLibrary) -> Engine:
    """The engine of `settings` over `store` (opened from `settings.db`): ZeroMQ ingest,
    scoring as `settings.scoring` says. Not started."""
    backend = scoring_backend(settings.scoring, store, library, url=database(settings),
                              store_options=store_options(settings),
                              start_timeout=settings.scoring_start_timeout)  # fmt: skip
    return Engine(store, library, transport(settings), scoring=backend,
                  owners=build_owners(settings),
                  queue_bytes=settings.queue_bytes, round_bytes=settings.round_bytes,
                  round_messages=settings.round_messages,
                  overlap_commits=settings.commit_thread,
                  overlap_min_bytes=settings.overlap_min_bytes,
                  scoring_linger=settings.scoring_linger,
                  stop_timeout=settings.stop_timeout)  # fmt: skip


# ================================================================================ HTTP


def credential_settings(settings: Settings, *, host: str, port: int) -> CredentialSettings:
    """How the engine issues credentials: `settings.base_url`, else ``http://HOST:PORT`` of
    the HTTP address (the default URL when the port is chosen at start); the issuer's name
    and URL; the LRS; the trusted issuers; the did:web and its retired keys (read from their
    files here). CredentialError for a base URL the credentials cannot use, a trusted issuer
    that is not a DID, a host that cannot be a did:web, a retired key file that is no key or a
    partner's DID document file that is none."""
    from .adapters.issuer import did_web_settings, read_did_document  # noqa: PLC0415
    from .api.service.credentials import CredentialSettings, LrsSettings  # noqa: PLC0415
    from .credential_service import DEFAULT_BASE_URL, EngineUrls  # noqa: PLC0415
    from .credential_verify import trusted_issuers  # noqa: PLC0415

    base_url = settings.base_url
    if base_url is None:
        shown = f"[{host}]" if ":" in host else host
        base_url = f"http://{shown}:{port}" if port else DEFAULT_BASE_URL
    EngineUrls(base_url.rstrip("/"))  # checked here, so serve refuses it before starting
    password = settings.lrs_password
    lrs = None if settings.lrs_url is None else LrsSettings(
        settings.lrs_url, username=settings.lrs_username,
        password=None if password is None else password.get_secret_value())  # fmt: skip
    trusted = trusted_issuers(settings.trusted_issuers)
    did_web, retired = did_web_settings(settings.issuer_did_web, settings.issuer_retired_keys)
    partners = dict(read_did_document(path) for path in settings.trusted_did_documents)
    return CredentialSettings(base_url=base_url.rstrip("/"), issuer_name=settings.issuer_name,
                              did_web=did_web, retired_keys=retired, did_documents=partners,
                              issuer_url=settings.issuer_url, lrs=lrs,
                              issuer_description=settings.issuer_description,
                              issuer_email=settings.issuer_email,
                              issuer_image=settings.issuer_image,
                              trusted_issuers=trusted)  # fmt: skip


def build_app(
    settings: Settings,
    *,
    metrics: Callable[[], str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> FastAPI:
    """The HTTP app of `settings` over its store, serving `metrics` at /metrics; `host` and
    `port` are where it is served (the default base URL of credentials)."""
    from .api.app import create_app  # noqa: PLC0415  (FastAPI loads only where HTTP is served)

    return create_app(db_path=database(settings), metrics=metrics,
                      rubric_dirs=[*settings.rubrics, *rubric_dirs()],
                      max_upload_bytes=settings.max_upload_bytes,
                      issuer_key_path=settings.issuer_key,
                      credentials=credential_settings(settings, host=host, port=port),
                      archive=archive_source(settings), site=settings.site_id)  # fmt: skip


def archive_source(settings: Settings) -> ArchiveSource | None:
    """The archive the API re-scores cohorts from (setting ``archive_url``), None without one.
    S3 credentials and endpoint: botocore's own lookup (the standard AWS environment
    variables, profiles, instance roles). Raises ArchiveError for a URL that is no archive
    place (another scheme); nothing is read until a re-score."""
    if settings.archive_url is None:
        return None
    from .archive.cohort import ArchiveSource  # noqa: PLC0415  (pyarrow only when configured)
    from .archive.location import ArchiveRoot  # noqa: PLC0415

    return ArchiveSource(ArchiveRoot.open(settings.archive_url),
                         scheduler=settings.archive_scheduler)  # fmt: skip
