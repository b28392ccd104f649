"""The fused step (one generated numba function per rubric, `core.fused_source`, loaded by
`runtime.fused`) gives the reference scorer's reports, whatever the batch split and the
interleaving of sessions; what it does not generate falls back to the table-driven kernel."""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba.core import config as numba_config

from assessengine.core import fused_step, scorer
from assessengine.core.compiler import MACHINE, CompiledRubric, compile_rubric
from assessengine.core.events import Event, SessionEvents, batch_from_events
from assessengine.core.fused_source import FusedUnsupportedError, fused_source
from assessengine.core.offline import score_sessions
from assessengine.core.rubric import Rubric
from assessengine.core.scorer import ScoringState, close, step
from assessengine.core.scoring import DecisionLog
from assessengine.errors import ScoringError
from assessengine.runtime import fused

from .strategies import SCENARIO, rubrics, session_sets
from .strategies import sessions as one_session
from .test_kernel_properties import interleaved_batch, interleavings, score_in_pieces
from .waits import WAIT_S

# every distinct rubric compiles its own function (1-2 s of CPU each, more under load): few
# examples a run (60 passed while the generator was written)
FUSED = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def _data(reports: list[Any]) -> list[dict[str, Any]]:
    return [r.to_data() for r in reports]


@pytest.mark.slow
@FUSED
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_fused_step_equals_reference_in_any_split_and_interleaving(
    provider: fused.FusedProvider, rubric: Rubric, sessions: list[SessionEvents],
    data: st.DataObject,
) -> None:  # fmt: skip
    state = ScoringState.new(compile_rubric(rubric, SCENARIO))
    assert state.fused is not None  # the provider generated this rubric
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference
    order = data.draw(interleavings(sessions))
    cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=4))
    by_report = {r["session"]: r for r in reference}
    pieces = score_in_pieces(rubric, sessions, order, cuts)
    assert pieces == [by_report[s.session] for s in sessions]


@pytest.mark.slow
def test_fused_step_equals_reference_on_a_rubric_of_every_template(
    provider: fused.FusedProvider,
) -> None:
    """Every template, `for` and `allow`, a machine with an event, a `for` and a NaN-prone
    `max(x, y) / z`, over sessions with missing and NaN signals, cut into steps of 7 rows."""
    rubric, sessions = _forklift_like()
    assert ScoringState.new(compile_rubric(rubric, SCENARIO)).fused is not None
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference
    order = [k for k, s in enumerate(sessions) for _ in s.events]
    cuts = list(range(0, len(order), 7))
    by_report = {r["session"]: r for r in reference}
    assert score_in_pieces(rubric, sessions, order, cuts) == [
        by_report[s.session] for s in sessions
    ]


@pytest.mark.parametrize("kind", ["table", "fused"])
def test_the_float_state_a_fresh_session_starts_at_zero_is_written_before_it_is_read(
    provider: fused.FusedProvider, kind: str
) -> None:
    """`compiler._fresh_floats`: every float field a fresh session starts at zero bytes, but
    a machine's entry t, is written before any reader reads it: started at any other value
    (NaN, -1e9), the rubric of every template (and a machine with a `for` run in its initial
    state) gives the reference's reports, by the table-driven kernel and by the fused step,
    sessions interleaved in steps of 7 rows. The run start it keeps NaN is read: started at
    -1e9, the reports differ."""
    base, sessions = _forklift_like()
    run = _rubric([{"machine": {"initial": "w", "at_end": "pass", "states": {
        "w": [{"when": "y > 2", "for": 1.5, "to": "fail"}]}}}]).criteria[0]  # fmt: skip
    criteria = (*base.criteria, run.model_copy(update={"id": "run"}))
    rubric = base.model_copy(update={"criteria": criteria})
    compiled = compile_rubric(rubric, SCENARIO)
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    dead = compiled.init_f.view(np.int64) == 0
    dead[compiled.state_f_off[compiled.kind == MACHINE]] = False  # entered at t=0: read
    for value in [-1e9] if kind == "fused" else [np.nan, -1e9]:
        init_f = compiled.init_f.copy()
        init_f[dead] = value
        poisoned = dataclasses.replace(compiled, init_f=init_f)
        assert _reports_of(poisoned, sessions, fused=kind == "fused") == reference
    live = np.isnan(compiled.init_f)
    assert live.sum() == 1  # the run of the last machine's initial state
    init_f = np.where(live, -1e9, compiled.init_f)
    poisoned = dataclasses.replace(compiled, init_f=init_f)
    assert _reports_of(poisoned, sessions, fused=kind == "fused") != reference


def _closed_reports(
    compiled: CompiledRubric,
    state: ScoringState,
    log: DecisionLog,
    slots: Any,
    sessions: list[SessionEvents],
) -> list[dict[str, Any]]:
    """Close the sessions on `slots` at their end times into `log`; their reports' data."""
    log.add(close(compiled, state, slots, np.array([s.end_t for s in sessions])))
    return [log.pop_report(int(slot), s.session).to_data()
            for s, slot in zip(sessions, slots, strict=True)]  # fmt: skip


def _reports_of(
    compiled: CompiledRubric, sessions: list[SessionEvents], *, fused: bool
) -> list[dict[str, Any]]:
    """The reports of `compiled` over the sessions' events interleaved by time, in steps of
    7 rows, by the fused step (the installed provider's) or the table-driven kernel."""
    state = ScoringState(compiled, 4, table_only=not fused)
    assert (state.fused is not None) == fused
    slots = state.open([s.session for s in sessions])
    stamps = sorted((e.t, k, e.seq) for k, s in enumerate(sessions) for e in s.events)
    batch = interleaved_batch(sessions, slots, [k for _, k, _ in stamps])
    log = DecisionLog(compiled)
    for lo in range(0, len(batch), 7):
        log.add(step(compiled, state, batch.take(slice(lo, lo + 7))))
    return _closed_reports(compiled, state, log, slots, sessions)


