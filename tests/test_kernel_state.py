"""Kernel scoring state: size per session, all-or-nothing batches, slot reuse."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_rubric
from assessengine.core import kernel, scorer
from assessengine.core.compiler import COUNT, FAIL, METRIC, PASS, CompiledRubric, compile_rubric
from assessengine.core.events import Event, batch_from_events
from assessengine.core.kernel_scorer import score_columns
from assessengine.core.rubric import Rubric
from assessengine.core.scorer import ScoringState, close, step
from assessengine.errors import ScoringError
from assessengine.sim.generate import simulate

from .strategies import SCENARIO

ROOT = Path(__file__).resolve().parents[1]

TEN_CRITERIA = Rubric.model_validate(
    {
        "rubric": "ten",
        "version": 1,
        "title": "Ten criteria, every template",
        "scenario": "prop",
        "criteria": [
            {"id": "n", "title": "n", "never": "x > 3 and y > 1", "for": 1},
            {"id": "a", "title": "a", "always": "z >= 0"},
            {"id": "ab", "title": "ab", "all_before": {"events": ["a", "b"], "before": "d"}},
            {"id": "s", "title": "s", "sequence": ["a", {"when": "x > 1"}, "b"], "within": 60},
            {"id": "c", "title": "c", "count": {"when": "y > 2", "max": 3}},
            {"id": "r", "title": "r", "response": {"after": "c", "expect": "b", "within": 5}},
            {"id": "p", "title": "p", "precede": {"event": "d", "by": {"when": "x < 1"}}},
            {"id": "du", "title": "du", "duration": {"from": "a", "to": "d", "max": 300}},
            {"id": "m", "title": "m", "metric": {"aggregate": "mean", "of": "x", "at_most": 4}},
            {"id": "mc", "title": "mc", "machine": {"initial": "idle", "states": {
                "idle": [{"on": "a", "to": "busy"}],
                "busy": [{"when": "x > 4", "for": 2, "to": "fail"}, {"on": "d", "to": "pass"}]}}},
        ],
    }
)  # fmt: skip


def test_state_of_a_ten_criterion_rubric_fits_in_one_kib() -> None:
    state = ScoringState.new(compile_rubric(TEN_CRITERIA, SCENARIO), capacity=8)
    assert state.bytes_per_session <= 1024


def test_forklift_rubric_state_fits_in_one_kib() -> None:
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    assert ScoringState.new(compile_rubric(rubric, scenario)).bytes_per_session <= 1024


def _arrays(state: ScoringState) -> list[np.ndarray]:
    """The state arrays, indexed by row."""
    return [state.sess_i, state.sess_f, state.si, state.sf, state.verdict]


def _snapshot(state: ScoringState) -> list[np.ndarray]:
    """Every open session's state, in slot order (a session that has no row yet is fresh:
    `rows` gives it one with a fresh state)."""
    rows = state.rows(np.array(sorted(state.session_of), np.int64))
    return [a[rows].copy() for a in _arrays(state)]


def test_a_batch_that_breaks_session_order_changes_nothing() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=2)
    (slot,) = state.open(["S1"])
    step(compiled, state, batch_from_events(SCENARIO, [(slot, Event(5, 1.0, "a", {"x": 2.0}))]))
    before = _snapshot(state)
    rows = [(slot, Event(6, 2.0, "b", {"x": 9.0})), (slot, Event(6, 3.0, "sample"))]
    with pytest.raises(ScoringError, match="seq 6"):
        step(compiled, state, batch_from_events(SCENARIO, rows))
    for old, new in zip(before, _snapshot(state), strict=True):
        np.testing.assert_array_equal(old, new)


def test_a_released_slot_is_reused_with_fresh_state() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=1)
    (slot,) = state.open(["S1"])
    step(compiled, state, batch_from_events(SCENARIO, [(slot, Event(0, 1.0, "a", {"x": 9.0}))]))
    close(compiled, state, np.array([slot], np.int32), np.array([2.0]))
    state.release(["S1"])
    (again,) = state.open(["S2"])
    assert again == slot
    (row,) = state.rows(np.array([again]))
    assert state.sess_i[row, :3].tolist() == [-1, -1, 0]
    assert not state.verdict[row].any()


def test_state_grows_beyond_its_initial_capacity() -> None:
    state = ScoringState.new(compile_rubric(TEN_CRITERIA, SCENARIO), capacity=1)
    slots = state.open([f"S{i}" for i in range(5)])
    assert sorted(slots.tolist()) == [0, 1, 2, 3, 4]
    assert state.capacity >= 5


def test_a_large_batch_breaking_order_in_its_last_sub_step_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scorer, "SCRATCH_ROWS", 2)  # sub-steps of 2 rows
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=2)
    s1, s2 = state.open(["S1", "S2"])
    step(compiled, state, batch_from_events(SCENARIO, [(s1, Event(0, 1.0, "a", {"x": 2.0}))]))
    before = _snapshot(state)
    rows = [(s1, Event(1, 2.0, "a")), (s2, Event(0, 2.0, "d", {"x": 0.5})),
            (s1, Event(2, 3.0, "d", {"x": 9.0})), (s2, Event(1, 3.0, "b")),
            (s2, Event(1, 4.0, "sample"))]  # fmt: skip
    with pytest.raises(ScoringError, match="row 4: seq 1"):
        step(compiled, state, batch_from_events(SCENARIO, rows))
    for old, new in zip(before, _snapshot(state), strict=True):
        np.testing.assert_array_equal(old, new)
    assert len(step(compiled, state, batch_from_events(SCENARIO, rows[:4]))) > 0


def test_close_output_is_sized_by_the_pending_criteria() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=1)
    slots = state.open([f"S{i}" for i in range(1000)])
    rows = [(int(s), Event(0, 1.0, "d", {"x": 0.5})) for s in slots[:10]]
    decided = step(compiled, state, batch_from_events(SCENARIO, rows))
    closed = close(compiled, state, slots[:10], np.full(10, 2.0))
    pending = 10 * compiled.n_criteria - len(decided)
    assert len(closed) == pending
    # the decisions are views of an output of exactly that many, not criteria x capacity
    assert closed.slot.base is not None
    assert closed.slot.base.size == 8 * pending


def test_a_closes_decisions_are_records_of_one_output() -> None:
    """The close writes decision-major: each decision's int fields, float fields and values
    are consecutive in memory (one stream for the kernel), the columns strided views."""
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=4)
    slots = state.open(["a", "b", "c"])
    closed = close(compiled, state, slots, np.full(3, 2.0))
    assert len(closed) > 3
    assert closed.slot.strides == closed.criterion.strides == (8 * 8,)
    assert closed.verdict.ctypes.data - closed.slot.ctypes.data == 2 * 8
    assert closed.values.strides[1] == closed.contrib.strides[1] == 8  # a row: consecutive
    assert closed.t.strides == ((3 + 2 * compiled.max_ev) * 8,)


def test_a_criterion_decided_in_every_session_of_a_batch_visits_no_row() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=4)
    rows = state.rows(state.open(["S1", "S2", "S3"]))
    ids = [c.id for c in TEN_CRITERIA.criteria]
    first, second = ids.index("p"), ids.index("ab")
    state.verdict[rows[:2], first] = PASS  # decided in both sessions the batch touches
    state.verdict[rows[0], second] = FAIL  # decided in one of them
    touched = np.array(rows[:2], np.int64)

    pending = scorer.pending_sessions(state, touched)

    assert pending[first] == 0
    assert pending[second] == 1
    assert pending[ids.index("n")] == 2
    masks = np.zeros((len(compiled.guards), 4), np.bool_)
    nonsample = np.array([1], np.int64)
    _, offsets = scorer._sparse_rows(compiled, state, touched, nonsample, masks)
    assert tuple(offsets[first]) == (0, 0)  # visits visit[0:0]: nothing
    assert tuple(offsets[second]) != (0, 0)


def test_the_contributing_criteria_are_computed_once_with_the_rubric() -> None:
    """Every step sizes its output by them: one read-only array, not two comparisons a step."""
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    assert compiled.contributing is compiled.contributing
    assert not compiled.contributing.flags.writeable
    expected = [k in (COUNT, METRIC) for k in compiled.kind.tolist()]
    assert any(expected)
    assert compiled.contributing.tolist() == expected
    assert compiled.n_contributing == sum(expected)


def test_scratch_reused_only_for_the_same_memory_in_the_same_shape() -> None:
    state = ScoringState.new(compile_rubric(TEN_CRITERIA, SCENARIO), capacity=2)
    first = state.scratch("w", (3, 8), np.bool_)
    assert not state.scratch_reused("w")  # nothing before it
    assert state.scratch("w", (3, 8), np.bool_) is first
    assert state.scratch_reused("w")
    state.scratch("w", (3, 5), np.bool_)  # the same memory, another shape
    assert not state.scratch_reused("w")
    state.scratch("w", (3, 5), np.bool_)
    assert state.scratch_reused("w")
    state.scratch("w", (3, 16), np.bool_)  # a larger buffer
    assert not state.scratch_reused("w")
    big = scorer.SCRATCH_ROWS + 1
    state.scratch("w", (1, big), np.bool_)  # fresh arrays above SCRATCH_ROWS
    state.scratch("w", (1, big), np.bool_)
    assert not state.scratch_reused("w")


def _open_one_by_one(
    free: list[int], capacity: int, slot_of: dict[str, int], ids: list[str]
) -> tuple[list[int], int]:
    """The slot assignment `open` promises: each new id pops the last free slot, the table
    doubling (its new slots appended lowest last) when none is left."""
    out = []
    for sid in ids:
        if sid not in slot_of:
            if not free:
                free.extend(range(2 * capacity - 1, capacity - 1, -1))
                capacity *= 2
            slot_of[sid] = free.pop()
        out.append(slot_of[sid])
    return out, capacity


def test_open_assigns_slots_as_one_by_one_would_and_resets_them() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=3)
    free, capacity, slot_of = list(range(2, -1, -1)), 3, {}  # type: ignore[var-annotated]
    rounds = [["a", "b", "a", "c", "d", "e", "b"], ["x", "a", "y", "z"], ["p", "q"], ["q", "e"]]
    for k, ids in enumerate(rounds):
        if k == 1:  # release two slots that are not a range: reset by index, not by slice
            free.extend(slot_of.pop(sid) for sid in ("b", "d"))
            state.release(["b", "d"])
        opened = state.open(ids)
        expected, capacity = _open_one_by_one(free, capacity, slot_of, ids)
        assert opened.dtype == np.int32
        assert opened.tolist() == expected
        assert state.capacity == capacity
        assert state.slot_of == slot_of
        assert state.session_of == {v: k for k, v in slot_of.items()}
    # a reused slot starts fresh, whether opened alone or among a range
    (row,) = state.rows(np.array([state.slot_of["x"]]))
    assert state.sess_i[row, :3].tolist() == [-1, -1, 0]


def test_reused_rows_start_fresh_whether_they_form_a_range_or_not() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    fresh = ScoringState.new(compiled, capacity=1)
    fresh.rows(fresh.open(["new"]))
    for released in (["S1", "S2"], ["S0", "S2"]):  # rows 1-2 (a slice), rows 0 and 2
        state = ScoringState.new(compiled, capacity=4)
        slots = state.open(["S0", "S1", "S2", "S3"])
        rows = [(int(s), Event(0, 1.0, "a", {"x": 9.0})) for s in slots]
        step(compiled, state, batch_from_events(SCENARIO, rows))
        close(compiled, state, slots, np.full(4, 2.0))
        state.release(released)
        kept = state.rows(np.array([state.slot_of[s] for s in ("S0", "S1", "S2", "S3")
                                    if s not in released]))  # fmt: skip
        again = state.rows(state.open(["T1", "T2"]))
        assert sorted(again.tolist() + kept.tolist()) == [0, 1, 2, 3]
        for a, b in zip(_arrays(state), _arrays(fresh), strict=True):
            np.testing.assert_array_equal(a[again], np.repeat(b[:1], 2, axis=0))
        assert state.verdict[kept].any()  # the others keep their state


def _fresh_row(state: ScoringState) -> list[np.ndarray]:
    """A fresh session's state, as `ScoringState._reset` of a used row writes it."""
    compiled = state.compiled
    return [
        np.array([-1, -1, 0, 0], np.int64),
        np.full(state.sess_f.shape[1], np.nan),
        compiled.init_i,
        compiled.init_f,
        np.zeros(compiled.n_criteria, np.int8),
    ]


