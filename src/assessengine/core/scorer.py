"""Incremental scoring with the compiled kernel: session table, batch step, close.

    compiled = compile_rubric(rubric, scenario)
    state = ScoringState.new(compiled, capacity=1024)
    slots = state.open(["S1", "S2"])
    decisions = step(compiled, state, batch)          # batch.session holds slots
    decisions = close(compiled, state, slots, close_t)

`step` is all-or-nothing: a batch whose rows break a session's order raises ScoringError and
leaves the state as it was.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ..errors import ScoringError
from . import kernel
from .compiler import CompiledRubric
from .events import EventBatch
from .fused_step import NO_ROW, FusedClose, FusedStep, PendingStep, fused_step_for
from .kernel_types import Out, Rows, State
from .report import CONTRIB_MAX
from .session_ids import SessionIds

log = logging.getLogger(__name__)

SCRATCH_ROWS = 65_536  # batches up to this many rows reuse the state's work arrays
BULK_OPEN = 256
"""An `open` of at least this many new ids on a state without open sessions keeps a set of
the open ids, not the id -> slot dict (`ScoringState.slot_of`); smaller ones (the live
engine's, one id at a time, each looked up) fill the dict."""


@dataclass(frozen=True, slots=True)
class Decisions:
    """Decisions taken by one step or close, as columns (one row per decision).

    slot, criterion, verdict: (m,) int64 (verdict codes as in compiler)
    seq, seq_start:           (m,) int64, -1 = none
    t, t_start, measured:     (m,) float64, NaN = none
    values:                   (m, 2 * max_ev) float64 (see kernel.py)
    steps_done, out_of_order: (m,) int64, sequences only (else -1): steps done, and the step
                              (from 1) that came before the next one (-1 = none)
    contrib_row:              (m,) int64, count and metric criteria only (else -1): the
                              decision's row of `contrib`
    contrib:                  (k, 1 + 2 * CONTRIB_MAX) float64: how many intervals contributed,
                              then the first CONTRIB_MAX as (start, end) pairs (unset beyond)
    """

    slot: NDArray[np.int64]
    criterion: NDArray[np.int64]
    verdict: NDArray[np.int64]
    seq: NDArray[np.int64]
    seq_start: NDArray[np.int64]
    t: NDArray[np.float64]
    t_start: NDArray[np.float64]
    measured: NDArray[np.float64]
    values: NDArray[np.float64]
    steps_done: NDArray[np.int64]
    out_of_order: NDArray[np.int64]
    contrib_row: NDArray[np.int64]
    contrib: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.slot.shape[0])


MIN_CAPACITY = 2
"""Slots a state holds at least, whatever it is asked for. With one row its field-major arrays
are contiguous both ways, which numba types as row-major: a variant of every compiled function
(the fused step and close, the table-driven kernel) that no state of several slots uses. A
one-session scoring (a field upload, an audit, a rubric's test) then compiled the table-driven
kernel anew inside its request: 28 s on a fresh install after `serve`'s preparation
(docs/performance.md, "One session")."""

MIN_COLUMNS = 2
"""Columns the criteria's state arrays (si, sf, verdict) hold at least, for the same reason: a
rubric with one criterion, or one int or float state field, gave a one-column array, typed
row-major, and the table-driven kernel was compiled anew for it (12 s of a request on a
fresh install after `serve`'s warm-up). A column past the rubric's is never read: every
loop over criteria runs to the rubric's count, not the array's width."""