def test_a_batch_above_the_scratch_size_is_one_fused_pass_with_the_same_reports(
    provider: fused.FusedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fused step needs no work arrays: a batch of more than SCRATCH_ROWS rows is not
    cut into sub-steps, and gives the reports of the reference."""
    rubric, sessions = _small()
    monkeypatch.setattr(scorer, "SCRATCH_ROWS", 8)
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference


def test_a_rubric_naming_the_sample_event_is_scored_as_the_reference(
    provider: fused.FusedProvider,
) -> None:
    """The generated step takes sample rows by a copy of the criteria where each event guard
    is a constant (true for a guard on `sample` itself, false for any other event): criteria
    that name `sample` (a count of samples, a duration from a sample, a precede by one) give
    the reference's reports, and the sample rows' copy has no event test left."""
    _, sessions = _forklift_like()
    rubric = _rubric([
        {"count": {"event": "sample", "max": 30}},
        {"precede": {"event": "c", "by": "sample", "within": 0.5}},
        {"duration": {"from": "sample", "to": "b", "max": 3}},
        {"all_before": {"events": ["a", "sample"], "before": "c"}},
        {"sequence": ["sample", "a", {"when": "x > 1"}]},
    ])  # fmt: skip
    source = fused_source(compile_rubric(rubric, SCENARIO))
    sample_rows = source.split("        if ev == 0:\n", 1)[1].split("        else:\n", 1)[0]
    assert "ev ==" not in sample_rows
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert ScoringState.new(compile_rubric(rubric, SCENARIO)).fused is not None
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference
    order = [k for k, s in enumerate(sessions) for _ in s.events]
    by_report = {r["session"]: r for r in reference}
    assert score_in_pieces(rubric, sessions, order, list(range(0, len(order), 5))) == [
        by_report[s.session] for s in sessions
    ]


def test_gated_criteria_sharing_a_condition_sit_behind_one_test_and_score_as_the_reference(
    provider: fused.FusedProvider,
) -> None:
    """Consecutive gated criteria whose guards share a comparison (`x > 1`, also reached
    through a `not`), with a metric between them, go behind one test of it in the generated
    step (`_Group`), and give the reference's reports."""
    _, sessions = _forklift_like()
    rubric = _rubric([
        {"never": "x > 1 and y > 2"},
        {"metric": {"aggregate": "mean", "of": "z", "where": "y <= 2", "at_least": 0}},
        {"never": "z < 0 and x > 1", "for": 1},
        {"count": {"when": "not (x <= 1 or z >= 1)", "max": 3}},
    ])  # fmt: skip
    source = fused_source(compile_rubric(rubric, SCENARIO))
    shared = re.findall(r"^ +if (q\d+):$", source, re.MULTILINE)
    assert shared
    for q in shared:  # the held x is h0
        assert re.search(rf"^ +{q} = h0 > 1\.0$", source, re.MULTILINE)
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference
    order = [k for k, s in enumerate(sessions) for _ in s.events]
    by_report = {r["session"]: r for r in reference}
    assert score_in_pieces(rubric, sessions, order, list(range(0, len(order), 3))) == [
        by_report[s.session] for s in sessions
    ]


def test_the_hold_is_compiled_to_vector_operations(tmp_path: Path) -> None:
    """A generated step is compiled with LLVM's SLP vectorizer (`fused.compile_step`): the
    hold's runs over a session's adjacent columns are vector operations, but for the row's
    signals (not a gather); numba's own setting is left as it was."""
    compiled = compile_rubric(_rubric([{"never": "x > 2 and y > 1 and z > 0"}]), SCENARIO)
    setting = numba_config.SLP_VECTORIZE
    pending = fused.FusedProvider(tmp_path, background=False)(compiled)
    assert pending is not None
    assert pending.step is not None
    llvm = pending.step.inspect_llvm(fused.signature(compiled))
    assert "x double>" in llvm
    assert setting == numba_config.SLP_VECTORIZE
    # the row's signals are loaded one by one: as one gather (AVX2, AVX-512) they were slower
    assert "masked.gather" not in llvm


def test_a_steps_helpers_are_compiled_once(tmp_path: Path) -> None:
    """The step's helpers get one variant each: a helper called with a variable that numba's
    type inference first sees as a literal 0 was compiled for that literal as well, a second
    variant never run (a first run's second a rubric)."""
    compiled = compile_rubric(_rubric([{"never": "x > 2"}]), SCENARIO)
    pending = fused.FusedProvider(tmp_path, background=False)(compiled)
    assert pending is not None
    assert pending.step is not None
    module = sys.modules[pending.step.py_func.__module__]
    variants = {name: len(getattr(module, name).signatures) for name in ("_fresh_rows", "_untake")}
    assert variants == {"_fresh_rows": 1, "_untake": 1}


def test_the_row_loop_asks_the_cache_for_the_signals_of_a_row_further_on(
    tmp_path: Path,
) -> None:
    """The hardware's prefetchers lose the batch's signal streams among the row loop's other
    accesses: the generated step prefetches them (`fused_source._Gen.ahead`)."""
    compiled = compile_rubric(_rubric([{"never": "x > 2 and y > 1 and z > 0"}]), SCENARIO)
    pending = fused.FusedProvider(tmp_path, background=False)(compiled)
    assert pending is not None
    assert pending.step is not None
    assert "@llvm.prefetch" in pending.step.inspect_llvm(fused.signature(compiled))


def test_a_sequences_gate_is_one_rarely_taken_branch_and_scores_as_the_reference(
    provider: fused.FusedProvider,
) -> None:
    """A sequence's gate on sample rows (its step guards and its pending bit) is kept one
    branch, weighted as rarely taken: the compiled step branches on it frozen
    (`_rare_branch`; LLVM splits a branch on an `and` of conditions into one a condition,
    and the pending bit's then mispredicts where sessions interleave) with the weights of
    an expected false, and the sessions score as the reference."""
    _, sessions = _forklift_like()
    rubric = _rubric([{"sequence": ["a", {"when": "x > 1"}]}, {"never": "y > 2"}])
    compiled = compile_rubric(rubric, SCENARIO)
    pending = provider(compiled)
    assert pending is not None
    assert pending.step is not None
    llvm = pending.step.inspect_llvm(fused.signature(compiled))
    frozen = re.findall(r"(%\S+) = freeze i1 ", llvm)
    assert len(frozen) == 1  # the sample rows' copy
    for value in frozen:
        branch = re.search(rf"br i1 {re.escape(value)}, .*, !prof (!\d+)$", llvm, re.MULTILINE)
        assert branch
        weights = re.search(rf"^{branch.group(1)} = .*\"branch_weights\".* (\d+), i32 (\d+)\}}$",
                            llvm, re.MULTILINE)  # fmt: skip
        assert weights
        assert int(weights.group(1)) < int(weights.group(2))
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference


def test_a_rubric_the_generator_does_not_cover_is_scored_by_the_table_kernel(
    provider: fused.FusedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    rubric, sessions = _forklift_like()

    def unsupported(compiled: object) -> str:
        raise FusedUnsupportedError("not generated here")

    monkeypatch.setattr(fused, "fused_source", unsupported)
    state = ScoringState.new(compile_rubric(rubric, SCENARIO))
    assert state.fused is None
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference


def test_without_a_provider_the_state_has_no_fused_step() -> None:
    fused.uninstall()
    assert fused_step.provider() is None
    rubric, _ = _forklift_like()
    assert ScoringState.new(compile_rubric(rubric, SCENARIO)).fused is None


def test_the_generated_source_is_deterministic_and_names_no_package_module() -> None:
    rubric, _ = _forklift_like()
    one = fused_source(compile_rubric(rubric, SCENARIO))
    assert one == fused_source(compile_rubric(rubric, SCENARIO))
    # numba caches per file and does not see a change in a module a cached function calls
    assert "assessengine" not in one.replace("assessengine.core.fused_source", "")
    compile(one, "<generated>", "exec")


PROBE = """
import json, sys
import numpy as np
from pathlib import Path
from assessengine.core.compiler import MACHINE, CompiledRubric, compile_rubric
from assessengine.core.scorer import ScoringState, step
from assessengine.core.events import batch_from_events
from assessengine.runtime import fused
from tests.strategies import SCENARIO
from tests.test_fused_kernel import _small
fused.install(Path(sys.argv[1]), background=False)
rubric, sessions = _small()
compiled = compile_rubric(rubric, SCENARIO)
state = ScoringState.new(compiled, capacity=64)
slots = state.open([s.session for s in sessions])
rows = [(int(slots[k]), e) for k, s in enumerate(sessions) for e in s.events]
step(compiled, state, batch_from_events(SCENARIO, rows))
print(json.dumps(fused.compilations()))
"""


def test_a_second_process_loads_the_compiled_step_from_the_disk_cache(tmp_path: Path) -> None:
    """The generated module is imported under its own name (registered in sys.modules):
    numba's cache rebuilds a cached function's environment by importing its module by name,
    so a second process loads what the first compiled (without the registration it could
    not, and failed with "No module named '<dynamic>'")."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}

    def run() -> int:
        done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return int(done.stdout.strip().splitlines()[-1])

    assert run() > 0  # the first process compiles
    assert run() == 0  # the second loads it
    assert len(list(tmp_path.glob(f"{fused.PREFIX}*.py"))) == 1


def _kernel_by_step(
    rubric: Rubric, sessions: list[SessionEvents], order: list[int], cuts: list[int],
    kernels: list[str],
) -> list[dict[str, Any]]:  # fmt: skip
    """Reports when the rows arrive in `order`, cut at `cuts`, the k-th batch stepped by
    `kernels[k % len(kernels)]` ("table" or "fused") on one state."""
    compiled = compile_rubric(rubric, SCENARIO)
    state = ScoringState.new(compiled, capacity=4)  # > 1: the fused step takes it
    return _scored_on(state, sessions, order, cuts, kernels)


def _scored_on(
    state: ScoringState, sessions: list[SessionEvents], order: list[int], cuts: list[int],
    kernels: list[str],
) -> list[dict[str, Any]]:  # fmt: skip
    """`_kernel_by_step` on `state` (its fused step ready or on its way): the sessions opened
    on it, stepped, closed (not released)."""
    compiled = state.compiled
    ready = state.fused_pending
    assert ready is not None
    assert ready.wait() is not None
    slots = state.open([s.session for s in sessions])
    batch = interleaved_batch(sessions, slots, order)
    log = DecisionLog(compiled)
    bounds = [0, *sorted(set(cuts)), len(batch)]
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        state.fused_pending = ready if kernels[k % len(kernels)] == "fused" else None
        assert (state.fused is not None) == (kernels[k % len(kernels)] == "fused")
        log.add(step(compiled, state, batch.take(slice(lo, hi))))
    state.fused_pending = ready
    return _closed_reports(compiled, state, log, slots, sessions)


@st.composite
def _many_sessions(draw: st.DrawFn) -> list[SessionEvents]:
    return [draw(one_session(f"S{i}")) for i in range(draw(st.integers(1, 4)))]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture])  # fmt: skip
@given(sessions=_many_sessions(), data=st.data())
def test_switching_kernels_between_steps_gives_the_reports_of_either_alone(
    provider: fused.FusedProvider, sessions: list[SessionEvents], data: st.DataObject
) -> None:
    """A state stepped by the table-driven kernel until its fused step is ready, then by the
    fused step (or in any mix, batch by batch) gives the reference's reports: both leave the
    state as the other expects. One rubric of every template (compiled once), any sessions,
    interleaving, cuts and choice of kernel per batch."""
    rubric = _forklift_like()[0]
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    by_report = {r["session"]: r for r in reference}
    expected = [by_report[s.session] for s in sessions]
    order = data.draw(interleavings(sessions))
    cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=6))
    kernels = data.draw(st.lists(st.sampled_from(["table", "fused"]), min_size=1, max_size=7))
    assert _kernel_by_step(rubric, sessions, order, cuts, kernels) == expected
    for alone in ("table", "fused"):
        assert _kernel_by_step(rubric, sessions, order, cuts, [alone]) == expected


@st.composite
def _two_generations(draw: st.DrawFn) -> list[list[SessionEvents]]:
    first = [draw(one_session(f"S{i}")) for i in range(draw(st.integers(1, 3)))]
    return [first, [draw(one_session(f"T{i}")) for i in range(draw(st.integers(1, 4)))]]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])  # fmt: skip
@given(generations=_two_generations(), data=st.data())
def test_rows_released_and_taken_again_score_as_the_reference(
    provider: fused.FusedProvider, generations: list[list[SessionEvents]], data: st.DataObject
) -> None:
    """Sessions scored, closed and some of them released, then new sessions on the same
    state: the steps give the new sessions released rows (every field written again), then
    never-used ones (beyond a growth of the state too), whichever kernel steps each batch;
    every session's report is the reference's."""
    rubric = _forklift_like()[0]
    state = ScoringState.new(compile_rubric(rubric, SCENARIO), capacity=4)
    for k, sessions in enumerate(generations):
        reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
        by_report = {r["session"]: r for r in reference}
        order = data.draw(interleavings(sessions))
        cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=4))
        kernels = data.draw(st.lists(st.sampled_from(["table", "fused"]), min_size=1,
                                     max_size=5))  # fmt: skip
        got = _scored_on(state, sessions, order, cuts, kernels)
        assert got == [by_report[s.session] for s in sessions]
        if k == 0:
            ids = [s.session for s in sessions]
            state.release(data.draw(st.lists(st.sampled_from(ids), unique=True)))


def test_the_fused_step_takes_rows_as_rows_would_and_leaves_the_table_kernels_state(
    provider: fused.FusedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots without a state row get them inside the fused step's first pass, in the order
    `ScoringState.rows` gives them (the free rows in turn: two released rows that are not a
    range, then never-used ones, beyond a growth too; by the slots' first occurrence), with
    a fresh session's state: the state after the step is the table-driven kernel's (but the
    stamps), and neither `rows` nor `_reset` runs."""
    rubric, sessions = _forklift_like()
    compiled = compile_rubric(rubric, SCENARIO)
    states = {}
    for kind in ("table", "fused"):
        state = states[kind] = ScoringState.new(compiled, capacity=4)
        ready = state.fused_pending
        assert ready is not None
        assert ready.wait() is not None
        state.fused_pending = ready if kind == "fused" else None
        slots = state.open(["a", "b", "c", "d"])  # rows in the order: d, b, a, c
        first = [(int(slots[k]), e) for k in (3, 1, 0, 2) for e in sessions[k % 2].events[:2]]
        step(compiled, state, batch_from_events(SCENARIO, first))
        state.release(["d", "a"])  # rows 0 and 2 free, 2 on top
        new = state.open(["w", "x", "y", "z", "v"])  # the state grows to 8 slots and rows
        assert state.capacity == 8
        rows = [(int(new[k]), e) for k in (2, 0, 3, 1) for e in sessions[k % 2].events]
        rows.sort(key=lambda r: (r[1].t, r[1].seq))
        batch = batch_from_events(SCENARIO, rows)
        if kind == "fused":
            with monkeypatch.context() as patch:
                for name in ("rows", "_reset"):
                    patch.setattr(ScoringState, name, _refused)
                step(compiled, state, batch)
        else:
            step(compiled, state, batch)
        seen = list(dict.fromkeys(batch.session.tolist()))
        assert state.row_of[seen].tolist() == [2, 0, 4, 5]  # released (2 on top), then new
    table, fast = states["table"], states["fused"]
    assert np.array_equal(table.row_of, fast.row_of)
    taken = table.row_of[table.row_of >= 0]
    assert np.array_equal(table.slot_of_row[taken], fast.slot_of_row[taken])
    assert np.array_equal(table.free_rows, fast.free_rows)
    assert table._pristine_from == fast._pristine_from == 6
    _assert_unchanged_but_the_stamps([a.copy() for a in table.arrays], fast)


def test_a_slot_out_of_bounds_after_a_row_out_of_order_is_the_error(
    provider: fused.FusedProvider,
) -> None:
    """The first pass stops at the first row out of order, but a slot out of the state's
    bounds anywhere in the batch is what the step reports (as the table-driven kernel,
    whose slot check comes first), the rows it took given back."""
    _, _, compiled, state, _, rows = _opened_on_a_fused_state()
    batch = batch_from_events(SCENARIO, rows)
    batch.t[3] = -1.0
    batch.session[len(batch) - 1] = 4
    with pytest.raises(ScoringError, match=r"batch has a session slot outside 0\.\.3"):
        step(compiled, state, batch)
    assert (state.row_of == -1).all()
    batch.session[len(batch) - 1] = rows[-1][0]
    with pytest.raises(ScoringError, match="row 3: "):
        step(compiled, state, batch)


def _refused(*args: object, **kwargs: object) -> None:
    raise AssertionError("called")


def test_a_batch_out_of_order_gives_back_the_rows_it_took(provider: fused.FusedProvider) -> None:
    """A batch whose sessions have no state row yet (a released one's is the next free row,
    a never-used one after it), one of its rows out of order: the rows the first pass took
    are free again (the same next ones), the state as it was (but the stamps); the batch in
    order then scores to the reference's reports."""
    rubric, sessions, compiled, state, slots, rows = _opened_on_a_fused_state()
    step(compiled, state, batch_from_events(SCENARIO, [r for r in rows if r[0] == slots[0]]))
    state.release([sessions[0].session])  # its row (0) is the next free one, then row 1
    slots = state.open([sessions[0].session])[:1].tolist() + slots[1:].tolist()
    rows = [(int(slots[k]), e) for k, s in enumerate(sessions) for e in s.events]
    rows.sort(key=lambda r: (r[1].t, r[1].seq))
    bad = batch_from_events(SCENARIO, rows)
    late = len(bad) - 2
    bad.t[late] = -1.0
    before = [a.copy() for a in state.arrays]
    row_of, free = state.row_of.copy(), state.free_rows.copy()
    with pytest.raises(ScoringError, match=f"row {late}: "):
        step(compiled, state, bad)
    assert np.array_equal(row_of, state.row_of)
    assert (state.row_of == -1).all()
    assert free[:2].tolist() == [0, 1]
    assert np.array_equal(free, state.free_rows)
    _assert_unchanged_but_the_stamps(before, state)
    log = DecisionLog(compiled)
    log.add(step(compiled, state, batch_from_events(SCENARIO, rows)))
    log.add(close(compiled, state, np.array(slots), np.array([s.end_t for s in sessions])))
    got = [log.pop_report(int(slot), s.session).to_data()
           for s, slot in zip(sessions, slots, strict=True)]  # fmt: skip
    assert got == _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))


