"""Behaviour model of `forklift-warehouse`: pre-use checks, then two pick-and-place cycles
through a grid of aisles (30-60 m between intersections), then parking.

Physics: 0.8 m/s² acceleration and 1.0 m/s² braking empty, 0.5 and 0.6 m/s² loaded; forks rise
and fall at 0.4 m/s; the truck creeps at 0.8 km/h with the forks raised at a rack. A competent
driver slows to 2-3 km/h and sounds the horn 1.5-3.5 s before each intersection, stops when a
pedestrian comes within 7 m, carries loads at 15 cm with the mast tilted back 3-6°.

The designed flaws (see `PROFILES`) refer to the criteria of `rubrics/forklift-load-handling.yaml`.
"""

from __future__ import annotations

import numpy as np

from .kinematics import Timeline, do_checks, some_checks
from .profiles import Model, Profile, registry

CHECKS = ("inspect_tyres", "inspect_forks", "inspect_hydraulics", "inspect_horn")
LIFT = 0.4  # m/s, fork lift and lowering speed
CREEP = 0.8  # km/h, with the forks raised at a rack

PROFILES = registry(
    Profile("competent", "follows the site rules, with margin on every limit"),
    Profile(
        "skips-inspection",
        "leaves one or two of the four pre-use checks undone",
        frozenset({"skip_checks"}),
        ("pre_use_checks",),
    ),
    Profile(
        "no-seatbelt",
        "drives off and fastens the seatbelt only once the truck is under way",
        frozenset({"late_seatbelt"}),
        ("seatbelt_before_motion",),
    ),
    Profile(
        "speeder",
        "drives at 15-17 km/h empty and 10-11 km/h loaded",
        frozenset({"speeding"}),
        ("loaded_speed", "empty_speed"),
    ),
    Profile(
        "collider",
        "strikes the racking while setting the first pallet down",
        frozenset({"collision"}),
        ("no_collisions",),
    ),
    Profile(
        "forks-high",
        "carries every load with the forks at 0.8-1.3 m",
        frozenset({"forks_high"}),
        ("forks_low_when_travelling",),
    ),
    Profile(
        "no-tilt",
        "carries loads with the mast level instead of tilted back",
        frozenset({"no_tilt"}),
        ("mast_tilted_back",),
    ),
    Profile(
        "no-horn",
        "enters intersections without sounding the horn",
        frozenset({"no_horn"}),
        ("horn_at_intersections",),
    ),
    Profile(
        "pedestrian-crowder",
        "passes pedestrians at 5-7 km/h and 1-1.4 m instead of stopping",
        frozenset({"crowds_pedestrians"}),
        ("give_way_to_pedestrians",),
    ),
    Profile(
        "lost",
        "takes a long detour with the first pallet, stopping at each intersection to find the way",
        frozenset({"detour"}),
        ("pallet_delivered_in_time",),
    ),
    Profile(
        "rushed-shutdown",
        "unfastens the seatbelt before switching the engine off",
        frozenset({"early_unbuckle"}),
        ("safe_shutdown",),
    ),
)

INITIAL = {"speed": 0.0, "load": 0.0, "fork_height": 0.0, "mast_tilt": 0.0}


def plan(rng: np.random.Generator, flaws: frozenset[str]) -> Timeline:
    """Pre-use checks, two pick-and-place cycles, park and switch off."""
    u = rng.uniform
    tl = Timeline({**INITIAL, "pedestrian_distance": u(10, 40)})
    tl.wait(u(2, 5))
    skipped = some_checks(rng, len(CHECKS)) if "skip_checks" in flaws else set()
    do_checks(tl, rng, CHECKS, (8, 20), skipped=skipped)
    if "late_seatbelt" not in flaws:
        tl.emit("seatbelt_on")
        tl.wait(u(2, 5))
    tl.emit("engine_start")
    tl.wait(u(3, 8))
    tl.set("fork_height", 0.15, over=0.4)
    tl.set("mast_tilt", u(1, 3), over=1)
    tl.wait(1)
    legs = _Legs(tl, rng, flaws)
    encounters = {int(i) for i in rng.choice(5, size=2, replace=False)}
    for cycle in range(2):
        legs.trip(2 if cycle == 0 else int(rng.integers(1, 3)), loaded=False, encounters=encounters)
        _pick(tl, rng)
        _carry(tl, rng, flaws)
        detour = "detour" in flaws and cycle == 0
        n = int(rng.integers(9, 12)) if detour else int(rng.integers(1, 3))
        legs.trip(n, loaded=True, encounters=encounters, lost=detour)
        _place(tl, rng, flaws, collide="collision" in flaws and cycle == 0)
    legs.trip(int(rng.integers(1, 3)), loaded=False, encounters=encounters)
    _park(tl, rng, flaws)
    return tl


