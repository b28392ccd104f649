"""Scoring in a process of its own: the live engine's `Scorer` runs beside the ingest with its
own interpreter (and GIL), so that neither waits for the other's Python.

The engine's scoring thread drives a `RemoteScorer`: for each group of work items it copies the
batches' rows into a shared buffer (a file in ``/dev/shm`` mapped by both processes) and sends
the child one message naming the OPENs, the batches (session, kind, offset, rows) and the
CLOSEs; up to `IN_FLIGHT` such submissions are outstanding. The child (`_child_main`) owns a
`Scorer` on its own connection to the same store (opened by the `StoreOpener` it was given):
it opens, scores (one kernel step per rubric) and closes in that order, saves decisions and
reports, and answers with its counters;
a thread of the `RemoteScorer` reads the answers and runs each submission's `on_done`. So the
engine's contract is unchanged: work is finished with (`WorkQueue.done`) only once the child
has saved its results. `RemoteScorer` is a `scoring.ScoringBackend`.

    opener = functools.partial(open_store, "sqlite:///engine.db", recover=False)
    scorer = RemoteScorer(opener, library)
    recovery = scorer.start()        # spawns the child; it warms up and recovers open sessions
    scorer.submit(opens, batches, closes, on_done=lambda: ...)
    scorer.drain(60.0)               # every submission answered
    scorer.close()

Rows travel as columns-v1 records when the batch arrived so (one copy of the payload as
received), else as columns (seq, t, signals, event, each contiguous). Records lie back to back
in the buffer, so that a fused kernel step reads a run of them in place, as strided views
spanning many batches (`codec.adjacent_records`), with no copy into contiguous columns. The
child is started with ``spawn`` (the engine has threads; ``fork`` would copy their locks) from
the scoring thread, and on Linux it is killed with its parent (``PR_SET_PDEATHSIG``): a crashed
engine never leaves a scorer writing to the store that a restarted one recovers from.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import mmap
import multiprocessing
import os
import signal
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from ..core.codec import FIXED_BYTES, Columns, Layout, records_runs
from .fused import configure, installed_cache_dir
from .pipeline import (
    Recovery,
    RubricEntry,
    RubricLibrary,
    Scorer,
    guarded,
    score_then_close,
    settle_collector,
)
from .scoring import Batches, Closes, Opens, ScoringBackendError, StoreOpener

log = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 120.0
"""How long the child may take to start by default (imports, the kernel's warm-up, recovery):
the setting ``scoring_start_timeout``."""
MIN_BUFFER: Final = 1 << 20
IN_FLIGHT: Final = 2
"""Submissions outstanding at once (each with its shared buffer)."""
IDLE_S: Final = 1.0
"""Seconds without a submission after which the child retries a failed save."""

Kind = Literal["records", "columns"]
Part = tuple[str, Kind, int, int]
"""One batch in the shared buffer: session, kind, byte offset, rows."""


class ScoringProcessError(ScoringBackendError):
    """The scoring process could not start, or it stopped (its exit code is in the message)."""


@dataclass(frozen=True, slots=True)
class Counts:
    """The child's `Scorer` counters, as of its last answer."""

    events_scored: int = 0
    reports_saved: int = 0
    sessions_open: int = 0
    scoring_errors: int = 0
    unsaved_reports: frozenset[str] = frozenset()


# ================================================================================ parent side


class RemoteScorer:
    """A `Scorer` in a child process; see the module docstring. One thread submits work (the
    engine's scoring thread); the answers are read by a thread of this object's, which runs
    each submission's `on_done`. Exposes the counters the engine reports (`events_scored`...).

    Up to `IN_FLIGHT` submissions are outstanding, each in a shared buffer of its own: the
    child scores one while the next is copied and sent (it never waits for the engine)."""

    def __init__(
        self, opener: StoreOpener, library: RubricLibrary, *, start_timeout: float = START_TIMEOUT_S
    ) -> None:
        self._opener, self._library = opener, library
        self._start_timeout = start_timeout
        self._process: Any = None
        self._conn: Connection | None = None
        self._buffers: list[_Buffer | None] = [None] * IN_FLIGHT
        self._sent = 0
        self._slots = threading.Semaphore(IN_FLIGHT)
        self._waiting: deque[Callable[[], None]] = deque()
        self._reader: threading.Thread | None = None
        self._failure: str | None = None
        self._counts = Counts()

    @property
    def events_scored(self) -> int:
        return self._counts.events_scored

    @property
    def reports_saved(self) -> int:
        return self._counts.reports_saved

    @property
    def sessions_open(self) -> int:
        return self._counts.sessions_open

    @property
    def scoring_errors(self) -> int:
        return self._counts.scoring_errors

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and self._failure is None

    @property
    def unsaved_reports(self) -> frozenset[str]:
        return self._counts.unsaved_reports

    def start(self, skip: Collection[str] = frozenset()) -> Recovery:
        """Spawn the child and wait until it has warmed up and recovered the open sessions;
        returns what it recovered. Raises ScoringProcessError."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self._process = context.Process(
            target=_child_main, name="assessengine-scoring", daemon=True,
            args=(theirs, os.getpid(), logging.getLogger().getEffectiveLevel(),
                  self._opener, self._library.entries(),
                  sorted(self._library.scenarios), sorted(skip), installed_cache_dir()),
        )  # fmt: skip
        self._process.start()
        theirs.close()
        self._conn = ours
        answer: tuple[Any, ...] = ("failed", f"no answer within {self._start_timeout:.0f}s")
        try:
            if ours.poll(self._start_timeout):
                answer = ours.recv()
        except (OSError, EOFError):
            self._process.join(5.0)
            answer = ("failed", f"it stopped (exit code {self._process.exitcode})")
        if answer[0] != "ready":
            self.close()
            raise ScoringProcessError(f"the scoring process could not start: {answer[1]}")
        self._reader = threading.Thread(target=self._read, name="scoring-answers",
                                        daemon=True)  # fmt: skip
        self._reader.start()
        recovery: Recovery = answer[1]
        return recovery

    def submit(
        self,
        opens: Opens,
        batches: Batches,
        closes: Closes,
        on_done: Callable[[], None],
    ) -> None:
        """Have the child open `opens`, score `batches` (session, columns, the columns-v1
        records of the same rows or None), then close `closes`, in that order and after what
        was submitted before; `on_done` runs (in the answers thread) once it has saved the
        results. Blocks while `IN_FLIGHT` submissions are outstanding. Raises
        ScoringProcessError when the child is gone."""
        while not self._slots.acquire(timeout=1.0):
            if not self.alive:
                raise self._gone("")
        if self._failure is not None:
            self._slots.release()
            raise self._gone(self._failure)
        parts: list[Part] = []
        path = ""
        if batches:
            offsets, end = placement(batches)
            buffer = self._buffer_for(self._sent % IN_FLIGHT, end)
            for (session, cols, records), offset in zip(batches, offsets, strict=True):
                kind = buffer.put(offset, cols, records)
                parts.append((session, kind, offset, len(cols)))
            path = buffer.path
        self._waiting.append(on_done)
        self._sent += 1
        assert self._conn is not None
        try:
            keys = [(s, e.key, replay) for s, e, replay in opens]
            self._conn.send(("work", keys, path, parts, list(closes)))
        except (OSError, EOFError) as exc:
            raise self._gone("") from exc

    def idle(self) -> None:
        """Nothing to do: the child saves what failed saves left itself, when idle."""

    def drain(self, timeout: float) -> bool:
        """True once every submission is answered; False after `timeout` seconds or when the
        child is gone."""
        taken = 0
        try:
            for _ in range(IN_FLIGHT):
                if not self._slots.acquire(timeout=timeout):
                    return False
                taken += 1
            return self._failure is None
        finally:
            for _ in range(taken):
                self._slots.release()

    def close(self, timeout: float = 60.0) -> None:
        """Ask the child to finish (it closes its store) and wait for it; kill it after
        `timeout`. Idempotent."""
        if self._conn is not None:
            with contextlib.suppress(OSError, EOFError, BrokenPipeError):
                self._conn.send(("stop",))
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                log.error("the scoring process did not stop within %.0fs: killed", timeout)
                self._process.kill()
                self._process.join()
        if self._reader is not None:
            self._reader.join(timeout)
            self._reader = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for k, buffer in enumerate(self._buffers):
            if buffer is not None:
                buffer.close()
                self._buffers[k] = None

    def _read(self) -> None:
        """The answers thread: run each submission's `on_done` as the child answers it."""
        assert self._conn is not None
        try:
            while True:
                answer = self._conn.recv()
                if answer[0] == "counts":  # an idle retry of a failed save
                    self._counts = answer[1]
                    continue
                if answer[0] != "done":
                    self._failure = f"the scoring process failed: {answer[1]}"
                    return
                self._counts = answer[1]
                on_done = self._waiting.popleft()
                self._slots.release()
                try:
                    on_done()
                except Exception:  # a bug of the caller's: keep answering the others
                    log.exception("scoring: finishing a submission failed")
        except (OSError, EOFError):
            if self._failure is None:
                self._failure = "its pipe closed"
        finally:
            for _ in range(IN_FLIGHT):  # wake a waiting `submit` or `drain`
                self._slots.release()

    def _buffer_for(self, slot: int, nbytes: int) -> _Buffer:
        buffer = self._buffers[slot]
        if buffer is None or buffer.size < nbytes:
            if buffer is not None:
                buffer.close()
            buffer = _Buffer.create(max(MIN_BUFFER, 1 << (nbytes - 1).bit_length()))
            self._buffers[slot] = buffer
        return buffer

    def _gone(self, why: str) -> ScoringProcessError:
        code = self._process.exitcode if self._process is not None else None
        what = "the scoring process " + (
            f"stopped (exit code {code})" if code is not None else "does not answer")
        return ScoringProcessError(f"{what}: {why}" if why else what)


def placement(batches: Batches) -> tuple[list[int], int]:
    """Where each batch goes in a shared buffer (byte offsets), and the bytes they take.
    Records lie back to back (a run of them is read in place by a fused step, as views
    spanning the batches: `codec.adjacent_records`); batches sent as columns start at a
    multiple of 8 (each column aligned to its items)."""
    offsets: list[int] = []
    end = 0
    for _, cols, records in batches:
        if records is None:
            end += -end % 8
        offsets.append(end)
        end += len(cols) * FIXED_BYTES + cols.signals.nbytes
    return offsets, end


class _Buffer:
    """A file of `size` bytes mapped by both processes; its creator (`owner`) removes it at
    `close`."""

    def __init__(self, path: str, size: int, *, owner: bool = True) -> None:
        self.path, self.size = path, size
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._owner = owner
        self.array = np.frombuffer(self._map, np.uint8)

    @classmethod
    def create(cls, size: int) -> _Buffer:
        """A new buffer in ``/dev/shm``, or in the temporary folder when that has no room (its
        space is reserved first: writing into a full tmpfs mapping would crash the engine)."""
        folders = [f for f in ("/dev/shm", tempfile.gettempdir()) if os.path.isdir(f)]
        for k, folder in enumerate(folders):
            fd, path = tempfile.mkstemp(prefix="assessengine-scoring-", dir=folder)
            try:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, size)
                else:
                    os.ftruncate(fd, size)
            except OSError:
                os.close(fd)
                os.unlink(path)
                if k == len(folders) - 1:
                    raise
                continue
            os.close(fd)
            return cls(path, size)
        raise OSError("no folder for the scoring buffer")

    def put(self, offset: int, cols: Columns, records: Any) -> Kind:
        """Copy one batch's rows to `offset`: the records as received, else its columns."""
        if records is not None:
            data = np.frombuffer(records, np.uint8)
            self.array[offset : offset + data.nbytes] = data
            return "records"
        at = offset
        for column in (cols.seq, cols.t, cols.signals, cols.event):
            out = self.array[at : at + column.nbytes].view(column.dtype).reshape(column.shape)
            out[...] = column
            at += column.nbytes
        return "columns"

    def views(self, parts: list[tuple[Kind, int, int, Layout]]) -> list[Columns]:
        """The columns of each part (kind, byte offset, rows, layout), views of the buffer;
        consecutive records of one layout as rows of one run (`codec.records_runs`)."""
        out: list[Columns] = []
        run: list[tuple[int, int]] = []
        layout: Layout | None = None
        for kind, offset, n, mine in parts:
            if run and (kind != "records" or (mine is not layout and mine != layout)):
                assert layout is not None
                out += records_runs(self._map, layout, run)
                run = []
            if kind == "records":
                run.append((offset, n))
                layout = mine
            else:
                out.append(self._columns(offset, n, mine))
        if run:
            assert layout is not None
            out += records_runs(self._map, layout, run)
        return out

    def _columns(self, offset: int, n: int, layout: Layout) -> Columns:
        k = len(layout.signal_names)
        a = self.array
        seq = a[offset : offset + 8 * n].view(np.int64)
        t = a[offset + 8 * n : offset + 16 * n].view(np.float64)
        signals = a[offset + 16 * n : offset + (16 + 8 * k) * n].view(np.float64).reshape(k, n)
        event = a[offset + (16 + 8 * k) * n : offset + (20 + 8 * k) * n].view(np.int32)
        return Columns(seq, t, event, signals)

    def close(self) -> None:
        del self.array
        with contextlib.suppress(BufferError):  # a view still held: the mapping goes with it
            self._map.close()
        if self._owner:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


