"""`assessengine serve`: the live engine (ZeroMQ ingest, the store, scoring, HTTP) in one
process, until SIGTERM or SIGINT (attaches itself to `main`)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final, NoReturn

import click

from .. import compose
from ..core.credentials import CredentialError
from ..ingest.zmq import IngestConfigError
from ..inputs.jsonl import warm_up_reader
from ..runtime import pipeline
from ..runtime.pipeline import RubricLibrary
from ..settings import Settings, SettingsError
from ..storage import redact, verify_store
from ..storage.port import Store, StoreError, StoreOpenError
from ._app import main
from ._settings import config_option, load_settings, settings_options

log = logging.getLogger("assessengine.serve")
EXIT_USAGE: Final = 2


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


def load_library(settings: Settings) -> RubricLibrary:
    """The rubrics of the settings' directories first, then the bundled ones; warnings for
    skipped files; a usage error when there is no rubric at all."""
    library, skipped = compose.load_library(settings)
    for line in skipped:
        click.echo(f"warning: {line}", err=True)
    if not len(library):
        raise click.UsageError("no valid rubric found (give a directory with --rubrics DIR)")
    return library


def refuse(message: str) -> NoReturn:
    """End the command with one line on stderr and exit status 2 (what cannot start)."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(EXIT_USAGE)


def prepare_kernel(library: RubricLibrary) -> None:
    """Load the scoring kernel from numba's cache, or compile it (a first run: the rubrics'
    fused steps at once, then what the warm-up needs; `pipeline.prepare_kernel`), here,
    before the engine starts: the scoring process then loads it from the cache well within
    ``scoring_start_timeout``, which never includes a compile. Meanwhile, what serves
    rubrics without a ready fused step and field uploads (`warm_up_fallbacks`)."""
    log.info("preparing the scoring kernel (a first run compiles it) ...")
    start = time.perf_counter()
    compiled = pipeline.prepare_kernel(library, meanwhile=lambda: warm_up_fallbacks(library))
    log.info("scoring kernel %s in %.1fs", "compiled (a first run; cached for the next ones)"
             if compiled else "loaded from numba's cache", time.perf_counter() - start)


def warm_up_fallbacks(library: RubricLibrary) -> None:
    """Compile, or load from numba's cache, what a serving process scores with besides the
    library's fused steps, so that no request compiles it (docs/performance.md, "One
    session"): the table-driven kernel (`warm_up_kernel(table_only=True)`), which scores a
    rubric version a trainer uploads while the engine runs until its fused step is compiled
    (a fresh install's first such field upload compiled it in its request: 12 s of compile),
    and the JSON Lines reader field uploads are parsed with (`inputs.jsonl.warm_up_reader`,
    for each scenario of the library: 6 s)."""
    pipeline.warm_up_kernel(library, table_only=True)
    scenarios = {entry.scenario.scenario: entry.scenario for entry in library.entries()}
    for scenario in scenarios.values():
        warm_up_reader(scenario)


def index_cohorts(app: Any) -> None:
    """Bring the cohort index (the dashboard's, the review queue's and calibration's) up to
    date before the first request: a store's first serve indexes every session (seconds per
    10,000), logged as it goes; a later serve indexes what changed while it was down."""
    log.info("bringing the cohort index up to date ...")
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        log.info("cohort index: %d of %d sessions indexed", done, total)

    done = app.state.cohorts.refresh(progress)
    log.info("cohort index up to date (%d session(s) indexed in %.1fs)", done,
             time.perf_counter() - start)  # fmt: skip


