"""The seam for a fused step function per compiled rubric (a port: core names it, the runtime
provides it).

A fused step (`core.fused_source` generates its text) advances every criterion of one rubric
over a batch's admitted rows in one compiled pass, on the state arrays and into the decision
output the table-driven kernel uses, with the signature

    step_rows(sess, seq, t, event, signals, ordinal, sess_i, sess_f, si, sf, verdict,
              oi, of, oc, nd) -> None

(`kernel_types`: the batch's columns, `kernel.admit`'s ordinals, `State`'s five arrays and
`Out`'s four). It gives the table-driven kernel's decisions, in another order.

Nothing here does I/O: a provider (`runtime.fused.install`) turns a compiled rubric into a
loaded function, or None where the rubric is not generated (the table-driven kernel then
scores it). Without a provider, every rubric is scored by the table-driven kernel.
`scorer.ScoringState` asks for its rubric's function when it is created (at warm-up, never
inside a batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compiler import CompiledRubric

FusedStep = Callable[..., Any]
"""A loaded `step_rows` (see the module doc)."""

Provider = Callable[["CompiledRubric"], FusedStep | None]

_provider: list[Provider] = []


def set_provider(provider: Provider | None) -> None:
    """Make `provider` the process's source of fused steps (None: the table-driven kernel for
    every rubric)."""
    _provider[:] = [] if provider is None else [provider]


def provider() -> Provider | None:
    """The installed provider, or None."""
    return _provider[0] if _provider else None


def fused_step_for(compiled: CompiledRubric) -> FusedStep | None:
    """The fused step of this rubric from the installed provider, or None."""
    return _provider[0](compiled) if _provider else None
