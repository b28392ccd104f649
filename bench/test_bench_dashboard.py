"""The cohort dashboard and the review queue with 10,000 sessions in the store, on both
backends (a SQLite file; a PostgreSQL database on the benchmarks' own server, fsync on).

The store is filled as `test_bench_api` fills it (every session opened, a real batch
appended, closed, a kernel report saved; a tenth observed, a fortieth overridden), so the
cohort index covers sessions with and without reviews. The first request indexes every
session (the warm-up, measured apart as ``index_s``); the measured requests find the index
current and aggregate in SQL. Requests go through the whole app with FastAPI's TestClient:
``GET /api/v1/dashboard`` (JSON), ``GET /dashboard`` (the page with its SVG charts) and
``GET /api/v1/review-queue`` (counts per reason and a page); ``dashboard_api_uncached``
asks for a new filter each time, so the numbers are computed afresh (not the kept ones).
The index is built before serving, as ``serve`` does (`index_cohorts`). ``extra_info`` gives
p50/p95/p99 in milliseconds; the target is p95 < 500 ms.
Run: pytest bench/test_bench_dashboard.py --benchmark-only
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.api.service.models import ObservationIn, OverrideIn

from .test_bench_api import SESSIONS, _fill, _measure

TARGET_P95_MS = 500.0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The app (pages too) over a filled store of the parameter's backend, signed in as a
    trainer (bearer token for the API, the cookie for the page), its index built once."""
    folder = tmp_path_factory.mktemp("bench-dashboard")
    url: str | Path = folder / "engine.db"
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
    ids = _fill(url)
    key = folder / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    key.chmod(0o600)
    app = create_app(db_path=url, issuer_key_path=key)
    service: ReviewService = app.state.service
    _, admin = service.create_token(name="bench", role="admin", learner=None, actor="bench")
    _, trainer = service.create_token(name="trainer", role="trainer", learner=None,
                                      actor="bench")  # fmt: skip
    who = service.authenticate(admin)
    for sid in ids[::10]:
        service.observe(who, sid, ObservationIn(criterion="looks_before_reversing",
                                                verdict="pass", note="seen"))  # fmt: skip
    for sid in ids[::40]:
        service.override(who, sid, OverrideIn(criterion="loaded_speed", verdict="pass",
                                              reason="sensor fault"))  # fmt: skip
    started = time.perf_counter()
    indexed = app.state.cohorts.refresh()
    index_s = time.perf_counter() - started
    assert indexed == SESSIONS
    print(f"\n{request.param}: indexed {indexed} sessions in {index_s:.2f} s")
    with TestClient(app, headers={"Authorization": f"Bearer {trainer}"},
                    cookies={"ae_token": trainer}) as client:  # fmt: skip
        client.index_s = index_s  # type: ignore[attr-defined]
        yield client


DAYS = [f"2100-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29)]
URLS = {
    "dashboard_api": ["/api/v1/dashboard", "/api/v1/dashboard?source=simulator&period=month"],
    # computed afresh every time: 336 distinct filters (each selecting every session) cycle
    # through the 64 kept ones, so none is found kept
    "dashboard_api_uncached": [f"/api/v1/dashboard?opened_to={d}T00:00:00Z" for d in DAYS],
    "dashboard_page": ["/dashboard"],
    "review_queue": ["/api/v1/review-queue?limit=50",
                     "/api/v1/review-queue?reason=critical&limit=50"],
}  # fmt: skip


@pytest.mark.parametrize("what", list(URLS))
def test_dashboard(benchmark: Any, loaded: TestClient, what: str) -> None:
    found = _measure(benchmark, itertools.cycle(URLS[what]), loaded)
    benchmark.extra_info.update(what=what, index_s=loaded.index_s)  # type: ignore[attr-defined]
    assert found.get("p95_ms", 0.0) < TARGET_P95_MS
