"""Replication lag, site -> hub, for 10,000 reports (issue #19): a site database and a hub
database on two PostgreSQL servers of the benchmark's own (fsync on, ``wal_level = logical``),
joined by `storage.replication.add_site` as ``assessengine site add`` does.

The site's store is filled as the engine fills it, through its `Store`: every session opened,
one columns-v1 batch of 200 real simulated forklift events appended (hash-chained; the raw
payload travels to the hub in the row), closed, and a kernel report saved (four transactions
a session, committed without waiting for the disk, as the API benchmark fills).

Two figures, in ``extra_info``:

- ``live_lag_s``: the hub follows while the site is filled; the seconds from the site's last
  commit until the hub holds all 10,000 reports (what an assessor at the hub waits for the
  last session of a busy site).
- ``backlog_s`` (the measured call): the subscription disabled while the site takes another
  10,000 sessions (a link down), then enabled; the seconds until the hub holds them all
  (``backlog_reports_per_s``: its catch-up rate).

Run: pytest bench/test_bench_replication.py --benchmark-only
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, Final

import psycopg
import pytest
from tests.pg_server import PgServer, bin_dir

from assessengine.adapters.library import load_rubric
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.offline import score_sessions
from assessengine.sim.generate import simulate
from assessengine.storage import open_store
from assessengine.storage.port import SessionInfo
from assessengine.storage.replication import add_site, site_subscription

ROOT = Path(__file__).resolve().parents[1]
REPORTS: Final = 10_000
DISTINCT: Final = 20
EVENTS_PER_SESSION: Final = 200
LOGICAL: Final = {"wal_level": "logical", "max_replication_slots": "10",
                  "max_wal_senders": "10", "wal_retrieve_retry_interval": "200ms"}  # fmt: skip
TIMEOUT_S: Final = 900.0


@pytest.fixture(scope="module")
def pg_site_and_hub() -> Iterator[tuple[PgServer, PgServer]]:
    programs = bin_dir()
    if programs is None:
        pytest.skip("PostgreSQL is not installed")
    servers = [PgServer(programs, durable=True, config=LOGICAL) for _ in range(2)]
    try:
        for server in servers:
            server.start()
            server.sql("CREATE DATABASE assess")
        add_site(servers[1].url("assess"), servers[0].url("assess"), "north")
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def _workload() -> list[tuple[dict[str, Any], bytes, dict[str, Any], float]]:
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    layout = Layout.of(scenario)
    sims = simulate(scenario, "mixed", DISTINCT, seed=5).to_sessions()
    reports = [r.to_data() for r in score_sessions(rubric, scenario, sims)]
    out = []
    for s, report in zip(sims, reports, strict=True):
        part = s.events[:EVENTS_PER_SESSION]
        header = {"first_seq": 0, "count": len(part), "encoding": "columns-v1",
                  "dtype": layout.dtype_header()}  # fmt: skip
        out.append((header, encode_columns_v1(Columns.from_events(part, layout), layout),
                    report, s.end_t))  # fmt: skip
    return out


def _fill(url: str, first: int) -> float:
    """REPORTS sessions into the site, numbered from `first`; returns when the last committed."""
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    work = _workload()
    with closing(open_store(url, synchronous="OFF")) as store:
        for k in range(first, first + REPORTS):
            sid = f"north:S-{k:06d}"
            header, payload, report, end_t = work[k % DISTINCT]
            store.open_session(SessionInfo(sid, f"north:L-{k % 1000:05d}", scenario.scenario,
                                           rubric.rubric, rubric.version, rubric.sha256()))
            store.append_batches([(sid, 0, header["count"], "columns-v1",
                                   json.dumps({**header, "session": sid}).encode(), payload)])
            store.close_session(sid, end_t)
            store.save_report(sid, {**report, "session": sid})
    return time.monotonic()


def _wait_for(hub: str, count: int) -> float:
    """Polls the hub until it holds `count` reports; the time it did."""
    deadline = time.monotonic() + TIMEOUT_S
    with psycopg.connect(hub, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM reports").fetchone()
            if row is not None and row[0] >= count:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(f"the hub holds {row} reports after {TIMEOUT_S} s")
            time.sleep(0.05)


def test_replication_lag_site_to_hub(
    benchmark: Any, pg_site_and_hub: tuple[PgServer, PgServer]
) -> None:
    site, hub = pg_site_and_hub
    site_url, hub_url = site.url("assess"), hub.url("assess")
    started = time.monotonic()
    filled = _fill(site_url, 0)
    arrived = _wait_for(hub_url, REPORTS)
    live_lag = arrived - filled
    subscription = site_subscription("north")
    state: dict[str, float] = {}

    def cut_off_and_fill() -> None:
        hub.sql(f"ALTER SUBSCRIPTION {subscription} DISABLE", "assess")
        state["filled"] = _fill(site_url, REPORTS * (1 + len(state)))

    def catch_up() -> float:
        begun = time.monotonic()
        hub.sql(f"ALTER SUBSCRIPTION {subscription} ENABLE", "assess")
        return _wait_for(hub_url, 2 * REPORTS) - begun

    backlog = benchmark.pedantic(catch_up, setup=cut_off_and_fill, rounds=1, iterations=1)
    batches_mb = float(hub.sql("SELECT pg_total_relation_size('batches') / 1e6", "assess"))
    benchmark.extra_info.update(
        reports=REPORTS, events_per_session=EVENTS_PER_SESSION,
        fill_s=round(filled - started, 2), site_reports_per_s=round(REPORTS / (filled - started)),
        live_lag_s=round(live_lag, 2), backlog_s=round(backlog, 2),
        backlog_reports_per_s=round(REPORTS / backlog), hub_batches_mb=round(batches_mb, 1),
    )  # fmt: skip
    print(f"\nreplication site -> hub, {REPORTS:,} reports: live lag {live_lag:.2f} s after the "
          f"site's last commit (fill {filled - started:.1f} s); a backlog of {REPORTS:,} "
          f"caught up in {backlog:.2f} s ({REPORTS / backlog:,.0f} reports/s); hub batches "
          f"{batches_mb:.1f} MB")  # fmt: skip