class _GatedCompiler:
    """A `fused.Compiler` that waits for `go` before compiling in a child as the provider
    does by default (what a compile that takes long looks like, without timing)."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = threading.Event()

    def __call__(self, path: Path, name: str, sig: Any) -> str | None:
        self.started.set()
        assert self.go.wait(600)
        return fused.compile_in_child(path, name, sig)


def test_with_an_empty_cache_scoring_starts_at_once_and_switches_when_compiled(
    tmp_path: Path,
) -> None:
    """A process whose cache lacks the rubric's step scores its first batches with the
    table-driven kernel while a child process compiles the step, then with the loaded step:
    the reports are the reference's, and nothing was compiled in this process."""
    rubric, sessions = _forklift_like()
    rubric = rubric.model_copy(update={"criteria": rubric.criteria[:3]})
    gate = _GatedCompiler()
    provider = fused.FusedProvider(tmp_path, compiler=gate)
    fused_step.set_provider(provider)
    try:
        compiled = compile_rubric(rubric, SCENARIO)
        state = ScoringState.new(compiled, capacity=4)
        pending = state.fused_pending
        assert pending is not None
        assert gate.started.wait(600)
        assert state.fused is None  # the compile is held at the gate
        assert not pending.done()
        before = fused.compilations()
        slots = state.open([s.session for s in sessions])
        rows = [(int(slots[k]), e) for k, s in enumerate(sessions) for e in s.events]
        batch = batch_from_events(SCENARIO, rows)
        log = DecisionLog(compiled)
        half = len(batch) // 2
        log.add(step(compiled, state, batch.take(slice(0, half))))  # table-driven, at once
        gate.go.set()
        assert pending.wait(600) is not None, pending.error
        assert state.fused is not None
        log.add(step(compiled, state, batch.take(slice(half, len(batch)))))  # fused
        got = _closed_reports(compiled, state, log, slots, sessions)
        assert fused.compilations() == before  # the child compiled, this process loaded
        # a second state of the same rubric gets the ready step at once
        assert ScoringState.new(compiled, capacity=4).fused is pending.step
    finally:
        gate.go.set()
        fused.uninstall()
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert got == reference