class _Legs:
    """Travel from intersection to intersection; numbers legs so encounters can be placed."""

    def __init__(self, tl: Timeline, rng: np.random.Generator, flaws: frozenset[str]) -> None:
        self.tl, self.rng, self.flaws = tl, rng, flaws
        self.count = 0
        self.belted = "late_seatbelt" not in flaws

    def trip(self, n: int, *, loaded: bool, encounters: set[int], lost: bool = False) -> None:
        """`n` legs; every leg but the last ends by entering an intersection."""
        for i in range(n):
            last = i == n - 1
            if self.count in encounters:
                self._encounter(loaded)
            self._leg(loaded, end=0.0 if last else self.rng.uniform(2, 3))
            self.count += 1
            if not last:
                self._intersection(lost)

    def _leg(self, loaded: bool, end: float) -> None:
        tl, u = self.tl, self.rng.uniform
        speeding = "speeding" in self.flaws
        tl.set("pedestrian_distance", u(10, 40), over=u(5, 10))
        if loaded:
            cruise = u(10, 11) if speeding else u(5, 6.5)
            leg = tl.drive(u(30, 60), cruise, end_kmh=end, accel=0.5, decel=0.6)
        else:
            cruise = u(15, 17) if speeding else u(8.5, 10.5)
            leg = tl.drive(u(35, 60), cruise, end_kmh=end, accel=0.8, decel=1.0)
        if not self.belted:
            tl.emit("seatbelt_on", at=leg.peak + u(1, 4))
            self.belted = True

    def _intersection(self, lost: bool) -> None:
        tl, u = self.tl, self.rng.uniform
        if "no_horn" not in self.flaws:
            tl.emit("horn", at=tl.t - u(1.5, 3.5))
        tl.emit("intersection_entered")
        if lost:
            tl.stop(decel=0.6)
            tl.wait(u(12, 25))

    def _encounter(self, loaded: bool) -> None:
        """A pedestrian crosses ahead: a competent driver stops 6-8 m short and waits."""
        tl, u = self.tl, self.rng.uniform
        decel = 0.6 if loaded else 1.0
        if "crowds_pedestrians" in self.flaws:
            tl.drive(u(8, 12), u(5, 7), end_kmh=u(5, 7), accel=0.5, decel=decel)
            tl.set("pedestrian_distance", u(1.0, 1.4), over=u(2, 3), at=tl.t - 3)
            tl.set("pedestrian_distance", u(8, 15), over=u(2, 3))
            return
        tl.drive(u(8, 12), u(4, 5), end_kmh=0, accel=0.5, decel=decel)
        tl.set("pedestrian_distance", u(6, 8), over=3, at=tl.t - 3)
        tl.wait(u(0.5, 1.5))
        tl.set("pedestrian_distance", u(3, 4.5), over=u(2, 3))
        tl.wait(u(3, 5))
        tl.set("pedestrian_distance", u(8, 15), over=u(2, 3))
        tl.wait(u(4, 6))


def _lift(tl: Timeline, height: float) -> None:
    seconds = abs(height - tl.value("fork_height")) / LIFT
    tl.set("fork_height", height, over=seconds)
    tl.wait(seconds)


def _creep(tl: Timeline, metres: float) -> None:
    tl.drive(metres, CREEP, end_kmh=0, accel=0.3, decel=0.3)


def _pick(tl: Timeline, rng: np.random.Generator) -> None:
    u = rng.uniform
    tl.wait(u(1, 2))
    tl.set("mast_tilt", 0.0, over=1)
    _lift(tl, u(0.2, 3.5))
    _creep(tl, u(1.0, 1.5))
    tl.emit("pallet_picked")
    tl.set("load", u(400, 1800), over=2)
    tl.set("fork_height", tl.value("fork_height") + 0.1, over=1)
    tl.set("mast_tilt", u(4, 6), over=2)
    tl.wait(2.5)
    _creep(tl, u(1.0, 1.5))


def _place(tl: Timeline, rng: np.random.Generator, flaws: frozenset[str], *, collide: bool) -> None:
    """Set the pallet down at the drop zone, creeping in with the forks at the slot height."""
    u = rng.uniform
    tl.wait(u(1, 2))
    _lift(tl, u(0.2, 3.5))
    _creep(tl, u(1.0, 1.5))
    if collide:
        tl.emit("collision", at=tl.t - u(0.5, 1.0))
    tl.set("mast_tilt", 0.0, over=1.5)
    tl.wait(1.5)
    tl.set("fork_height", tl.value("fork_height") - 0.1, over=1)
    tl.emit("pallet_placed", at=tl.t + 0.5)
    tl.set("load", 0.0, over=1)
    tl.wait(1.5)
    _creep(tl, u(1.0, 1.5))
    _lift(tl, 0.15)
    tl.set("mast_tilt", u(1, 3), over=1)
    tl.wait(u(1, 2))


def _park(tl: Timeline, rng: np.random.Generator, flaws: frozenset[str]) -> None:
    u = rng.uniform
    tl.wait(u(1, 2))
    tl.set("mast_tilt", 0.0, over=1)
    _lift(tl, 0.0)
    tl.wait(u(1, 2))
    tl.emit("parked")
    tl.wait(u(2, 4))
    steps = ["engine_stop", "seatbelt_off"]
    if "early_unbuckle" in flaws:
        steps.reverse()
    for step in steps:
        tl.emit(step)
        tl.wait(u(1, 3))
    tl.wait(u(1, 3))


def _carry(tl: Timeline, rng: np.random.Generator, flaws: frozenset[str]) -> None:
    """Out of the rack: take the travel posture for the load (stationary)."""
    u = rng.uniform
    _lift(tl, u(0.8, 1.3) if "forks_high" in flaws else u(0.12, 0.18))
    tl.set("mast_tilt", u(-0.5, 0.5) if "no_tilt" in flaws else u(3, 6), over=1)
    tl.wait(u(1, 2))


MODEL = Model(
    scenario="forklift-warehouse",
    rubric="forklift-load-handling",
    plan=plan,
    profiles=PROFILES,
    noise={
        "speed": 0.1,
        "load": 5.0,
        "fork_height": 0.01,
        "mast_tilt": 0.1,
        "pedestrian_distance": 0.1,
    },
)