class ScoringState:
    """Dense per-session state for one compiled rubric, and the session id <-> slot table.

    A session's slot (what `open` returns, what batches and decisions name) is not where its
    state lives: the state arrays' row for a slot (`rows`) is taken when the session's first
    batch (or its close) needs it, the lowest free row first. Sessions that start together
    then have neighbouring rows whatever order they were opened in: the state is field-major,
    so a step's sessions share cache lines (100,000 sessions opened at once and live in turn
    otherwise scatter a step's sessions over the whole table; docs/architecture.md)."""

    def __init__(
        self,
        compiled: CompiledRubric,
        capacity: int,
        *,
        fused: FusedStep | None = None,
        table_only: bool = False,
    ) -> None:
        self.compiled = compiled
        # the rubric's fused step (`fused_step`): given, else the installed provider's (None:
        # the table-driven kernel); asked for here, at the state's creation, not in a batch;
        # it may become ready later (compiled in the background): `fused` tells
        # (`table_only`: none asked for)
        self.fused_pending: PendingStep | None = (
            PendingStep(fused) if fused is not None
            else None if table_only else fused_step_for(compiled)
        )  # fmt: skip
        self.capacity = 0
        self.session_of = SessionIds()  # slot -> id, a mapping kept as a list by slot
        # id -> slot of the open sessions (`slot_of`); while `_open_ids` is not None, it holds
        # the open ids and `_slot_of` is not kept (built at the first lookup). After
        # `session_of`: a state's attributes are freed in this order, and the list's pass over
        # the ids, in slot order, brings them into the cache for the set's, in hash order
        self._slot_of: dict[str, int] = {}
        self._open_ids: set[str] | None = None
        # the free slots: the released ones, a stack (the last released is taken first), then
        # those never taken, _unused_from up to the capacity, the lowest first (a range: a
        # fresh state of 100,000 slots holds no list of them)
        self._released: list[int] = []
        self._unused_from = 0
        # the free rows, a stack whose top is the start: _free_rows[_top:] in the order they
        # are taken (the lowest first after a growth), so a step hands them to the kernel as
        # one contiguous view (`kernel.rows_of`) and pushes and pops move `_top`
        self._free_rows = np.zeros(0, np.int32)
        self._top = 0
        self.row_of = np.zeros(0, np.int32)  # slot -> row of the state arrays, -1 = none yet
        self.slot_of_row = np.zeros(0, np.int32)  # row -> slot
        n_sig, n_crit = compiled.n_signals, compiled.n_criteria
        self.sess_i = np.zeros((0, 4), np.int64)
        self._stamp = 0
        self.sess_f = np.zeros((0, 2 + 3 * n_sig), np.float64)
        self.si = np.zeros((0, max(compiled.n_state_i, MIN_COLUMNS)), np.int64)
        self.sf = np.zeros((0, max(compiled.n_state_f, MIN_COLUMNS)), np.float64)
        self.verdict = np.zeros((0, max(n_crit, MIN_COLUMNS)), np.int8)
        # rows at or above this one were never given to a session: their bytes are still the
        # zeros `_grow` allocated, but for the float session columns (`_reset` then writes
        # those and only the other fields that start non-zero)
        self._pristine_from = 0
        self._nonzero_i = np.flatnonzero(compiled.init_i != 0)
        self._nonzero_f = np.flatnonzero(compiled.init_f.view(np.int64) != 0)
        self._scratch: dict[str, NDArray[Any]] = {}
        # per scratch name: (buffer, columns, the same as the call before) of the last call
        self._last_scratch: dict[str, tuple[NDArray[Any], int, bool]] = {}
        # whether the last step left the event-guard rows of the "masks" scratch all false
        self.clean_event_guards = False
        self._step_out: Out | None = None  # `step_output`'s, kept from step to step
        self._grow(max(capacity, MIN_CAPACITY))

    @classmethod
    def new(
        cls, compiled: CompiledRubric, *, capacity: int = 1024, fused: FusedStep | None = None
    ) -> ScoringState:
        return cls(compiled, capacity, fused=fused)

    @property
    def fused(self) -> FusedStep | None:
        """The rubric's fused step if it is ready (the next batch uses it), else None (the
        table-driven kernel scores the batch)."""
        pending = self.fused_pending
        return None if pending is None else pending.step

    @property
    def fused_close(self) -> FusedClose | None:
        """The rubric's generated close (`fused_close`) when it is ready, else None
        (`kernel.close` closes)."""
        pending = self.fused_pending
        return None if pending is None else pending.close

    @property
    def arrays(self) -> State:
        """The state arrays as the kernel takes them (valid until the state grows)."""
        return State(self.sess_i, self.sess_f, self.si, self.sf, self.verdict)

    @property
    def steps_fused(self) -> bool:
        """Whether `step` scores the next batch by the fused step: it is ready. The fused step
        reads columns of any layout (strided, read-only views of received records: no copy
        needed); the table-driven kernel takes fresh C-contiguous writable columns (`step`
        copies others)."""
        return self.fused is not None

    @property
    def bytes_per_session(self) -> int:
        """Bytes of scoring state one session occupies (with its slot <-> row entries)."""
        arrays = (self.sess_i, self.sess_f, self.si, self.sf, self.verdict)
        return sum(a.itemsize * a.shape[1] for a in arrays) + 8

    def rows(self, slots: NDArray[np.integer[Any]]) -> NDArray[np.int32]:
        """The state arrays' rows of these slots (open sessions), a fresh array. A slot without
        one yet (no batch or close has named it) gets the lowest free row, with a fresh
        session's state, in the order of the slots' first occurrence."""
        rows = np.empty(slots.shape[0], np.int32)
        free = self._free_rows[self._top :]
        k = kernel.rows_of(slots, self.row_of, self.slot_of_row, rows, free)
        if k == 0:
            return rows
        taken = free[:k]
        self._top += k
        lo, hi = int(taken.min()), int(taken.max())
        self._reset(slice(lo, hi + 1) if hi - lo + 1 == k else taken, lo >= self._pristine_from)
        self._pristine_from = max(self._pristine_from, hi + 1)
        return rows

    @property
    def slot_of(self) -> dict[str, int]:
        """Session id -> slot of the open sessions. After opens of new, distinct ids only, the
        state holds the set of open ids, not this dict (a set of 100,000 str ids is half the
        time of a dict of them and their 100,000 slot ints, at `open` and when freed): it is
        built at the first call, and kept from then on. Readers that need no lookup by id
        never build it: `score` and `rescore` open in bulk, step and close by slot and
        release by slot (`release_slots`); the live engine looks sessions up (it opens one at
        a time)."""
        if self._open_ids is not None:
            self._slot_of = self.session_of.slot_by_id()
            self._open_ids = None
        return self._slot_of

    def open(self, session_ids: Sequence[str]) -> NDArray[np.int32]:
        """Give each new session a fresh slot (existing ids keep theirs); returns the slots.

        New ids take free slots in the order one-by-one assignment would give (the lowest free
        slot first; the table doubles when none is left). Done in bulk: opening 100,000
        sessions is a few set-wide operations, not a Python loop body per id. The usual case,
        every id new and distinct, is one set of the ids (their count tells duplicates, its
        disjointness the open ids) kept as the open ids (`slot_of`) when the state held no
        open session and they are at least BULK_OPEN, or the state keeps such a set. The
        sessions' state rows are taken (and reset) later, by `rows`."""
        n = len(session_ids)
        if self._open_ids is not None or (n >= BULK_OPEN and not self._slot_of):
            distinct = set(session_ids)
            if len(distinct) == n and (
                self._open_ids is None or distinct.isdisjoint(self._open_ids)
            ):
                return self._open_new(session_ids, distinct)
        slot_of = self.slot_of
        if n and not self._released and self.capacity - self._unused_from >= n:
            # only never-used slots are free: the next n are consecutive, the lowest first;
            # slices, no list of slots to compare or turn into an array
            first = self._unused_from
            named = dict(zip(session_ids, range(first, first + n), strict=True))
            if len(named) == n and named.keys().isdisjoint(slot_of.keys()):
                self._unused_from = first + n
                self._take_slots(slice(first, first + n))
                slot_of.update(named)
                ids = session_ids if isinstance(session_ids, list | tuple) else list(session_ids)
                self.session_of.set_range(first, ids)
                return np.arange(first, first + n, dtype=np.int32)
        elif n and self._n_free() >= n:
            taken = self._next_free(n)
            named = dict(zip(session_ids, taken, strict=True))
            if len(named) == n and named.keys().isdisjoint(slot_of.keys()):
                self._take_free(n)
                self._take_slots(taken)
                slot_of.update(named)
                self.session_of.set_many(zip(taken, session_ids, strict=True))
                return np.array(taken, np.int32)
        unique = dict.fromkeys(session_ids)  # each id hashed once, duplicates gone, in order
        fresh = [sid for sid in unique if sid not in slot_of] if slot_of else list(unique)
        if not fresh:
            return np.fromiter(map(slot_of.__getitem__, session_ids), np.int32, n)
        while self._n_free() < len(fresh):
            self._grow(self.capacity * 2)
        taken = self._next_free(len(fresh))
        self._take_free(len(fresh))
        self._take_slots(taken)
        slot_of.update(zip(fresh, taken, strict=True))
        self.session_of.set_many(zip(taken, fresh, strict=True))
        return np.fromiter(map(slot_of.__getitem__, session_ids), np.int32, n)

    def _open_new(self, session_ids: Sequence[str], named: set[str]) -> NDArray[np.int32]:
        """`open` of n new, distinct ids (`named`, their set) on the next n free slots: the
        set becomes (or joins) the open ids."""
        n = len(session_ids)
        if self._open_ids is None:
            self._open_ids = named
        else:
            self._open_ids |= named
        while self._n_free() < n:
            self._grow(self.capacity * 2)
        if self._released:
            taken = self._next_free(n)
            self._take_free(n)
            self._take_slots(taken)
            self.session_of.set_many(zip(taken, session_ids, strict=True))
            return np.array(taken, np.int32)
        # only never-used slots are free: the next n are consecutive, the lowest first
        first = self._unused_from
        self._unused_from = first + n
        self._take_slots(slice(first, first + n))
        ids = session_ids if isinstance(session_ids, list | tuple) else list(session_ids)
        self.session_of.set_range(first, ids)
        return np.arange(first, first + n, dtype=np.int32)

    def _n_free(self) -> int:
        """How many slots are free."""
        return len(self._released) + self.capacity - self._unused_from

    def _next_free(self, k: int) -> list[int]:
        """The k free slots the next k one-by-one opens take (k <= `_n_free()`), in order: the
        released ones, the last released first, then the lowest never-used ones."""
        released = self._released
        top = released[max(len(released) - k, 0) :]
        top.reverse()
        first = self._unused_from
        return top + list(range(first, first + k - len(top)))

    def _take_free(self, k: int) -> None:
        """Mark the k slots of `_next_free(k)` taken."""
        released = self._released
        from_released = min(k, len(released))
        del released[len(released) - from_released :]
        self._unused_from += k - from_released

    def _take_slots(self, taken: list[int] | slice) -> None:
        """Slots just taken off the free list: a row a batch or close gave one of them while it
        was not open is freed (the session gets a fresh row at its first batch)."""
        stale = self.row_of[taken]
        if (stale >= 0).any():
            for row in stale[stale >= 0].tolist():
                self._push_row(row)
            self.row_of[taken] = -1

    def release(self, session_ids: Sequence[str]) -> None:
        """Forget closed sessions; their slots and rows are reused."""
        slot_of = self.slot_of
        for sid in session_ids:
            self._free_slot(slot_of.pop(sid))

    def release_slots(self, slots: Iterable[int]) -> None:
        """`release` of the sessions on these slots (KeyError for a slot without one): no
        lookup by id (`slot_of` is not built)."""
        for slot in slots:
            sid = self.session_of[slot]
            if self._open_ids is None:
                del self._slot_of[sid]
            else:
                self._open_ids.remove(sid)
            self._free_slot(slot)

    def _free_slot(self, slot: int) -> None:
        """The session on `slot` is gone: the slot and its row (if any) are free."""
        self.session_of.remove(slot)
        self._released.append(slot)
        row = int(self.row_of[slot])
        if row >= 0:
            self.row_of[slot] = -1
            self._push_row(row)

    def _push_row(self, row: int) -> None:
        """Make `row` free: it is the next one taken."""
        self._top -= 1
        self._free_rows[self._top] = row

    @property
    def free_rows(self) -> NDArray[np.int32]:
        """The free rows in the order they are taken (a view: valid until a row is taken,
        pushed or the state grows)."""
        return self._free_rows[self._top :]

    def took_rows(self) -> NDArray[np.int64]:
        """What a fused step is given to report the rows it takes off `free_rows`: (0, the
        pristine bound); it writes (rows taken, the new pristine bound) (`rows_taken`)."""
        return np.array([0, self._pristine_from], np.int64)

    def rows_taken(self, took: NDArray[np.int64]) -> None:
        """A fused step took `took[0]` rows off `free_rows` (their slots and fresh state set
        by it); `took[1]` is the pristine bound after them."""
        self._top += int(took[0])
        self._pristine_from = int(took[1])

    def scratch(self, name: str, shape: tuple[int, int], dtype: type) -> NDArray[Any]:
        """A C-contiguous work array of this shape, reused from step to step (fresh arrays of
        megabytes cost a page fault per 4 KiB at every step) up to SCRATCH_ROWS columns; valid
        until the next call with this name."""
        rows, n = shape
        last = self._last_scratch.pop(name, None)
        if n > SCRATCH_ROWS:
            return np.empty(shape, dtype)
        buf = self._scratch.get(name)
        if buf is None or buf.dtype != dtype or buf.shape[0] != rows or buf.shape[1] < n:
            buf = self._scratch[name] = np.empty((rows, max(n, 1)), dtype)
        # `last` holds the buffer it names, so no new buffer can be taken for it (`is`)
        self._last_scratch[name] = (buf, n, last is not None and last[0] is buf and last[1] == n)
        if buf.shape[1] == n:
            return buf
        flat = buf.reshape(-1)[: rows * n]  # a C-contiguous prefix, viewed as (rows, n)
        return flat.reshape(rows, n)

    def step_output(self, bound: int, bound_contrib: int) -> Out:
        """Room for a step's decisions (`_outputs`: at least `bound`, `bound_contrib` of them
        by count or metric criteria; none yet), the same arrays from step to step while they
        are large enough: the pages a step writes its decisions to were faulted in by an
        earlier one (a fresh output a step cost 4,000 page faults and 12 ms of a
        100,000-session run). Valid until the next call: `_step_decisions` copies out of it."""
        out = self._step_out
        if out is None or out.oi.shape[1] < bound or out.oc.shape[1] < bound_contrib:
            out = self._step_out = _outputs(self.compiled, bound, bound_contrib)
        out.nd[:] = 0
        return out

    def scratch_reused(self, name: str) -> bool:
        """Whether the last `scratch(name, ...)` returned the same memory, in the same shape,
        as the call before it (what the step before wrote there is still there)."""
        last = self._last_scratch.get(name)
        return last is not None and last[2]

    def next_stamp(self) -> int:
        """A number no earlier `kernel.admit` call of this state was given (see its contract)."""
        self._stamp += 1
        return self._stamp

    def _reset(self, slot: NDArray[np.int32] | slice, pristine: bool = False) -> None:
        """Give these rows (an index array, or a slice when they are a range: no gather and
        scatter) a fresh session's state. `pristine`: every one of them is still all zero
        bytes (never given to a session since `_grow`), so only the fields whose fresh value is
        not zero are written: the other columns of the field-major criteria state keep their
        pages untouched (never faulted in) until an automaton writes them: for the forklift
        rubric 200 of 916 bytes a session (the session columns and five of the criteria's
        ints; their float state starts at zero, `compiler._fresh_floats`)."""
        self.sess_i[slot] = (-1, -1, 0, 0)
        self.sess_f[slot] = np.nan
        compiled = self.compiled
        if pristine:
            for col in self._nonzero_i.tolist():
                self.si[slot, col] = compiled.init_i[col]
            for col in self._nonzero_f.tolist():
                self.sf[slot, col] = compiled.init_f[col]
            return
        self.si[slot, : compiled.n_state_i] = compiled.init_i
        self.sf[slot, : compiled.n_state_f] = compiled.init_f
        self.verdict[slot] = 0

    def _grow(self, capacity: int) -> None:
        """Make room for `capacity` slots. The criteria's state (si, sf, verdict) is kept
        field-major (Fortran order): one criterion's pass over a batch then reads one compact
        column per field (8 KB for 1,000 sessions, cache-resident) instead of a cache line per
        session; the session columns (sess_i, sess_f) stay row-major, as each row reads many."""
        self.sess_i = _grown(self.sess_i, capacity, "C")
        # not zeroed: a row gets every float session column when it is taken (`_reset`, the
        # fused step's `_fresh_rows`), and nothing reads a row before (zeroing heap memory
        # an earlier state freed: 0.5 ms of a 100,000-slot state's growth)
        self.sess_f = _grown(self.sess_f, capacity, "C", zeros=False)
        self.si = _grown(self.si, capacity, "F")
        self.sf = _grown(self.sf, capacity, "F")
        self.verdict = _grown(self.verdict, capacity, "F")
        row_of = np.full(capacity, -1, np.int32)
        row_of[: self.capacity] = self.row_of
        self.row_of = row_of
        self.session_of.grow(capacity)
        self.slot_of_row = np.concatenate(
            [self.slot_of_row, np.full(capacity - self.capacity, -1, np.int32)]
        )
        # the new rows go under the free ones: those are taken first (the new slots are never
        # used ones: after the released)
        free_rows = np.concatenate(
            [self._free_rows[self._top :], np.arange(self.capacity, capacity, dtype=np.int32)]
        )
        self._free_rows = np.zeros(capacity, np.int32)
        self._top = capacity - free_rows.shape[0]
        self._free_rows[self._top :] = free_rows
        self.capacity = capacity