def http_text(address: Address) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


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
@config_option
@settings_options()
def serve(config: Path | None, **flags: Any) -> None:
    """Run the engine: ingest sessions over ZeroMQ, store every batch durably before its ACK,
    score incrementally, and serve the HTTP API, until SIGTERM or Ctrl-C.

    On start, sessions left open in the store (e.g. by a crash) are rebuilt from their stored
    batches; clients resend whatever was not acknowledged. On SIGTERM the engine stops
    reading, stores and acknowledges what it holds, scores everything queued (reports of
    closed sessions saved) and exits 0.

    Every option can also be given as an ASSESSENGINE_* environment variable or in the
    --config file (docs/operations.md, "Settings"); flags win, then the environment.

    \b
    Examples:
      assessengine serve --db engine.db
      assessengine serve --db sqlite:///var/lib/assessengine/engine.db --config engine.toml
      assessengine serve --db engine.db --zmq tcp://0.0.0.0:5555 --curve-keys keys/
      assessengine serve --db engine.db --no-ingest --http 0.0.0.0:8080   # the API alone
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    settings = load_settings(flags, config)
    address = parse_address(settings.http)
    try:
        url = compose.database(settings)
        compose.check_store(settings)
        compose.credential_settings(settings, host=address.host, port=address.port)
    except (SettingsError, CredentialError, StoreOpenError) as exc:
        raise click.UsageError(str(exc)) from None
    try:  # a damaged store is refused before the engine or the API reads it
        verify_store(url)
    except StoreError as exc:
        refuse(str(exc))
    if settings.no_ingest:
        with stop_signals() as stop:
            _serve_http(settings, address, stop,
                        banner=f"assessengine serving: http {{url}}  db {redact(url)}  "
                        "(HTTP only: --no-ingest)")  # fmt: skip
        log.info("stopped cleanly")
        return
    library = load_library(settings)
    try:  # the engine's own store: a second `serve` on it refuses here, before touching it
        store = compose.open_engine_store(url, settings)
    except StoreError as exc:
        refuse(str(exc))
    try:
        _run(settings, store, library, address)
    finally:
        store.close()


def _run(settings: Settings, store: Store, library: RubricLibrary, address: Address) -> None:
    prepare_kernel(library)  # before the scoring process's start clock (scoring_start_timeout)
    try:
        engine = compose.build_engine(settings, store, library)
    except IngestConfigError as exc:  # an unsafe endpoint, unreadable CURVE keys
        refuse(str(exc))
    with stop_signals() as stop:
        try:
            recovered = engine.start()
        except IngestConfigError as exc:  # an unsafe endpoint, a port in use, ...
            refuse(str(exc))
        try:
            if recovered.reopened or recovered.reported:
                log.info("recovered %d open session(s) (%d events), reported %d closed one(s)",
                         recovered.reopened, recovered.events, recovered.reported)  # fmt: skip
            where = redact(compose.database(settings))  # a password stays out of the log
            banner = (f"assessengine serving: zmq {engine.endpoint}  http {{url}}  "
                      f"db {where}  ({len(library)} rubrics)")  # fmt: skip
            _serve_http(settings, address, stop, banner=banner, metrics=engine.metrics_text,
                        running=lambda: engine.running)  # fmt: skip
            log.info("stopping: finishing the round in hand and the scoring queue")
        finally:
            engine.stop()
    log.info("stopped cleanly")


def _serve_http(
    settings: Settings,
    address: Address,
    stop: threading.Event,
    *,
    banner: str,
    metrics: Callable[[], str] | None = None,
    running: Callable[[], bool] = lambda: True,
) -> None:
    """Serve the HTTP app of `settings` on `address` until `stop` is set; `banner` (its
    ``{url}`` filled in) goes to stderr once serving. ClickException when `running` turns
    false (the engine stopped on its own)."""
    # FastAPI and uvicorn load only in the commands that serve HTTP (every CLI start pays them)
    from ..webserver import WebServer  # noqa: PLC0415

    app = compose.build_app(settings, metrics=metrics, host=address.host, port=address.port)
    try:
        web = WebServer(app, address.host, address.port)
    except OSError as exc:
        refuse(f"cannot serve HTTP on {http_text(address)}: {exc.strerror or exc}")
    index_cohorts(app)
    web.start()
    try:
        click.echo(banner.replace("{url}", web.url), err=True)
        while not stop.wait(0.5):
            if not running():
                raise click.ClickException("the engine stopped unexpectedly (see log)")
    finally:
        web.stop()
