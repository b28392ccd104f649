"""Run as ``python -m tests.warm_up_probe`` (no tests here): warm up as `serve` does
(`serve_cmd.prepare_kernel`, then `warm_up_decoder` for the ingest thread), drive the live
paths over the shipped rubrics, then print, as JSON, each compiled function that needed a
variant (a numba signature: array layouts, read-only or not) the warm-up had not reached, with
those variants.

A variant that the warm-up misses is compiled inside the first batches that need it (minutes
on a busy machine, on a fresh install), under whatever bound waits for them. The live paths:
an engine (thread scoring, in-process transport) takes columns-v1 and json-v1 batches of one
row and of several rows for several sessions of each rubric (the slots of a state bigger than
one session), closes them, and a second engine recovers a session left open (the replay of
stored batches); then one session of each rubric is parsed and scored alone, as a field upload
is, and sessions under a rubric version the library does not have (uploaded later). The
scoring process sees the same column kinds: read-only record views (columns-v1) and plain
arrays (json-v1)."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from numba.core.registry import CPUDispatcher

from assessengine.api.service.uploads import parse_log
from assessengine.cli._settings import fused_from_environment
from assessengine.cli.serve_cmd import prepare_kernel
from assessengine.core import codec_kernel, fused_step, kernel
from assessengine.core.codec import (
    COLUMNS_V1,
    JSON_V1,
    Columns,
    Layout,
    encode_columns_v1,
    encode_json_v1,
    warm_up_decoder,
)
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import EventBatch
from assessengine.core.kernel_scorer import score_columns
from assessengine.core.scorer import SCRATCH_ROWS
from assessengine.ingest.fake import FakePeer, FakeTransport
from assessengine.inputs import jsonl_columns, jsonl_scan
from assessengine.runtime import fused
from assessengine.runtime.engine import Engine
from assessengine.runtime.pipeline import RubricEntry, RubricLibrary
from assessengine.sim.generate import SimBatch
from assessengine.storage.memory import MemoryStore

from .test_engine_helpers import RUBRIC_OF, library, sessions

WAIT_S = 600.0
"""Bound of each wait here (only a hang reaches it)."""


def variants() -> dict[str, set[str]]:
    """The signatures each compiled function of the kernel, the codec, the JSON Lines reader
    and the fused steps loaded so far (`runtime.fused`) has in this process."""
    modules = (kernel, codec_kernel, jsonl_scan, jsonl_columns, *fused.loaded_modules())
    return {f"{module.__name__}.{name}": {str(s) for s in f.signatures}
            for module in modules
            for name, f in vars(module).items() if isinstance(f, CPUDispatcher)}  # fmt: skip


def _events(session: str, layout: Layout, cols: Columns, encoding: str) -> list[Any]:
    first, n = int(cols.seq[0]), len(cols)
    header = {"type": "EVENTS", "session": session, "first_seq": first, "count": n,
              "encoding": encoding}  # fmt: skip
    if encoding == COLUMNS_V1:
        return [header | {"dtype": layout.dtype_header()}, encode_columns_v1(cols, layout)]
    return [header, encode_json_v1(cols, layout)]


def _request(peer: FakePeer, frames: list[Any], expected: str) -> None:
    reply = peer.request(*frames, timeout=WAIT_S)
    assert reply["type"] == expected, reply


def _rows(sim: SimBatch, k: int) -> Columns:
    lo, hi = int(sim.offsets[k]), int(sim.offsets[k + 1])
    return Columns(sim.seq[lo:hi], sim.t[lo:hi], sim.event[lo:hi], sim.signals[:, lo:hi])


def stream(peer: FakePeer, lib: RubricLibrary, sim: SimBatch, *, close: bool) -> None:
    """Each session of `sim`: OPEN, batches of one row and of several rows in both encodings,
    then CLOSE (unless not `close`)."""
    entry = lib.resolve(sim.scenario, sim.rubric, None)
    assert isinstance(entry, RubricEntry), entry
    layout = lib.layout(entry)
    for k, sid in enumerate(sim.session_ids):
        _request(peer, [{"type": "OPEN", "session": sid, "learner": sim.learners[k],
                         "scenario": sim.scenario, "rubric": sim.rubric}], "OPENED")  # fmt: skip
        cols, start = _rows(sim, k), 0
        for encoding in (COLUMNS_V1, JSON_V1):
            for n in (1, 3):
                part = Columns(cols.seq[start:start + n], cols.t[start:start + n],
                               cols.event[start:start + n], cols.signals[:, start:start + n])
                _request(peer, _events(sid, layout, part, encoding), "ACK")
                start += n
        if close:
            rest = cols.tail(start)
            _request(peer, _events(sid, layout, rest, COLUMNS_V1), "ACK")
            end = {"type": "CLOSE", "session": sid, "t": float(sim.close_t[k]),
                   "next_seq": int(cols.seq[-1]) + 1}  # fmt: skip
            _request(peer, [end], "CLOSED")


def stream_large(peer: FakePeer, lib: RubricLibrary, scenario: str, sid: str) -> None:
    """One session of `scenario` in one batch of more rows than a step's scratch holds
    (`SCRATCH_ROWS`: the kernel steps it in sub-steps, on column slices), then CLOSE."""
    entry = lib.resolve(scenario, RUBRIC_OF[scenario], None)
    assert isinstance(entry, RubricEntry), entry
    layout, n = lib.layout(entry), SCRATCH_ROWS + 1
    cols = Columns(np.arange(n, dtype=np.int64), np.arange(n) * 0.01, np.zeros(n, np.int32),
                   np.full((len(layout.signal_names), n), np.nan))  # fmt: skip
    _request(peer, [{"type": "OPEN", "session": sid, "learner": "large",
                     "scenario": scenario, "rubric": RUBRIC_OF[scenario]}], "OPENED")  # fmt: skip
    _request(peer, _events(sid, layout, cols, COLUMNS_V1), "ACK")
    _request(peer, [{"type": "CLOSE", "session": sid, "t": float(n), "next_seq": n}], "CLOSED")


def score_alone(lib: RubricLibrary, sim: SimBatch) -> None:
    """The one session of `sim` as the API takes a field upload: its JSON Lines parsed
    (`uploads.parse_log`, the compiled reader) and scored on its own (`score_columns` of one
    session: a state asked for one slot)."""
    entry = lib.resolve(sim.scenario, sim.rubric, None)
    assert isinstance(entry, RubricEntry), entry
    (events,) = sim.to_sessions()
    lines = [json.dumps({"session": "F1", "open": {"learner": "L1"}})]
    lines += [json.dumps({"session": "F1", "seq": e.seq, "t": e.t, "event": e.event,
                          "signals": dict(e.signals)}) for e in events.events]  # fmt: skip
    log = parse_log("\n".join(lines).encode(), "jsonl", entry.scenario, "field.jsonl")
    (report,) = score_columns(lib.compiled(entry), log.columns.to_batch(0), ["F1"],
                              np.array([log.close_t], np.float64))  # fmt: skip
    assert report.criteria, report


def score_uploaded_version(lib: RubricLibrary, sim: SimBatch) -> None:
    """Score `sim`'s sessions together and one of them alone under versions of their rubric
    that are not in the library (as a trainer uploads one while the engine runs): its fused
    step is not compiled yet (in the background, when the steps are on), so the table-driven
    kernel scores them. The versions: the rubric with its first criterion renamed, and that
    criterion alone and with the next one (one criterion, one int or float state field: state
    arrays of one column, numba's row-major type if they had one column). Returns once their
    compiles are over."""
    entry = lib.resolve(sim.scenario, sim.rubric, None)
    assert isinstance(entry, RubricEntry), entry
    first, *rest = entry.rubric.criteria
    renamed = first.model_copy(update={"id": f"{first.id}_uploaded"})
    whole = [_rows(sim, k) for k in range(len(sim.session_ids))]
    batch = _gathered(whole)
    close_t = np.asarray(sim.close_t, np.float64)
    for k, criteria in enumerate([(renamed, *rest), (renamed,), (renamed, rest[0])], 1):
        rubric = entry.rubric.model_copy(update={"version": entry.rubric.version + k,
                                                 "criteria": criteria})  # fmt: skip
        compiled = compile_rubric(rubric, entry.scenario)
        assert len(score_columns(compiled, batch, list(sim.session_ids), close_t)) == len(whole)
        (report,) = score_columns(compiled, _gathered(whole[:1]), ["alone"], close_t[:1])
        assert report.criteria, report
    fused.wait_pending()


def _gathered(parts: list[Columns]) -> EventBatch:
    """Sessions' columns as one batch of fresh C-contiguous arrays (session k: slot k)."""
    sizes = [len(c) for c in parts]
    signals = np.ascontiguousarray(np.concatenate([c.signals for c in parts], axis=1))
    return EventBatch(np.repeat(np.arange(len(parts), dtype=np.int32), sizes),
                      np.concatenate([c.seq for c in parts]), np.concatenate([c.t for c in parts]),
                      np.concatenate([c.event for c in parts]), signals)  # fmt: skip


def main() -> None:
    fused_from_environment(os.environ)  # ASSESSENGINE_FUSED_KERNEL=1: fused steps too
    provider = fused_step.provider()
    lib = library()
    prepare_kernel(lib)  # serve's: the fused steps, the field uploads' reader, the warm-up
    # with the fused steps on, the warm-up loaded each rubric's (what the live paths then use)
    assert provider is None or len(fused.loaded_modules()) == len(list(lib.entries()))
    for entry in lib.entries():
        warm_up_decoder(lib.layout(entry))
    # the fused steps come from child processes (a fresh cache): once loaded, their one
    # signature must take every live batch (compiling inside a batch is disabled)
    for pending in fused.pending_steps():
        assert pending.wait(WAIT_S) is not None, pending.error
    before = variants()
    store = MemoryStore()
    transport = FakeTransport()
    with Engine(store, lib, transport) as engine:
        peer = transport.peer()
        for scenario in sorted(RUBRIC_OF):
            stream(peer, lib, sessions(scenario, 3, seed=5), close=True)
            stream_large(peer, lib, scenario, f"large-{scenario}")
        stream(peer, lib, sessions("forklift-warehouse", 1, seed=6, first=9), close=False)
        assert engine.wait_idle(WAIT_S)
    with Engine(store, lib, FakeTransport()) as again:  # replays the session left open
        assert again.stats.recovery.reopened == 1
    for scenario in sorted(RUBRIC_OF):  # one session alone, as a field upload scores it
        score_alone(lib, sessions(scenario, 1, seed=7))
    score_uploaded_version(lib, sessions("forklift-warehouse", 3, seed=8))
    # a fused module loaded since (the uploaded version's, compiled in the background) has
    # its one signature, compiled before it was loaded; other calls are refused, not compiled
    new_modules = {m.__name__ for m in fused.loaded_modules()} - {
        name.rsplit(".", 1)[0] for name in before
    }
    after = {name: sigs for name, sigs in variants().items()
             if name.rsplit(".", 1)[0] not in new_modules}  # fmt: skip
    missed = {name: sorted(after[name] - before.get(name, set())) for name in after
              if after[name] - before.get(name, set())}  # fmt: skip
    print(json.dumps(missed))


if __name__ == "__main__":
    main()