def test_a_process_that_finds_the_step_being_compiled_waits_and_loads_it(
    tmp_path: Path,
) -> None:
    """Processes that start together with one rubric compile its step once: the one that
    finds the compile lock held waits, then loads what the holder compiled (its own
    compiler never runs)."""
    from assessengine.core.fused_source import fused_source as source_of  # noqa: PLC0415

    rubric, _ = _small()
    alone = rubric.model_copy(update={"criteria": _forklift_like()[0].criteria[1:2]})
    compiled = compile_rubric(alone, SCENARIO)
    calls: list[str] = []

    def counted(path: Path, name: str, sig: Any) -> str | None:
        calls.append(name)
        return fused.compile_in_child(path, name, sig)

    fused_step.set_provider(fused.FusedProvider(tmp_path, compiler=counted))
    path = tmp_path / f"{fused.PREFIX}{fused.module_key(source_of(compiled))}.py"
    try:
        with fused.compile_lock(path):  # "another process" holds it while compiling
            pending = ScoringState.new(compiled, capacity=4).fused_pending
            assert pending is not None
            assert not pending.done()
            assert fused.compile_in_child(path, fused.PREFIX + fused.module_key_of(path),
                                          fused.signature(compiled)) is None  # fmt: skip
        assert pending.wait(600) is not None, pending.error
        assert calls == []
    finally:
        fused.uninstall()


