"""Behaviour model of `haul-truck-surface`: one load-and-haul cycle of a rigid-frame haul truck
in an open pit, from the ready line to the shovel, up the ramp, down to the crusher (or the
waste dump) and back to the ready line.

Physics: empty trucks accelerate at 0.5 m/s², loaded ones at 0.25 m/s² (0.15 m/s² up the ramp,
where rimpull caps loaded speed near 11 km/h); braking at 0.5 m/s², with the retarder doing the
work above 8 km/h and the service brake the final stop. The payload builds pass by pass at the
shovel and falls as the body rises past about 20° when tipping.

The designed flaws (see `PROFILES`) refer to the criteria of `rubrics/haul-truck-surface.yaml`.
"""

from __future__ import annotations

import numpy as np

from .kinematics import KMH, Leg, Timeline, do_checks, some_checks
from .profiles import Model, Profile, registry

CHECKS = ("check_tyres", "check_fluids", "check_lights_horn", "check_fire_suppression")

PROFILES = registry(
    Profile("competent", "follows the site procedure, with margin on every limit"),
    Profile(
        "skips-prestart",
        "leaves one or two pre-start check items undone before starting the engine",
        frozenset({"skip_checks"}),
        ("prestart_checks",),
    ),
    Profile(
        "no-seatbelt",
        "moves off from the ready line and fastens the seatbelt only on the way",
        frozenset({"late_seatbelt"}),
        ("seatbelt_before_motion",),
    ),
    Profile(
        "rushed",
        "skips the static brake test and moves off from the shovel without sounding the horn",
        frozenset({"no_brake_test", "no_horn"}),
        ("brake_test_before_moving", "shovel_departure"),
    ),
    Profile(
        "speeder",
        "drives at 42-50 km/h on the flats and 27-31 km/h down the loaded descent",
        frozenset({"speeding"}),
        ("speed_limit", "loaded_descent_speed"),
    ),
    Profile(
        "brake-rider",
        "holds the loaded descent on the service brake instead of the retarder",
        frozenset({"brake_riding"}),
        ("retarder_on_descent", "service_brake_on_descent"),
    ),
    Profile(
        "tailgater",
        "follows the truck ahead at 25-40 m instead of at least 50 m",
        frozenset({"tailgating"}),
        ("following_distance",),
    ),
    Profile(
        "body-up",
        "drives off after tipping while the body is still coming down",
        frozenset({"body_up"}),
        ("body_down_before_travel",),
    ),
    Profile(
        "silent",
        "makes no radio calls and sounds no horn signals",
        frozenset({"no_radio", "no_horn"}),
        ("radio_before_shovel", "shovel_departure"),
    ),
    Profile(
        "berm-striker",
        "clips the haul-road windrow on a bend and backs into the tip berm",
        frozenset({"berm_strike"}),
        ("no_berm_contact",),
    ),
)

INITIAL = {
    "speed": 0.0,
    "payload": 0.0,
    "grade": 0.0,
    "service_brake": 40.0,
    "retarder": 0.0,
    "body_angle": 0.0,
    "vehicle_distance": 30.0,
}


