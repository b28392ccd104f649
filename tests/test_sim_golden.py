"""Known answers: every simulated profile against its scenario's library rubric.

`competent` passes every criterion that a machine can decide (the `observed` ones stay pending
offline); each flawed profile fails exactly the criteria listed in its `breaks` (the designed
flaws, documented beside each profile in `assessengine.sim.<scenario model>` and in
docs/scenarios/) and passes all the others. Run on both scorers.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from assessengine.adapters.library import load_rubric
from assessengine.core.events import SessionEvents
from assessengine.core.offline import Engine, score_sessions
from assessengine.core.rubric import Rubric
from assessengine.core.scenario import Scenario
from assessengine.sim import MODELS, simulate
from assessengine.sim.render import SensorOptions

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 3  # per profile; wider sweeps (40 sessions x 2 seeds) were run when designing
SEED = 20240611


ENGINES: list[Engine] = ["reference", "kernel"]
CASES = [(scenario, name) for scenario, model in MODELS.items() for name in model.profiles]


@cache
def library(scenario_id: str) -> tuple[Rubric, Scenario]:
    return load_rubric(ROOT / "rubrics" / f"{MODELS[scenario_id].rubric}.yaml")


@cache
def sessions(scenario_id: str, profile: str) -> list[SessionEvents]:
    _, scenario = library(scenario_id)
    return simulate(scenario, profile, SESSIONS, seed=SEED).to_sessions()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("scenario_id", "profile"), CASES, ids=[f"{s}:{p}" for s, p in CASES])
def test_profile_fails_exactly_its_designed_criteria(
    scenario_id: str, profile: str, engine: Engine
) -> None:
    rubric, scenario = library(scenario_id)
    designed = set(MODELS[scenario_id].profiles[profile].breaks)
    observed = {c.id for c in rubric.criteria if c.template == "observed"}
    for report in score_sessions(rubric, scenario, sessions(scenario_id, profile), engine=engine):
        verdicts = {c.id: c.verdict for c in report.criteria}
        assert {i for i in observed if verdicts[i] != "pending"} == set()
        failed = {i for i, v in verdicts.items() if v == "fail"}
        others = {i: v for i, v in verdicts.items() if i not in observed | designed}
        assert failed == designed, report.session
        assert set(others.values()) <= {"pass"}, (report.session, others)


@pytest.mark.parametrize("scenario_id", list(MODELS))
def test_breaks_tables_name_criteria_of_the_library_rubric(scenario_id: str) -> None:
    rubric, _ = library(scenario_id)
    ids = {c.id for c in rubric.criteria if c.template != "observed"}
    model = MODELS[scenario_id]
    flawed = [p for p in model.profiles.values() if p.name != "competent"]
    assert len(flawed) >= 4
    for p in flawed:
        assert p.breaks, p.name
        assert set(p.breaks) <= ids, p.name


@pytest.mark.parametrize("scenario_id", list(MODELS))
def test_competent_operators_still_pass_with_noisy_lossy_jittery_telemetry(
    scenario_id: str,
) -> None:
    rubric, scenario = library(scenario_id)
    options = SensorOptions(noise=1.0, drop=0.05, jitter=0.02)
    run = simulate(scenario, "competent", 10, seed=SEED + 1, options=options).to_sessions()
    for report in score_sessions(rubric, scenario, run, engine="kernel"):
        failed = [c.id for c in report.criteria if c.verdict == "fail"]
        assert failed == [], report.session