@pytest.mark.parametrize("breach", ["seq_repeated", "t_backwards", "t_nan", "t_negative",
                                    "t_inf", "after_the_last_batch"])  # fmt: skip
def test_a_batch_out_of_order_is_refused_by_the_fused_step_with_nothing_changed(
    provider: fused.FusedProvider, breach: str
) -> None:
    """The fused step checks the whole batch's order before it moves anything (`admit`
    folded in): a row that breaks its session's order (late in the batch, after rows of the
    same and other sessions) raises ScoringError naming it, the state as it was (but the
    stamps); the good rows then score to the reference's reports."""
    rubric, sessions, compiled, state, slots, rows = _opened_on_a_fused_state()
    log = DecisionLog(compiled)
    log.add(step(compiled, state, batch_from_events(SCENARIO, rows[:40])))
    rest = batch_from_events(SCENARIO, rows[40:])
    bad = len(rest) - 3
    previous = [k for k in range(bad) if rest.session[k] == rest.session[bad]][-1]
    if breach == "seq_repeated":
        rest.seq[bad] = rest.seq[previous]
    elif breach == "t_backwards":
        rest.t[bad] = rest.t[previous] - 1.0
    elif breach == "t_nan":
        rest.t[bad] = np.nan
    elif breach == "t_negative":
        rest.t[bad] = -0.5
    elif breach == "t_inf":
        rest.t[bad] = np.inf
    else:  # the batch's first row of a session goes before that session's last stepped row
        first = int(rest.session[0])
        bad = 0
        rest.seq[0] = max(e.seq for slot, e in rows[:40] if slot == first)
    before = [a.copy() for a in state.arrays]
    with pytest.raises(ScoringError, match=f"row {bad}: "):
        step(compiled, state, rest)
    _assert_unchanged_but_the_stamps(before, state)
    assert state.fused is not None  # still the fused step's state
    log.add(step(compiled, state, batch_from_events(SCENARIO, rows[40:])))
    got = _closed_reports(compiled, state, log, slots, sessions)
    assert got == _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))


