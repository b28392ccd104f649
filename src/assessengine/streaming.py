"""Stream simulated sessions to a running engine with the client, as live simulators would:
every session open at once, their events interleaved in time order, each session closed once
its last event is sent.

    with EngineClient(endpoint, client_id="sim") as client:
        sent = stream_sessions(client, simulate(scenario, "mixed", 100), rate="max")

``rate="realtime"`` paces events by their time ``t`` (all sessions start now); ``"max"`` sends as
fast as the engine acknowledges (the client's window bounds what is in flight).

A session the engine holds already resumes after its stored events (OPENED's ``next_seq``); a
closed one is skipped. So re-running a stream after a client crash completes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from .client import EngineClient
from .core.codec import Columns
from .sim.generate import SimBatch

Rate = Literal["max", "realtime"]
ROWS_PER_SESSION: Final = 1024
"""Target rows per session and message when sending at full speed (fewer, larger frames)."""
REALTIME_STEP: Final = 0.1
"""Seconds of simulated time sent together at ``rate="realtime"``."""


@dataclass(frozen=True, slots=True)
class Streamed:
    """What `stream_sessions` sent."""

    sessions: int
    events: int
    seconds: float


def stream_sessions(
    client: EngineClient,
    sim: SimBatch,
    *,
    rate: Rate = "max",
    timeout: float = 120.0,
    progress: Callable[[int], None] | None = None,
) -> Streamed:
    """Open every session of `sim`, send their events interleaved by time, close each after its
    last event, and wait until everything is ACKed and CLOSED (raises the client's NackError or
    DeliveryTimeoutError). `progress` is called with the events sent so far."""
    start = time.perf_counter()
    first = _open_all(client, sim)
    keep = (first[sim.session] >= 0) & (sim.seq >= first[sim.session])
    order = np.flatnonzero(keep)[np.argsort(sim.t[keep], kind="stable")]
    last_row = _last_rows(sim, order)
    active = int(np.count_nonzero(last_row >= 0))
    closed = first < 0
    sent = 0
    for rows in _slices(sim, order, rate, active):
        _send_slice(client, sim, rows)
        sent += len(rows)
        for k in np.unique(sim.session[rows]).tolist():
            if last_row[k] < sent and not closed[k]:
                client.close(sim.session_ids[k], float(sim.close_t[k]))
                closed[k] = True
        if progress is not None:
            progress(sent)
    for k in np.flatnonzero(~closed).tolist():
        client.close(sim.session_ids[k], float(sim.close_t[k]))  # sessions with nothing to send
    client.flush(timeout)
    return Streamed(int(np.count_nonzero(first >= 0)), sent, time.perf_counter() - start)


def _open_all(client: EngineClient, sim: SimBatch) -> NDArray[np.int64]:
    """OPEN every session; per session the first seq to send (-1: closed already, skip)."""
    first = np.zeros(len(sim.session_ids), np.int64)
    for k, sid in enumerate(sim.session_ids):
        opened = client.open(
            sid, learner=sim.learners[k], scenario=sim.scenario, rubric=sim.rubric,
            metadata={"profile": sim.profiles[k]},
        )  # fmt: skip
        first[k] = -1 if opened.closed else opened.next_seq
    return first


def _lengths(sim: SimBatch) -> NDArray[np.int64]:
    return np.diff(sim.offsets)


def _last_rows(sim: SimBatch, order: NDArray[np.intp]) -> NDArray[np.int64]:
    """Per session, the position in `order` of its last row (-1 if none)."""
    last = np.full(len(sim.session_ids), -1, np.int64)
    last[sim.session[order]] = np.arange(len(order))  # later positions overwrite earlier ones
    return last


def _slices(
    sim: SimBatch, order: NDArray[np.intp], rate: Rate, active: int
) -> Iterator[NDArray[np.intp]]:
    """The rows to send, in time order, a slice at a time (paced by time at "realtime")."""
    if rate == "max":
        step = max(1, ROWS_PER_SESSION * max(active, 1))
        for i in range(0, len(order), step):
            yield order[i : i + step]
        return
    if not len(order):
        return
    t = sim.t[order]
    cuts = np.searchsorted(t, np.arange(REALTIME_STEP, float(t[-1]) + REALTIME_STEP,
                                        REALTIME_STEP))  # fmt: skip
    begin = time.monotonic()
    for part in np.split(order, cuts):
        if len(part):
            wait = float(sim.t[part[-1]]) - (time.monotonic() - begin)
            if wait > 0:
                time.sleep(wait)
            yield part


def _send_slice(client: EngineClient, sim: SimBatch, rows: NDArray[np.intp]) -> None:
    """Send the rows (in time order), grouped per session, seq order kept within each."""
    by_session = rows[np.argsort(sim.session[rows], kind="stable")]
    sessions = sim.session[by_session]
    cuts = np.flatnonzero(np.diff(sessions)) + 1
    for part in np.split(by_session, cuts):
        k = int(sim.session[part[0]])
        client.send(
            sim.session_ids[k],
            Columns(sim.seq[part], sim.t[part], sim.event[part], sim.signals[:, part]),
        )
