"""`assessengine demo`: the live engine on a fresh SQLite file, fed over ZeroMQ by simulated
sessions of every scenario; then the results, the throughput and the assessors' web page."""

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
from ..adapters.store import Store
from ..client import EngineClient
from ..runtime.engine import Engine
from ..settings import Settings
from ..sim.generate import simulate
from ..streaming import stream_sessions
from ._app import main
from ._settings import load_settings
from .serve_cmd import stop_signals

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
    fail most, the throughput, and the address of the assessors' web page.

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
        store = compose.open_store(db_path, **compose.store_options(settings))
        stack.callback(store.close)
        engine, url = stack.enter_context(_running(settings, store))
        click.echo(f"engine: zmq {engine.endpoint}, http {url}, store {db_path}", err=True)
        streamed, seconds = _feed(engine, chosen, sessions, seed)
        rows = _results(store)
        click.echo(_table(rows))
        events = engine.stats.events_stored
        click.echo(
            f"\n{events:,} events in {streamed:,} sessions streamed over ZeroMQ (columns-v1) in "
            f"{seconds:.1f}s: {events / seconds:,.0f} events/s, each batch stored in SQLite "
            f"before its ACK and scored incrementally (final reports at CLOSE)."
        )
        click.echo("Sessions with a pending in-field observation are 'incomplete' until an "
                   "assessor records it.")  # fmt: skip
        token = _assessor_token(db_path)
        click.echo(f"Assessors' web page: {url}/   (sign in with the demo assessor token "
                   f"{token}; metrics: {url}/metrics)")  # fmt: skip
        if keep:
            click.echo(f"Serving until Ctrl-C (ZeroMQ {engine.endpoint}; store {db_path}).")
            with stop_signals() as stop:
                while not stop.wait(0.5):
                    pass


@contextmanager
def _running(settings: Settings, store: Store) -> Iterator[tuple[Engine, str]]:
    """The engine (ingest, store, scoring) and the HTTP app of `settings`."""
    # FastAPI and uvicorn load only in the commands that serve HTTP (every CLI start pays them)
    from ..webserver import WebServer  # noqa: PLC0415

    library, skipped = compose.load_library(settings)
    for line in skipped:
        click.echo(f"warning: {line}", err=True)
    click.echo("starting the engine (the first run compiles the scoring kernel) ...", err=True)
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
    verdicts = [(c["id"], c["verdict"]) for c in report["criteria"]]
    result.sessions += 1
    result.passed += all(v != "fail" for _, v in verdicts)
    result.failed_criteria.update(cid for cid, v in verdicts if v == "fail")


def _table(rows: list[tuple[str, str, ProfileResult]]) -> str:
    header = (
        f"{'scenario':<20} {'profile':<20} {'sessions':>8} {'no fail':>8}  most failed criteria"
    )
    lines = [header, "-" * len(header)]
    for scenario_id, profile, r in rows:
        top = ", ".join(f"{cid} ({n})" for cid, n in r.failed_criteria.most_common(3)) or "-"
        rate = f"{100 * r.passed / r.sessions:.0f}%"
        lines.append(f"{scenario_id:<20} {profile:<20} {r.sessions:>8} {rate:>8}  {top}")
    return "\n".join(lines)