@pytest.mark.parametrize("t", [np.nan, np.inf, -0.5])
@pytest.mark.parametrize("fresh", [True, False])
def test_a_sessions_first_row_whose_t_is_not_finite_or_negative_is_refused_by_the_fused_step(
    provider: fused.FusedProvider, t: float, fresh: bool
) -> None:
    """At a session's first row there is no t before it to test the row's against (the
    check pass tests a later row's t by its order only): a t not finite or negative is
    refused there too, whether the session's state row is taken by this batch (`fresh`) or
    was taken before, the state as it was (but the stamps)."""
    rubric, sessions, compiled, state, slots, rows = _opened_on_a_fused_state()
    log = DecisionLog(compiled)
    if not fresh:  # every slot gets its row, no event yet
        state.rows(np.asarray(slots, np.int64))
    batch = batch_from_events(SCENARIO, rows)
    late = int(batch.session[-1])
    bad = int(np.flatnonzero(batch.session == late)[0])
    assert bad > 0
    batch.t[bad] = t
    before = [a.copy() for a in state.arrays]
    with pytest.raises(ScoringError, match=f"row {bad}: "):
        step(compiled, state, batch)
    _assert_unchanged_but_the_stamps(before, state)
    log.add(step(compiled, state, batch_from_events(SCENARIO, rows)))
    got = _closed_reports(compiled, state, log, slots, sessions)
    assert got == _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))


@pytest.mark.parametrize("layout", ["C", "F", "records"])
def test_the_step_scores_signals_of_any_layout_as_the_reference(
    provider: fused.FusedProvider, layout: str
) -> None:
    """The row loop asks the cache for the signals of a row further on (the first
    signal's line where a row's signals are adjacent, else one signal a row in turn): the
    reports are the reference's whatever the signals' layout."""
    rubric, sessions, compiled, state, slots, rows = _opened_on_a_fused_state()
    step_fn = state.fused
    batch = batch_from_events(SCENARIO, rows)
    signals = batch.signals
    if layout == "F":
        signals = np.asfortranarray(signals)
    elif layout == "records":  # each row's signals inside a record, as read in place
        wide = np.zeros(len(batch), [("t", np.float64), ("sig", np.float64, (3,))])
        wide["sig"] = signals.T
        signals = wide["sig"].T
    log = DecisionLog(compiled)
    log.add(step(compiled, state, type(batch)(batch.session, batch.seq, batch.t, batch.event,
                                              signals)))  # fmt: skip
    assert state.fused is step_fn
    got = _closed_reports(compiled, state, log, slots, sessions)
    assert got == _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))


def test_a_compile_that_fails_leaves_the_table_kernel_scoring(tmp_path: Path) -> None:
    rubric, _ = _small()

    def broken(path: Path, name: str, sig: Any) -> str | None:
        return "the child could not compile"

    fused_step.set_provider(fused.FusedProvider(tmp_path / "other", compiler=broken))
    try:
        # a criterion no other test here generates: its step is not loaded in this process
        alone = rubric.model_copy(update={"criteria": _forklift_like()[0].criteria[5:6]})
        state = ScoringState.new(compile_rubric(alone, SCENARIO), capacity=4)
        pending = state.fused_pending
        assert pending is not None
        assert pending.wait(600) is None
        assert pending.error == "the child could not compile"
        assert state.fused is None
    finally:
        fused.uninstall()


def test_a_batch_of_arrays_the_step_does_not_take_is_scored_by_the_table_kernel(
    provider: fused.FusedProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """The loaded step is never compiled again inside a batch: arrays of another type are
    refused before it runs, and the table-driven kernel scores the batch (and the state from
    then on), with the same reports."""
    rubric, sessions, compiled, state, slots, rows = _opened_on_a_fused_state(_small, False)
    batch = batch_from_events(SCENARIO, rows)
    odd = type(batch)(batch.session, batch.seq, batch.t, batch.event.astype(np.int64),
                      batch.signals)  # fmt: skip
    log = DecisionLog(compiled)
    before = fused.compilations()
    log.add(step(compiled, state, odd))
    assert state.fused is None
    assert "does not take this batch's arrays" in caplog.text
    assert fused.compilations() == before
    got = _closed_reports(compiled, state, log, slots, sessions)
    assert got == _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))


def test_the_step_takes_read_only_and_strided_columns_without_compiling_again(
    provider: fused.FusedProvider,
) -> None:
    """One compiled signature takes every kind of batch the live paths pass (plain arrays,
    read-only views, strided slices of records, Fortran-order signals)."""
    _, _, compiled, state, _, rows = _opened_on_a_fused_state(_small, False)
    step_fn = state.fused
    batch = batch_from_events(SCENARIO, rows)
    n = len(batch)
    wide = np.zeros((n, 2), [("seq", np.int64), ("t", np.float64)])  # strided columns
    wide["seq"][:, 0], wide["t"][:, 0] = batch.seq, batch.t
    signals = np.asfortranarray(batch.signals)
    signals.flags.writeable = False
    odd = type(batch)(batch.session, wide["seq"][:, 0], wide["t"][:, 0], batch.event, signals)
    before = fused.compilations()
    step(compiled, state, odd)
    assert state.fused is step_fn
    assert fused.compilations() == before
    assert len(step_fn.signatures) == 1


