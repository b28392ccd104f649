"""Append throughput of `SqliteStore`: binary batches in group commits, on a real file.

Each round appends `VOLUME` bytes of payload to a fresh store (so background checkpoints and
payload syncs, and the fsyncs they do, are inside the timing), 8 sessions interleaved.
``extra_info`` gives MB/s of payload and events/s at 60 bytes per event (a forklift columns-v1
record: seq, t, event and five float64 signals).
Run: pytest bench/test_bench_store.py --benchmark-only
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from assessengine.adapters.sqlite_store import SqliteStore
from assessengine.adapters.store import SessionInfo

VOLUME = 512 * 2**20
BYTES_PER_EVENT = 60
SESSIONS = 8
ROUNDS = 3


def _fresh(folder: Path, synchronous: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A new store with SESSIONS open sessions in `folder`."""
    store = SqliteStore(folder / "bench.db", synchronous=synchronous)
    for k in range(SESSIONS):
        store.open_session(SessionInfo(f"S{k}", "L", "forklift-warehouse", "r", 1, "0" * 64))
    return (store,), {}


def _append_all(store: SqliteStore, *, batch_bytes: int, group: int) -> int:
    count = batch_bytes // BYTES_PER_EVENT
    payload = os.urandom(count * BYTES_PER_EVENT)
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


@pytest.mark.parametrize(
    ("batch_kib", "group", "synchronous"),
    [(64, 16, "NORMAL"), (64, 1, "NORMAL"), (256, 4, "NORMAL"), (64, 16, "FULL")],
)
def test_append_binary_batches(
    benchmark: Any, batch_kib: int, group: int, synchronous: str
) -> None:
    batch_bytes = batch_kib * 1024

    folders: list[Path] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for old in folders:  # the previous round's file (outside the timing)
            shutil.rmtree(old, ignore_errors=True)
        folders.append(Path(tempfile.mkdtemp(prefix="bench-store-")))
        return _fresh(folders[-1], synchronous)

    try:
        appended = benchmark.pedantic(
            lambda store: _append_all(store, batch_bytes=batch_bytes, group=group),
            setup=setup,
            rounds=ROUNDS,
            iterations=1,
        )
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    assert appended >= VOLUME - batch_bytes * group
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        batch_bytes=batch_bytes,
        group=group,
        synchronous=synchronous,
        payload_mb=appended / 1e6,
        mb_per_s=appended / mean / 1e6,
        events_per_s=appended / BYTES_PER_EVENT / mean,
        best_mb_per_s=appended / benchmark.stats.stats.min / 1e6,
    )
