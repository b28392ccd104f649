"""`grouping.group`: a cohort's partitions in fewer, larger Dask tasks (consecutive, about
equal events, every partition once, in order), and `grouping.cuts`, the packing it shares
with `split`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.archive import grouping
from assessengine.archive.grouping import TASK_EVENTS, TASKS_PER_WORKER, cuts, group


@dataclass(frozen=True)
class Part:
    name: int
    events: int


def _parts(*events: int) -> list[Part]:
    return [Part(k, n) for k, n in enumerate(events)]


def test_many_small_files_make_tasks_per_worker_of_about_equal_events() -> None:
    parts = _parts(*[100_000] * 25)  # the benchmark's archive: 2.5 M events in 25 files
    one = group(parts, workers=1)
    two = group(parts, workers=2)
    assert len(one) == TASKS_PER_WORKER
    assert len(two) == 2 * TASKS_PER_WORKER
    for groups in (one, two):
        assert [p for g in groups for p in g] == parts  # consecutive, all, in order
        sizes = [len(g) for g in groups]
        assert max(sizes) - min(sizes) <= 1


def test_a_large_cohort_makes_tasks_of_about_task_events() -> None:
    parts = _parts(*[100_000] * 100)  # 10 M events
    groups = group(parts, workers=2)
    assert len(groups) == 10_000_000 // TASK_EVENTS
    assert all(sum(p.events for p in g) == TASK_EVENTS for g in groups)


def test_no_grouping_when_there_are_not_more_files_than_tasks() -> None:
    parts = _parts(*[50_000] * 6)
    assert group(parts, workers=2) == [(p,) for p in parts]
    big = _parts(*[2_000_000] * 20)  # files of export's default size: one task each
    assert group(big, workers=2) == [(p,) for p in big]
    assert group([], workers=2) == []


def test_unknown_sizes_weigh_one_each() -> None:
    parts = _parts(*[0] * 12)
    assert [len(g) for g in group(parts, workers=1)] == [4, 4, 4]


def test_the_settings_are_read_when_grouping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grouping, "TASKS_PER_WORKER", 0)
    parts = _parts(10, 10, 10)
    assert group(parts, workers=2) == [tuple(parts)]  # one task of under TASK_EVENTS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3_000_000), max_size=60), st.integers(1, 8))
def test_groups_are_consecutive_cover_everything_and_are_never_empty(
    events: list[int], workers: int
) -> None:
    parts = _parts(*events)
    groups = group(parts, workers=workers)
    assert [p for g in groups for p in g] == parts
    assert all(groups)
    wanted = max(TASKS_PER_WORKER * workers, -(-sum(max(n, 1) for n in events) // TASK_EVENTS))
    assert len(groups) == min(len(parts), wanted)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=1, max_size=40), st.integers(1, 50))
def test_cuts_cover_every_item_in_order_in_at_most_count_pieces(sizes: list[int],
                                                                count: int) -> None:  # fmt: skip
    pieces = cuts(sizes, count)
    assert len(pieces) == min(count, len(sizes))
    assert pieces[0][0] == 0
    assert pieces[-1][1] == len(sizes)
    assert all(lo < hi for lo, hi in pieces)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


def _cuts_by_scan(sizes: list[int], count: int) -> list[tuple[int, int]]:
    """`cuts` as first written: every boundary scanned for every cut (quadratic)."""
    count = max(1, min(count, len(sizes)))
    ends = list(itertools.accumulate(sizes))
    bounds = [0]
    for j in range(1, count):
        goal = j * ends[-1] / count
        nearest = min(range(1, len(sizes)), key=lambda k: abs(ends[k - 1] - goal))
        bounds.append(min(max(nearest, bounds[-1] + 1), len(sizes) - (count - j)))
    bounds.append(len(sizes))
    return list(itertools.pairwise(bounds))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=60), st.integers(1, 70))
def test_cuts_by_bisection_are_the_scans_cuts(sizes: list[int], count: int) -> None:
    """The same pieces as scanning every boundary, ties and empty items included."""
    assert cuts(sizes, count) == _cuts_by_scan(sizes, count)