_Opened = tuple[
    Rubric, list[SessionEvents], CompiledRubric, ScoringState, Any, list[tuple[int, Event]]
]


def _opened_on_a_fused_state(
    make: Callable[[], tuple[Rubric, list[SessionEvents]]] | None = None,
    in_time: bool = True,
) -> _Opened:
    """`make`'s rubric and sessions (`_forklift_like`'s by default), compiled, opened on a
    state with the fused step ready, and their events as (slot, event) rows, session after
    session or (`in_time`) interleaved in time, each session in order."""
    rubric, sessions = (make or _forklift_like)()
    compiled = compile_rubric(rubric, SCENARIO)
    state = ScoringState.new(compiled, capacity=4)
    assert state.fused is not None
    slots = state.open([s.session for s in sessions])
    rows = [(int(slots[k]), e) for k, s in enumerate(sessions) for e in s.events]
    if in_time:
        rows.sort(key=lambda r: (r[1].t, r[1].seq))
    return rubric, sessions, compiled, state, slots, rows


def _assert_unchanged_but_the_stamps(before: list[Any], state: ScoringState) -> None:
    """`state`'s arrays equal `before` (copies of them), but for the batch stamps and the
    float session columns of rows never given to a session (uninitialised until taken)."""
    assert np.array_equal(before[0][:, :3], state.arrays.sess_i[:, :3])
    used = state._pristine_from
    assert np.array_equal(before[1][:used], state.arrays.sess_f[:used], equal_nan=True)
    for was, now in zip(before[2:], state.arrays[2:], strict=True):
        assert np.array_equal(was, now, equal_nan=True)


def _forklift_like() -> tuple[Rubric, list[SessionEvents]]:
    """A rubric of every template over the test scenario, and two sessions."""
    return _FIXED


def _small() -> tuple[Rubric, list[SessionEvents]]:
    """One criterion of `_forklift_like` (quick to compile), and its sessions."""
    rubric, sessions = _FIXED
    return rubric.model_copy(update={"criteria": rubric.criteria[:1]}), sessions


def _fixed() -> tuple[Rubric, list[SessionEvents]]:
    criteria = [
        {"never": "x > 2 and y != 1", "for": 1},
        {"always": "z >= -1 or x < 1", "allow": 1},
        {"sequence": ["a", {"when": "x > 1"}, "b"], "within": 30},
        {"count": {"when": "abs(z) > 1", "max": 2}},
        {"metric": {"aggregate": "time_true", "of": "x > 1", "where": "y <= 2", "at_most": 5}},
        {"metric": {"aggregate": "mean", "of": "max(x, y) / z", "at_least": 0}},
        {"duration": {"from": "a", "to": "b", "max": 10}},
        {"precede": {"event": "c", "by": "d", "within": 5}},
        {"response": {"after": "a", "expect": {"when": "y > 2"}, "within": 4}},
        {"all_before": {"events": ["a", "d"], "before": "c"}},
        {
            "machine": {
                "initial": "calm",
                "at_end": "pass",
                "states": {
                    "calm": [{"when": "x > 2", "to": "busy"}],
                    "busy": [
                        {"on": "c", "to": "fail"},
                        {"when": "y > 2", "for": 1, "to": "fail"},
                        {"when": "x <= 2", "to": "calm"},
                    ],
                },
            }
        },
    ]
    rubric = _rubric(criteria)
    rng = np.random.default_rng(3)
    sessions = []
    for k in range(2):
        t, events = 0.0, []
        for seq in range(60):
            t += float(rng.choice([0.0, 0.5, 1.0]))
            kind = str(rng.choice(["sample", "sample", "sample", "a", "b", "c", "d"]))
            signals = {s: float(rng.choice([0.0, 1.0, 2.5, 3.0, np.nan]))
                       for s in ("x", "y", "z") if rng.integers(0, 2)}  # fmt: skip
            events.append(Event(seq, t, kind, signals))
        sessions.append(SessionEvents(session=f"F{k}", events=events, close_t=t + 1.0))
    return rubric, sessions


def _rubric(criteria: list[dict[str, Any]]) -> Rubric:
    """A rubric of these criteria (ids c0, c1, ...) over the test scenario."""
    return Rubric.model_validate({
        "rubric": "fused-fixed", "version": 1, "title": "Fixed", "scenario": "prop",
        "criteria": [{"id": f"c{i}", "title": f"C{i}", **c} for i, c in enumerate(criteria)],
        "pass": {"min_score": 50},
    })  # fmt: skip


_FIXED = _fixed()


def test_a_rescore_job_carries_the_fused_steps_to_its_worker_processes(tmp_path: Path) -> None:
    """`rescore`'s Dask workers score as the planning process does: the job names its fused
    cache, and a worker process without a provider installs one from it."""
    import pickle  # noqa: PLC0415

    from assessengine.archive import rescore  # noqa: PLC0415
    from assessengine.archive.location import ArchiveRoot  # noqa: PLC0415

    rubric, _ = _small()
    root = ArchiveRoot.open(str(tmp_path))
    try:
        fused.install(tmp_path / "fused")
        job = rescore.Job.of(root, rubric, SCENARIO)
        assert job.fused_cache == str(tmp_path / "fused")
        fused.uninstall()  # as a fresh worker process
        assert rescore.Job.of(root, rubric, SCENARIO).fused_cache is None
        travelled = pickle.loads(pickle.dumps(job))
        assert travelled.fused_cache == job.fused_cache
        rescore._compiled(travelled)
        assert fused.installed_cache_dir() == tmp_path / "fused"
    finally:
        fused.uninstall()