def test_never_used_rows_start_fresh_without_writing_their_zero_fields() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=2)
    # the first rows, then rows beyond a growth (zeros the growth allocated), then a reused one
    first = state.rows(state.open(["a", "b"]))
    grown = state.rows(state.open(["c", "d", "e"]))
    assert state.capacity == 8
    assert sorted(grown.tolist()) == [2, 3, 4]
    for rows in (first, grown):
        for a, fresh in zip(_arrays(state), _fresh_row(state), strict=True):
            np.testing.assert_array_equal(a[rows], np.repeat(fresh[None], len(rows), axis=0))
    event = (int(state.slot_of["c"]), Event(0, 1.0, "a", {"x": 9.0}))
    step(compiled, state, batch_from_events(SCENARIO, [event]))
    (row_c,) = state.rows(np.array([state.slot_of["c"]]))
    assert state.sess_i[row_c, 2] == 1
    state.release(["c"])
    (again,) = state.rows(state.open(["f"]))
    assert again == row_c  # a used row: every field written again
    for a, fresh in zip(_arrays(state), _fresh_row(state), strict=True):
        np.testing.assert_array_equal(a[again], fresh)
    # the fields a never-used row skips are those whose fresh value is zero bytes
    skipped = np.setdiff1d(np.arange(compiled.n_state_f), state._nonzero_f)
    assert (compiled.init_f[skipped].view(np.int64) == 0).all()
    assert skipped.size >= 2


