"""The simulator: determinism, record formats, sensor imperfections, physical plausibility."""

from __future__ import annotations

import itertools
import json
from functools import cache

import numpy as np
import pytest

from assessengine.adapters.library import load_scenario
from assessengine.core.events import parse_events_lines
from assessengine.core.scenario import Scenario
from assessengine.sim import (
    MODELS,
    SensorOptions,
    SimBatch,
    jsonl_lines,
    model_for,
    parse_mix,
    records,
    simulate,
)
from assessengine.sim.kinematics import KMH, Timeline

SCENARIOS = list(MODELS)


@cache
def scenario(scenario_id: str) -> Scenario:
    return load_scenario(scenario_id)


@cache
def batch(scenario_id: str, profile: str = "competent", **options: float) -> SimBatch:
    return simulate(scenario(scenario_id), profile, 2, seed=3, options=SensorOptions(**options))


def text(b: SimBatch) -> str:
    return "".join(line + "\n" for line in jsonl_lines(b))


def session_rows(b: SimBatch, k: int) -> slice:
    return slice(int(b.offsets[k]), int(b.offsets[k + 1]))


# ------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_same_seed_gives_byte_identical_output(scenario_id: str) -> None:
    options = SensorOptions(noise=1.0, drop=0.1, jitter=0.02)
    first = simulate(scenario(scenario_id), "mixed", 3, seed=9, options=options)
    again = simulate(scenario(scenario_id), "mixed", 3, seed=9, options=options)
    assert text(first) == text(again)
    assert text(first) != text(simulate(scenario(scenario_id), "mixed", 3, seed=10))


def test_a_session_does_not_depend_on_how_the_run_is_chunked() -> None:
    sc = scenario("lhd-underground")
    whole = simulate(sc, "mixed", 4, seed=5)
    part = simulate(sc, "mixed", 2, seed=5, first=2)
    assert list(jsonl_lines(part)) == list(jsonl_lines(whole))[-len(list(jsonl_lines(part))) :]


# ------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_jsonl_lines_are_the_json_of_the_records(scenario_id: str) -> None:
    b = batch(scenario_id, "mixed")
    assert list(jsonl_lines(b)) == [json.dumps(r) for r in records(b)]


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_events_file_parses_back_to_the_same_sessions(scenario_id: str) -> None:
    b = batch(scenario_id, jitter=0.05)
    parsed = parse_events_lines(jsonl_lines(b), scenario=scenario(scenario_id))
    assert list(parsed.sessions.values()) == b.to_sessions()


def test_open_record_names_learner_scenario_rubric_and_profile() -> None:
    b = batch("network-lab", "slow")
    first = json.loads(next(iter(jsonl_lines(b))))
    assert first == {
        "session": b.session_ids[0],
        "open": {
            "learner": b.learners[0],
            "scenario": "network-lab",
            "rubric": "network-lab",
            "profile": "slow",
        },
    }


def test_columns_are_an_event_batch_with_seq_counting_from_zero() -> None:
    b = batch("haul-truck-surface")
    eb = b.batch()
    assert eb.signals.shape == (len(b.signal_names), len(b))
    for k in range(len(b.session_ids)):
        rows = session_rows(b, k)
        assert np.array_equal(b.seq[rows], np.arange(rows.stop - rows.start))
        assert np.all(np.diff(b.t[rows]) >= 0)
        assert b.close_t[k] >= b.t[rows][-1]
        assert np.all(b.session[rows] == k)


def test_zero_sessions_give_an_empty_batch() -> None:
    b = simulate(scenario("forklift-warehouse"), "competent", 0)
    assert len(b) == 0
    assert list(jsonl_lines(b)) == []


# ------------------------------------------------------------------------------ profiles


def test_mixed_draws_profiles_by_weight() -> None:
    b = simulate(scenario("network-lab"), "mixed", 60, seed=1, mix="competent=3,slow=1")
    counts = {p: b.profiles.count(p) for p in set(b.profiles)}
    assert set(counts) == {"competent", "slow"}
    assert 30 < counts["competent"] < 58