def _grown(
    a: NDArray[Any], capacity: int, order: Literal["C", "F"], *, zeros: bool = True
) -> NDArray[Any]:
    """`a` (rows, k) with rows appended up to `capacity`, in the given memory order: zero
    rows, or uninitialised ones (`zeros` false)."""
    out = (np.zeros if zeros else np.empty)((capacity, a.shape[1]), a.dtype, order=order)
    out[: a.shape[0]] = a
    return out


def columns_for(
    compiled: CompiledRubric,
    batch: EventBatch,
    values: NDArray[np.float64],
    nonsample: NDArray[np.intp],
    masks: NDArray[np.bool_],
    *,
    clean: bool = False,
) -> NDArray[np.bool_]:
    """Fill the metric rows of `values` (n_signals + n_exprs, n), whose first rows already hold
    the held signals, and the guard rows of `masks` (n_guards + n_work, n), and return `masks`:
    guard g is row g; the rows after the guards are the condition program's work rows
    (`compiled.masks`).

    Guards on named events are false on sample rows: only the batch's non-sample rows
    (`nonsample`) are set, from the per-event-code table, after the rows are cleared unless
    they are `clean` (all false: `kernel.clear_event_guards` undid the last batch's)."""
    named = compiled.event_guards
    if named.shape[0]:
        kernel.set_event_guards(
            batch.event, nonsample, named, compiled.event_table, masks, clean
        )  # fmt: skip
    for g, guard in enumerate(compiled.guards):
        if guard.condition is None and guard.event_code <= 0:
            np.equal(batch.event, guard.event_code, out=masks[g])
    compiled.masks.run(values, masks)
    return masks


