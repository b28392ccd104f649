"""The seam for a fused step function per compiled rubric (a port: core names it, the runtime
provides it).

A fused step (`core.fused_source` generates its text) advances every criterion of one rubric
over a batch's admitted rows in one compiled pass, on the state arrays and into the decision
output the table-driven kernel uses, with the signature

    step_rows(slots, seq, t, event, signals, row_of, slot_of_row, free, took, rows,
              last_seq, last_t, stamp, sess_i, sess_f, si, sf, verdict, oi, of, oc, nd) -> int

(`kernel_types`: the batch's columns (`slots`: the session slots); the state's slot <-> row
tables, its free rows in the order they are taken (`ScoringState.free_rows`) and `took`
(in: (0, the pristine bound); out: (rows taken, the new pristine bound),
`ScoringState.rows_taken`); a scratch the step writes each row's state row to, two per-row
scratch arrays and `kernel.admit`'s stamp for its order check (the generated step reuses
`last_seq` after the check for each session's pending bits, and leaves a touched session's
stamp negated); `State`'s five arrays and `Out`'s four). A first pass checks each row's slot
against the bounds and its order, a slot without a state row taking the next free row (a
fresh session's state, as `ScoringState.rows` gives it). It returns -1; or, with nothing
changed but the stamps (and `slot_of_row` at free rows, which nothing reads; the taken
rows are given back): BAD_SLOT, the first row that breaks its session's order (a slot out
of bounds after it is not looked for), or NO_ROW.
It gives the table-driven kernel's decisions, in another order, and leaves
the state as the kernel leaves it: a state may be stepped by either, batch
by batch, in any mix.

A provider may give with it the rubric's close (`FusedClose`, `core.fused_close`): the
decisions and state changes of `kernel.close`, which `scorer.close` then calls instead.

Nothing here does I/O: a provider (`runtime.fused.install`) turns a compiled rubric into a
`PendingStep`, which holds the loaded function once it is compiled (possibly later, in the
background), or None where the rubric is not generated (the table-driven kernel then scores
it). Without a provider, every rubric is scored by the table-driven kernel.
`scorer.ScoringState` asks for its rubric's step when it is created (at warm-up, never inside
a batch); `scorer.step` uses the fused function from the first batch after it is ready, and
the table-driven kernel before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compiler import CompiledRubric

NO_ROW = -2
"""What a fused step returns when a row's slot has no state row and no free row is left
(never, while the free rows are the state's: it holds a row per slot), nothing changed but
the stamps."""
BAD_SLOT = -3
"""What a fused step returns when a row's slot is outside the state's (before any row out
of order), nothing changed but the stamps."""

FusedStep = Callable[..., Any]
"""A loaded `step_rows` (see the module doc)."""
FusedClose = Callable[..., Any]
"""A loaded `close_rows` (`core.fused_close`)."""


class PendingStep:
    """A rubric's fused step, ready now or later: `step` is None until the provider has
    compiled or loaded it (then the function, for good), or for good when that failed
    (`error` says why). Reading `step` is one attribute load: `scorer.step` reads it at every
    batch. `close`: the rubric's close, set with the step (None: `kernel.close` closes)."""

    __slots__ = ("_done", "close", "error", "step")

    def __init__(self, step: FusedStep | None = None, close: FusedClose | None = None) -> None:
        self.step: FusedStep | None = step
        self.close: FusedClose | None = close
        self.error: str | None = None
        self._done = threading.Event()
        if step is not None:
            self._done.set()

    def resolve(self, step: FusedStep, close: FusedClose | None = None) -> None:
        """The functions are ready: batches (and closes) from now on use them."""
        self.step = step
        self.close = close
        self._done.set()

    def fail(self, error: str) -> None:
        """No function will come (the table-driven kernel keeps scoring); `error` says why."""
        self.error = error
        self._done.set()

    def done(self) -> bool:
        """Whether the provider has finished (`step` set, or `error`)."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> FusedStep | None:
        """Wait until `done` (at most `timeout` seconds); the function, or None."""
        self._done.wait(timeout)
        return self.step


Provider = Callable[["CompiledRubric"], PendingStep | None]

_provider: list[Provider] = []


def set_provider(provider: Provider | None) -> None:
    """Make `provider` the process's source of fused steps (None: the table-driven kernel for
    every rubric)."""
    _provider[:] = [] if provider is None else [provider]


def provider() -> Provider | None:
    """The installed provider, or None."""
    return _provider[0] if _provider else None


def fused_step_for(compiled: CompiledRubric) -> PendingStep | None:
    """The fused step of this rubric from the installed provider (maybe not ready yet), or
    None."""
    return _provider[0](compiled) if _provider else None