def test_rows_are_taken_in_the_order_sessions_first_appear_and_decisions_name_slots() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=8)
    slots = state.open([f"S{i}" for i in range(8)])  # slots 0..7
    # slots 6 and 2 send first, then 4: they take rows 0, 1 and 2, sessions live together
    # sharing the state's cache lines whatever slots they were opened with
    rows = [(6, Event(0, 1.0, "c")), (2, Event(0, 1.0, "a", {"x": 9.0})),
            (6, Event(1, 2.0, "d", {"x": 0.5})), (4, Event(0, 3.0, "b"))]  # fmt: skip
    decided = step(compiled, state, batch_from_events(SCENARIO, rows))
    assert state.row_of[[6, 2, 4]].tolist() == [0, 1, 2]
    assert state.slot_of_row[[0, 1, 2]].tolist() == [6, 2, 4]
    assert (state.row_of[[0, 1, 3, 5, 7]] == -1).all()  # no row before a batch or close
    assert set(decided.slot.tolist()) <= {6, 2, 4}
    assert len(decided) > 0
    closed = close(compiled, state, slots, np.full(8, 9.0))
    assert set(closed.slot.tolist()) == set(range(8))  # sessions without events close too
    assert (state.row_of >= 0).all()
    before = set(state.row_of.tolist())
    state.release(["S6"])
    assert state.row_of[6] == -1
    (slot,) = state.open(["again"])
    assert slot == 6
    assert state.rows(np.array([slot])).tolist() == [0]  # the freed row, fresh
    assert set(state.row_of.tolist()) == before


