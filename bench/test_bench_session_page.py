"""The session page (``GET /sessions/{id}``, server-rendered HTML with the timeline SVG) of a
30-minute session at 10 Hz: 18,000 events, stored as the engine stores them (columns-v1
batches of 1,000 rows in a SQLite file), scored by the kernel, with an observation and an
override. What a render costs: reading and decoding every batch, sample-and-hold, downsampling
to one bucket per plot pixel, the SVG (lanes as steps, thresholds, contributing intervals,
numbered markers), the evidence in words and the reasons.

Also the page zoomed to a criterion (``?zoom=empty_speed``) and the printable report
(``?view=print``). ``extra_info`` gives p50/p95/p99 in milliseconds; the target is
p95 < 200 ms. Run: pytest bench/test_bench_session_page.py --benchmark-only
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from assessengine.adapters.library import load_rubric
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.api.service.models import ObservationIn, OverrideIn
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.compiler import compile_rubric
from assessengine.core.kernel_scorer import score_columns
from assessengine.sim.generate import simulate
from assessengine.storage import open_store
from assessengine.storage.port import SessionInfo

ROOT = Path(__file__).resolve().parents[1]
MINUTES = 30
HZ = 10
ROWS_PER_BATCH = 1_000
ROUNDS = 100
TARGET_P95_MS = 200.0
SID = "S-30MIN"


def _thirty_minutes() -> tuple[Columns, Any, Any]:
    """A simulated forklift session at 10 Hz, its laps repeated end to end up to 30 minutes."""
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    sim = simulate(scenario, "speeder", 1, seed=2)
    lap = float(sim.t[-1]) + 1.0 / HZ
    n = MINUTES * 60 * HZ
    laps = -(-n // len(sim.t))
    t = np.concatenate([sim.t + k * lap for k in range(laps)])[:n]
    event = np.tile(sim.event, laps)[:n]
    signals = np.tile(sim.signals, (1, laps))[:, :n]
    return Columns(np.arange(n, dtype=np.int64), t, event, signals), rubric, scenario


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    cols, rubric, scenario = _thirty_minutes()
    layout = Layout.of(scenario)
    compiled = compile_rubric(rubric, scenario)
    db = tmp_path_factory.mktemp("bench-session-page") / "engine.db"
    with open_store(db, synchronous="OFF") as store:
        store.open_session(SessionInfo(SID, "L-00001", scenario.scenario, rubric.rubric,
                                       rubric.version, compiled.sha256))  # fmt: skip
        items = []
        for start in range(0, len(cols), ROWS_PER_BATCH):
            end = start + ROWS_PER_BATCH
            part = Columns(cols.seq[start:end], cols.t[start:end], cols.event[start:end],
                           cols.signals[:, start:end])  # fmt: skip
            header = {"session": SID, "first_seq": start, "count": len(part),
                      "encoding": "columns-v1", "dtype": layout.dtype_header()}  # fmt: skip
            items.append((SID, start, len(part), "columns-v1", json.dumps(header).encode(),
                          encode_columns_v1(part, layout)))  # fmt: skip
        store.append_batches(items)
        close_t = float(cols.t[-1])
        store.close_session(SID, close_t)
        (report,) = score_columns(compiled, cols.to_batch(0), [SID], np.array([close_t]))
        store.save_report(SID, report.to_data())
    service = ReviewService.open(db)
    try:
        _, token = service.create_token(name="Bench Assessor", role="assessor", learner=None,
                                      actor="bench")
        who = service.authenticate(token)
        service.observe(who, SID, ObservationIn(criterion="looks_before_reversing",
                                                verdict="pass", note="looked every time"))
        service.override(who, SID, OverrideIn(criterion="loaded_speed", verdict="pass",
                                              reason="speedometer reads high on this truck"))
    finally:
        service.close()
    with TestClient(create_app(db_path=db), cookies={"ae_token": token}) as c:
        yield c


def _measure(benchmark: Any, client: TestClient, url: str) -> dict[str, float]:
    """p50/p95/p99 in ms of `ROUNDS` renders; empty when benchmarks are disabled."""

    def call() -> None:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        assert "<svg" in answer.text

    for _ in range(5):  # warm up (rubric compiled, templates loaded)
        call()
    benchmark.pedantic(call, rounds=ROUNDS, iterations=1)
    if benchmark.disabled:  # --benchmark-disable (a smoke run): the calls ran once, untimed
        return {}
    data = np.array(benchmark.stats.stats.data) * 1000.0
    found = {f"p{q}_ms": float(np.percentile(data, q)) for q in (50, 95, 99)}
    benchmark.extra_info.update(events=MINUTES * 60 * HZ, **found)
    print(f"\n{benchmark.name}: " + "  ".join(f"{k} {v:.2f}" for k, v in found.items()))
    return found


@pytest.mark.parametrize("query", ["", "?zoom=empty_speed", "?view=print"])
def test_session_page_of_a_30_minute_session(
    benchmark: Any, client: TestClient, query: str
) -> None:
    found = _measure(benchmark, client, f"/sessions/{SID}{query}")
    benchmark.extra_info["query"] = query or "whole session"
    assert found.get("p95_ms", 0.0) < TARGET_P95_MS
