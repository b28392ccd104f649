"""Stores of simulated, closed, scored sessions for the archive tests and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from assessengine.adapters.library import load_rubric
from assessengine.api.service.uploads import encode_batches
from assessengine.core.codec import Columns, Layout, encode_json_v1
from assessengine.core.compiler import compile_rubric
from assessengine.core.kernel_scorer import score_columns
from assessengine.sim.generate import SimBatch, jsonl_lines, simulate
from assessengine.storage.port import SessionInfo, Store

ROOT = Path(__file__).resolve().parents[1]
RUBRICS = {
    "forklift-warehouse": ROOT / "rubrics" / "forklift-load-handling.yaml",
    "haul-truck-surface": ROOT / "rubrics" / "haul-truck-surface.yaml",
    "lhd-underground": ROOT / "rubrics" / "lhd-underground.yaml",
    "network-lab": ROOT / "rubrics" / "network-lab.yaml",
}
BATCH_ROWS = 500


def fill_store(
    store: Store, scenario_id: str, sessions: int, *, seed: int = 0, first: int = 0,
    json_every: int = 3,
) -> SimBatch:
    """File `sessions` simulated sessions of the scenario into `store` (closed, with the
    kernel's report as the stored report), batches of `BATCH_ROWS` events, every
    `json_every`-th session's batches json-v1 (the others columns-v1). Returns the run."""
    rubric, scenario = load_rubric(RUBRICS[scenario_id])
    run = simulate(scenario, "mixed", sessions, seed=seed, first=first, rubric=rubric.rubric)
    layout = Layout.of(scenario)
    compiled = compile_rubric(rubric, scenario)
    for k, sid in enumerate(run.session_ids):
        lo, hi = int(run.offsets[k]), int(run.offsets[k + 1])
        cols = Columns(run.seq[lo:hi], run.t[lo:hi], run.event[lo:hi], run.signals[:, lo:hi])
        items = encode_batches(sid, cols, layout, BATCH_ROWS)
        if k % json_every == 0:
            items = [_as_json(item, cols, layout) for item in items]
        close_t = float(run.close_t[k])
        (report,) = score_columns(compiled, cols.to_batch(0), [sid],
                                  np.array([close_t], np.float64))  # fmt: skip
        info = SessionInfo(sid, run.learners[k], scenario.scenario, rubric.rubric,
                           rubric.version, rubric.sha256(), "simulator",
                           {"profile": run.profiles[k]})  # fmt: skip
        store.file_session(info, items, close_t, report.to_data())
    return run


def _as_json(
    item: tuple[str, int, int, str, bytes, bytes], cols: Columns, layout: Layout
) -> tuple[str, int, int, str, bytes, bytes]:
    session, first_seq, count, _, _, _ = item
    part = Columns(cols.seq[first_seq:first_seq + count], cols.t[first_seq:first_seq + count],
                   cols.event[first_seq:first_seq + count],
                   cols.signals[:, first_seq:first_seq + count])  # fmt: skip
    header = {"session": session, "first_seq": first_seq, "count": count, "encoding": "json-v1"}
    return (session, first_seq, count, "json-v1", json.dumps(header).encode(),
            encode_json_v1(part, layout))  # fmt: skip


def write_jsonl(runs: Iterable[SimBatch], path: Path) -> Path:
    """The runs as one events file (what `assessengine score` reads)."""
    with path.open("w", encoding="utf-8") as out:
        for run in runs:
            for line in jsonl_lines(run):
                out.write(line + "\n")
    return path


def old_layout(table: pa.Table) -> pa.Table:
    """`table` as export wrote it before 2026-12-06: nullable signal fields, null where a
    value was not reported (NaN now)."""
    struct = table.column("signals").combine_chunks()
    fields = [pa.field(f.name, pa.float64()) for f in struct.type]
    kids = [pa.array(struct.field(k).to_numpy(zero_copy_only=False), pa.float64(),
                     from_pandas=True) for k in range(len(fields))]  # fmt: skip
    old = pa.StructArray.from_arrays(kids, fields=fields)
    return table.set_column(4, pa.field("signals", old.type, nullable=False), old)
