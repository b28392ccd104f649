"""A scoring process's fused steps read the columns-v1 records of a submission in place: the
records lie back to back in the shared buffer (`scoring_process.placement`), a step's batch is
views spanning them (`codec.adjacent_records`, `pipeline._batch(views=True)`), and the
decisions are those of the contiguous copies the table-driven kernel takes."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
from numba.core.registry import CPUDispatcher as Dispatcher

from assessengine.core import kernel
from assessengine.core.codec import Columns, Layout, adjacent_records, records_runs, records_v1
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import EventBatch
from assessengine.core.scorer import Decisions, ScoringState, close, plain_columns, step
from assessengine.runtime import fused
from assessengine.runtime.pipeline import (
    RubricEntry,
    RubricLibrary,
    Scorer,
    _batch,
    score_then_close,
)
from assessengine.runtime.scoring_process import RemoteScorer, _Buffer, placement
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import SessionInfo
from assessengine.storage.url import open_store

from .strategies import SCENARIO
from .test_fused_kernel import _small
from .waits import WAIT_S

LAYOUT = Layout.of(SCENARIO)


def _parts() -> list[Columns]:
    """The test sessions' events as columns, one part per session, cut in two batches each."""
    _, sessions = _small()
    out = []
    for s in sessions:
        half = len(s.events) // 2
        for events in (s.events[:half], s.events[half:]):
            signals = np.full((len(LAYOUT.signal_names), len(events)), np.nan)
            for j, e in enumerate(events):
                for name, value in e.signals.items():
                    signals[LAYOUT.signal_names.index(name), j] = value
            out.append(Columns(
                np.array([e.seq for e in events], np.int64),
                np.array([e.t for e in events], np.float64),
                np.array([LAYOUT.event_names.index(e.event) for e in events], np.int32),
                signals,
            ))  # fmt: skip
    return out


def _in_buffer(parts: list[Columns], gap: int = 0) -> tuple[np.ndarray, list[Columns]]:
    """`parts` as records in one buffer, `gap` bytes apart, and their views (as a scoring
    process makes them: `records_runs`)."""
    payloads = [records_v1(cols, LAYOUT) for cols in parts]
    buffer = np.zeros(sum(p.nbytes for p in payloads) + gap * len(parts) + 8, np.uint8)
    placed, at = [], 4  # an address that is not a multiple of 8, as the records' fields are
    for cols, payload in zip(parts, payloads, strict=True):
        buffer[at : at + payload.nbytes] = payload
        placed.append((at, len(cols)))
        at += payload.nbytes + gap
    return buffer, records_runs(buffer, LAYOUT, placed)


def _same(a: Columns | EventBatch, b: Columns) -> None:
    for x, y in ((a.seq, b.seq), (a.t, b.t), (a.event, b.event), (a.signals, b.signals)):
        np.testing.assert_array_equal(x, y)


def _joined(parts: list[Columns]) -> Columns:
    return Columns(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("seq", "t", "event")),
                   np.concatenate([p.signals for p in parts], axis=1))  # fmt: skip


def test_records_back_to_back_are_spanned_by_views_of_the_buffer() -> None:
    parts = _parts()
    buffer, views = _in_buffer(parts)
    spanned = adjacent_records(views)
    assert spanned is not None
    _same(spanned, _joined(parts))
    for column in (spanned.seq, spanned.t, spanned.event, spanned.signals):
        assert np.shares_memory(column, buffer)
        assert not column.flags.writeable


def test_records_apart_out_of_order_or_of_other_kinds_are_not_spanned() -> None:
    parts = _parts()
    buffer, apart = _in_buffer(parts, gap=4)
    _, views = _in_buffer(parts)
    assert adjacent_records(apart) is None
    assert adjacent_records(views[::-1]) is None
    assert adjacent_records([views[0], views[2]]) is None  # a part left out between
    assert adjacent_records(parts) is None  # contiguous columns of separate arrays
    assert adjacent_records([views[0], views[1].tail(1)]) is None  # a slice of a part
    assert adjacent_records([*views[:1], views[0].tail(len(views[0]))]) is None  # an empty part
    assert adjacent_records([]) is None
    assert adjacent_records(views[:1]) is views[0]
    spanned = adjacent_records(views[1:3])
    assert spanned is not None
    _same(spanned, _joined(parts[1:3]))
    # records apart are runs of one part each, views of the buffer all the same
    for cols, view in zip(parts, apart, strict=True):
        _same(view, cols)
        assert np.shares_memory(view.signals, buffer)


