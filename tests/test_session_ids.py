"""The slot -> id side of the session table: a mapping like the dict it replaced, and an
`open` of many new ids that builds no second per-slot dict."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.core.compiler import compile_rubric
from assessengine.core.scorer import ScoringState
from assessengine.core.session_ids import SessionIds

from .strategies import SCENARIO
from .test_kernel_state import TEN_CRITERIA

_OPS = st.lists(
    st.tuples(st.sampled_from(["range", "many", "remove"]), st.integers(0, 11), st.integers(0, 4)),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS)
def test_session_ids_read_as_the_dict_of_the_same_assignments(
    ops: list[tuple[str, int, int]],
) -> None:
    ids, model = SessionIds(), {}  # type: ignore[var-annotated]
    ids.grow(6)
    ids.grow(12)
    for k, (op, slot, n) in enumerate(ops):
        free = [s for s in range(slot, min(slot + n, 12)) if s not in model]
        if op == "remove":
            if slot in model:
                del model[slot]
                ids.remove(slot)
            else:
                with pytest.raises(KeyError):
                    ids.remove(slot)
            continue
        names = [f"{k}-{s}" for s in free]
        if op == "range" and free == list(range(slot, slot + len(free))):
            ids.set_range(slot, names)
        else:
            ids.set_many(zip(free, names, strict=True))
        model.update(zip(free, names, strict=True))
    assert ids == model
    assert len(ids) == len(model)
    assert list(ids) == sorted(model)
    for slot in range(-1, 13):
        assert ids.get(slot, "?") == model.get(slot, "?")
        assert (slot in ids) == (slot in model)


def test_a_range_beyond_the_capacity_is_refused() -> None:
    ids = SessionIds()
    ids.grow(2)
    with pytest.raises(IndexError, match="beyond the capacity 2"):
        ids.set_range(1, ["a", "b"])
    assert len(ids) == 0


def _open_traced(n: int) -> tuple[ScoringState, list[str], int, int]:
    """A fresh state of n slots that opened n new ids, the ids, and the memory traced after
    the open and at its peak."""
    state = ScoringState.new(compile_rubric(TEN_CRITERIA, SCENARIO), capacity=n)
    session_ids = [f"s{k}" for k in range(n)]
    tracemalloc.start()
    try:
        state.open(session_ids)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return state, session_ids, kept, peak


def test_the_first_open_of_many_ids_builds_no_copies() -> None:
    """Opening 100,000 new ids on a fresh state builds the open ids' table once (not copied
    into another), and slot -> id is a list (a dict's inverse cost 7-15 ms and 5 MiB more).
    Before: about 3 dicts of 100,000 entries at once (over 12 MiB traced)."""
    state, _, _, peak = _open_traced(100_000)
    assert peak < 10 * 2**20, f"{peak / 2**20:.1f} MiB traced"
    assert state.session_of[99_999] == "s99999"
    assert state.slot_of["s5"] == 5
    assert len(state.session_of) == 100_000


def test_an_open_of_many_new_ids_keeps_their_set_not_a_dict_of_slot_ints() -> None:
    """A state that opened 100,000 new ids holds a set of them (4.0 MiB traced after the
    open), not the id -> slot dict and its 100,000 slot ints (6.7 MiB, and twice the time to
    build); the dict is built at the first lookup."""
    state, session_ids, kept, _ = _open_traced(100_000)
    assert kept < 5 * 2**20, f"{kept / 2**20:.1f} MiB traced"
    assert state.slot_of["s99999"] == 99_999
    assert state.slot_of == dict(zip(session_ids, range(100_000), strict=True))


def test_slot_by_id_is_the_inverse_of_the_open_slots() -> None:
    ids = SessionIds()
    ids.grow(6)
    ids.set_range(1, ["a", "b", "c"])
    ids.set_many([(5, "e")])
    ids.remove(2)
    assert ids.slot_by_id() == {"a": 1, "c": 3, "e": 5}


def test_a_state_of_many_slots_holds_no_python_object_per_free_slot() -> None:
    """A fresh state of 100,000 slots keeps its free slots as a range, not a list of 100,000
    ints (4.6 MiB of Python objects before, 2 ms to build and 0.5 ms to take at the first
    open); what is left per slot is the slot -> id list (0.8 MiB)."""
    compiled = compile_rubric(TEN_CRITERIA, SCENARIO)
    tracemalloc.start()
    try:
        state = ScoringState.new(compiled, capacity=100_000)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    python = snapshot.filter_traces([tracemalloc.DomainFilter(True, 0)])  # numpy's are not
    python_bytes = sum(stat.size for stat in python.statistics("filename"))
    assert python_bytes < 1.5 * 2**20, f"{python_bytes / 2**20:.1f} MiB of Python objects"
    assert state.open(["a", "b"]).tolist() == [0, 1]