def test_wait_pending_returns_once_every_step_on_its_way_is_done(tmp_path: Path) -> None:
    """`fused.wait_pending` (what the demo runs before its timed stream) blocks while a step
    is being compiled elsewhere and returns once it is done, counting it."""
    rubric, _ = _forklift_like()
    rubric = rubric.model_copy(update={"criteria": rubric.criteria[:2]})
    started, go = threading.Event(), threading.Event()

    def held_then_failed(path: Path, name: str, sig: tuple[object, ...]) -> str | None:
        started.set()
        assert go.wait(600)
        return "held by the test"  # no compile: the table-driven kernel keeps scoring

    fused_step.set_provider(fused.FusedProvider(tmp_path, compiler=held_then_failed))
    try:
        pending = ScoringState.new(compile_rubric(rubric, SCENARIO), capacity=4).fused_pending
        assert pending is not None
        assert started.wait(600)
        counted: list[int] = []
        returned = threading.Event()

        def wait() -> None:
            counted.append(fused.wait_pending())
            returned.set()

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert not returned.wait(0.2)  # the step is held: wait_pending is still waiting
        assert not pending.done()
        go.set()
        assert returned.wait(WAIT_S)
        waiter.join(WAIT_S)
        assert pending.done()
        assert pending.error == "held by the test"
        assert counted
        assert counted[0] >= 1
    finally:
        go.set()
        fused.uninstall()


def test_wait_for_asks_every_rubric_at_once_and_waits_for_all(tmp_path: Path) -> None:
    """`fused.wait_for` asks for each rubric's step before waiting for any (their compiles run
    at once), runs `meanwhile` once while they compile, and returns when every one is done,
    counting those it waited for; nothing is scored meanwhile. Without a provider it asks
    nothing and returns 0."""
    rubric, _ = _forklift_like()
    # criteria renamed: modules no other test has loaded in this process (a loaded one is
    # ready at once, nothing compiled)
    rubrics = [
        rubric.model_copy(update={"criteria": (
            rubric.criteria[k].model_copy(update={"id": f"waited_for_{k}"}),
        )})
        for k in (0, 1)
    ]  # fmt: skip
    compiled = [compile_rubric(r, SCENARIO) for r in rubrics]
    asked: list[str] = []
    both_asked, go = threading.Event(), threading.Event()

    def held_then_failed(path: Path, name: str, sig: tuple[object, ...]) -> str | None:
        asked.append(name)
        if len(asked) == 2:
            both_asked.set()
        assert go.wait(600)
        return "held by the test"

    assert fused.wait_for(compiled) == 0  # no provider installed: the table-driven kernel
    fused_step.set_provider(fused.FusedProvider(tmp_path, compiler=held_then_failed))
    try:
        counted: list[int] = []
        returned = threading.Event()
        meanwhile_saw: list[int] = []

        def meanwhile() -> None:  # after both asks, while their compiles are held
            meanwhile_saw.append(sum(not p.done() for p in fused.pending_steps()))

        def wait() -> None:
            counted.append(fused.wait_for(compiled, meanwhile=meanwhile))
            returned.set()

        waiter = threading.Thread(target=wait)
        waiter.start()
        assert both_asked.wait(WAIT_S)  # the second compile started before the first ended
        assert len(set(asked)) == 2
        assert not returned.wait(0.2)
        assert len(meanwhile_saw) == 1
        assert meanwhile_saw[0] >= 2
        go.set()
        assert returned.wait(WAIT_S)
        waiter.join(WAIT_S)
        assert counted == [2]
        assert len(meanwhile_saw) == 1
    finally:
        go.set()
        fused.uninstall()


def test_a_state_of_any_size_is_stepped_by_the_fused_step() -> None:
    """`scorer.step` hands a batch to the fused step whatever the state's size: with the
    steps' outputs in small pages (`scorer.lazy_empty`) it beats the table-driven kernel at
    100,000 forklift sessions too (docs/performance.md, "Page-sized outputs"); a state of
    40,000 sessions (37 MB, beyond the 32 MiB where the table kernel used to take over)."""
    rubric, sessions = _forklift_like()
    calls: list[int] = []

    def refusing_step(*args: object) -> object:
        calls.append(1)
        raise AssertionError("the fused step was called")

    compiled = compile_rubric(rubric, SCENARIO)
    state = ScoringState.new(compiled, capacity=40_000, fused=refusing_step)  # type: ignore[arg-type]
    assert state.capacity * state.bytes_per_session > 32 * 2**20
    slots = state.open([s.session for s in sessions])
    rows = [(int(slots[k]), e) for k, s in enumerate(sessions) for e in s.events]
    with pytest.raises(AssertionError, match="fused step was called"):
        step(compiled, state, batch_from_events(SCENARIO, rows))
    assert calls == [1]


@pytest.mark.parametrize("slot", [-1, 4, 2**31 - 1])
def test_a_slot_outside_the_state_is_refused_by_the_fused_step_with_nothing_changed(
    provider: fused.FusedProvider, slot: int
) -> None:
    """The fused step's first pass reads each row's slot and its state row: a slot outside
    the state (after rows of a session without a state row yet, and of one with) raises
    the table-driven kernel's ScoringError, with nothing changed but the stamps; the batch
    without it then scores to the reference's reports."""
    rubric, sessions, compiled, state, slots, rows = _opened_on_a_fused_state()
    log = DecisionLog(compiled)
    first = [r for r in rows if r[0] == int(slots[0])][:5]
    log.add(step(compiled, state, batch_from_events(SCENARIO, first)))
    rest = [r for r in rows if r not in first]
    bad = batch_from_events(SCENARIO, rest)
    bad.session[len(bad) // 2] = slot
    before = [a.copy() for a in state.arrays]
    row_of = state.row_of.copy()
    with pytest.raises(ScoringError, match=r"batch has a session slot outside 0\.\.3"):
        step(compiled, state, bad)
    assert np.array_equal(row_of, state.row_of)  # no row taken either
    _assert_unchanged_but_the_stamps(before, state)
    log.add(step(compiled, state, batch_from_events(SCENARIO, rest)))
    got = _closed_reports(compiled, state, log, slots, sessions)
    assert got == _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
