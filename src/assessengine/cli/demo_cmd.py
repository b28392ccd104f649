"""`assessengine demo`: the live engine on a fresh SQLite file, fed over ZeroMQ by simulated
sessions of every scenario; then the results and the throughput, and with ``--keep`` the
assessors' web page while it serves.

The scoring kernel is made ready first, in the foreground and timed on its own (a first run
compiles it with numba, which caches it; later runs load it in about a second), so the
throughput is the stream's alone."""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import click

from .. import compose
from ..adapters.library import load_scenario, rubric_dirs
from ..client import EngineClient
from ..runtime.engine import Engine
from ..runtime.pipeline import RubricLibrary, prepare_kernel
from ..settings import Settings
from ..sim.generate import simulate
from ..storage.port import Store, StoreError
from ..streaming import stream_sessions
from ._app import main
from ._settings import load_settings
from .serve_cmd import stop_signals
from .summary import count_failed, render_failed

SCENARIOS = ("forklift-warehouse", "haul-truck-surface", "lhd-underground", "network-lab")
RUBRICS = {
    "forklift-warehouse": "forklift-load-handling",
    "haul-truck-surface": "haul-truck-surface",
    "lhd-underground": "lhd-underground",
    "network-lab": "network-lab",
}
SENDER_TIMEOUT = 600.0


@dataclass
class ProfileResult:
    sessions: int = 0
    passed: int = 0
    failed_criteria: Counter[str] = field(default_factory=Counter)


@main.command("demo")
@click.option("--sessions", default=200, show_default=True, help="Sessions per scenario.")
@click.option("--seed", default=1, show_default=True, help="Simulation seed (same seed, same run).")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(SCENARIOS),
    help="Only these scenarios (repeatable; default: all four).",
)
@click.option("--keep", is_flag=True, help="Keep serving (ZeroMQ and HTTP) until Ctrl-C.")
@click.option(
    "--db",
    "db_path",
    default=None,
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite store to use (kept afterwards). Default: a fresh file in a temporary "
    "directory, removed at the end.",
)
def demo(
    sessions: int, seed: int, scenarios: tuple[str, ...], keep: bool, db_path: Path | None
) -> None:
    """Run the live engine and feed it: simulated operators of every scenario (competent and
    flawed profiles) stream their sessions over ZeroMQ; the engine stores every batch in
    SQLite before acknowledging it, scores it incrementally against the shipped rubrics, and
    saves a report when each session closes. Then: pass rate per profile, the criteria that
    fail most, and the throughput (the kernel's first-run compile timed apart). With --keep
    it then keeps serving, and prints the address of the assessors' web page and a sign-in
    token, until Ctrl-C.

    \b
    Afterwards, with --db:
      assessengine audit SESSION --db PATH    prove a stored session intact and reproducible
    """
    if sessions < 1:
        raise click.BadParameter("must be at least 1", param_hint="--sessions")
    chosen = scenarios or SCENARIOS
    with ExitStack() as stack:
        if db_path is None:
            db_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "demo.db"
        # loopback, ephemeral ports, scoring in its own process (as serve); the environment's
        # ASSESSENGINE_* tuning applies too
        settings = load_settings({"db": str(db_path), "zmq": "tcp://127.0.0.1:*",
                                  "http": "127.0.0.1:0", "scoring": "process"}, None)  # fmt: skip
        try:
            store = compose.open_engine_store(db_path, settings)
        except StoreError as exc:  # e.g. a `serve` runs on it
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(2) from None
        stack.callback(store.close)
        library, skipped = compose.load_library(settings)
        for line in skipped:
            click.echo(f"warning: {line}", err=True)
        kernel_ready = _prepare_kernel(settings, library, chosen)
        engine, url = stack.enter_context(_running(settings, store, library))
        served = f", http {url}" if keep else ""  # the address only where it will be served
        click.echo(f"engine: zmq {engine.endpoint}{served}, store {db_path}", err=True)
        streamed, seconds = _feed(engine, chosen, sessions, seed)
        rows = _results(store)
        click.echo(_table(rows))
        events = engine.stats.events_stored
        click.echo(
            f"\n{events:,} events in {streamed:,} sessions streamed over ZeroMQ (columns-v1) in "
            f"{seconds:.1f}s: {events / seconds:,.0f} events/s end to end (the simulator's "
            f"client, ZeroMQ, each batch stored in SQLite before its ACK and scored "
            f"incrementally, final reports at CLOSE; client and engine share this machine)."
        )
        click.echo(f"Scoring kernel: {kernel_ready}, before the stream (not counted above).")
        click.echo("Sessions with a pending in-field observation are 'incomplete' until an "
                   "assessor records it.")  # fmt: skip
        if not keep:
            click.echo("The engine has stopped. To review the sessions on the assessors' web "
                       "page, run `assessengine demo --keep`: it keeps serving until Ctrl-C."
                       )  # fmt: skip
            return
        token = _assessor_token(db_path)
        click.echo(f"Assessors' web page: {url}/   (sign in with the demo assessor token "
                   f"{token}; metrics: {url}/metrics)")  # fmt: skip
        click.echo(f"Serving until Ctrl-C (ZeroMQ {engine.endpoint}; store {db_path}).")
        with stop_signals() as stop:
            while not stop.wait(0.5):
                pass