def _outputs(compiled: CompiledRubric, bound: int, bound_contrib: int) -> Out:
    """Room for a step's `bound` decisions, `bound_contrib` of them by count or metric
    criteria; field-major: a field is one contiguous row, so the pages of an output larger
    than what is decided are never touched. Far fewer decisions than `bound` are expected (its
    bound is every criterion of every session the step may touch), so the arrays come in
    small pages (`lazy_empty`). A close's output is `_close_outputs`."""
    return Out(
        oi=lazy_empty((8, bound), np.int64),
        of=lazy_empty((3 + 2 * compiled.max_ev, bound), np.float64),
        oc=lazy_empty((1 + 2 * CONTRIB_MAX, bound_contrib), np.float64),
        nd=np.zeros(2, np.int64),
    )


LAZY_BYTES = 4 * 2**20
"""From this size on `lazy_empty` maps its own pages (numpy's huge-page threshold)."""


def lazy_empty(shape: tuple[int, int], dtype: type) -> NDArray[Any]:
    """An uninitialised C-contiguous array whose pages are faulted in 4 KiB at a time, only
    where it is written. numpy applies ``madvise(MADV_HUGEPAGE)`` to arrays from 4 MiB on:
    each first write into a fresh 2 MiB region then zeroes all of it. A step's output (rows of
    `bound` values, a few hundred of them written) is such an array: at 100,000 sessions live
    its ~30 rows of 6 MiB cost 60 MB of zeroing a 64 K-row step, most of the fused step's time
    (docs/performance.md, "Page-sized outputs"). Below LAZY_BYTES: `np.empty`."""
    nbytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
    if nbytes < LAZY_BYTES:
        return np.empty(shape, dtype)
    pages = mmap.mmap(-1, nbytes)  # anonymous: zero pages on first touch, unmapped with the array
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # where THP is "always", ask for small pages
        pages.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(pages, dtype).reshape(shape)