# ================================================================================ child side


def _child_main(
    conn: Connection,
    parent: int,
    log_level: int,
    opener: StoreOpener,
    entries: list[RubricEntry],
    scenarios: list[str],
    skip: list[str],
    fused_cache: Path | None,
) -> None:
    """The scoring process: a `Scorer` on its own store connection, driven by `conn`; with
    fused steps from `fused_cache` when not None (as its parent: `fused.installed_cache_dir`)."""
    _die_with_parent(parent)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")
    if fused_cache is not None:
        configure(True, fused_cache)
    try:
        store = opener()
    except Exception as exc:  # reported to the parent, which raises it
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    try:
        library = RubricLibrary(entries, scenarios=scenarios)
        scorer = Scorer(store, library)
        try:
            scorer.warm_up()
            recovery = scorer.recover(frozenset(skip))
        except Exception as exc:
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            return
        settle_collector()
        conn.send(("ready", recovery))
        _serve(conn, scorer, library)
    finally:
        store.close()


def _serve(conn: Connection, scorer: Scorer, library: RubricLibrary) -> None:
    buffers: dict[str, _Buffer] = {}  # the engine's buffers, by path (the newest IN_FLIGHT)
    errors = 0
    while True:
        try:
            if scorer.unsaved and not conn.poll(IDLE_S):
                if scorer.save_unsaved():  # the store failed a save: retry while idle
                    conn.send(("counts", _counts(scorer, errors)))
                continue
            message = conn.recv()
        except (EOFError, OSError):
            return  # the engine is gone
        if message[0] == "stop":
            scorer.save_unsaved()
            return
        _, opens, path, parts, closes = message
        buffer = buffers.get(path) if parts else None
        if parts and buffer is None:
            buffer = buffers[path] = _Buffer(path, os.stat(path).st_size, owner=False)
            while len(buffers) > IN_FLIGHT:  # the oldest was replaced by a larger one
                buffers.pop(next(iter(buffers))).close()
        for session, key, replay in opens:
            entry = library.find(*key)
            if entry is not None:
                errors += not guarded(f"open {session!r}", functools.partial(
                    scorer.open, replay=replay), session, entry)  # fmt: skip
        batches = []
        if parts:
            assert buffer is not None
            placed = [(session, (kind, offset, n, layout)) for session, kind, offset, n in parts
                      if (layout := scorer.layout_of(session)) is not None]  # else not open here
            views = buffer.views([where for _, where in placed])
            batches = [(session, cols) for (session, _), cols in zip(placed, views, strict=True)]
        errors += score_then_close(scorer, batches, closes)
        del batches
        conn.send(("done", _counts(scorer, errors)))


def _counts(scorer: Scorer, errors: int) -> Counts:
    return Counts(scorer.events_scored, scorer.reports_saved, scorer.sessions_open,
                  scorer.scoring_errors + errors, scorer.unsaved_reports)  # fmt: skip


def _die_with_parent(parent: int) -> None:
    """On Linux, have the kernel kill this process when the engine's dies (even by SIGKILL),
    and name it ``ae-scoring`` (as `top` and ``ps -o comm`` show it)."""
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig, pr_set_name = 1, 15
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        libc.prctl(pr_set_name, b"ae-scoring")
    except (OSError, AttributeError):  # not Linux: the closed pipe ends the process instead
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