def test_a_submission_places_records_back_to_back_and_columns_aligned() -> None:
    parts = _parts()
    payloads = [records_v1(cols, LAYOUT) for cols in parts]
    batches = [("A", parts[0], payloads[0]), ("A", parts[1], payloads[1]),
               ("B", parts[2], None), ("B", parts[3], payloads[3])]  # fmt: skip
    offsets, end = placement(batches)
    sizes = [p.nbytes for p in payloads]
    assert offsets[1] == sizes[0]  # no padding between records
    assert offsets[2] % 8 == 0
    assert sizes[0] + sizes[1] <= offsets[2] < sizes[0] + sizes[1] + 8
    assert offsets[3] == offsets[2] + sizes[2]
    assert end == offsets[3] + sizes[3]


def _decisions(d: Decisions) -> list[tuple[int, ...]]:
    return sorted(zip(d.slot.tolist(), d.criterion.tolist(), d.verdict.tolist(),
                      d.seq.tolist(), strict=True))  # fmt: skip


def _stepped(state: ScoringState, views: bool) -> tuple[list[tuple[int, ...]], EventBatch]:
    """Step the test sessions' records (in one buffer, back to back) as the live scorer does,
    then close them; the decisions and the step's batch."""
    compiled = state.compiled
    slots = state.open(["F0", "F1"])
    parts = _parts()
    _, records = _in_buffer(parts)
    owner = [int(slots[0])] * 2 + [int(slots[1])] * 2
    batch = _batch(list(zip(owner, records, strict=True)), views)
    taken = _decisions(step(compiled, state, batch))
    ct = np.array([float(parts[1].t[-1]) + 1, float(parts[3].t[-1]) + 1])
    taken += _decisions(close(compiled, state, slots.astype(np.int32), ct))
    return taken, batch


def test_a_fused_step_reads_the_records_in_place_with_the_decisions_of_copies(
    provider: fused.FusedProvider,
) -> None:
    rubric, _ = _small()
    compiled = compile_rubric(rubric, SCENARIO)
    in_place = ScoringState.new(compiled, capacity=4)
    assert in_place.steps_fused
    taken, batch = _stepped(in_place, views=True)
    assert not batch.seq.flags.writeable  # views of the buffer: nothing was gathered
    copied, batch = _stepped(ScoringState.new(compiled, capacity=4), views=False)
    assert batch.seq.flags.writeable
    assert batch.signals.flags.c_contiguous
    table, _ = _stepped(ScoringState(compiled, 4, table_only=True), views=False)
    assert taken == copied == table
    assert taken  # the sessions decided something


def test_the_table_kernel_given_record_views_copies_them_and_compiles_nothing_more() -> None:
    """A state stepped by the table-driven kernel gets contiguous copies of views (numba would
    compile the kernel once more for read-only strided arrays)."""
    rubric, _ = _small()
    compiled = compile_rubric(rubric, SCENARIO)
    expected, _ = _stepped(ScoringState(compiled, 4, table_only=True), views=False)
    before = {name: len(f.signatures) for name, f in _dispatchers()}
    taken, batch = _stepped(ScoringState(compiled, 4, table_only=True), views=True)
    assert not batch.seq.flags.writeable  # the step was given views
    assert taken == expected
    assert {name: len(f.signatures) for name, f in _dispatchers()} == before


def _dispatchers() -> list[tuple[str, Any]]:
    return [(name, f) for name, f in vars(kernel).items() if isinstance(f, Dispatcher)]


def test_plain_columns_keeps_a_plain_batch_and_copies_views() -> None:
    _, records = _in_buffer(_parts())
    spanned = adjacent_records(records)
    assert spanned is not None
    n = len(spanned)
    views = EventBatch(np.zeros(n, np.int32), spanned.seq, spanned.t, spanned.event,
                       spanned.signals)  # fmt: skip
    plain = plain_columns(views)
    _same(plain, spanned)
    for column in (plain.seq, plain.t, plain.event, plain.signals):
        assert column.flags.c_contiguous
        assert column.flags.writeable
    assert plain_columns(plain) is plain