REUSED_DECISIONS = 65_536
"""A step's output (`ScoringState.step_output`) is kept for the next step while a step
decides at most this many (the pages it wrote stay the state's: 9 MB for the forklift
rubric), else dropped and taken afresh."""


def _step_decisions(state: ScoringState, out: Out) -> Decisions:
    """The decisions in a step's output (`ScoringState.step_output`), copied out of it."""
    decisions = _decisions(out, state.slot_of_row, copy=True)
    if len(decisions) > REUSED_DECISIONS:
        state._step_out = None
    return decisions


def _decisions(out: Out, slot_of_row: NDArray[np.int32] | None, *, copy: bool = False) -> Decisions:
    """The decisions in `out`, the kernel's rows turned back into slots (`slot_of_row`; None:
    the kernel wrote the slots): compact copies when `copy` or when they fill less than half
    of it (so that a few decisions do not hold a large output alive), else views."""
    oi, of, oc = out.oi, out.of, out.oc
    m, k = int(out.nd[0]), int(out.nd[1])
    if slot_of_row is not None:
        oi[0, :m] = slot_of_row[oi[0, :m]]
    if copy or 2 * m < oi.shape[1]:
        oi, of = oi[:, :m].copy(), of[:, :m].copy()
    if copy or 2 * k < oc.shape[1]:
        oc = oc[:, :k].copy()
    return Decisions(
        slot=oi[0, :m],
        criterion=oi[1, :m],
        verdict=oi[2, :m],
        seq=oi[3, :m],
        seq_start=oi[4, :m],
        t=of[0, :m],
        t_start=of[1, :m],
        measured=of[2, :m],
        values=of[3:, :m].T,
        steps_done=oi[5, :m],
        out_of_order=oi[6, :m],
        contrib_row=oi[7, :m],
        contrib=oc[:, :k].T,
    )


def _concatenated(parts: list[Decisions]) -> Decisions:
    """The decisions of consecutive sub-steps, in order."""
    if len(parts) == 1:
        return parts[0]
    fields = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in Decisions.__dataclass_fields__
    }
    rows, base = [], 0
    for p in parts:
        rows.append(np.where(p.contrib_row >= 0, p.contrib_row + base, -1))
        base += p.contrib.shape[0]
    fields["contrib_row"] = np.concatenate(rows)
    return Decisions(**fields)