def test_decisions_and_spans_equal_when_rows_differ_from_slots() -> None:
    """The same sessions opened in two orders (so their rows and slots differ) give the same
    reports."""
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    sim = simulate(scenario, "mixed", 12, seed=3)
    batch = sim.batch().take(np.argsort(sim.t, kind="stable"))
    compiled = compile_rubric(rubric, scenario)
    ids = list(sim.session_ids)
    forward = score_columns(compiled, batch, ids, sim.close_t)
    back = np.arange(len(ids))[::-1].copy()  # session k opened as k-th from the end
    flipped = type(batch)(back[batch.session].astype(batch.session.dtype), batch.seq,
                          batch.t, batch.event, batch.signals)  # fmt: skip
    backward = score_columns(compiled, flipped, ids[::-1], sim.close_t[::-1].copy())
    assert [r.to_data() for r in forward] == [r.to_data() for r in backward[::-1]]


def test_a_slot_named_while_not_open_gets_a_fresh_row_when_opened() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=2)
    state.open(["S0"])
    # slot 1 is not open: a batch naming it scores into a row nobody owns
    step(compiled, state, batch_from_events(SCENARIO, [(1, Event(0, 1.0, "a", {"x": 9.0}))]))
    (slot,) = state.open(["S1"])
    assert slot == 1
    (row,) = state.rows(np.array([slot]))
    assert state.sess_i[row, :3].tolist() == [-1, -1, 0]
    assert not state.verdict[row].any()


