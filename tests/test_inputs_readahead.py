"""Reading ahead on a background thread (`inputs.readahead`): the same items, order and errors
as reading in the caller's thread; never more than one item ahead of the caller; the thread
closes the reader and ends when the caller stops early. And the Parquet reader that uses it:
its memory is bounded by its batches, whatever the file's size."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.library import load_rubric
from assessengine.archive.layout import events_record_batch
from assessengine.errors import EventsError
from assessengine.inputs import read_input
from assessengine.inputs.readahead import read_ahead

from .archive_data import RUBRICS
from .waits import WAIT_S

NAME = "test-read-ahead"


def _threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


class Source:
    """Items 0..n-1 (raising `fail_at` at that item), recording on which thread each was
    made, how many the caller had asked for when each was started, and whether it was closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.asked = 0  # items the caller has asked for (counted by the caller before asking)
        self.asked_at_start: list[int] = []
        self.threads: set[str] = set()
        self.closed = False
        self.started = [threading.Event() for _ in range(n + 2)]

    def __iter__(self) -> Iterator[int]:
        try:
            for k in range(self.n):
                self.threads.add(threading.current_thread().name)
                self.asked_at_start.append(self.asked)
                self.started[k].set()
                if k == self.fail_at:
                    raise EventsError(f"f.parquet: row {k}: bad")
                yield k
            self.started[self.n].set()
        finally:
            self.closed = True


def _collect(items: Iterable[int]) -> tuple[list[int], str | None]:
    """The items until the end or the first EventsError, and its message."""
    got: list[int] = []
    try:
        for item in items:
            got.append(item)  # noqa: PERF402 - the items before an error count too
    except EventsError as exc:
        return got, str(exc)
    return got, None


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 12), fail_at=st.one_of(st.none(), st.integers(0, 12)))
def test_the_items_order_and_error_are_those_of_reading_directly(
    n: int, fail_at: int | None
) -> None:
    ahead = Source(n, fail_at)
    expected = _collect(Source(n, fail_at))
    assert _collect(read_ahead(ahead, name=NAME)) == expected
    assert expected[1] == (f"f.parquet: row {fail_at}: bad" if fail_at is not None
                           and fail_at < n else None)  # fmt: skip
    assert ahead.threads <= {NAME}
    assert ahead.closed
    assert not _threads_named(NAME)


class _nothing:  # noqa: N801 - used like pytest.raises
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_thread_starts_an_item_only_once_the_caller_asked_for_the_one_before() -> None:
    """Item k + 1 is started only after the caller asked for item k (and so finished with
    k - 1): the item being worked on and the one being read, never a third. The caller waits
    after each item until the next one has started, and then a little more, so that a thread
    reading further ahead would be seen doing it."""
    source = Source(8)
    items = read_ahead(source, name=NAME)
    for k in range(8):
        source.asked += 1
        assert next(items) == k
        assert source.started[k + 1].wait(WAIT_S)
        assert not source.started[k + 2].wait(0.02)  # a wait, not a timing: never set here
    source.asked += 1
    assert list(items) == []
    # item 0 at the first request, each next one once the caller asked for the one before
    assert source.asked_at_start == [1, *range(1, 8)]


@pytest.mark.parametrize("how", ["break", "raise", "close"])
def test_a_caller_that_stops_early_leaves_the_reader_closed_and_no_thread(how: str) -> None:
    source = Source(100)
    items = read_ahead(source, name=NAME)
    if how == "close":
        assert next(items) == 0
        items.close()  # type: ignore[attr-defined]
    else:
        with pytest.raises(RuntimeError) if how == "raise" else _nothing():
            for k in items:
                if k == 2:
                    if how == "raise":
                        raise RuntimeError("the scorer failed")
                    break
        items.close()  # type: ignore[attr-defined]  # as CPython does when the last reference goes
    assert source.closed
    assert not _threads_named(NAME)
    assert len(source.asked_at_start) <= 4


def test_an_error_closing_the_reader_reaches_the_caller_after_the_last_item() -> None:
    """(It left the caller waiting for an end that never came.)"""

    class Items:
        def __init__(self) -> None:
            self.left = iter(range(3))

        def __iter__(self) -> Items:
            return self

        def __next__(self) -> int:
            return next(self.left)

        def close(self) -> None:
            raise EventsError("f.parquet: cannot be closed")

    assert _collect(read_ahead(Items(), name=NAME)) == ([0, 1, 2],
                                                          "f.parquet: cannot be closed")
    assert not _threads_named(NAME)


# ------------------------------------------------------------------ the Parquet reader's memory


def _parquet(path: Path, rows: int) -> Path:
    """`rows` events of 50 interleaved sessions, in row groups of one batch (65,536 rows)."""
    _, scenario = load_rubric(RUBRICS["network-lab"])
    n_sessions, k = 50, np.arange(rows)
    record = events_record_batch(
        scenario, [f"S{s}" for s in range(n_sessions)], (k % n_sessions).astype(np.int32),
        (k // n_sessions).astype(np.int64), (k // n_sessions) * 0.1, np.zeros(rows, np.int32),
        np.ones((len(scenario.signal_names), rows)),
    )
    pq.write_table(pa.Table.from_batches([record]), path, row_group_size=65_536)
    return path


def _peak_while_scoring_like(path: Path) -> tuple[int, int, int]:
    """The traced peak above the start (numpy's arrays are traced, on every thread) while
    every chunk is read and dropped; the number of chunks; the bytes of the largest batch."""
    _, scenario = load_rubric(RUBRICS["network-lab"])
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        chunks = largest = 0
        for chunk in read_input(path, scenario=scenario):
            b = chunk.batch
            largest = max(largest, sum(getattr(b, f).nbytes for f in
                                       ("session", "seq", "t", "event", "signals")))  # fmt: skip
            chunks += 1
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, chunks, largest


def test_reading_parquet_ahead_holds_about_two_batches_whatever_the_file_size(
    tmp_path: Path,
) -> None:
    """The batch scored and the one read ahead (plus the conversion's small tables): the
    same peak for a file of a few row groups and one of three times as many."""
    small_file = _parquet(tmp_path / "s.parquet", 4 * 65_536)
    large_file = _parquet(tmp_path / "l.parquet", 12 * 65_536)
    _peak_while_scoring_like(small_file)  # one-time allocations first
    small, n_small, batch = _peak_while_scoring_like(small_file)
    large, n_large, _ = _peak_while_scoring_like(large_file)
    assert n_large == 3 * n_small == 12
    assert large <= 2.5 * batch
    assert abs(large - small) <= batch // 4