def plan(rng: np.random.Generator, flaws: frozenset[str]) -> Timeline:
    """One haul cycle for an operator with `flaws`."""
    u = rng.uniform
    tl = Timeline({**INITIAL, "vehicle_distance": u(20, 40)})
    _prestart(tl, rng, flaws)
    speeding = "speeding" in flaws
    # empty: out of the ready line, along the bench, down the ramp into the pit
    tl.set("service_brake", 0.0, over=1)
    tl.emit("park_brake_off")
    tl.wait(u(2, 4))
    tl.set("vehicle_distance", u(180, 300), over=20)
    leg = _travel(tl, u(400, 600), u(45, 50) if speeding else u(32, 37), end=25, accel=0.5)
    if "late_seatbelt" in flaws:
        tl.emit("seatbelt_on", at=leg.peak + u(3, 10))
    _descend(
        tl,
        rng,
        flaws,
        distance=u(450, 600),
        grade=-8.0,
        cruise=u(30, 34) if speeding else u(23, 27),
        loaded=False,
    )
    if "no_radio" not in flaws:
        tl.emit("radio_call")
    _travel(tl, u(150, 250), 20, end=8, accel=0.5, grade=0.0)
    _load_at_shovel(tl, rng, flaws)
    # loaded: across the pit floor, up the ramp, along the top, down to the crusher pad
    _travel(tl, u(120, 180), 18, end=15, accel=0.25)
    _travel(tl, u(350, 450), u(10, 12), end=11, accel=0.15, grade=8.0)
    _haul_flat(tl, rng, flaws, speeding)
    _descend(
        tl,
        rng,
        flaws,
        distance=u(300, 450),
        grade=-6.0,
        cruise=u(27, 31) if speeding else u(15, 19),
        loaded=True,
    )
    if "no_radio" not in flaws:
        tl.emit("radio_call")
    _travel(tl, u(150, 250), u(30, 34) if speeding else u(20, 24), end=0, grade=0.0, accel=0.25)
    _tip(tl, rng, flaws)
    # empty: back to the ready line and park
    _travel(tl, u(300, 500), u(45, 50) if speeding else u(32, 37), end=0, accel=0.5)
    tl.set("vehicle_distance", u(20, 40), over=5)
    tl.wait(u(2, 4))
    tl.emit("park_brake_on")
    tl.wait(u(10, 30))
    tl.emit("engine_stop")
    tl.wait(u(2, 5))
    tl.emit("seatbelt_off")
    tl.wait(u(2, 5))
    return tl


def _prestart(tl: Timeline, rng: np.random.Generator, flaws: frozenset[str]) -> None:
    u = rng.uniform
    tl.wait(u(3, 8))
    skipped = some_checks(rng, len(CHECKS)) if "skip_checks" in flaws else set()
    do_checks(tl, rng, CHECKS, (15, 40), skipped=skipped)
    if "late_seatbelt" not in flaws:
        tl.emit("seatbelt_on")
        tl.wait(u(3, 8))
    tl.emit("engine_start")
    tl.wait(u(20, 40))  # air pressure builds up
    if "no_brake_test" not in flaws:
        tl.set("service_brake", 100.0, over=1)
        tl.wait(1 + u(5, 8))
        tl.emit("brake_test")
        tl.set("service_brake", 40.0, over=1)
        tl.wait(u(3, 6))


def _travel(
    tl: Timeline,
    distance: float,
    cruise: float,
    *,
    end: float,
    accel: float,
    grade: float | None = None,
) -> Leg:
    """A leg with retarder braking above 8 km/h and the service brake for a final stop."""
    if grade is not None:
        tl.set("grade", grade, over=4)
    if tl.value("service_brake") > 0:
        tl.set("service_brake", 0.0, over=1)
    leg = tl.drive(distance, cruise, end_kmh=end, accel=accel, decel=0.5)
    if leg.end - leg.brake > 1:
        tl.set("retarder", 40.0, over=1, at=leg.brake)
        slow = max(leg.brake + 1.5, leg.end - max(0.0, 8 - end) / KMH / 0.5)
        tl.set("retarder", 0.0, over=1, at=slow)
        if end == 0:
            tl.set("service_brake", 35.0, over=1, at=slow)
    return leg


def _descend(
    tl: Timeline,
    rng: np.random.Generator,
    flaws: frozenset[str],
    *,
    distance: float,
    grade: float,
    cruise: float,
    loaded: bool,
) -> None:
    """A downhill leg held at `cruise` on the retarder (or, brake-riding, the service brake)."""
    u = rng.uniform
    start = tl.t
    tl.set("grade", grade, over=4)
    if "brake_riding" in flaws:
        tl.set("retarder", u(0, 8), over=2, at=start)
        tl.set("service_brake", u(45, 65), over=2, at=start)
    else:
        tl.set("retarder", u(40, 65) if loaded else u(20, 35), over=3, at=start)
    tl.drive(distance, cruise, end_kmh=cruise, accel=0.3, decel=0.5)
    tl.set("retarder", 0.0, over=2)
    if "brake_riding" in flaws:
        tl.set("service_brake", 0.0, over=2)
    tl.set("grade", 0.0, over=4)