def step(compiled: CompiledRubric, state: ScoringState, batch: EventBatch) -> Decisions:
    """Advance the sessions in `batch` (session column = slots) and return the decisions taken.

    Raises ScoringError (state unchanged) if a row's seq does not increase within its session,
    its t goes backwards, or t is negative or not finite. A batch of more than SCRATCH_ROWS rows
    is admitted (checked) as a whole, then scored in sub-steps of at most SCRATCH_ROWS rows, so
    its work arrays stay the size of the reused scratch; the decisions are the same.
    """
    if batch.signals.shape[0] != compiled.n_signals:
        raise ScoringError(
            f"batch has {batch.signals.shape[0]} signal rows, scenario has {compiled.n_signals}"
        )
    n = len(batch)
    fused = state.fused
    if fused is not None:  # slots' bounds, rows, admit, hold, guards, automata in one call
        done = _step_fused(compiled, state, fused, batch)
        if done is not None:
            return done
    _check_slots(state, batch)
    # the state's rows, unsigned: the kernel then does no negative-index fix-up at each access
    sess = state.rows(batch.session).view(np.uint32)
    batch = plain_columns(batch)  # the table-driven kernel's one array kind
    ordinal = state.scratch("ordinal", (1, n), np.int64)[0]
    nonsample = state.scratch("nonsample", (1, n), np.int64)[0]
    u_max = min(n, state.capacity)
    touched = state.scratch("touched", (1, u_max), np.int64)[0]
    saved_i = state.scratch("saved_i", (4, u_max), np.int64)
    saved_f = state.scratch("saved_f", (2, u_max), np.float64)
    bad, m, u = kernel.admit(
        sess, batch.seq, batch.t, batch.event, state.sess_i, state.sess_f, state.next_stamp(),
        ordinal, nonsample, touched, saved_i, saved_f,
    )  # fmt: skip
    if bad >= 0:
        raise _out_of_order(state, batch, bad)
    nonsample = nonsample[:m]
    touched = touched[:u]
    if n <= SCRATCH_ROWS:
        return _advance(compiled, state, sess, batch, ordinal, nonsample, touched)
    parts = []
    cuts = np.searchsorted(nonsample, np.arange(0, n + SCRATCH_ROWS, SCRATCH_ROWS))
    for k, start in enumerate(range(0, n, SCRATCH_ROWS)):
        rows = slice(start, start + SCRATCH_ROWS)
        part = batch.take(rows)
        here = nonsample[cuts[k] : cuts[k + 1]] - start
        parts.append(_advance(compiled, state, sess[rows], part, ordinal[rows], here, touched))
    return _concatenated(parts)


def _advance(
    compiled: CompiledRubric,
    state: ScoringState,
    sess: NDArray[np.uint32],
    batch: EventBatch,
    ordinal: NDArray[np.int64],
    nonsample: NDArray[np.int64],
    touched: NDArray[np.int64],
) -> Decisions:
    """Hold, guards and automata over `batch` (admitted; at most SCRATCH_ROWS rows, of
    sessions among `touched`): the decisions taken."""
    n = len(batch)
    n_sig = compiled.n_signals
    values = state.scratch("values", (n_sig + len(compiled.value_exprs), n), np.float64)
    kernel.hold(sess, batch.signals, state.sess_f, values[:n_sig], compiled.extremes)
    masks = state.scratch("masks", (compiled.masks.n_masks, n), np.bool_)
    # the event guards' rows stay all false between steps while the buffer and n stay the
    # same (steps of SCRATCH_ROWS rows): a step clears only the rows it set, not 16 B an event
    clean = state.clean_event_guards and state.scratch_reused("masks")
    state.clean_event_guards = False
    guards = columns_for(compiled, batch, values, nonsample, masks, clean=clean)
    guards = guards[: len(compiled.guards)]
    visit, visit_off = _sparse_rows(compiled, state, touched, nonsample, guards)
    # each criterion decides at most once per session
    sessions = min(n, touched.shape[0])
    out = state.step_output(compiled.n_criteria * sessions, compiled.n_contributing * sessions)
    rows = Rows(sess, batch.seq, batch.t, guards, values, ordinal)
    kernel.advance(compiled.tables, rows, state.arrays, out, visit, visit_off)
    kernel.clear_event_guards(nonsample, compiled.event_guards, masks)
    state.clean_event_guards = True
    return _step_decisions(state, out)


def _out_of_order(state: ScoringState, batch: EventBatch, bad: int) -> ScoringError:
    """The error of a batch whose row `bad` breaks its session's order."""
    return ScoringError(
        f"row {bad}: seq {int(batch.seq[bad])} at t={float(batch.t[bad])} breaks the order of "
        f"session {state.session_of.get(int(batch.session[bad]), '?')!r}"
    )


def plain_columns(batch: EventBatch) -> EventBatch:
    """`batch`, with fresh C-contiguous writable copies of its columns when some are read-only
    strided views (received records read in place, which the table-driven kernel would be
    compiled for once more); the batch itself otherwise. Writable columns of any layout (slices
    of a caller's arrays, as `score` and `rescore` step) are taken as they are: copying them
    cost the table-driven kernel 1.27x at 64 K-row steps, 1.56x at 1 M (docs/performance.md)."""
    columns = (batch.seq, batch.t, batch.event, batch.signals)
    if all(c.flags.writeable or c.flags.c_contiguous for c in columns):
        return batch
    return EventBatch(
        batch.session,
        np.require(batch.seq, np.int64, ["C", "W"]),
        np.require(batch.t, np.float64, ["C", "W"]),
        np.require(batch.event, np.int32, ["C", "W"]),
        np.require(batch.signals, np.float64, ["C", "W"]),
    )


def _check_slots(state: ScoringState, batch: EventBatch) -> None:
    """ScoringError when a row's session slot is not one of the state's."""
    if len(batch) and not (batch.session.min() >= 0 and batch.session.max() < state.capacity):
        raise ScoringError(f"batch has a session slot outside 0..{state.capacity - 1}")


