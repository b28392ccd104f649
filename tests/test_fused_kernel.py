"""The fused step (one generated numba function per rubric, `core.fused_source`, loaded by
`runtime.fused`) gives the reference scorer's reports, whatever the batch split and the
interleaving of sessions; what it does not generate falls back to the table-driven kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assessengine.core import fused_step, scorer
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import Event, SessionEvents
from assessengine.core.fused_source import FusedUnsupportedError, fused_source
from assessengine.core.offline import score_sessions
from assessengine.core.rubric import Rubric
from assessengine.core.scorer import ScoringState
from assessengine.runtime import fused

from .strategies import SCENARIO, rubrics, session_sets
from .test_kernel_properties import interleavings, score_in_pieces

# every distinct rubric compiles its own function (1-2 s of CPU each, more under load): few
# examples a run (60 passed while the generator was written)
FUSED = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fused.FusedProvider]:
    installed = fused.install(tmp_path_factory.mktemp("fused"))
    try:
        yield installed
    finally:
        fused.uninstall()


def _data(reports: list[Any]) -> list[dict[str, Any]]:
    return [r.to_data() for r in reports]


@pytest.mark.slow
@FUSED
@given(rubric=rubrics(), sessions=session_sets(), data=st.data())
def test_fused_step_equals_reference_in_any_split_and_interleaving(
    provider: fused.FusedProvider, rubric: Rubric, sessions: list[SessionEvents],
    data: st.DataObject,
) -> None:  # fmt: skip
    state = ScoringState.new(compile_rubric(rubric, SCENARIO))
    assert state.fused is not None  # the provider generated this rubric
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference
    order = data.draw(interleavings(sessions))
    cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=4))
    by_report = {r["session"]: r for r in reference}
    pieces = score_in_pieces(rubric, sessions, order, cuts)
    assert pieces == [by_report[s.session] for s in sessions]


@pytest.mark.slow
def test_fused_step_equals_reference_on_a_rubric_of_every_template(
    provider: fused.FusedProvider,
) -> None:
    """Every template, `for` and `allow`, a machine with an event, a `for` and a NaN-prone
    `max(x, y) / z`, over sessions with missing and NaN signals, cut into steps of 7 rows."""
    rubric, sessions = _forklift_like()
    assert ScoringState.new(compile_rubric(rubric, SCENARIO)).fused is not None
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference
    order = [k for k, s in enumerate(sessions) for _ in s.events]
    cuts = list(range(0, len(order), 7))
    by_report = {r["session"]: r for r in reference}
    assert score_in_pieces(rubric, sessions, order, cuts) == [
        by_report[s.session] for s in sessions
    ]


def test_a_batch_above_the_scratch_size_is_one_fused_pass_with_the_same_reports(
    provider: fused.FusedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fused step needs no work arrays: a batch of more than SCRATCH_ROWS rows is not
    cut into sub-steps, and gives the reports of the reference."""
    rubric, sessions = _small()
    monkeypatch.setattr(scorer, "SCRATCH_ROWS", 8)
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference


def test_a_rubric_the_generator_does_not_cover_is_scored_by_the_table_kernel(
    provider: fused.FusedProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    rubric, sessions = _forklift_like()

    def unsupported(compiled: object) -> str:
        raise FusedUnsupportedError("not generated here")

    monkeypatch.setattr(fused, "fused_source", unsupported)
    state = ScoringState.new(compile_rubric(rubric, SCENARIO))
    assert state.fused is None
    reference = _data(score_sessions(rubric, SCENARIO, sessions, engine="reference"))
    assert _data(score_sessions(rubric, SCENARIO, sessions, engine="kernel")) == reference


def test_without_a_provider_the_state_has_no_fused_step() -> None:
    fused.uninstall()
    assert fused_step.provider() is None
    rubric, _ = _forklift_like()
    assert ScoringState.new(compile_rubric(rubric, SCENARIO)).fused is None


def test_the_generated_source_is_deterministic_and_names_no_package_module() -> None:
    rubric, _ = _forklift_like()
    one = fused_source(compile_rubric(rubric, SCENARIO))
    assert one == fused_source(compile_rubric(rubric, SCENARIO))
    # numba caches per file and does not see a change in a module a cached function calls
    assert "assessengine" not in one.replace("assessengine.core.fused_source", "")
    compile(one, "<generated>", "exec")


PROBE = """
import json, sys
import numpy as np
from pathlib import Path
from assessengine.core.compiler import compile_rubric
from assessengine.core.scorer import ScoringState, step
from assessengine.core.events import batch_from_events
from assessengine.runtime import fused
from tests.strategies import SCENARIO
from tests.test_fused_kernel import _small
fused.install(Path(sys.argv[1]))
rubric, sessions = _small()
compiled = compile_rubric(rubric, SCENARIO)
state = ScoringState.new(compiled, capacity=64)
slots = state.open([s.session for s in sessions])
rows = [(int(slots[k]), e) for k, s in enumerate(sessions) for e in s.events]
step(compiled, state, batch_from_events(SCENARIO, rows))
print(json.dumps(fused.compilations()))
"""


def test_a_second_process_loads_the_compiled_step_from_the_disk_cache(tmp_path: Path) -> None:
    """The generated module is imported under its own name (registered in sys.modules):
    numba's cache rebuilds a cached function's environment by importing its module by name,
    so a second process loads what the first compiled (without the registration it could
    not, and failed with "No module named '<dynamic>'")."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}

    def run() -> int:
        done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return int(done.stdout.strip().splitlines()[-1])

    assert run() > 0  # the first process compiles
    assert run() == 0  # the second loads it
    assert len(list(tmp_path.glob(f"{fused.PREFIX}*.py"))) == 1


def _forklift_like() -> tuple[Rubric, list[SessionEvents]]:
    """A rubric of every template over the test scenario, and two sessions."""
    return _FIXED


def _small() -> tuple[Rubric, list[SessionEvents]]:
    """One criterion of `_forklift_like` (quick to compile), and its sessions."""
    rubric, sessions = _FIXED
    return rubric.model_copy(update={"criteria": rubric.criteria[:1]}), sessions


def _fixed() -> tuple[Rubric, list[SessionEvents]]:
    criteria = [
        {"never": "x > 2 and y != 1", "for": 1},
        {"always": "z >= -1 or x < 1", "allow": 1},
        {"sequence": ["a", {"when": "x > 1"}, "b"], "within": 30},
        {"count": {"when": "abs(z) > 1", "max": 2}},
        {"metric": {"aggregate": "time_true", "of": "x > 1", "where": "y <= 2", "at_most": 5}},
        {"metric": {"aggregate": "mean", "of": "max(x, y) / z", "at_least": 0}},
        {"duration": {"from": "a", "to": "b", "max": 10}},
        {"precede": {"event": "c", "by": "d", "within": 5}},
        {"response": {"after": "a", "expect": {"when": "y > 2"}, "within": 4}},
        {"all_before": {"events": ["a", "d"], "before": "c"}},
        {
            "machine": {
                "initial": "calm",
                "at_end": "pass",
                "states": {
                    "calm": [{"when": "x > 2", "to": "busy"}],
                    "busy": [
                        {"on": "c", "to": "fail"},
                        {"when": "y > 2", "for": 1, "to": "fail"},
                        {"when": "x <= 2", "to": "calm"},
                    ],
                },
            }
        },
    ]
    rubric = Rubric.model_validate({
        "rubric": "fused-fixed", "version": 1, "title": "Fixed", "scenario": "prop",
        "criteria": [{"id": f"c{i}", "title": f"C{i}", **c} for i, c in enumerate(criteria)],
        "pass": {"min_score": 50},
    })  # fmt: skip
    rng = np.random.default_rng(3)
    sessions = []
    for k in range(2):
        t, events = 0.0, []
        for seq in range(60):
            t += float(rng.choice([0.0, 0.5, 1.0]))
            kind = str(rng.choice(["sample", "sample", "sample", "a", "b", "c", "d"]))
            signals = {s: float(rng.choice([0.0, 1.0, 2.5, 3.0, np.nan]))
                       for s in ("x", "y", "z") if rng.integers(0, 2)}  # fmt: skip
            events.append(Event(seq, t, kind, signals))
        sessions.append(SessionEvents(session=f"F{k}", events=events, close_t=t + 1.0))
    return rubric, sessions


_FIXED = _fixed()
