"""Generate sessions as columns, deterministically, and convert them to records.

Session `i` of a run with seed `s` depends only on (`s`, `i`, profile choice, options): its
generators come from ``SeedSequence(s, spawn_key=(i, stream))`` (one stream for the behaviour,
one for the profile draw of `mixed`, one per sensor imperfection), so a run can be produced in
chunks (or in parallel), the 10 first sessions of a 1000-session run equal a 10-session run, and
turning noise on does not change what the operator does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..core.events import Event, EventBatch, SessionEvents, event_records
from ..core.scenario import Scenario
from .models import model_for
from .profiles import MIXED, Model, default_mix, parse_mix
from .render import Layout, Rendered, SensorOptions, render


@dataclass(frozen=True, slots=True)
class SimBatch:
    """Simulated sessions as columns (the `EventBatch` layout, plus session metadata).

    session:  NDArray[np.int32]    (n,) index into `session_ids` (rows grouped by session)
    seq:      NDArray[np.int64]    (n,) 0, 1, 2, ... within each session
    t:        NDArray[np.float64]  (n,) seconds since the session started, non-decreasing
    event:    NDArray[np.int32]    (n,) index into `event_names` (0 = sample)
    signals:  NDArray[np.float64]  (n_signals, n) NaN = not reported; rows = `signal_names`
    offsets:  NDArray[np.int64]    (n_sessions + 1,) rows of session k: offsets[k]:offsets[k+1]
    close_t:  NDArray[np.float64]  (n_sessions,)
    """

    scenario: str
    rubric: str
    signal_names: tuple[str, ...]
    event_names: tuple[str, ...]
    session_ids: tuple[str, ...]
    learners: tuple[str, ...]
    profiles: tuple[str, ...]
    session: NDArray[np.int32]
    seq: NDArray[np.int64]
    t: NDArray[np.float64]
    event: NDArray[np.int32]
    signals: NDArray[np.float64]
    offsets: NDArray[np.int64]
    close_t: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def batch(self) -> EventBatch:
        """The rows as an `EventBatch` (session slot = index into `session_ids`)."""
        return EventBatch(self.session, self.seq, self.t, self.event, self.signals)

    def open_record(self, k: int) -> dict[str, str]:
        return {
            "learner": self.learners[k],
            "scenario": self.scenario,
            "rubric": self.rubric,
            "profile": self.profiles[k],
        }

    def to_sessions(self) -> list[SessionEvents]:
        """One `SessionEvents` per session (open, events, close), in session order."""
        names = self.signal_names
        codes = self.event_names
        seq, t, ev = self.seq.tolist(), self.t.tolist(), self.event.tolist()
        columns = self.signals.tolist()
        result = []
        for k, sid in enumerate(self.session_ids):
            events = []
            for r in range(int(self.offsets[k]), int(self.offsets[k + 1])):
                carried = {
                    n: col[r]
                    for n, col in zip(names, columns, strict=True)
                    if not math.isnan(col[r])
                }
                events.append(Event(seq[r], t[r], codes[ev[r]], carried))
            result.append(SessionEvents(sid, events, self.open_record(k), float(self.close_t[k])))
        return result


def simulate(
    scenario: Scenario,
    profile: str,
    sessions: int,
    *,
    seed: int = 0,
    options: SensorOptions | None = None,
    mix: Mapping[str, float] | str | None = None,
    first: int = 0,
    rubric: str | None = None,
) -> SimBatch:
    """Simulate sessions `first` .. `first + sessions - 1` of the run with `seed`.

    `profile` is a profile name or ``mixed`` (then `mix` gives the weights, as a mapping or as
    ``competent=0.5,speeder=0.5``; default: half competent, the rest shared by flawed profiles).
    `rubric` names the rubric in each session's open record (default: the model's).
    Raises ValueError on an unknown scenario model or profile, or bad options.
    """
    if sessions < 0 or first < 0 or seed < 0:
        raise ValueError("sessions, first and seed must be >= 0")
    model = model_for(scenario.scenario)
    options = options or SensorOptions()
    weights = _weights(model, profile, mix)
    names = list(weights)
    cumulative = np.cumsum([weights[n] for n in names])
    layout = Layout.build(scenario, model)
    parts: list[Rendered] = []
    chosen: list[str] = []
    for i in range(first, first + sessions):
        if len(names) == 1:
            name = names[0]
        else:
            draw = _rng(seed, i, 1).random()
            name = names[min(int(np.searchsorted(cumulative, draw, side="right")), len(names) - 1)]
        chosen.append(name)
        plan = model.plan(_rng(seed, i, 0), model.profiles[name].flaws)
        sensor = [_rng(seed, i, 2 + j) if on else None for j, on in enumerate(options.active)]
        parts.append(render(plan, layout, options, sensor))
    return _assemble(
        scenario,
        rubric=rubric or model.rubric,
        layout=layout,
        seed=seed,
        first=first,
        chosen=chosen,
        parts=parts,
    )


def _rng(seed: int, session: int, stream: int) -> np.random.Generator:
    """Stream `stream` of session `session`: 0 = behaviour, 1 = profile draw, 2-4 = sensors."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(session, stream)))