def _decided_per_slot(decisions: scorer.Decisions) -> dict[int, list[tuple[float | None, ...]]]:
    """Each slot's decisions (criterion, verdict, seq, t, measured; NaN as None), in output
    order."""
    per: dict[int, list[tuple[float | None, ...]]] = {}
    for d in range(len(decisions)):
        row = (decisions.criterion[d], decisions.verdict[d], decisions.seq[d], decisions.t[d],
               decisions.measured[d])  # fmt: skip
        per.setdefault(int(decisions.slot[d]), []).append(
            tuple(None if np.isnan(x) else float(x) for x in row)
        )
    return per


def test_a_close_in_any_slot_order_decides_each_session_as_alone_in_row_order() -> None:
    """The close walks the sessions in the order of their state rows (sequential reads of the
    field-major state): each session keeps its own close time and its decisions, and they
    come session by session, in row order."""
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    states = [ScoringState.new(compiled, capacity=6) for _ in range(2)]
    events = [(5, Event(0, 1.0, "a", {"x": 9.0})), (1, Event(0, 1.5, "c", {"y": 3.0})),
              (3, Event(0, 2.0, "a", {"x": 0.5})), (1, Event(1, 2.5, "a", {"x": 2.0})),
              (0, Event(0, 3.0, "b", {"z": 1.0}))]  # fmt: skip
    for state in states:
        slots = state.open([f"S{i}" for i in range(6)])
        step(compiled, state, batch_from_events(SCENARIO, events))
    close_t = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    order = np.array([2, 0, 4, 1, 5, 3])  # neither slot nor row order
    together = close(compiled, states[0], slots[order], close_t[order])
    alone: dict[int, list[tuple[float | None, ...]]] = {}
    for k in order.tolist():
        one = close(compiled, states[1], slots[k : k + 1], close_t[k : k + 1])
        alone.update(_decided_per_slot(one))
    assert _decided_per_slot(together) == alone
    rows = states[0].row_of[together.slot]
    assert (np.diff(rows) >= 0).all()  # session by session, in row order
    assert set(together.slot.tolist()) == set(range(6))