def _prepare_kernel(settings: Settings, library: RubricLibrary, scenarios: Sequence[str]) -> str:
    """Compile (a first run) or load (numba's cache) the scoring kernel, and the rubrics'
    fused steps when they are on, before the engine starts, so that the stream is timed alone;
    says which it was and how long it took.

    A first run also streams a few sessions of each scenario through a throwaway engine on
    a scratch store: the live path (the ingest's checks, the scoring process's views of the
    batches) needs variants of the compiled functions that a one-row warm-up does not reach,
    and they are compiled then, not during the timed stream."""
    click.echo("preparing the scoring kernel (a first run compiles it: about half a minute, "
               "minutes on a busy machine; later runs load it from numba's cache) ...",
               err=True)  # fmt: skip
    start = time.perf_counter()
    first_run = prepare_kernel(library)  # the stream is timed on the fused steps it waits for
    if first_run:
        with tempfile.TemporaryDirectory() as folder:
            scratch = settings.model_copy(update={"db": str(Path(folder) / "warm-up.db")})
            store = compose.open_store(Path(folder) / "warm-up.db",
                                       **compose.store_options(scratch))  # fmt: skip
            try:
                _warm_up_round(compose.build_engine(scratch, store, library), scenarios)
            finally:
                store.close()
    seconds = time.perf_counter() - start
    how = ("compiled (a first run; numba cached it for the next ones)" if first_run
           else "loaded from numba's cache")  # fmt: skip
    return f"{how} in {seconds:.1f}s"


def _warm_up_round(engine: Engine, scenarios: Sequence[str]) -> None:
    engine.start()
    try:
        with EngineClient(engine.endpoint, client_id="assessengine-demo-warm-up") as client:
            for scenario in scenarios:
                sim = simulate(load_scenario(scenario), "mixed", 4, seed=0,
                               rubric=RUBRICS[scenario])  # fmt: skip
                stream_sessions(client, sim, timeout=SENDER_TIMEOUT)
        if not engine.wait_idle(SENDER_TIMEOUT):
            raise click.ClickException("the scoring kernel did not get ready (see the log)")
    finally:
        engine.stop()


@contextmanager
def _running(
    settings: Settings, store: Store, library: RubricLibrary
) -> Iterator[tuple[Engine, str]]:
    """The engine (ingest, store, scoring) and the HTTP app of `settings`."""
    # FastAPI and uvicorn load only in the commands that serve HTTP (every CLI start pays them)
    from ..webserver import WebServer  # noqa: PLC0415

    click.echo("starting the engine ...", err=True)
    engine = compose.build_engine(settings, store, library)
    engine.start()
    try:
        app = compose.build_app(settings, metrics=engine.metrics_text)
        web = WebServer(app, "127.0.0.1", 0)
        web.start()
        try:
            yield engine, web.url
        finally:
            web.stop()
    finally:
        engine.stop()