def _weights(model: Model, profile: str, mix: Mapping[str, float] | str | None) -> dict[str, float]:
    if profile != MIXED:
        if mix is not None:
            raise ValueError("--mix goes with --profile mixed only")
        model.profile(profile)
        return {profile: 1.0}
    if mix is None:
        return default_mix(model)
    if isinstance(mix, str):
        return parse_mix(mix, model)
    return parse_mix(",".join(f"{k}={v}" for k, v in mix.items()), model)


def _assemble(
    scenario: Scenario,
    *,
    rubric: str,
    layout: Layout,
    seed: int,
    first: int,
    chosen: list[str],
    parts: list[Rendered],
) -> SimBatch:
    counts = np.array([p.t.shape[0] for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    n_signals = len(layout.signal_names)
    indices = range(first, first + len(parts))
    return SimBatch(
        scenario=scenario.scenario,
        rubric=rubric,
        signal_names=layout.signal_names,
        event_names=scenario.event_names,
        session_ids=tuple(f"{scenario.scenario}-s{seed}-{i:06d}" for i in indices),
        learners=tuple(f"learner-{i + 1:06d}" for i in indices),
        profiles=tuple(chosen),
        session=np.repeat(np.arange(len(parts), dtype=np.int32), counts),
        seq=np.concatenate(
            [np.arange(c, dtype=np.int64) for c in counts] or [np.empty(0, np.int64)]
        ),
        t=np.concatenate([p.t for p in parts] or [np.empty(0)]),
        event=np.concatenate([p.event for p in parts] or [np.empty(0, np.int32)]),
        signals=np.concatenate([p.signals for p in parts], axis=1)
        if parts
        else np.empty((n_signals, 0)),
        offsets=offsets,
        close_t=np.array([p.close_t for p in parts], dtype=np.float64),
    )


# ---------------------------------------------------------------------------------- JSON Lines


def jsonl_lines(batch: SimBatch) -> Iterator[str]:
    """The events-file lines of the batch, session by session (open, events, close), each equal
    to ``json.dumps(record)`` of the records of `records` (without the newline)."""
    names = [f'"{n}": ' for n in batch.signal_names]
    codes = batch.event_names
    seq, t, ev = batch.seq.tolist(), batch.t.tolist(), batch.event.tolist()
    columns = batch.signals.T.tolist()
    for k, sid in enumerate(batch.session_ids):
        o = batch.open_record(k)
        yield (
            f'{{"session": "{sid}", "open": {{"learner": "{o["learner"]}", '
            f'"scenario": "{o["scenario"]}", "rubric": "{o["rubric"]}", '
            f'"profile": "{o["profile"]}"}}}}'
        )
        head = f'{{"session": "{sid}", "seq": '
        for r in range(int(batch.offsets[k]), int(batch.offsets[k + 1])):
            carried = ", ".join(
                [n + repr(v) for n, v in zip(names, columns[r], strict=True) if not math.isnan(v)]
            )
            tail = f', "signals": {{{carried}}}}}' if carried else "}"
            yield f'{head}{seq[r]}, "t": {t[r]!r}, "event": "{codes[ev[r]]}"{tail}'
        yield f'{{"session": "{sid}", "close": {{"t": {float(batch.close_t[k])!r}}}}}'


def records(batch: SimBatch) -> Iterator[dict[str, Any]]:
    """The JSON records of the batch (as `core.events.event_records` gives them)."""
    return iter(event_records(batch.to_sessions()))