def test_row_order_gives_the_stable_sort_of_a_permutation_else_asks_for_one() -> None:
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 7, 100):
        for case in ("sorted", "permutation", "gap", "duplicate"):
            rows = np.arange(10, 10 + n, dtype=np.int64)
            if case == "permutation":
                rows = rng.permutation(rows)
            elif case == "gap" and n > 1:
                rows = rng.permutation(rows + (np.arange(n) >= n // 2))
            elif case == "duplicate" and n > 1:
                rows = rng.permutation(rows)
                rows[-1] = rows[0]
            order = np.full(n, -7, np.int64)
            how = kernel.row_order(rows, order)
            stable = np.argsort(rows, kind="stable")
            if np.array_equal(stable, np.arange(n)):
                assert how == 0
                assert (order == -7).all()
            elif case == "permutation":
                assert how == 1
                assert order.tolist() == stable.tolist()
            else:
                assert how == 2


def test_open_of_new_ids_on_consecutive_free_slots_or_not_assigns_as_one_by_one() -> None:
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=8)
    free, capacity, slot_of = list(range(7, -1, -1)), 8, {}  # type: ignore[var-annotated]
    # consecutive free slots (a fresh state), then two released ones that are not a range
    for k, ids in enumerate([["a", "b", "c", "d", "e"], ["f", "g"]]):
        if k == 1:
            free.extend(slot_of.pop(sid) for sid in ("b", "d"))
            state.rows(np.array([state.slot_of["b"]]))  # "b" had a row: freed on release
            state.release(["b", "d"])
        opened = state.open(ids)
        expected, capacity = _open_one_by_one(free, capacity, slot_of, ids)
        assert opened.dtype == np.int32
        assert opened.tolist() == expected
        assert state.slot_of == slot_of
        assert state.session_of == {v: k for k, v in slot_of.items()}
        assert (state.row_of[opened] == -1).all()


def _resident_bytes() -> int:
    """This process's resident memory (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux's /proc")
def test_a_steps_output_faults_in_only_the_pages_its_decisions_write() -> None:
    """A step's output has room for every criterion of every session it may touch (12 x 64 K
    decisions, about 30 rows of 6 MiB for the forklift rubric) and holds a few hundred: its
    arrays must come in small pages, so that writing a hundred decisions makes a page or two
    of each row resident, not the 2 MiB huge page numpy asks for above 4 MiB (each zeroed
    when first written: 60 MB a step at 100,000 sessions live, docs/performance.md)."""
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    compiled = compile_rubric(rubric, scenario)
    sessions = scorer.SCRATCH_ROWS
    before = _resident_bytes()
    out = scorer._outputs(compiled, compiled.n_criteria * sessions,
                          compiled.n_contributing * sessions)  # fmt: skip
    rows = 0
    for a in (out.oi, out.of, out.oc):
        assert a.nbytes >= scorer.LAZY_BYTES
        a[:, :100] = 1  # a hundred decisions
        rows += a.shape[0]
    grown = _resident_bytes() - before
    assert grown <= rows * 2 * 4096 + 2**20, f"{grown / 2**20:.1f} MiB resident for {rows} rows"
    assert out.oi[7, 99] == 1
    assert out.oi.flags.c_contiguous
    assert out.oi.flags.writeable


def _ten_criteria_state(kind: str) -> tuple[CompiledRubric, ScoringState]:
    """TEN_CRITERIA compiled and a state of 8 slots stepped by `kind` ("table": the
    table-driven kernel; "fused": the fused step, waited for)."""
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    state = ScoringState.new(compiled, capacity=8)
    ready = state.fused_pending
    assert ready is not None
    assert ready.wait() is not None
    state.fused_pending = ready if kind == "fused" else None
    return compiled, state


@pytest.mark.parametrize("kind", ["table", "fused"])
def test_a_steps_output_is_the_next_steps_and_its_decisions_are_copies(
    kind: str, provider: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step writes its decisions to the same output arrays (their pages faulted in once,
    not a fresh mapping a step), so a step's decisions are copied out of them: later steps
    leave them as they were. A step that decides more than REUSED_DECISIONS drops the
    output (its pages are not kept resident), the next one takes a fresh one."""
    compiled, state = _ten_criteria_state(kind)
    slots = state.open([f"S{k}" for k in range(8)])
    first = [(int(s), Event(0, 1.0, "a", {"x": 9.0, "y": 3.0, "z": -1.0})) for s in slots]
    decided = step(compiled, state, batch_from_events(SCENARIO, first))
    out = state.step_output(1, 1)
    kept = {name: np.copy(getattr(decided, name)) for name in scorer.Decisions.__dataclass_fields__}
    assert len(decided) > 0
    second = [(int(s), Event(1, 2.0, "d", {"x": 0.0, "y": 3.0})) for s in slots]
    again = step(compiled, state, batch_from_events(SCENARIO, second))
    assert len(again) > 0
    assert state.step_output(1, 1) is out  # the same arrays, step after step
    for name, was in kept.items():
        np.testing.assert_array_equal(getattr(decided, name), was)
    monkeypatch.setattr(scorer, "REUSED_DECISIONS", 0)
    more = state.open([f"T{k}" for k in range(8)])
    third = [(int(s), Event(0, 1.0, "a", {"x": 9.0, "y": 3.0, "z": -1.0})) for s in more]
    assert len(step(compiled, state, batch_from_events(SCENARIO, third))) > 0
    assert state.step_output(1, 1) is not out


@pytest.mark.parametrize("kind", ["table", "fused"])
def test_fresh_sessions_leave_the_float_state_of_criteria_they_do_not_reach_untouched(
    kind: str, provider: object
) -> None:
    """No float field of TEN_CRITERIA is read before it is written (`compiler._fresh_floats`),
    so a fresh session's float state is zero bytes and a never-used row gets no write there:
    after a step of fresh sessions where no guard holds and no value is kept, the float
    state's columns are still zero bytes (their pages untouched), by either kernel."""
    compiled, state = _ten_criteria_state(kind)
    slots = state.open([f"S{k}" for k in range(8)])
    rows = [(int(s), Event(0, 1.0, "sample", {})) for s in slots]  # every signal missing
    assert len(step(compiled, state, batch_from_events(SCENARIO, rows))) == 0
    taken = state.row_of[slots]
    assert state.sess_i[taken, 2].tolist() == [1] * 8  # the sessions' rows were stepped
    assert not state.sf.view(np.int64).any()


