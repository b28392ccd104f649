"""Behaviour model of `lhd-underground`: a load-haul-dump loader mucking at a draw point and
tramming to an ore pass, two or three cycles, with a blast-fume gas alarm injected during the
first empty tram, then parking and a cool-down idle before shutdown.

Physics: 0.6 m/s² acceleration empty, 0.4 m/s² loaded, 0.6 m/s² braking (0.8 m/s² for an
emergency stop); the engine coolant follows a first-order lag towards 96-101 °C while working
(time constant 60 s) and towards 80 °C at idle (120 s); CO rises over 6-10 s to 35-60 ppm and
clears over 60-90 s.

The designed flaws (see `PROFILES`) refer to the criteria of `rubrics/lhd-underground.yaml`.
"""

from __future__ import annotations

import numpy as np

from .kinematics import Timeline, do_checks, relax
from .profiles import Model, Profile, registry

CHECKS = ("check_walkaround", "check_tyres", "check_fire_suppression", "check_gas_monitor")
ALARM_PPM = 25.0
IDLE_C, IDLE_TAU, WORK_TAU = 80.0, 120.0, 60.0

PROFILES = registry(
    Profile("competent", "follows the mine's procedure, with margin on every limit"),
    Profile(
        "rushed",
        "skips the gas-monitor bump test and fastens the seatbelt after starting the engine",
        frozenset({"skip_checks", "late_seatbelt"}),
        ("prestart_checks", "seatbelt_before_start"),
    ),
    Profile(
        "speeder",
        "trams at 16.5-19 km/h empty and 13.5-14.8 km/h loaded",
        frozenset({"speeding"}),
        ("speed_limit", "loaded_speed"),
    ),
    Profile(
        "wall-scraper",
        "cuts too close to the rib on every loaded tram and touches the wall",
        frozenset({"wall_scrape"}),
        ("wall_clearance", "no_wall_contact"),
    ),
    Profile(
        "ignores-alarm",
        "keeps tramming through the gas alarm and never reports it",
        frozenset({"ignore_alarm"}),
        ("gas_alarm_stop", "gas_alarm_report"),
    ),
    Profile(
        "hot-shutdown",
        "parks and switches off at once, without the cool-down idle",
        frozenset({"hot_shutdown"}),
        ("cool_down", "idle_before_shutdown"),
    ),
    Profile(
        "bucket-high",
        "trams loaded with the bucket raised to 1.8-2.2 m",
        frozenset({"bucket_high"}),
        ("bucket_low_when_loaded",),
    ),
    Profile(
        "brow-crosser",
        "drives the cab past the brow of the draw point while mucking",
        frozenset({"cross_brow"}),
        ("stays_behind_brow",),
    ),
    Profile(
        "poor-mucker",
        "leaves the muck pile with the bucket 45-62 % full",
        frozenset({"poor_fill"}),
        ("bucket_fill_factor",),
    ),
)


class _Engine:
    """Coolant temperature: a first-order lag whose target changes with the work done."""

    def __init__(self, tl: Timeline) -> None:
        self.tl = tl
        self.target, self.tau = 28.0, 1800.0  # engine off: cooling towards the rock temperature

    def mode(self, target: float, tau: float) -> None:
        relax(self.tl, "engine_temp", self.target, self.tau)
        self.target, self.tau = target, tau


def plan(rng: np.random.Generator, flaws: frozenset[str]) -> Timeline:
    """Pre-start, two or three muck-tram-dump cycles, park and cool down."""
    u = rng.uniform
    tl = Timeline(
        {
            "speed": 0.0,
            "bucket_fill": 0.0,
            "boom_height": 0.0,
            "wall_clearance": u(1.0, 1.5),
            "engine_temp": u(55, 70),
            "co_ppm": u(2, 6),
        }
    )
    engine = _Engine(tl)
    hot = u(96, 101)
    _prestart(tl, rng, flaws, engine)
    tl.set("boom_height", u(0.4, 0.7), over=3)
    engine.mode(hot, WORK_TAU)
    for cycle in range(int(rng.integers(2, 4))):
        tl.emit("tram_empty")
        _tram_empty(tl, rng, flaws, engine, alarm=cycle == 0, hot=hot)
        _muck(tl, rng, flaws, cross_brow=cycle == 0)
        tl.emit("tram_loaded")
        _tram_loaded(tl, rng, flaws)
        _dump(tl, rng)
    _drive(tl, rng, u(80, 150), u(16.5, 19) if "speeding" in flaws else u(10, 12.5), 0.6)
    tl.set("boom_height", 0.0, over=3)
    tl.wait(u(3, 5))
    engine.mode(IDLE_C, IDLE_TAU)
    tl.emit("parked")
    tl.wait(u(4, 10) if "hot_shutdown" in flaws else u(150, 210))
    engine.mode(28.0, 1800.0)
    tl.emit("engine_stop")
    tl.wait(u(3, 8))
    tl.emit("seatbelt_off")
    tl.wait(u(2, 5))
    engine.mode(28.0, 1800.0)
    return tl


def _prestart(
    tl: Timeline, rng: np.random.Generator, flaws: frozenset[str], engine: _Engine
) -> None:
    u = rng.uniform
    tl.wait(u(3, 8))
    skipped: set[int] = set()
    if "skip_checks" in flaws:
        skipped = {3} | ({int(rng.integers(0, 3))} if rng.random() < 0.5 else set())
    do_checks(tl, rng, CHECKS, (10, 25), skipped=skipped)
    if "late_seatbelt" not in flaws:
        tl.emit("seatbelt_on")
        tl.wait(u(3, 6))
    engine.mode(IDLE_C, 200.0)
    tl.emit("engine_start")
    if "late_seatbelt" in flaws:
        tl.emit("seatbelt_on", at=tl.t + u(5, 12))
    tl.wait(u(20, 40))