def _step_fused(
    compiled: CompiledRubric, state: ScoringState, fused: FusedStep, batch: EventBatch
) -> Decisions | None:
    """`step` by the rubric's fused step (`fused_step`): the slots' bounds, then the state
    rows (a slot without one takes the next free row, as `ScoringState.rows` would) and the
    order checked in one pass, then admit, hold, guards and automata in one call; the
    decisions taken (ScoringError, the state as it was, when a slot is out of range or a row
    breaks its session's order: the check reads the whole batch before anything moves).
    None, with nothing changed, when the function has no compiled variant for these
    arguments' types (the provider compiles one signature and then forbids compiling inside
    a batch: numba refuses the call before it runs); the state is then scored by the
    table-driven kernel from now on."""
    sessions = min(len(batch), state.capacity)  # each criterion decides once per session
    out = state.step_output(compiled.n_criteria * sessions, compiled.n_contributing * sessions)
    if batch.session.dtype != np.int32:  # the one type the step is compiled for
        batch = EventBatch(batch.session.astype(np.int32), batch.seq, batch.t, batch.event,
                           batch.signals)  # fmt: skip
    took = state.took_rows()
    try:
        bad = fused(*_fused_args(state, batch, state.next_stamp(), out, took))
    except TypeError as exc:  # "No matching definition": raised before the function runs
        log.warning("scoring: the fused step of rubric %r does not take this batch's arrays "
                    "(%s); the table-driven kernel scores it from now on",
                    compiled.rubric.rubric, str(exc).splitlines()[0])  # fmt: skip
        state.fused_pending = None
        return None
    if bad == NO_ROW:  # the state's free rows and its slots disagree: a bug, not the input
        raise RuntimeError("scoring: no free state row for a session slot without one")
    if bad != -1:
        _check_slots(state, batch)  # a slot out of range goes before an order error
        raise _out_of_order(state, batch, bad)
    state.rows_taken(took)
    return _step_decisions(state, out)


def _fused_args(
    state: ScoringState, batch: EventBatch, stamp: int, out: Out, took: NDArray[np.int64]
) -> tuple[Any, ...]:
    """The arguments of a fused step (`fused_step`'s signature), in order."""
    cap = state.capacity
    last_seq = state.scratch("last_seq", (1, cap), np.int64)[0]
    last_t = state.scratch("last_t", (1, cap), np.float64)[0]
    rows = state.scratch("rows", (1, len(batch)), np.uint32)[0]
    return (
        batch.session, batch.seq, batch.t, batch.event, batch.signals, state.row_of,
        state.slot_of_row, state.free_rows, took, rows, last_seq, last_t, stamp, state.sess_i,
        state.sess_f, state.si, state.sf, state.verdict, out.oi, out.of, out.oc, out.nd,
    )  # fmt: skip


def fused_probe_args(compiled: CompiledRubric) -> tuple[Any, ...]:
    """Arguments of the kinds a live step passes to `compiled`'s fused step, for a batch of
    no rows (nothing is read or written): the scratch, the state's and the output's arrays
    as `step` makes them (their types are what a provider compiles the function for), the
    batch's columns as plain arrays (a provider takes them of any layout, read-only or
    not)."""
    state = ScoringState(compiled, 64, table_only=True)
    batch = EventBatch(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0),
                       np.zeros(0, np.int32), np.zeros((compiled.n_signals, 0)))  # fmt: skip
    out = _outputs(compiled, compiled.n_criteria * 2, compiled.n_contributing * 2)
    return _fused_args(state, batch, 1, out, state.took_rows())


DENSE_SHARE = 8  # a criterion whose guards hold on more than 1/8 of the rows visits them all


def pending_sessions(state: ScoringState, touched: NDArray[np.int64]) -> NDArray[np.int64]:
    """(C,) in how many of the sessions `touched` (the slots a batch touches) each criterion
    is still pending."""
    counts = np.zeros(state.compiled.n_criteria, np.int64)
    kernel.pending_counts(state.verdict, touched, counts)
    return counts