@pytest.mark.parametrize("kind", ["table", "fused"])
def test_rows_never_given_to_a_session_may_hold_anything_in_their_float_columns(
    kind: str, provider: object
) -> None:
    """The float session columns (first and last t, held values, extremes) of rows no session
    has held are not initialised when the state grows (`_grown`, `zeros=False`): a row gets
    all of them when it is taken. Sessions on rows whose memory held a finished session's
    values (a late last t, held values, extremes) score and close as on a zeroed state."""
    states = [_ten_criteria_state(kind)[1] for _ in range(2)]
    compiled = states[0].compiled
    states[1].sess_f[:] = 1e9  # what an earlier state left in the memory
    decided = []
    for state in states:
        slots = state.open([f"S{k}" for k in range(8)])
        rows = [(int(s), Event(0, 1.0 + s, "a", {"x": 9.0, "y": 3.0})) for s in slots]
        rows += [(int(s), Event(1, 20.0 + s, "d", {"x": 0.5})) for s in slots[:5]]
        made = [step(compiled, state, batch_from_events(SCENARIO, rows))]
        made.append(close(compiled, state, slots, np.full(8, 40.0)))
        decided.append([_decided_per_slot(d) for d in made])
    assert decided[0] == decided[1]
    assert sum(map(len, decided[0][1].values())) > 0
    for a, b in zip(_arrays(states[0]), _arrays(states[1]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_lazy_empty_below_the_threshold_is_numpys_own_array() -> None:
    small = scorer.lazy_empty((3, 5), np.float64)
    assert small.shape == (3, 5)
    assert small.flags.owndata
    assert small.flags.c_contiguous


_IDS = st.lists(st.sampled_from("abcdefghijklmnop"), max_size=9)


_OPS = st.sampled_from(["open", "release", "release_slots", "look"])


@settings(max_examples=400, deadline=None)
@given(
    ops=st.lists(st.tuples(_OPS, _IDS), max_size=8),
    capacity=st.integers(1, 5),
    bulk=st.integers(1, 4),
)
def test_any_mix_of_opens_and_releases_assigns_slots_as_one_by_one(
    ops: list[tuple[str, list[str]]], capacity: int, bulk: int
) -> None:
    """`open`'s bulk paths (new distinct ids: a set of the open ids kept, from BULK_OPEN of
    them on a state without open sessions; else only never-used slots free: a range without
    popping; released slots on top: popped; duplicates or open ids: one by one) give the
    one-by-one assignment whatever came before: opens of new, open and repeated ids,
    releases of any open ones by id or by slot, lookups by id (`slot_of`, built from the set
    at the first one) in between or not, growth."""
    state = ScoringState.new(compile_rubric(TEN_CRITERIA, SCENARIO), capacity=capacity)
    cap = max(capacity, scorer.MIN_CAPACITY)  # a state holds two slots at least
    free, slot_of = list(range(cap - 1, -1, -1)), {}  # type: ignore[var-annotated]
    with mock.patch.object(scorer, "BULK_OPEN", bulk):
        for op, ids in ops:
            if op == "look":
                assert state.slot_of == slot_of
            elif op in ("release", "release_slots"):
                gone = [sid for sid in dict.fromkeys(ids) if sid in slot_of]
                slots = [slot_of.pop(sid) for sid in gone]
                free.extend(slots)
                if op == "release":
                    state.release(gone)
                else:
                    state.release_slots(slots)
            else:
                opened = state.open(ids)
                expected, cap = _open_one_by_one(free, cap, slot_of, ids)
                assert opened.tolist() == expected
                assert state.capacity == cap
            assert state.session_of == {v: k for k, v in slot_of.items()}
    assert state.slot_of == slot_of


def test_a_slot_without_a_session_is_not_released() -> None:
    state = ScoringState.new(compile_rubric(TEN_CRITERIA, SCENARIO), capacity=4)
    state.open(["a", "b"])
    with pytest.raises(KeyError):
        state.release_slots([3])
    state.release_slots([0])
    with pytest.raises(KeyError):
        state.release_slots([0])
    assert state.slot_of == {"b": 1}