def test_plain_columns_keeps_writable_slices_of_any_layout() -> None:
    """Slices of a caller's columns (`score`, `rescore` and the benchmark step a batch in row
    ranges: signals[:, a:b] is neither C- nor F-contiguous) are the table-driven kernel's own
    kind: no copy (a copy a step cost it 1.27x at 64 K rows)."""
    n = 10
    seq, t = np.arange(n, dtype=np.int64), np.arange(n, dtype=np.float64)
    whole = EventBatch(np.zeros(n, np.int32), seq, t, np.zeros(n, np.int32), np.zeros((3, n)))
    piece = whole.take(slice(2, 7))
    assert not piece.signals.flags.c_contiguous
    assert plain_columns(piece) is piece


def test_a_scoring_process_sees_consecutive_records_as_one_run() -> None:
    """The child's views of a submission (`_Buffer.views`): records placed back to back are one
    run, which a step spans; a batch sent as columns starts another."""
    parts = _parts()
    payloads = [records_v1(cols, LAYOUT) for cols in parts]
    batches = [("A", parts[0], payloads[0]), ("A", parts[1], payloads[1]),
               ("B", parts[2], None), ("B", parts[3], payloads[3])]  # fmt: skip
    offsets, end = placement(batches)
    buffer = _Buffer.create(end)
    try:
        kinds = [
            buffer.put(at, cols, records)
            for at, (_, cols, records) in zip(offsets, batches, strict=True)
        ]
        assert kinds == ["records", "records", "columns", "records"]
        views = buffer.views([(kind, at, len(cols), LAYOUT) for kind, at, (_, cols, _) in zip(
            kinds, offsets, batches, strict=True)])  # fmt: skip
        for view, cols in zip(views, parts, strict=True):
            _same(view, cols)
        spanned = adjacent_records(views[:2])
        assert spanned is not None
        _same(spanned, _joined(parts[:2]))
        assert adjacent_records(views[1:3]) is None
        assert adjacent_records(views[2:]) is None
        del views, spanned
    finally:
        buffer.close()


def test_a_scoring_process_with_fused_steps_reports_as_the_table_kernel(
    provider: fused.FusedProvider, tmp_path: Path
) -> None:
    """End to end: a submission's records, placed back to back and stepped in place by the
    child's fused step, give the reports the table-driven kernel gives in this process."""
    rubric, sessions = _small()
    entry = RubricEntry(rubric, SCENARIO, rubric.sha256(), tmp_path / "small.yaml")
    library = RubricLibrary([entry], scenarios=[SCENARIO.scenario])
    url = str(tmp_path / "e.db")
    store = open_store(url)
    expected = MemoryStore()
    try:
        for s in sessions:
            info = SessionInfo(s.session, "learner", SCENARIO.scenario, rubric.rubric,
                               rubric.version, entry.sha256)  # fmt: skip
            store.open_session(info)
            expected.open_session(info)
        parts = _parts()  # F0 in two batches, then F1 in two
        owners = [s.session for s in sessions for _ in range(2)]
        batches = [(sid, cols, records_v1(cols, LAYOUT))
                   for sid, cols in zip(owners, parts, strict=True)]  # fmt: skip
        closes = [(s.session, s.close_t) for s in sessions]
        here = Scorer(expected, library)
        for s in sessions:
            here.open(s.session, entry)
        for track in here._tracks.values():  # this process: the table-driven kernel
            track.state.fused_pending = None
        scorer = RemoteScorer(functools.partial(open_store, url, recover=False), library)
        scorer.start()
        try:
            done = threading.Event()
            scorer.submit([(s.session, entry, False) for s in sessions], batches, closes,
                          on_done=done.set)  # fmt: skip
            assert done.wait(WAIT_S)
            assert scorer.drain(WAIT_S)
        finally:
            scorer.close()
        score_then_close(here, [(sid, cols) for sid, cols, _ in batches], closes)
        for s in sessions:
            assert store.report(s.session) == expected.report(s.session) is not None
            assert store.decisions(s.session) == expected.decisions(s.session)
    finally:
        store.close()