def _sparse_rows(
    compiled: CompiledRubric,
    state: ScoringState,
    touched: NDArray[np.int64],
    nonsample: NDArray[np.intp],
    guards: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The rows each criterion must visit, concatenated, and per criterion its [start, end) in
    them ((-1, -1) for criteria that visit every row). Every automaton passes over the rows of
    a session it has decided, so:

    - a criterion decided in every session the batch touches (`touched`) visits no row (pre-use
      checks, a seat belt before moving: decided early in each session);
    - a criterion whose guards are all named events visits the batch's non-sample rows; others
      with sparse guards the rows where one of their guards holds (shared between criteria
      with the same guards), or every row when those are more than 1/DENSE_SHARE of the batch:
      a dense list costs more to build and to walk than the rows it would skip (visiting a row
      where no guard holds changes nothing).

    One compiled call (`kernel.visit_rows`) into the step's reused scratch: the lists, their
    density and the placing were a dozen numpy calls and a Python loop, 80-150 µs a step."""
    n = guards.shape[1]
    n_keys = compiled.key_off.shape[0] - 1
    offsets = np.empty((compiled.n_criteria, 2), np.int64)
    pending = pending_sessions(state, touched)
    visit = state.scratch("visit", (n_keys + 1, n), np.int64).reshape(-1)
    any_row = state.scratch("any_row", (1, n), np.bool_)[0]
    placed = np.empty((max(n_keys, 1), 2), np.int64)
    total = kernel.visit_rows(
        guards, pending, compiled.visit_key, compiled.key_off, compiled.key_guards,
        nonsample.astype(np.int64, copy=False), DENSE_SHARE, any_row, visit, offsets, placed,
    )  # fmt: skip
    return visit[:total], offsets


def close(
    compiled: CompiledRubric,
    state: ScoringState,
    slots: NDArray[np.int32],
    close_t: NDArray[np.float64],
) -> Decisions:
    """Decide every pending criterion of these sessions at their close time (observed stay
    pending). A close time before the session's last event is taken as that event's t.

    The decisions come session by session, each session's in criterion order, the sessions in
    the order of their state rows (not necessarily the order of `slots`): the kernel then walks
    the field-major state columns forwards instead of taking a cache miss per field and session
    (100,000 sessions opened in one order and started in another: 3-4x faster). One output
    for all of them (136 bytes a decision for the forklift rubric: 140 MB for 100,000
    sessions); a caller that consumes the decisions part by part takes `close_chunks`."""
    rows, close_t, names = _close_order(state, slots, close_t)
    return _close_part(compiled, state, rows, close_t, names)


CLOSE_SESSIONS = 2048
"""Sessions a part of `close_chunks` closes at most (an output of at most 2048 x criteria
decisions: 3.3 MB for the 12-criterion forklift rubric)."""


def close_chunks(
    compiled: CompiledRubric,
    state: ScoringState,
    slots: NDArray[np.int32],
    close_t: NDArray[np.float64],
    sessions: int = CLOSE_SESSIONS,
) -> Iterator[Decisions]:
    """`close`, in parts of at most `sessions` sessions: the same decisions in the same order
    (the parts concatenated are `close`'s), each part's output of its own. For callers that
    consume each part before the next (a scoring log): the close's memory is one part's, not
    136 bytes a decision of every session at once, and a part's freed output is the next
    one's (the allocator reuses it), where one 140 MB output is fresh pages that the system
    zeroes on their first write (docs/performance.md, "Narrow closes"). Each part is decided
    when it is asked for: stop early, and the remaining sessions stay open and pending."""
    if sessions < 1:
        raise ValueError(f"sessions must be at least 1, not {sessions}")
    rows, close_t, names = _close_order(state, slots, close_t)
    for start in range(0, rows.shape[0], sessions):
        part = slice(start, start + sessions)
        yield _close_part(compiled, state, rows[part], close_t[part], names[part])


def _close_order(
    state: ScoringState, slots: NDArray[np.int32], close_t: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """The state rows of `slots` (taken now for slots without one), their close times and
    slots, in increasing row order (see `close`)."""
    names = np.asarray(slots, np.int64)
    rows = state.rows(names).astype(np.int64)
    close_t = np.asarray(close_t, np.float64)
    order = np.empty(rows.shape[0], np.int64)
    how = kernel.row_order(rows, order)
    if how:
        if how == 2:
            order = np.argsort(rows, kind="stable")
        rows, close_t, names = rows[order], close_t[order], names[order]
    return rows, close_t, names


def _close_part(
    compiled: CompiledRubric,
    state: ScoringState,
    rows: NDArray[np.int64],
    close_t: NDArray[np.float64],
    names: NDArray[np.int64],
) -> Decisions:
    """The close of the sessions in state rows `rows` (increasing; named `names`), into an
    output sized by what is pending in them (`kernel.pending_bounds`): by the rubric's
    generated close when the state has it (`ScoringState.fused_close`; 0.5x the time of
    `kernel.close` at 100,000 forklift sessions, docs/performance.md), else by
    `kernel.close`."""
    bound, bound_contrib = kernel.pending_bounds(state.verdict, rows, compiled.contributing)
    out = _close_outputs(compiled, bound, bound_contrib)
    fused = state.fused_close
    if fused is None or not _closed_fused(fused, state, out, rows, close_t, names):
        kernel.close(compiled.tables, state.arrays, out, rows, close_t, names)
    return _decisions(out, None)


def _closed_fused(
    fused: FusedClose,
    state: ScoringState,
    out: Out,
    rows: NDArray[np.int64],
    close_t: NDArray[np.float64],
    names: NDArray[np.int64],
) -> bool:
    """`kernel.close` by the rubric's generated close, into `out`'s decision records: True;
    False, nothing done, when the function has no compiled variant for these arrays (numba
    refuses the call before it runs)."""
    try:
        fused(rows, close_t, names, state.sess_i, state.sess_f, state.si, state.sf,
              state.verdict, out.oi.T, out.of.T, out.oc.T, out.nd)  # fmt: skip
    except TypeError as exc:  # "No matching definition"
        log.warning("scoring: the generated close of rubric %r does not take these arrays "
                    "(%s); kernel.close closes them", state.compiled.rubric.rubric,
                    str(exc).splitlines()[0])  # fmt: skip
        return False
    return True


def _close_outputs(compiled: CompiledRubric, bound: int, bound_contrib: int) -> Out:
    """`_outputs` for a close (`bound`: what is pending), decision-major: each array is the
    transpose of a C-contiguous (decisions, fields) one, so a decision's fields are one record
    and the close writes one stream, not a row per field (17 for the forklift rubric): 0.71x
    the close's time at 100,000 sessions (docs/performance.md, "Decision-major closes"). The
    decisions' columns are strided views; `values` and `contrib` rows are contiguous. Room for
    two decisions at least: the transpose of one record is contiguous both ways, which numba
    types as row-major, a variant of `kernel.close` compiled for nothing else (a one-session
    close)."""
    bound, bound_contrib = max(bound, 2), max(bound_contrib, 2)
    return Out(
        oi=np.empty((bound, 8), np.int64).T,
        of=np.empty((bound, 3 + 2 * compiled.max_ev), np.float64).T,
        oc=np.empty((bound_contrib, 1 + 2 * CONTRIB_MAX), np.float64).T,
        nd=np.zeros(2, np.int64),
    )
