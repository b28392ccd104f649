"""Read ahead: build a reader's next item on a background thread while the caller works on
the current one.

    for chunk in read_ahead(read_columnar(stream, scenario=..., source=...)):
        run.add(chunk)          # the kernel scores chunk k while the thread reads chunk k + 1

For readers whose work releases the GIL (pyarrow's Parquet and Arrow IPC decoding, the
compiled column conversions) beside a consumer that releases it too (the numba kernel): on two
cores reading and scoring then overlap, instead of adding up (docs/performance.md, "`score` on
Parquet: reading ahead on a second thread").

The contract:

- the items, their order and the reader's exceptions (re-raised in the caller's thread, at the
  item where they happened, with their own type and message) are those of iterating `items`
  directly;
- **one item ahead at most**: the thread starts the item k + 1 only once the caller has asked
  for item k (so it has finished with item k - 1); memory holds the item the caller works on
  and the one being read, never more;
- `items` is iterated (and, when it is a generator, closed) on the thread alone; an error
  closing it reaches the caller after the last item (unless the caller has stopped, or has
  an error of the reader's already); when the
  caller stops early (``break``, an exception, closing the generator `read_ahead` returns),
  the thread finishes the item it is reading, closes `items` (so its file is closed) and is
  joined before control returns to the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def read_ahead(items: Iterable[T], *, name: str = "read-ahead") -> Iterator[T]:
    """`items`, each read on a background thread one item ahead of the caller (see the
    module docstring)."""
    return _ReadAhead(items, name).run()


class _ReadAhead:
    """One `read_ahead` iteration: a producer thread and a hand-over slot of one item."""

    def __init__(self, items: Iterable[T], name: str) -> None:
        self._items: Iterable[object] = items
        self._name = name
        self._permits = threading.Semaphore(1)  # items the thread may start: one ahead
        self._ready = threading.Semaphore(0)  # items (or the end) waiting in `_slot`
        self._slot: object = _DONE
        self._error: BaseException | None = None
        self._stop = False

    def run(self) -> Iterator[T]:
        thread = threading.Thread(target=self._produce, name=self._name, daemon=True)
        thread.start()
        try:
            while True:
                self._ready.acquire()
                item, self._slot = self._slot, _DONE
                if item is _DONE:
                    if self._error is not None:
                        raise self._error
                    return
                self._permits.release()  # the caller is done with the previous item
                yield item  # type: ignore[misc]
                del item
        finally:
            self._stop = True
            self._permits.release()  # wakes the thread if it waits for a permit
            thread.join()
            self._slot = _DONE  # an item read but never asked for

    def _produce(self) -> None:
        iterator = iter(self._items)
        try:
            while True:
                self._permits.acquire()
                if self._stop:
                    return
                try:
                    item = next(iterator)
                except StopIteration:
                    self._slot = _DONE
                    return
                self._slot = item
                del item
                self._ready.release()
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            self._slot = _DONE
        finally:
            try:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
            except BaseException as exc:  # the caller's error, unless it has one already
                if self._error is None:
                    self._error = exc
            finally:  # the caller learns of the end whatever closing the reader did
                if self._slot is _DONE:
                    self._ready.release()
