"""`assessengine serve`: the live engine (ZeroMQ ingest, SQLite store, scoring, HTTP) in one
process, until SIGTERM or SIGINT (attaches itself to `main`)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ..adapters.library import rubric_dirs
from ..adapters.sqlite_store import SqliteStore
from ..adapters.store import StoreError
from ..adapters.zmq_ingest import CurveConfig, IngestConfigError
from ..compose import scoring_backend
from ..credential_service import DEFAULT_HTTP
from ..ingest.zmq import zmq_transport
from ..runtime.engine import Engine, MiB
from ..runtime.pipeline import RubricLibrary
from ._app import main

log = logging.getLogger("assessengine.serve")
SERVER_KEY = "engine"
"""Base name of the engine's key pair in --curve-keys DIR (engine.key, engine.key_secret)."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int


def parse_address(text: str) -> Address:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6; port 0 = any free port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint="--http")
    return Address(host.strip("[]"), int(port))


def load_library(extra: Sequence[Path]) -> RubricLibrary:
    """Rubrics of the given directories first, then the bundled ones; warnings for skipped
    files; a usage error when there is no rubric at all."""
    library, skipped = RubricLibrary.load([*extra, *rubric_dirs()])
    for line in skipped:
        click.echo(f"warning: {line}", err=True)
    if not len(library):
        raise click.UsageError("no valid rubric found (give a directory with --rubrics DIR)")
    return library


def curve_from(keys: Path) -> CurveConfig:
    """The engine's pair (DIR/engine.key_secret) and every other DIR/*.key as allowed clients."""
    secret = keys / f"{SERVER_KEY}.key_secret"
    if not secret.is_file():
        raise click.UsageError(f"{secret} not found (assessengine keys create --out {keys})")
    allowed = [p for p in sorted(keys.glob("*.key")) if p.stem != SERVER_KEY]
    if not allowed:
        raise click.UsageError(f"no client public keys (*.key besides {SERVER_KEY}.key) in {keys}")
    try:
        return CurveConfig.from_files(secret, allowed)
    except IngestConfigError as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while inside (the previous handlers come back)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@main.command("serve")
@click.option("--db", "db_path", required=True, metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite store (created if missing); batch payloads go in the "
                   "folder PATH-payloads/ beside it.")
@click.option("--zmq", "endpoint", default="tcp://127.0.0.1:5555", show_default=True,
              metavar="ENDPOINT", help="ZeroMQ endpoint to bind (port * = any free port).")
@click.option("--http", "http", default=DEFAULT_HTTP, show_default=True,
              metavar="HOST:PORT", help="HTTP API and web pages (port 0 = any free port).")
