"""HTTP API latency with 10,000 sessions in the store: listing sessions (first page, a page deep
in the listing, filtered by learner and by outcome) and reading one session's review.

Each runs on both backends (``backend``: a SQLite file, and a PostgreSQL database on the
benchmarks' own server, fsync on; the fill commits without waiting for the disk on both, the
requests measured only read). The store is filled through its `Store` as the engine fills it:
every session opened, one columns-v1 batch of real simulated events appended (hash-chained),
closed, and a kernel report saved (20 scored forklift sessions, reused round-robin); a tenth
of the sessions have an in-field observation and a fortieth an override, so the reviewed
outcomes are joined too.
Requests go through the whole app (routing, token check, validation, JSON) with FastAPI's
TestClient. ``extra_info`` gives p50/p95/p99 in milliseconds; the target is p95 < 50 ms.
Run: pytest bench/test_bench_api.py --benchmark-only
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from assessengine.adapters.library import load_rubric
from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.api.service.models import ObservationIn, OverrideIn
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.offline import score_sessions
from assessengine.sim.generate import simulate
from assessengine.storage import open_store
from assessengine.storage.port import SessionInfo

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 10_000
LEARNERS = 1_000
DISTINCT = 20
EVENTS_PER_SESSION = 200
ROUNDS = 300
TARGET_P95_MS = 50.0


def _fill(url: str | Path) -> list[str]:
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    layout = Layout.of(scenario)
    sims = simulate(scenario, "mixed", DISTINCT, seed=5).to_sessions()
    reports = [r.to_data() for r in score_sessions(rubric, scenario, sims)]
    payloads = []
    for s in sims:
        part = s.events[:EVENTS_PER_SESSION]
        header = {"first_seq": 0, "count": len(part), "encoding": "columns-v1",
                  "dtype": layout.dtype_header()}  # fmt: skip
        payloads.append((header, encode_columns_v1(Columns.from_events(part, layout), layout)))
    ids = [f"S-{k:06d}" for k in range(SESSIONS)]
    with open_store(url, synchronous="OFF") as store:
        for k, sid in enumerate(ids):
            store.open_session(SessionInfo(sid, f"L-{k % LEARNERS:05d}", scenario.scenario,
                                           rubric.rubric, rubric.version, rubric.sha256()))
            header, payload = payloads[k % DISTINCT]
            count = header["count"]
            store.append_batches([(sid, 0, count, "columns-v1",
                                   json.dumps({**header, "session": sid}).encode(), payload)])
            store.close_session(sid, sims[k % DISTINCT].end_t)
            store.save_report(sid, {**reports[k % DISTINCT], "session": sid})
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, list[str]]]:
    """The app over a filled store of the `backend` (the parameter)."""
    folder = tmp_path_factory.mktemp("bench-api")
    url: str | Path = folder / "engine.db"
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
    ids = _fill(url)
    key = folder / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    app = create_app(db_path=url, web=False, issuer_key_path=key)
    service: ReviewService = app.state.service
    _, admin = service.create_token(name="bench", role="admin", learner=None, actor="bench")
    who = service.authenticate(admin)
    for sid in ids[::10]:
        service.observe(who, sid, ObservationIn(criterion="looks_before_reversing",
                                                verdict="pass", note="seen"))  # fmt: skip
    for sid in ids[::40]:
        service.override(who, sid, OverrideIn(criterion="loaded_speed", verdict="pass",
                                              reason="sensor fault"))  # fmt: skip
    with TestClient(app, headers={"Authorization": f"Bearer {admin}"}) as client:
        yield client, ids


def _measure(benchmark: Any, urls: Iterator[str], client: TestClient) -> dict[str, float]:
    """p50/p95/p99 in ms of `ROUNDS` requests; empty when benchmarks are disabled."""
    def call() -> None:
        answer = client.get(next(urls))
        assert answer.status_code == 200, answer.text

    for _ in range(20):  # warm up (rubric compiled, pages cached)
        call()
    benchmark.pedantic(call, rounds=ROUNDS, iterations=1)
    if benchmark.disabled:  # --benchmark-disable (a smoke run): the calls ran once, untimed
        return {}
    data = np.array(benchmark.stats.stats.data) * 1000.0
    found = {f"p{q}_ms": float(np.percentile(data, q)) for q in (50, 95, 99)}
    benchmark.extra_info.update(sessions=SESSIONS, **found)
    print(f"\n{benchmark.name}: " + "  ".join(f"{k} {v:.2f}" for k, v in found.items()))
    return found


def _cursor_at(client: TestClient, depth: int) -> str:
    cursor = None
    for _ in range(depth // 500):
        url = "/api/v1/sessions?limit=500" + (f"&cursor={cursor}" if cursor else "")
        cursor = client.get(url).json()["next_cursor"]
    assert cursor is not None
    return str(cursor)


LISTINGS: dict[str, Callable[[TestClient, random.Random], Iterator[str]]] = {
    "first_page": lambda c, r: itertools.repeat("/api/v1/sessions?limit=50"),
    "deep_page": lambda c, r: itertools.repeat(
        f"/api/v1/sessions?limit=50&cursor={_cursor_at(c, 5000)}"
    ),
    "by_learner": lambda c, r: (
        f"/api/v1/sessions?learner=L-{r.randrange(LEARNERS):05d}" for _ in itertools.count()
    ),
    "by_outcome": lambda c, r: itertools.cycle(
        [f"/api/v1/sessions?limit=50&outcome={o}" for o in ("pass", "fail", "incomplete")]
    ),
}


@pytest.mark.parametrize("listing", list(LISTINGS))
def test_list_sessions(benchmark: Any, loaded: tuple[TestClient, list[str]], listing: str) -> None:
    client, _ = loaded
    found = _measure(benchmark, LISTINGS[listing](client, random.Random(1)), client)
    benchmark.extra_info["listing"] = listing
    assert found.get("p95_ms", 0.0) < TARGET_P95_MS


def test_read_one_session(benchmark: Any, loaded: tuple[TestClient, list[str]]) -> None:
    client, ids = loaded
    rng = random.Random(2)
    urls = (f"/api/v1/sessions/{rng.choice(ids)}" for _ in itertools.count())
    found = _measure(benchmark, urls, client)
    assert found.get("p95_ms", 0.0) < TARGET_P95_MS
