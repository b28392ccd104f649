"""Render a planned session into event columns: sample every track at the telemetry rate, apply
sensor imperfections, merge the discrete events, order by time. Vectorised per session."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..core.scenario import Scenario
from .kinematics import Timeline
from .profiles import Model


@dataclass(frozen=True, slots=True)
class SensorOptions:
    """Imperfections of the telemetry (all off by default).

    noise:  multiplier of each signal's nominal sensor noise (Gaussian, clipped to the signal's
            range); 1.0 = the model's nominal noise. A value at the low end of its range is a
            sensor at rest (wheels stopped, body down, bucket empty) and stays exact
    drop:   probability that a telemetry sample is lost at the source (seq stays contiguous:
            the sample was never sent); discrete events are never dropped
    jitter: standard deviation, in seconds, of the error on each sample's timestamp; rows are
            re-ordered by time afterwards, so `t` never decreases within a session
    """

    noise: float = 0.0
    drop: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (self.noise >= 0 and math.isfinite(self.noise)):
            raise ValueError(f"noise must be a finite number >= 0, got {self.noise!r}")
        if not 0 <= self.drop < 1:
            raise ValueError(f"drop must be in [0, 1), got {self.drop!r}")
        if not (self.jitter >= 0 and math.isfinite(self.jitter)):
            raise ValueError(f"jitter must be a finite number of seconds >= 0, got {self.jitter!r}")

    @property
    def active(self) -> tuple[bool, bool, bool]:
        """Which of noise, drop, jitter are on."""
        return (self.noise > 0, self.drop > 0, self.jitter > 0)


@dataclass(frozen=True, slots=True)
class Layout:
    """How a model's plans map onto a scenario's columns.

    rate:   base telemetry rate (Hz): the highest signal rate (0 when no signal is sampled)
    every:  (n_signals,) int64: a signal is on every `every`-th sample; 0 = never on samples
    sigma:  (n_signals,) float64: nominal noise
    low, high: (n_signals,) float64: the scenario's ranges, noisy values are clipped to them
    """

    signal_names: tuple[str, ...]
    event_code: dict[str, int]
    rate: float
    every: NDArray[np.int64]
    sigma: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    decimals: int

    @classmethod
    def build(cls, scenario: Scenario, model: Model) -> Layout:
        names = scenario.signal_names
        rates = [scenario.signals[n].rate or 0.0 for n in names]
        base = max(rates, default=0.0)
        every = [round(base / r) if r > 0 else 0 for r in rates]
        unknown = sorted(set(model.noise) - set(names))
        if unknown:
            raise ValueError(f"model noise names unknown signals: {', '.join(unknown)}")
        return cls(
            signal_names=names,
            event_code=dict(scenario.event_code),
            rate=base,
            every=np.array(every, dtype=np.int64),
            sigma=np.array([model.noise.get(n, 0.0) for n in names], dtype=np.float64),
            low=np.array([scenario.signals[n].range[0] for n in names], dtype=np.float64),
            high=np.array([scenario.signals[n].range[1] for n in names], dtype=np.float64),
            decimals=model.decimals,
        )


@dataclass(frozen=True, slots=True)
class Rendered:
    """One session's rows, ordered by t: t (n,), event codes (n,), signals (n_signals, n)."""

    t: NDArray[np.float64]
    event: NDArray[np.int32]
    signals: NDArray[np.float64]
    close_t: float


def render(
    plan: Timeline,
    layout: Layout,
    options: SensorOptions,
    rngs: list[np.random.Generator | None],
) -> Rendered:
    """Sample `plan` and merge its events. `rngs` = the [noise, drop, jitter] generators
    (None for an imperfection that is off)."""
    noise_rng, drop_rng, jitter_rng = rngs
    end = plan.t
    ts, values = _samples(plan, layout, end)
    if noise_rng is not None:
        noise = noise_rng.standard_normal(values.shape) * (layout.sigma * options.noise)[:, None]
        at_rest = values == layout.low[:, None]
        values = np.where(
            at_rest, values, np.clip(values + noise, layout.low[:, None], layout.high[:, None])
        )
    if drop_rng is not None:
        keep = drop_rng.random(ts.shape[0]) >= options.drop
        ts, values = ts[keep], values[:, keep]
    if jitter_rng is not None:
        ts = np.clip(ts + jitter_rng.standard_normal(ts.shape[0]) * options.jitter, 0.0, end)
    te, codes, ev_values = _events(plan, layout)
    t = np.concatenate([ts, te])
    order = np.argsort(t, kind="stable")
    event = np.concatenate([np.zeros(ts.shape[0], np.int32), codes])[order]
    signals = np.concatenate([values, ev_values], axis=1)[:, order]
    t = np.round(t[order], 3)
    close = round(max(end, float(t[-1]) if t.shape[0] else 0.0), 3)
    return Rendered(t, event, np.round(signals, layout.decimals), close)


def _samples(
    plan: Timeline, layout: Layout, end: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n_signals = len(layout.signal_names)
    if layout.rate <= 0:
        return np.empty(0), np.empty((n_signals, 0))
    k = np.arange(math.floor(end * layout.rate + 1e-9) + 1, dtype=np.int64)
    ts = k / layout.rate
    values = np.full((n_signals, ts.shape[0]), np.nan)
    tracks = set(plan.track_names)
    for i, name in enumerate(layout.signal_names):
        every = int(layout.every[i])
        if every == 0 or name not in tracks:
            continue
        times, knots = plan.knots(name)
        if every == 1:
            values[i] = np.interp(ts, times, knots)
        else:
            values[i, ::every] = np.interp(ts[::every], times, knots)
    return ts, values


def _events(
    plan: Timeline, layout: Layout
) -> tuple[NDArray[np.float64], NDArray[np.int32], NDArray[np.float64]]:
    n = len(plan.events)
    te = np.fromiter((e[0] for e in plan.events), dtype=np.float64, count=n)
    try:
        codes = np.fromiter((layout.event_code[e[1]] for e in plan.events), np.int32, count=n)
    except KeyError as exc:
        raise ValueError(
            f"the model emitted an event the scenario does not define: {exc}"
        ) from None
    values = np.full((len(layout.signal_names), n), np.nan)
    index = {name: i for i, name in enumerate(layout.signal_names)}
    for j, (_, _, carried) in enumerate(plan.events):
        if carried:
            for name, v in carried.items():
                values[index[name], j] = v
    return te, codes, values
