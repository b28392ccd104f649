"""Shared fixtures for the benchmarks: 1,000 interleaved forklift sessions, scored by both
engines. Run: pytest bench --benchmark-only --benchmark-json=bench.json"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tests.pg_server import PgServer, start_server

from assessengine.adapters.library import load_rubric
from assessengine.core.events import EventBatch
from assessengine.core.rubric import Rubric
from assessengine.core.scenario import Scenario
from assessengine.sim.generate import SimBatch, simulate

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 1_000


@dataclass(frozen=True)
class Workload:
    rubric: Rubric
    scenario: Scenario
    sim: SimBatch
    batch: EventBatch  # every session's events, interleaved in time order as they would arrive


@pytest.fixture(scope="session")
def forklift_workload() -> Workload:
    rubric, scenario = load_rubric(ROOT / "rubrics" / "forklift-load-handling.yaml")
    sim = simulate(scenario, "mixed", SESSIONS, seed=7)
    order = np.argsort(sim.t, kind="stable")
    return Workload(rubric, scenario, sim, sim.batch().take(order))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server of the benchmarks' own, syncing as a production server does
    (``durable``); skips where the package is missing."""
    yield from start_server(durable=True)
