"""`assessengine serve` as a process: `simulate --connect` streams to it, `/health` and
`/metrics` answer, and SIGTERM shuts it down cleanly (ACKed batches durable, scoring in flight
finished, reports saved); `assessengine demo --keep` serves until interrupted."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from assessengine.cli import main
from assessengine.client import ClientCurve, DeliveryTimeoutError, EngineClient
from assessengine.compose import curve_from
from assessengine.core.codec import Columns
from assessengine.ingest.zmq import IngestConfigError
from assessengine.storage.sqlite import SqliteStore
from assessengine.streaming import stream_sessions

from .test_engine_helpers import FAST, audit, offline_reports, running_engine, serve, sessions
from .waits import START_S, WAIT_S


@pytest.mark.parametrize("scoring", ["process", "thread"])
def test_serve_takes_simulate_connect_and_stops_cleanly_on_sigterm(
    tmp_path: Path, scoring: str
) -> None:
    db = tmp_path / "engine.db"
    served = serve(db, "--scoring", scoring)
    lab = sessions("network-lab", 3, seed=2)
    closing = sessions("haul-truck-surface", 2, seed=5)
    half = sessions("forklift-warehouse", 1, seed=4)
    try:
        assert served.health() == 200
        result = CliRunner().invoke(main, [
            "simulate", "network-lab", "-p", "mixed", "-n", "3", "--seed", "2", "--connect",
            served.zmq, "--encoding", "json-v1"])  # fmt: skip
        assert result.exit_code == 0, result.output
        with EngineClient(served.zmq, client_id="t", **FAST) as c:
            sid = half.session_ids[0]
            c.open(sid, learner="L", scenario=half.scenario, rubric=half.rubric)
            n = len(half) // 2
            c.send(sid, Columns(half.seq[:n], half.t[:n], half.event[:n], half.signals[:, :n]))
            stream_sessions(c, closing)  # every CLOSED received; their scoring may be in flight
        metrics = served.metrics()
        code = served.terminate()
    finally:
        if served.process.poll() is None:
            served.kill()
    assert code == 0, served.log()
    assert "stopped cleanly" in served.log()
    assert "assessengine_events_received_total" in metrics
    with SqliteStore(db) as store:
        open_one = store.session(half.session_ids[0])
        assert open_one is not None
        assert (open_one.status, open_one.next_seq) == ("open", len(half) // 2)
        got = {sid: store.report(sid) for sim in (lab, closing) for sid in sim.session_ids}
    assert got == offline_reports(lab, tmp_path) | offline_reports(closing, tmp_path)
    assert audit(db, closing.session_ids[-1])[0] == 0


def test_demo_streams_every_scenario_and_keeps_serving_until_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "assessengine", "demo", "--sessions", "6", "--keep", "--db",
         str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        process.stdout.close()

    threading.Thread(target=pump, daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + START_S
        while not any(x.startswith("Serving until Ctrl-C") for x in output):
            assert time.monotonic() < deadline, "".join(output)
            try:
                output.append(lines.get(timeout=0.5))
            except queue.Empty:
                assert process.poll() is None, "".join(output)
        page = next(x for x in output if x.startswith("Assessors' web page:")).split()[3]
        assert httpx.get(page + "health", timeout=WAIT_S).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT_S)
    text = "".join(output)
    for scenario in ("forklift-warehouse", "haul-truck-surface", "lhd-underground",
                     "network-lab"):  # fmt: skip
        assert f"\n{scenario} " in text
    assert "events/s" in text
    with SqliteStore(db) as store:
        closed = store.sessions(status="closed")
        assert len(closed) == 24
        assert all(store.report(r.info.session) is not None for r in closed)
    assert audit(db, closed[0].info.session)[0] == 0


def test_demo_without_keep_gives_no_address_and_times_the_kernel_apart(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "assessengine", "demo", "--sessions", "3", "--scenario",
         "network-lab", "--db", str(tmp_path / "demo.db")],
        capture_output=True, text=True, timeout=600, check=False,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "http://" not in done.stdout + done.stderr  # it stopped: no address to visit
    assert "run `assessengine demo --keep`" in done.stdout
    lines = done.stdout.splitlines()
    stream = next(k for k, line in enumerate(lines) if "events/s end to end" in line)
    kernel = lines[stream + 1]
    assert kernel.startswith(("Scoring kernel: compiled", "Scoring kernel: loaded")), kernel
    assert kernel.endswith("before the stream (not counted above)."), kernel
    assert "preparing the scoring kernel" in done.stderr


def test_preparing_the_kernel_waits_for_the_fused_steps_before_the_warm_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pipeline.prepare_kernel` (what the demo and `serve` run before the engine starts) asks
    for every rubric's fused step and waits for them before the warm-up, so that the warm-up
    runs on them: a first run does not also compile the table-driven kernel that would score
    while they compile (docs/performance.md). Both commands go through it."""
    from assessengine.cli import demo_cmd, serve_cmd  # noqa: PLC0415
    from assessengine.compose import load_library  # noqa: PLC0415
    from assessengine.runtime import pipeline  # noqa: PLC0415
    from assessengine.settings import Settings  # noqa: PLC0415

    calls: list[str] = []

    def wait_for(rubrics: Iterable[object], *, meanwhile: Callable[[], object] | None) -> int:
        calls.append(f"fused steps of {len(list(rubrics))} rubrics asked")
        if meanwhile is not None:
            meanwhile()
        calls.append("waited")
        return 0

    def warm_up_kernel(library: object, *, table_only: bool = False) -> bool:
        calls.append("table-driven kernel's warm-up" if table_only else "warm-up")
        return False

    monkeypatch.setattr(pipeline.fused, "wait_for", wait_for)
    monkeypatch.setattr(pipeline, "warm_up_kernel", warm_up_kernel)
    def warm_up_reader(scenario: Any) -> None:
        calls.append(f"reader of {scenario.scenario}")

    monkeypatch.setattr(serve_cmd, "warm_up_reader", warm_up_reader)
    settings = Settings()
    library, scenarios = load_library(settings)
    rubrics = len(list(library.entries()))
    assert demo_cmd._prepare_kernel(settings, library, scenarios).startswith(
        "loaded from numba's cache"
    )
    asked = f"fused steps of {rubrics} rubrics asked"
    assert calls == [asked, "waited", "warm-up"]
    calls.clear()
    # `serve` also warms up, while the steps compile, the table-driven kernel (a rubric
    # uploaded later is scored by it until its step is compiled) and the uploads' reader
    serve_cmd.prepare_kernel(library)
    readers = sorted({f"reader of {entry.scenario.scenario}" for entry in library.entries()})
    assert calls == [asked, "table-driven kernel's warm-up", *readers, "waited", "warm-up"]