def test_mixed_without_weights_uses_every_profile() -> None:
    b = simulate(scenario("network-lab"), "mixed", 80, seed=1)
    assert set(b.profiles) == set(model_for("network-lab").profiles)


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ("competent", "NAME=WEIGHT"),
        ("nobody=1", "unknown profile"),
        ("competent=-1", ">= 0"),
        ("competent=0", "sum to 0"),
        ("competent=x", "not a number"),
    ],
)
def test_bad_mix_is_refused(mix: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(mix, model_for("forklift-warehouse"))


def test_unknown_profile_and_scenario_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile 'nobody'"):
        simulate(scenario("forklift-warehouse"), "nobody", 1)
    other = scenario("forklift-warehouse").model_copy(update={"scenario": "crane-yard"})
    with pytest.raises(ValueError, match="no simulator model"):
        simulate(other, "competent", 1)


# ------------------------------------------------------------------------------ imperfections


@pytest.mark.parametrize(
    "scenario_id", ["forklift-warehouse", "haul-truck-surface", "lhd-underground"]
)
def test_noise_perturbs_moving_values_within_range_and_keeps_rest_values(scenario_id: str) -> None:
    clean, noisy = batch(scenario_id), batch(scenario_id, noise=1.0)
    assert np.array_equal(clean.t, noisy.t)
    assert np.array_equal(clean.event, noisy.event)
    reported = ~np.isnan(clean.signals)
    assert np.array_equal(reported, ~np.isnan(noisy.signals))
    sc = scenario(scenario_id)
    low = np.array([sc.signals[n].range[0] for n in clean.signal_names])[:, None]
    high = np.array([sc.signals[n].range[1] for n in clean.signal_names])[:, None]
    changed = reported & (clean.signals != noisy.signals)
    assert changed.sum() > 0.5 * (reported & (clean.signals != low)).sum()
    at_rest = reported & (clean.signals == low)
    assert np.array_equal(clean.signals[at_rest], noisy.signals[at_rest])
    assert np.all(noisy.signals[reported] >= np.broadcast_to(low, reported.shape)[reported])
    assert np.all(noisy.signals[reported] <= np.broadcast_to(high, reported.shape)[reported])


def test_drop_loses_samples_but_never_events() -> None:
    clean, dropped = batch("lhd-underground"), batch("lhd-underground", drop=0.3)
    samples = (clean.event == 0).sum()
    kept = (dropped.event == 0).sum()
    assert 0.6 * samples < kept < 0.8 * samples
    assert np.array_equal(clean.event[clean.event != 0], dropped.event[dropped.event != 0])
    assert np.array_equal(clean.t[clean.event != 0], dropped.t[dropped.event != 0])


def test_jitter_moves_sample_times_and_keeps_time_ordered() -> None:
    clean, jittered = batch("forklift-warehouse"), batch("forklift-warehouse", jitter=0.02)
    assert len(clean) == len(jittered)
    on_grid = np.isclose(
        jittered.t[jittered.event == 0] * 10, np.round(jittered.t[jittered.event == 0] * 10)
    )
    assert on_grid.mean() < 0.5
    for k in range(2):
        assert np.all(np.diff(jittered.t[session_rows(jittered, k)]) >= 0)


@pytest.mark.parametrize(
    "options", [{"noise": -1.0}, {"drop": 1.0}, {"drop": -0.1}, {"jitter": float("nan")}]
)
def test_bad_sensor_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SensorOptions(**options)


# ------------------------------------------------------------------------------ plausibility

MAX_ACCEL = {"forklift-warehouse": 1.0, "haul-truck-surface": 0.5, "lhd-underground": 0.8}


@pytest.mark.parametrize("profile", ["competent", "speeder"])
@pytest.mark.parametrize("scenario_id", list(MAX_ACCEL))
def test_speed_changes_within_acceleration_limits(scenario_id: str, profile: str) -> None:
    b = batch(scenario_id, profile)
    speed = b.signal_names.index("speed")
    for k in range(2):
        rows = session_rows(b, k)
        reported = ~np.isnan(b.signals[speed, rows])
        v = b.signals[speed, rows][reported] / KMH
        t = b.t[rows][reported]
        assert np.all(np.abs(np.diff(v)) <= MAX_ACCEL[scenario_id] * np.diff(t) + 1e-3)


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_values_stay_in_the_scenario_ranges(scenario_id: str) -> None:
    b = batch(scenario_id, "mixed")
    sc = scenario(scenario_id)
    for i, name in enumerate(b.signal_names):
        values = b.signals[i][~np.isnan(b.signals[i])]
        low, high = sc.signals[name].range
        assert values.size > 0, name
        assert low <= values.min(), name
        assert values.max() <= high, name


@pytest.mark.parametrize(
    ("scenario_id", "load"),
    [
        ("forklift-warehouse", "load"),
        ("haul-truck-surface", "payload"),
        ("lhd-underground", "bucket_fill"),
    ],
)
def test_loaded_travel_is_slower_than_empty_travel(scenario_id: str, load: str) -> None:
    b = batch(scenario_id)
    speed, mass = (b.signal_names.index(n) for n in ("speed", load))
    v, m = b.signals[speed], b.signals[mass]
    both = ~np.isnan(v) & ~np.isnan(m) & (v > 1)
    assert np.median(v[both & (m > 30)]) < np.median(v[both & (m == 0)])


def test_competent_forklift_driver_is_at_walking_pace_near_pedestrians() -> None:
    b = batch("forklift-warehouse")
    speed, ped = (b.signal_names.index(n) for n in ("speed", "pedestrian_distance"))
    near = b.signals[ped] < 5
    assert near.any()
    assert np.all(b.signals[speed][near] <= 3)


def test_drive_reaches_the_cruise_speed_only_on_long_legs() -> None:
    tl = Timeline({"speed": 0.0})
    long_leg = tl.drive(200, 36, end_kmh=0, accel=0.5, decel=0.5)
    short_leg = tl.drive(10, 36, end_kmh=0, accel=0.5, decel=0.5)
    assert long_leg.top_kmh == pytest.approx(36)
    assert short_leg.top_kmh == pytest.approx(np.sqrt(0.5 * 10) * KMH)
    assert tl.value("speed") == 0
    times, _ = tl.knots("speed")
    assert all(b > a for a, b in itertools.pairwise(times))
