"""Support for the live engine tests (no tests here): simulated sessions, the offline reports
`assessengine score --json` gives for them, an in-process engine on a real SQLite file, and an
`assessengine serve` subprocess."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner

from assessengine.adapters.library import load_scenario
from assessengine.cli import main
from assessengine.compose import ScoringKind, open_store, scoring_backend
from assessengine.ingest.zmq import zmq_transport
from assessengine.runtime.engine import Engine
from assessengine.runtime.pipeline import RubricLibrary
from assessengine.sim.generate import SimBatch, jsonl_lines, simulate
from assessengine.storage.port import Store

from .waits import START_S, WAIT_S

ROOT = Path(__file__).resolve().parents[1]
RUBRIC_DIR = ROOT / "rubrics"
RUBRIC_OF = {
    "forklift-warehouse": "forklift-load-handling",
    "haul-truck-surface": "haul-truck-surface",
    "lhd-underground": "lhd-underground",
    "network-lab": "network-lab",
}
TRANSPORT_OPTIONS = ("curve", "insecure", "max_frame_bytes", "rcvhwm")
"""`running_engine`'s options that are the ZeroMQ transport's (the others are the engine's)."""
FAST = {"reply_timeout": 0.2, "resend_after": 0.6, "dead_after": 1.0}
"""Client timeouts for tests: an engine that is down is noticed within a second."""


@cache
def library() -> RubricLibrary:
    lib, skipped = RubricLibrary.load([RUBRIC_DIR])
    assert not skipped
    return lib


def sessions(scenario: str, n: int, *, seed: int = 3, first: int = 0) -> SimBatch:
    """`n` simulated sessions (mixed profiles) with their library rubric."""
    return simulate(load_scenario(scenario), "mixed", n, seed=seed, first=first,
                    rubric=RUBRIC_OF[scenario])  # fmt: skip


def offline_reports(sim: SimBatch, folder: Path) -> dict[str, dict[str, Any]]:
    """What ``assessengine score --json`` says about the same events, by session id."""
    events = folder / f"{sim.scenario}-{sim.session_ids[0]}.jsonl"
    events.write_text("".join(line + "\n" for line in jsonl_lines(sim)), encoding="utf-8")
    rubric = RUBRIC_DIR / f"{sim.rubric}.yaml"
    result = CliRunner().invoke(main, ["score", "--rubric", str(rubric), "--json", str(events)])
    assert result.exit_code == 0, result.output
    return {r["session"]: r for r in json.loads(result.output)["sessions"]}


def audit(db: Path | str, session: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", session, "--db", str(db), "--rubric-dir",
                                       str(RUBRIC_DIR)])  # fmt: skip
    return result.exit_code, result.output


@contextmanager
def running_engine(
    db: Path | str,
    *,
    scoring: ScoringKind = "thread",
    rubrics: RubricLibrary | None = None,
    **options: Any,
) -> Iterator[tuple[Engine, Store]]:
    """An in-process engine on loopback (free port) over a store (a SQLite file's path or a
    store URL), scoring in a thread or in a process of its own, with the `rubrics` given (the
    repository's `library()` by default)."""
    transport_options = {k: options.pop(k) for k in TRANSPORT_OPTIONS if k in options}
    lib = library() if rubrics is None else rubrics
    with closing(open_store(db)) as store:
        backend = scoring_backend(scoring, store, lib, url=db)
        transport = zmq_transport("tcp://127.0.0.1:*", **transport_options)
        engine = Engine(store, lib, transport, scoring=backend, **options)
        engine.start()
        try:
            yield engine, store
        finally:
            engine.stop()


def reports(db: Path | str, session_ids: tuple[str, ...] | list[str]) -> dict[str, Any]:
    with closing(open_store(db)) as store:
        return {sid: store.report(sid) for sid in session_ids}


# ================================================================================ subprocess


@dataclass
class Served:
    """An `assessengine serve` subprocess and what it said when ready."""

    process: subprocess.Popen[str]
    zmq: str
    http: str
    stderr: queue.Queue[str]

    def log(self) -> str:
        lines = []
        while not self.stderr.empty():
            lines.append(self.stderr.get_nowait())
        return "".join(lines)

    def health(self) -> int:
        return httpx.get(f"{self.http}/health", timeout=WAIT_S).status_code

    def metrics(self) -> str:
        return httpx.get(f"{self.http}/metrics", timeout=WAIT_S).text

    def terminate(self, timeout: float = WAIT_S) -> int:
        """SIGTERM, then the exit code (SIGKILL if it hangs: the test fails then)."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(WAIT_S)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def serve(
    db: Path | str, *options: str, zmq: str = "tcp://127.0.0.1:*", timeout: float = START_S
) -> Served:
    """Start ``assessengine serve`` (with `options`) and wait until it serves (raises with its
    log if not)."""
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "assessengine", "serve", "--db", str(db), "--zmq", zmq,
         "--http", "127.0.0.1:0", *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        process.stderr.close()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith("assessengine serving:"):
            words = line.split()
            for kept in seen:
                lines.put(kept)
            zmq_at = words[words.index("zmq") + 1] if "zmq" in words else ""  # --no-ingest
            return Served(process, zmq_at, words[words.index("http") + 1], lines)
    process.kill()
    process.wait(WAIT_S)
    raise AssertionError("serve did not start:\n" + "".join(seen))