def test_serve_refuses_a_public_bind_without_curve(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "e.db"), "--zmq",
                                       "tcp://0.0.0.0:*", "--http", "127.0.0.1:0"])  # fmt: skip
    assert result.exit_code == 2
    assert "without CURVE" in result.output


def test_curve_keys_dir_admits_listed_clients_only(tmp_path: Path) -> None:
    keys, other = tmp_path / "keys", tmp_path / "other"
    for folder, name in ((keys, "engine"), (keys, "sim-01"), (other, "intruder")):
        assert CliRunner().invoke(main, ["keys", "create", "--out", str(folder), "--name",
                                         name]).exit_code == 0  # fmt: skip
    (keys / "sim-01.key_secret").rename(tmp_path / "sim-01.key_secret")  # not on the engine
    curve = curve_from(keys)
    sim = sessions("network-lab", 1, seed=3)
    with running_engine(tmp_path / "e.db", curve=curve) as (engine, store):
        good = ClientCurve.from_files(keys / "engine.key", tmp_path / "sim-01.key_secret")
        with EngineClient(engine.endpoint, client_id="sim-01", curve=good, **FAST) as c:
            stream_sessions(c, sim)
        bad = ClientCurve.from_files(keys / "engine.key", other / "intruder.key_secret")
        with EngineClient(engine.endpoint, client_id="intruder", curve=bad, **FAST) as c, \
                pytest.raises(DeliveryTimeoutError):  # fmt: skip
            c.open("X", learner="L", scenario="network-lab", rubric="network-lab", timeout=1.5)
        assert engine.wait_idle(60)
        assert store.report(sim.session_ids[0]) is not None
        assert store.session("X") is None
        assert engine.counters.snapshot()["denied_clients"] >= 1


def test_curve_keys_dir_needs_the_engine_secret_and_a_client_key(tmp_path: Path) -> None:
    with pytest.raises(IngestConfigError, match=r"engine\.key_secret"):
        curve_from(tmp_path)
    assert CliRunner().invoke(main, ["keys", "create", "--out", str(tmp_path)]).exit_code == 0
    with pytest.raises(IngestConfigError, match="no client public keys"):
        curve_from(tmp_path)


def test_serve_no_ingest_serves_the_api_beside_a_running_engine_on_its_store(
    tmp_path: Path,
) -> None:
    """`serve --no-ingest` opens no ZeroMQ socket, runs no scoring and does not take the
    engine's lock on the store: it serves the HTTP API over what the engine stores."""
    db = tmp_path / "engine.db"
    sim = sessions("network-lab", 1, seed=12)
    with running_engine(db) as (engine, _):
        with EngineClient(engine.endpoint, client_id="t", **FAST) as c:
            stream_sessions(c, sim)
        assert engine.wait_idle(60)
        made = CliRunner().invoke(main, ["token", "create", "--role", "assessor", "--name", "t",
                                         "--db", str(db)])  # fmt: skip
        assert made.exit_code == 0, made.output
        token = made.output.splitlines()[0]
        api = serve(db, "--no-ingest")
        try:
            assert (api.zmq, api.health()) == ("", 200)
            assert api.metrics() == ""  # no ingest, no scoring: nothing to count
            sid = sim.session_ids[0]
            got = httpx.get(f"{api.http}/api/v1/sessions/{sid}", timeout=WAIT_S,
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert got.status_code == 200, got.text
            assert got.json()["session"] == sid
            code = api.terminate()
        finally:
            if api.process.poll() is None:
                api.kill()
    assert code == 0, api.log()
    assert "HTTP only: --no-ingest" in api.log()