def _feed(engine: Engine, scenarios: Sequence[str], sessions: int, seed: int) -> tuple[int, float]:
    """Stream from a separate process, showing progress; returns (sessions, seconds from the
    first OPEN to the last report saved)."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    sender = context.Process(
        target=_send, args=(theirs, engine.endpoint, list(scenarios), sessions, seed),
        name="demo-sender", daemon=True,
    )  # fmt: skip
    sender.start()
    theirs.close()
    total = sessions * len(scenarios)
    try:
        start = _wait_for(ours, "streaming")
        with click.progressbar(length=total, label="sessions scored", file=sys.stderr) as bar:
            done = 0
            while not ours.poll(0.2):
                if not sender.is_alive():
                    raise click.ClickException("the simulator process died")
                now = engine.scoring.reports_saved
                bar.update(now - done)
                done = now
            outcome = ours.recv()
            if isinstance(outcome, str):
                raise click.ClickException(f"streaming failed: {outcome}")
            if not engine.wait_idle(60):
                raise click.ClickException("the engine did not finish scoring within 60 s")
            bar.update(engine.scoring.reports_saved - done)
        return int(outcome), time.perf_counter() - start
    finally:
        sender.join(10)
        if sender.is_alive():
            sender.kill()
            sender.join()
        ours.close()


def _wait_for(conn: Connection, word: str) -> float:
    if not conn.poll(SENDER_TIMEOUT):
        raise click.ClickException("the simulator process did not start")
    message = conn.recv()
    if message != word:
        raise click.ClickException(f"the simulator process failed: {message}")
    return time.perf_counter()


def _send(conn: Connection, endpoint: str, scenarios: list[str], sessions: int, seed: int) -> None:
    """The simulator process: every scenario's sessions in turn, streamed with one client."""
    try:
        sims = [simulate(load_scenario(s), "mixed", sessions, seed=seed, rubric=RUBRICS[s])
                for s in scenarios]  # fmt: skip
        conn.send("streaming")
        streamed = 0
        with EngineClient(endpoint, client_id="assessengine-demo") as client:
            for sim in sims:
                streamed += stream_sessions(client, sim, timeout=SENDER_TIMEOUT).sessions
        conn.send(streamed)
    except Exception as exc:  # reported by the parent
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _assessor_token(db_path: Path) -> str:
    """A fresh assessor token for the web pages (only its hash is stored)."""
    from ..api.service import ReviewService  # noqa: PLC0415  (loads FastAPI's side: see above)

    service = ReviewService.open(db_path, rubric_dirs=rubric_dirs())
    try:
        _, secret = service.create_token(name="demo assessor", role="assessor", learner=None,
                                         actor="assessengine demo")  # fmt: skip
    finally:
        service.close()
    return secret


def _results(store: Store) -> list[tuple[str, str, ProfileResult]]:
    """Per scenario and profile, from the reports the engine saved."""
    results: dict[tuple[str, str], ProfileResult] = {}
    for record in store.sessions(status="closed"):
        report = store.report(record.info.session)
        if report is None:
            continue
        profile = str(record.info.metadata.get("profile", "?"))
        result = results.setdefault((record.info.scenario, profile), ProfileResult())
        _count(result, report)
    return [
        (scenario, profile, r)
        for (scenario, profile), r in sorted(
            results.items(), key=lambda item: (item[0][0], item[0][1] != "competent", item[0][1])
        )
    ]


def _count(result: ProfileResult, report: Mapping[str, Any]) -> None:
    verdicts = [(str(c["id"]), str(c["verdict"])) for c in report["criteria"]]
    result.sessions += 1
    result.passed += all(v != "fail" for _, v in verdicts)
    result.failed_criteria.update(count_failed([verdicts]))


def _table(rows: list[tuple[str, str, ProfileResult]]) -> str:
    header = (
        f"{'scenario':<20} {'profile':<20} {'sessions':>8} {'no fail':>8}  most failed criteria"
    )
    lines = [header, "-" * len(header)]
    for scenario_id, profile, r in rows:
        top = render_failed(r.failed_criteria, most=3)
        rate = f"{100 * r.passed / r.sessions:.0f}%"
        lines.append(f"{scenario_id:<20} {profile:<20} {r.sessions:>8} {rate:>8}  {top}")
    return "\n".join(lines)
