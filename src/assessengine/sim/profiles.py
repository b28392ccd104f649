"""Operator profiles and behaviour models: what a simulated operator does, and what it breaks.

A `Profile` is a named set of *flaws* (behaviour switches that a scenario's model reads) and the
criteria of the scenario's library rubric that those flaws are designed to fail (`breaks`). The
golden tests hold every profile to its `breaks`: it fails exactly those criteria and passes the
others. `competent` has no flaws and breaks nothing.

`mixed` is not a profile of its own: it draws one of the scenario's profiles per session, with
weights given as ``competent=0.5,speeder=0.5`` (see `parse_mix`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .kinematics import Timeline

COMPETENT = "competent"
MIXED = "mixed"


@dataclass(frozen=True, slots=True)
class Profile:
    """name: as given to ``--profile``; summary: what this operator does (one line);
    flaws: behaviour switches of the scenario's model; breaks: criterion ids of the library
    rubric that this profile is designed to fail (all others pass)."""

    name: str
    summary: str
    flaws: frozenset[str] = frozenset()
    breaks: tuple[str, ...] = ()


Planner = Callable[[np.random.Generator, frozenset[str]], Timeline]
"""Plans one session: (generator, flaws) -> the finished timeline (cursor at the close)."""


@dataclass(frozen=True, slots=True)
class Model:
    """A scenario's behaviour model.

    scenario:  the scenario id whose signal and event names the plans use
    rubric:    the library rubric that the profiles' `breaks` refer to
    plan:      the session planner
    noise:     nominal sensor noise (standard deviation, signal units) per signal; signals not
               listed are exact (counts, switches, values carried by events)
    decimals:  signal values are rounded to this many decimals (t to milliseconds)
    profiles:  name -> profile, `competent` first
    """

    scenario: str
    rubric: str
    plan: Planner
    profiles: Mapping[str, Profile]
    noise: Mapping[str, float] = field(default_factory=dict)
    decimals: int = 3

    def profile(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join([*self.profiles, MIXED])
            raise ValueError(
                f"unknown profile {name!r} for scenario {self.scenario!r} (known: {known})"
            ) from None


def registry(*profiles: Profile) -> dict[str, Profile]:
    """name -> profile, checking names are unique and `competent` breaks nothing."""
    table: dict[str, Profile] = {}
    for p in profiles:
        if p.name in table or p.name == MIXED:
            raise ValueError(f"duplicate or reserved profile name {p.name!r}")
        table[p.name] = p
    if COMPETENT not in table or table[COMPETENT].flaws or table[COMPETENT].breaks:
        raise ValueError("a model needs a flawless 'competent' profile")
    return table


def parse_mix(text: str, model: Model) -> dict[str, float]:
    """Parse ``competent=0.5,speeder=0.5`` into normalised weights (they need not sum to 1).

    Raises ValueError on an unknown profile, a negative weight, or weights summing to 0.
    """
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, raw = part.strip().partition("=")
        if not sep:
            raise ValueError(f"expected NAME=WEIGHT in --mix, got {part.strip()!r}")
        model.profile(name.strip())
        try:
            weight = float(raw)
        except ValueError:
            raise ValueError(f"weight of {name.strip()!r} is not a number: {raw!r}") from None
        if not weight >= 0:
            raise ValueError(f"weight of {name.strip()!r} must be >= 0, got {raw!r}")
        weights[name.strip()] = weights.get(name.strip(), 0.0) + weight
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("--mix weights sum to 0")
    return {name: w / total for name, w in weights.items()}


def default_mix(model: Model) -> dict[str, float]:
    """Half `competent`, the other half shared equally by the flawed profiles."""
    flawed = [name for name in model.profiles if name != COMPETENT]
    if not flawed:
        return {COMPETENT: 1.0}
    return {COMPETENT: 0.5, **{name: 0.5 / len(flawed) for name in flawed}}
