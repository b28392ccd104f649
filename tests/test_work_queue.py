"""The bounded queue between the engine's ingest and scoring threads."""

from __future__ import annotations

import threading
import time

import numpy as np

from assessengine.core.codec import Columns
from assessengine.runtime.engine import BatchItem, CloseItem, StopItem, WorkQueue

from .waits import WAIT_S

LONG = WAIT_S  # a linger or timeout no test may wait out


def _batch(session: str, nbytes: int) -> BatchItem:
    n = 1
    cols = Columns(np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int32), np.zeros((0, n)))
    return BatchItem(session, cols, 0.0, nbytes)


def test_items_come_out_in_order_up_to_max_bytes_of_batches() -> None:
    queue = WorkQueue(max_bytes=1000)
    items = [_batch("A", 100), _batch("B", 100), CloseItem("A", 1.0), _batch("C", 100)]
    queue.put_many([(item, getattr(item, "nbytes", 0)) for item in items])
    assert queue.take(0, max_bytes=150) == items[:2]
    assert queue.take(0, max_bytes=150) == items[2:]
    assert queue.take(0.01, max_bytes=150) == []


def test_put_waits_for_room_until_the_consumer_is_done() -> None:
    queue = WorkQueue(max_bytes=150)
    queue.put(_batch("A", 100), 100)
    entered = threading.Event()
    stored = threading.Event()

    def producer() -> None:
        entered.set()
        queue.put(_batch("B", 100), 100)
        stored.set()

    thread = threading.Thread(target=producer)
    thread.start()
    entered.wait(LONG)
    assert not stored.wait(0.2)  # full: 100 + 100 > 150
    (taken,) = queue.take(0, max_bytes=1000)
    assert not stored.wait(0.2)  # taken is not done: its bytes still count
    queue.done(1, taken.nbytes)
    assert stored.wait(LONG)
    thread.join(LONG)
    assert queue.nbytes == 100


def test_linger_gathers_batches_until_enough_bytes_arrive() -> None:
    queue = WorkQueue(max_bytes=10_000)
    queue.put(_batch("A", 100), 100)

    def later() -> None:
        time.sleep(0.2)
        queue.put(_batch("B", 900), 900)

    thread = threading.Thread(target=later)
    thread.start()
    taken = queue.take(LONG, max_bytes=1000, linger=LONG)
    thread.join(LONG)
    assert [item.session for item in taken if isinstance(item, BatchItem)] == ["A", "B"]


def test_a_queued_close_or_stop_ends_the_linger_at_once() -> None:
    """A CLOSE means a report is awaited: the scoring thread does not wait for more batches
    (it waited its whole linger, 50 ms, at the end of every benchmark round)."""
    close = [(_batch("A", 100), 100), (CloseItem("A", 5.0), 0), (_batch("B", 100), 100)]
    stop = [(_batch("A", 100), 100), (_batch("B", 100), 100), (StopItem(), 0)]
    for items in (close, stop):
        queue = WorkQueue(max_bytes=10_000)
        queue.put_many(items)
        start = time.monotonic()
        taken = queue.take(LONG, max_bytes=1000, linger=LONG)
        assert time.monotonic() - start < LONG / 2
        assert len(taken) == 3
    queue = WorkQueue(max_bytes=10_000)
    queue.put(CloseItem("A", 5.0))
    assert queue.take(0, max_bytes=1000, linger=LONG) == [CloseItem("A", 5.0)]
    queue.put(_batch("B", 100), 100)  # the close was taken: lingering is back
    start = time.monotonic()
    assert len(queue.take(0, max_bytes=1000, linger=0.3)) == 1
    assert time.monotonic() - start >= 0.25