def _load_at_shovel(tl: Timeline, rng: np.random.Generator, flaws: frozenset[str]) -> None:
    u = rng.uniform
    tl.set("vehicle_distance", u(35, 45), over=4)
    tl.stop(decel=0.5)
    tl.set("service_brake", 35.0, over=1)
    tl.wait(u(2, 4))
    if "no_horn" not in flaws:
        tl.emit("horn")  # three blasts: reversing
        tl.wait(u(1, 3))
    tl.set("vehicle_distance", u(12, 18), over=12)
    _travel(tl, u(18, 28), 5, end=0, accel=0.3)
    tl.wait(u(1, 3))
    tl.emit("spot_at_shovel")
    tl.wait(u(15, 25))
    for _ in range(int(rng.integers(3, 5))):
        tl.emit("bucket_pass")
        tl.set("payload", min(tl.value("payload") + u(52, 62), 235.0), over=3)
        tl.wait(u(25, 35))
    tl.emit("loading_complete")
    tl.wait(u(3, 8))
    if "no_horn" not in flaws:
        tl.emit("horn")  # two blasts: moving forward
        tl.wait(u(3, 6))
    tl.set("vehicle_distance", u(200, 300), over=20)


def _haul_flat(
    tl: Timeline, rng: np.random.Generator, flaws: frozenset[str], speeding: bool
) -> None:
    """The loaded haul along the top, with a stretch behind a slower truck."""
    u = rng.uniform
    tl.set("grade", 0.0, over=4)
    cruise = u(42, 46) if speeding else u(28, 33)
    follow = u(23, 26)
    _travel(tl, u(250, 400), cruise, end=follow, accel=0.25)
    gap = u(25, 40) if "tailgating" in flaws else u(70, 120)
    tl.set("vehicle_distance", gap, over=u(10, 15))
    tl.drive(follow / KMH * u(40, 70), follow, end_kmh=follow)
    if "berm_strike" in flaws:
        tl.emit("berm_contact", at=tl.t - u(5, 15))
    tl.set("vehicle_distance", u(200, 300), over=u(10, 20))
    _travel(tl, u(200, 350), cruise, end=u(14, 17), accel=0.25)


def _tip(tl: Timeline, rng: np.random.Generator, flaws: frozenset[str]) -> None:
    """Reverse to the crusher wall or the tip berm, tip, lower the body, move off."""
    u = rng.uniform
    crusher = rng.random() < 0.6
    tl.wait(u(2, 4))
    if "no_horn" not in flaws:
        tl.emit("horn")
        tl.wait(u(1, 2))
    _travel(tl, u(15, 25), 6 if "berm_strike" in flaws else 4, end=0, accel=0.3)
    if not crusher and "berm_strike" in flaws:
        tl.emit("berm_contact")
    tl.wait(u(2, 5))
    rise, peak = u(15, 20), u(48, 55)
    tl.set("body_angle", peak, over=rise)
    tl.set("payload", 0.0, over=rise * 0.6 + 4, at=tl.t + rise * 0.4)
    tl.wait(rise)
    tl.emit("dump_crusher" if crusher else "dump_paddock")
    tl.wait(u(4, 8))
    lower = u(14, 18)
    tl.set("body_angle", 0.0, over=lower)
    tl.wait(u(2, 4) if "body_up" in flaws else lower + u(2, 5))
    tl.set("service_brake", 0.0, over=1)


MODEL = Model(
    scenario="haul-truck-surface",
    rubric="haul-truck-surface",
    plan=plan,
    profiles=PROFILES,
    noise={
        "speed": 0.3,
        "payload": 2.0,
        "grade": 0.2,
        "service_brake": 1.0,
        "retarder": 1.0,
        "body_angle": 0.3,
        "vehicle_distance": 2.0,
    },
)
