"""Shared helpers for behaviour models: a session timeline of piecewise-linear signal tracks and
discrete events, with trapezoidal (acceleration-limited) travel legs.

A behaviour model plans one session by moving a time cursor forward and writing knots into
tracks; the renderer (`render.py`) later samples every track at the telemetry rate in one
vectorised step (`numpy.interp`), so planning costs a few hundred Python operations per session
whatever its length.

Units: times in seconds; speeds in km/h on the `speed` track (the scenarios' unit), accelerations
in m/s².
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

KMH = 3.6
"""km/h per m/s."""

STEP = 1e-3
"""Duration given to an instantaneous change, so that knot times strictly increase."""


@dataclass(frozen=True, slots=True)
class Leg:
    """The times at which a travel leg reached its peak, started braking, and ended."""

    start: float
    peak: float
    brake: float
    end: float
    top_kmh: float


class Timeline:
    """One session's plan: a cursor `t`, a track of knots per signal, and timed events.

    Tracks hold their last value until changed (a change is a linear ramp). Events may be
    emitted at any time, including in the past of the cursor (e.g. a horn 2 s before the
    intersection a leg ended at); the renderer orders them.
    """

    __slots__ = ("_times", "_values", "events", "t")

    def __init__(self, initial: Mapping[str, float]) -> None:
        self.t = 0.0
        self._times: dict[str, list[float]] = {name: [0.0] for name in initial}
        self._values: dict[str, list[float]] = {name: [float(v)] for name, v in initial.items()}
        self.events: list[tuple[float, str, dict[str, float] | None]] = []

    # ------------------------------------------------------------------------------ reading

    def value(self, name: str) -> float:
        """The track's value once every change written so far has completed."""
        return self._values[name][-1]

    def knots(self, name: str) -> tuple[list[float], list[float]]:
        """(times, values) of a track: times strictly increasing."""
        return self._times[name], self._values[name]

    @property
    def track_names(self) -> tuple[str, ...]:
        return tuple(self._times)

    # ------------------------------------------------------------------------------ writing

    def wait(self, seconds: float) -> None:
        """Move the cursor forward; every track holds (or finishes its ramp)."""
        self.t += max(0.0, seconds)

    def emit(
        self, event: str, *, at: float | None = None, signals: dict[str, float] | None = None
    ) -> None:
        """Record `event` at `at` (default: the cursor), optionally carrying signal values."""
        self.events.append((self.t if at is None else max(0.0, at), event, signals))

    def set(self, name: str, value: float, *, over: float = 0.0, at: float | None = None) -> None:
        """Ramp track `name` linearly to `value`, starting at `at` (default: the cursor, or the
        end of the track's previous change if that is later) and lasting `over` seconds."""
        times, values = self._times[name], self._values[name]
        start = max(self.t if at is None else at, times[-1])
        if start > times[-1]:
            times.append(start)
            values.append(values[-1])
        times.append(start + max(over, STEP))
        values.append(float(value))

    def drive(
        self,
        distance: float,
        cruise_kmh: float,
        *,
        end_kmh: float = 0.0,
        accel: float = 0.5,
        decel: float = 0.6,
    ) -> Leg:
        """Travel `distance` metres on the `speed` track: accelerate (or slow) at most at
        `accel`/`decel` m/s² from the current speed towards `cruise_kmh`, hold it, and brake to
        arrive at `end_kmh`. A leg too short to reach the cruise speed peaks lower. The cursor
        moves to the leg's end."""
        v0 = self.value("speed") / KMH
        vc = cruise_kmh / KMH
        v1 = end_kmh / KMH
        a_up = accel if vc >= v0 else decel
        d_up = abs(vc * vc - v0 * v0) / (2 * a_up)
        d_down = max(0.0, vc * vc - v1 * v1) / (2 * decel)
        if d_up + d_down > distance:
            vc = _peak(distance, v0, v1, accel, decel)
            a_up = accel
            d_up = max(0.0, vc * vc - v0 * v0) / (2 * accel)
            d_down = max(0.0, vc * vc - v1 * v1) / (2 * decel)
        t_up = _ramp_time(d_up, v0, vc)
        t_down = _ramp_time(d_down, vc, v1)
        cruise_d = max(0.0, distance - d_up - d_down)
        t_cruise = cruise_d / vc if vc > 0 else 0.0
        start = self.t
        self.set("speed", vc * KMH, over=t_up)
        peak = self.t + t_up
        self.t = peak + t_cruise
        brake = self.t
        if t_down > 0:
            self.set("speed", v1 * KMH, over=t_down)
        self.t = brake + t_down
        return Leg(start, peak, brake, self.t, vc * KMH)

    def stop(self, *, decel: float = 0.6) -> float:
        """Brake to a standstill at `decel` m/s²; returns the braking time."""
        seconds = self.value("speed") / KMH / decel
        if seconds > 0:
            self.set("speed", 0.0, over=seconds)
            self.t += seconds
        return seconds


def _ramp_time(distance: float, v_from: float, v_to: float) -> float:
    mean = (v_from + v_to) / 2
    return distance / mean if mean > 0 else 0.0


def _peak(distance: float, v0: float, v1: float, accel: float, decel: float) -> float:
    """Highest speed reachable on a leg of `distance` that starts at v0 and ends at v1."""
    numerator = distance + v0 * v0 / (2 * accel) + v1 * v1 / (2 * decel)
    peak = math.sqrt(numerator / (1 / (2 * accel) + 1 / (2 * decel)))
    return max(peak, v0, v1)


def relax(tl: Timeline, name: str, target: float, tau: float, *, step: float = 15.0) -> None:
    """First-order lag on track `name` from the end of its last change up to the cursor: it
    moves towards `target` with time constant `tau` seconds (temperatures, gas levels), with a
    knot every `step` seconds."""
    times, values = tl.knots(name)
    start, value = times[-1], values[-1]
    elapsed = tl.t - start
    if elapsed <= 0:
        return
    n = max(1, math.ceil(elapsed / step))
    for i in range(1, n + 1):
        dt = elapsed * i / n
        times.append(start + dt)
        values.append(target + (value - target) * math.exp(-dt / tau))


def some_checks(rng: np.random.Generator, n: int) -> set[int]:
    """One or two of `n` check indices, drawn at random (the ones a careless operator skips)."""
    return {int(i) for i in rng.choice(n, size=int(rng.integers(1, 3)), replace=False)}


def do_checks(
    tl: Timeline,
    rng: np.random.Generator,
    checks: Sequence[str],
    gap: tuple[float, float],
    *,
    skipped: set[int] | frozenset[int] = frozenset(),
) -> None:
    """Pre-use checks in a random order: emit each event except the `skipped` indices, with a
    pause of uniform(*gap) seconds after each (a skipped check still takes its time)."""
    for i in rng.permutation(len(checks)):
        if int(i) not in skipped:
            tl.emit(checks[int(i)])
        tl.wait(rng.uniform(*gap))
