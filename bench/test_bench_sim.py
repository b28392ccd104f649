"""Simulator throughput: events generated per second, as columns (no JSON), per scenario.

Run with ``pytest bench/ --benchmark-only``; each result carries ``extra_info["events"]`` (events
per round) and ``extra_info["events_per_s"]``. The target is at least 1 M events/s on one core
for the telemetry scenarios (the network lab is a few hundred discrete events per session).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from assessengine.adapters.library import load_scenario
from assessengine.sim import MODELS, SensorOptions, SimBatch, simulate

SESSIONS = 200
TELEMETRY = ("forklift-warehouse", "haul-truck-surface", "lhd-underground")


@pytest.mark.parametrize("imperfect", [False, True], ids=["clean", "noise+drop+jitter"])
@pytest.mark.parametrize("scenario_id", list(MODELS))
def test_simulate_generation(
    benchmark: BenchmarkFixture, scenario_id: str, imperfect: bool
) -> None:
    scenario = load_scenario(scenario_id)
    options = SensorOptions(noise=1.0, drop=0.05, jitter=0.01) if imperfect else SensorOptions()
    pedantic = cast(Callable[..., SimBatch], benchmark.pedantic)
    batch = pedantic(
        simulate,
        args=(scenario, "mixed", SESSIONS),
        kwargs={"seed": 1, "options": options},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    benchmark.extra_info["events"] = len(batch)
    benchmark.extra_info["sessions"] = SESSIONS
    if benchmark.stats is None:  # --benchmark-disable: ran once, nothing measured
        return
    rate = len(batch) / benchmark.stats.stats.mean
    benchmark.extra_info["events_per_s"] = round(rate)
    if scenario_id in TELEMETRY:
        assert rate >= 1e6, f"{rate:,.0f} events/s"
