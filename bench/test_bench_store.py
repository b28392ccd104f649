"""Append throughput of the stores: binary batches in group commits, on a real SQLite file and
on a real PostgreSQL server (the tests' throwaway cluster, started with fsync on, on this
machine over TCP on 127.0.0.1).

Each round appends `VOLUME` bytes of payload to a fresh store (so background checkpoints and
payload syncs, and the fsyncs they do, are inside the timing), 8 sessions interleaved.
Payloads are random bytes (``random``: nothing to compress) or real forklift columns-v1 records
from the simulator (``forklift``: what the engine stores; they compress about fivefold, which
matters on PostgreSQL, whose TOAST compresses every payload).
``extra_info`` gives MB/s of payload and events/s at 60 bytes per event (a forklift columns-v1
record: seq, t, event and five float64 signals); each case prints a line, and a PostgreSQL
case its ratio to the SQLite case of the same batches, group and payload in the same run.
Run: pytest bench/test_bench_store.py --benchmark-only -s
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from tests.pg_server import PgServer

from assessengine.adapters.library import load_rubric
from assessengine.core.codec import Columns, Layout, records_v1
from assessengine.sim.generate import simulate
from assessengine.storage import open_store
from assessengine.storage.port import SessionInfo, Store

VOLUME = 512 * 2**20
BYTES_PER_EVENT = 60
SESSIONS = 8
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[1]
_MEASURED: dict[tuple[int, int, str, str], dict[str, float]] = {}  # case -> backend -> MB/s


_schemas = itertools.count(1)


def _fresh(url: str, synchronous: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A new store with SESSIONS open sessions at `url`."""
    store = open_store(url, synchronous=synchronous)
    for k in range(SESSIONS):
        store.open_session(SessionInfo(f"S{k}", "L", "forklift-warehouse", "r", 1, "0" * 64))
    return (store,), {}


def _payload(kind: str, size: int) -> bytes:
    """`size` bytes of random data, or of forklift columns-v1 records (whole records)."""
    if kind == "random":
        return os.urandom(size)
    _, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    layout = Layout.of(scenario)
    sim = simulate(scenario, "mixed", 8, seed=3)
    rows = min(len(sim), size // layout.itemsize)
    cols = Columns(sim.seq[:rows], sim.t[:rows], sim.event[:rows], sim.signals[:, :rows])
    return records_v1(cols, layout).tobytes()


def _append_all(store: Store, *, payload: bytes, group: int) -> int:
    count = len(payload) // BYTES_PER_EVENT
    seqs = [0] * SESSIONS
    appended = 0
    try:
        for start in range(0, VOLUME // len(payload), group):
            items = []
            for i in range(start, start + group):
                k = i % SESSIONS
                header = json.dumps({"session": f"S{k}", "first_seq": seqs[k], "count": count,
                                     "encoding": "columns-v1"}).encode()  # fmt: skip
                items.append((f"S{k}", seqs[k], count, "columns-v1", header, payload))
                seqs[k] += count
            appended += len(store.append_batches(items)) * len(payload)
    finally:
        store.close()  # inside the timing: closing syncs the payloads, copies the WAL's rest
    return appended


_CASES = [(64, 16, "NORMAL", "random"), (64, 1, "NORMAL", "random"), (256, 4, "NORMAL", "random"),
          (64, 16, "NORMAL", "forklift"), (256, 4, "NORMAL", "forklift")]


@pytest.mark.parametrize(
    ("backend", "batch_kib", "group", "synchronous", "payload_kind"),
    [("sqlite", *case) for case in _CASES] + [("sqlite", 64, 16, "FULL", "random")]
    + [("postgres", *case) for case in _CASES],
)  # fmt: skip
def test_append_binary_batches(
    request: pytest.FixtureRequest,
    benchmark: Any,
    backend: str,
    batch_kib: int,
    group: int,
    synchronous: str,
    payload_kind: str,
) -> None:
    batch_bytes = batch_kib * 1024
    payload = _payload(payload_kind, batch_bytes // BYTES_PER_EVENT * BYTES_PER_EVENT)
    server: PgServer | None = None
    if backend == "postgres":
        server = request.getfixturevalue("pg_server")
    folders: list[Path] = []
    schemas: list[str] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for old in folders:  # the previous round's store (outside the timing)
            shutil.rmtree(old, ignore_errors=True)
        if server is None:
            folders.append(Path(tempfile.mkdtemp(prefix="bench-store-")))
            return _fresh(str(folders[-1] / "bench.db"), synchronous)
        for old in schemas:
            server.sql(f"DROP SCHEMA IF EXISTS {old} CASCADE")
        schemas.append(f"bench{next(_schemas)}")
        server.sql(f"CREATE SCHEMA {schemas[-1]}")
        return _fresh(server.url() + f"?options=-csearch_path%3D{schemas[-1]}", synchronous)

    try:
        appended = benchmark.pedantic(
            lambda store: _append_all(store, payload=payload, group=group),
            setup=setup,
            rounds=ROUNDS,
            iterations=1,
        )
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        for schema in schemas:
            assert server is not None
            server.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    assert appended >= VOLUME - batch_bytes * group
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        backend=backend,
        batch_bytes=batch_bytes,
        group=group,
        synchronous=synchronous,
        payload_mb=appended / 1e6,
        mb_per_s=appended / mean / 1e6,
        events_per_s=appended / BYTES_PER_EVENT / mean,
        best_mb_per_s=appended / benchmark.stats.stats.min / 1e6,
        payload=payload_kind,
    )
    info = benchmark.extra_info
    case = (batch_kib, group, synchronous, payload_kind)
    _MEASURED.setdefault(case, {})[backend] = info["mb_per_s"]
    line = (f"\nstore append {backend} {batch_kib} KiB x{group} {synchronous} {payload_kind}: "
            f"{info['mb_per_s']:.1f} MB/s (best {info['best_mb_per_s']:.1f}), "
            f"{info['events_per_s'] / 1e6:.2f} M events/s")
    if backend == "postgres" and "sqlite" in _MEASURED[case]:
        line += f"; {info['mb_per_s'] / _MEASURED[case]['sqlite']:.2f}x SQLite (same run)"
    print(line)