@click.option("--rubrics", "rubric_dirs_", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Also serve the rubrics in DIR (before the bundled ones). Repeatable.")
@click.option("--curve-keys", "curve_keys", metavar="DIR",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="CURVE: DIR/engine.key_secret is the engine's key; every other DIR/*.key "
              "is an allowed client.")
@click.option("--insecure", is_flag=True,
              help="Allow binding a non-loopback address without CURVE (anyone who reaches "
              "the port can write sessions).")
@click.option("--max-frame-mb", default=16, show_default=True, type=click.IntRange(1, 1024),
              help="Largest EVENTS payload accepted, MiB.")
@click.option("--queue-mb", default=64, show_default=True, type=click.IntRange(1, 65536),
              help="Bound of the queue between ingest and scoring, MiB (backpressure).")
@click.option("--synchronous", type=click.Choice(["normal", "full"]), default="normal",
              show_default=True,
              help="SQLite sync: normal survives a crash of the engine, full also a power loss.")
@click.option("--scoring", type=click.Choice(["process", "thread"]), default="process",
              show_default=True,
              help="Where scoring runs: a process of its own (ingest and scoring each use a "
              "core) or a thread of the engine's process (one core's worth of Python for both).")
@click.option("--issuer-key", "issuer_key", metavar="FILE", envvar="ASSESSENGINE_ISSUER_KEY",
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Key that signs credentials (`assessengine keys issuer`); default: "
              "DB.issuer.pem beside the store, made on first issue. Env ASSESSENGINE_ISSUER_KEY.")
@click.option("--base-url", metavar="URL", envvar="ASSESSENGINE_BASE_URL",
              help="The engine's public URL, written into credentials (status list, evidence); "
              "default: http://HOST:PORT of --http. Env ASSESSENGINE_BASE_URL.")
def serve(
    db_path: Path,
    endpoint: str,
    http: str,
    rubric_dirs_: tuple[Path, ...],
    curve_keys: Path | None,
    insecure: bool,
    max_frame_mb: int,
    queue_mb: int,
    synchronous: str,
    scoring: str,
    issuer_key: Path | None,
    base_url: str | None,
) -> None:  # fmt: skip
    """Run the engine: ingest sessions over ZeroMQ, store every batch durably before its ACK,
    score incrementally, and serve the HTTP API, until SIGTERM or Ctrl-C.

    On start, sessions left open in the store (e.g. by a crash) are rebuilt from their stored
    batches; clients resend whatever was not acknowledged. On SIGTERM the engine stops
    reading, stores and acknowledges what it holds, scores everything queued (reports of
    closed sessions saved) and exits 0.

    \b
    Examples:
      assessengine serve --db engine.db
      assessengine serve --db engine.db --zmq tcp://0.0.0.0:5555 --curve-keys keys/
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    address = parse_address(http)
    library = load_library(rubric_dirs_)
    curve = curve_from(curve_keys) if curve_keys is not None else None
    from ..api.service.credentials import settings_from  # noqa: PLC0415
    from ..core.credentials import CredentialError  # noqa: PLC0415

    try:  # credentials: issuer key, public URL; issuer name and LRS from the environment
        credentials = settings_from(base_url, os.environ, host=address.host, port=address.port)
    except CredentialError as exc:
        raise click.UsageError(str(exc)) from None
    app_options = {"issuer_key_path": issuer_key, "credentials": credentials}
    try:
        store = SqliteStore(db_path, synchronous=synchronous.upper())
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        _run(store, library, db_path, endpoint, address, curve=curve, insecure=insecure,
             max_frame_bytes=max_frame_mb * MiB, queue_bytes=queue_mb * MiB,
             scoring=scoring, extra_rubric_dirs=rubric_dirs_,
             app_options=app_options)  # fmt: skip
    finally:
        store.close()


def _run(
    store: SqliteStore,
    library: RubricLibrary,
    db_path: Path,
    endpoint: str,
    address: Address,
    *,
    curve: CurveConfig | None,
    insecure: bool,
    max_frame_bytes: int,
    queue_bytes: int,
    scoring: str,
    extra_rubric_dirs: Sequence[Path],
    app_options: Mapping[str, Any] | None = None,
) -> None:
    # FastAPI and uvicorn load only in the commands that serve HTTP (every CLI start pays them)
    from ..api.app import create_app  # noqa: PLC0415
    from ..webserver import WebServer  # noqa: PLC0415

    try:
        transport = zmq_transport(endpoint, curve=curve, insecure=insecure,
                                  max_frame_bytes=max_frame_bytes)  # fmt: skip
    except IngestConfigError as exc:
        raise click.UsageError(str(exc)) from None
    backend = scoring_backend("thread" if scoring == "thread" else "process", store, library,
                              url=db_path, store_options={"synchronous": store.synchronous})
    engine = Engine(store, library, transport, scoring=backend, queue_bytes=queue_bytes)
    with stop_signals() as stop:
        try:
            recovered = engine.start()
        except IngestConfigError as exc:
            raise click.UsageError(str(exc)) from None
        try:
            if recovered.reopened or recovered.reported:
                log.info("recovered %d open session(s) (%d events), reported %d closed one(s)",
                         recovered.reopened, recovered.events, recovered.reported)  # fmt: skip
            app = create_app(db_path=db_path, metrics=engine.metrics_text,
                             rubric_dirs=[*extra_rubric_dirs, *rubric_dirs()],
                             **(app_options or {}))  # fmt: skip
            web = WebServer(app, address.host, address.port)
            web.start()
            try:
                click.echo(f"assessengine serving: zmq {engine.endpoint}  http {web.url}  "
                           f"db {db_path}  ({len(library)} rubrics)", err=True)  # fmt: skip
                while not stop.wait(0.5):
                    if not engine.running:
                        raise click.ClickException("the engine stopped unexpectedly (see log)")
                log.info("stopping: finishing the round in hand and the scoring queue")
            finally:
                web.stop()
        finally:
            engine.stop()
    log.info("stopped cleanly")
