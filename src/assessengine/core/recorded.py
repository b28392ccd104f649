"""Recorded sessions as a stream of chunks: what every input-format reader yields and what
offline scoring consumes (`core.offline.score_chunks`).

A reader (`assessengine.inputs`: JSON Lines, and whatever else is registered there) turns a
file into `Chunk` s, in file order, each holding at most one batch of events. Sessions are
numbered by first appearance: the k-th session the input names has ordinal k, and every
column that points at a session holds that ordinal. The stream's contract:

- a session's ordinal is announced (in `Chunk.sessions`) in the first chunk that names it;
- within one session, events arrive in seq order across the whole stream;
- a session closed in a chunk (`Chunk.closed`) has no events after that chunk's batch;
  sessions never closed close at their last event (0 for a session without events);
- `Chunk.opens` sets a session's open metadata (learner, scenario, ...); a later chunk may set
  it again before the session's first event (the last one counts).

Memory is bounded by one chunk plus the per-session state the consumer keeps, whatever the
input's size; sessions may interleave freely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .events import EventBatch, empty_batch


@dataclass(frozen=True, slots=True)
class Chunk:
    """One step of a reader.

    sessions: ids of the sessions first named in this chunk, in order of first appearance
              (their ordinals continue from the previous chunks')
    batch:    the chunk's events; ``batch.session`` holds ordinals
    opens:    ordinal -> open metadata set by this chunk
    closed:   (m,) int64 ordinals of sessions closed in this chunk, after `batch`
    close_t:  (m,) float64 their close times
    problems: messages of the lines skipped as invalid (``skip_invalid`` only), each naming
              ``SOURCE:LINE``
    """

    sessions: tuple[str, ...]
    batch: EventBatch
    opens: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    closed: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    close_t: NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    problems: tuple[str, ...] = ()

    @classmethod
    def empty(cls, n_signals: int) -> Chunk:
        """A chunk that says nothing (a reader may yield it, e.g. for a blank block)."""
        return cls((), empty_batch(n_signals))