def _drive(
    tl: Timeline,
    rng: np.random.Generator,
    distance: float,
    cruise: float,
    accel: float,
    *,
    end: float = 0.0,
) -> None:
    tl.set("wall_clearance", rng.uniform(0.7, 1.3), over=3)
    tl.drive(distance, cruise, end_kmh=end, accel=accel, decel=0.6)


def _tram_empty(
    tl: Timeline,
    rng: np.random.Generator,
    flaws: frozenset[str],
    engine: _Engine,
    *,
    alarm: bool,
    hot: float,
) -> None:
    u = rng.uniform
    cruise = u(16.5, 19) if "speeding" in flaws else u(10, 12.5)
    if alarm:
        _drive(tl, rng, u(50, 80), cruise, 0.6, end=cruise)
        _gas_alarm(tl, rng, flaws, engine, cruise=cruise, hot=hot)
    _drive(tl, rng, u(100, 180), cruise, 0.6, end=3.0)
    tl.set("wall_clearance", u(0.6, 0.9), over=2)
    tl.stop(decel=0.6)
    tl.wait(u(1, 3))


def _gas_alarm(
    tl: Timeline,
    rng: np.random.Generator,
    flaws: frozenset[str],
    engine: _Engine,
    *,
    cruise: float,
    hot: float,
) -> None:
    """Blast fumes reach the machine: CO crosses the alarm level at the cursor."""
    u = rng.uniform
    base, peak, rise = tl.value("co_ppm"), u(35, 60), u(6, 10)
    start = tl.t - rise * (ALARM_PPM - base) / (peak - base)
    tl.set("co_ppm", peak, over=rise, at=start)
    hold, clear = u(10, 20), u(60, 90)
    tl.set("co_ppm", base, over=clear, at=start + rise + hold)
    tl.emit("gas_alarm")
    clear_at = start + rise + hold + clear * (peak - ALARM_PPM) / (peak - base)
    tl.emit("gas_clear", at=clear_at)
    if "ignore_alarm" in flaws:
        return
    tl.drive(cruise / 3.6 * u(1, 2), cruise, end_kmh=cruise)  # reaction time
    tl.stop(decel=0.8)
    engine.mode(IDLE_C, IDLE_TAU)
    tl.emit("radio_call", at=tl.t + u(5, 20))
    tl.wait(max(0.0, clear_at - tl.t) + u(5, 15))
    engine.mode(hot, WORK_TAU)


def _muck(
    tl: Timeline, rng: np.random.Generator, flaws: frozenset[str], *, cross_brow: bool
) -> None:
    u = rng.uniform
    target = u(45, 62) if "poor_fill" in flaws else u(85, 100)
    tl.set("boom_height", 0.2, over=2)
    tl.wait(2)
    tl.emit("muck_start")
    start = tl.t
    tl.drive(u(3, 5), u(1.5, 3), end_kmh=0, accel=0.5, decel=0.8)
    if cross_brow and "cross_brow" in flaws:
        tl.emit("cab_beyond_brow", at=tl.t - u(0.5, 1.5))
    tl.set("bucket_fill", target, over=tl.t - start, at=start)
    tl.set("boom_height", u(1.0, 1.2), over=tl.t - start, at=start)
    tl.wait(u(2, 4))
    tl.emit("muck_end")
    tl.wait(u(1, 2))
    carry = u(1.8, 2.2) if "bucket_high" in flaws else u(0.4, 0.7)
    reverse = tl.t
    tl.drive(u(10, 15), u(3, 4.5), end_kmh=0, accel=0.4, decel=0.6)
    tl.set("boom_height", carry, over=tl.t - reverse, at=reverse)
    tl.wait(u(1, 3))


def _tram_loaded(tl: Timeline, rng: np.random.Generator, flaws: frozenset[str]) -> None:
    u = rng.uniform
    cruise = u(13.5, 14.8) if "speeding" in flaws else u(8.5, 10.5)
    tl.set("wall_clearance", u(0.7, 1.3), over=3)
    leg = tl.drive(u(120, 220), cruise, end_kmh=0, accel=0.4, decel=0.6)
    if "wall_scrape" in flaws:
        mid = (leg.peak + leg.brake) / 2
        tl.set("wall_clearance", u(0.05, 0.15), over=2.5, at=mid - 2.5)
        tl.emit("wall_contact", at=mid + 0.5)
        tl.set("wall_clearance", u(0.6, 0.9), over=2.5, at=mid + 1.5)
    tl.set("wall_clearance", u(0.6, 0.9), over=2)


def _dump(tl: Timeline, rng: np.random.Generator) -> None:
    u = rng.uniform
    tl.wait(u(1, 2))
    raise_s = u(6, 8)
    tl.set("boom_height", u(2.6, 3.0), over=raise_s)
    tl.wait(raise_s)
    tl.emit("dump_orepass")
    tl.set("bucket_fill", 0.0, over=4)
    tl.wait(u(5, 7))
    tl.set("boom_height", u(0.4, 0.7), over=5)
    tl.wait(u(5, 7))


MODEL = Model(
    scenario="lhd-underground",
    rubric="lhd-underground",
    plan=plan,
    profiles=PROFILES,
    noise={
        "speed": 0.2,
        "bucket_fill": 2.0,
        "boom_height": 0.02,
        "wall_clearance": 0.03,
        "engine_temp": 0.3,
        "co_ppm": 0.5,
    },
)
