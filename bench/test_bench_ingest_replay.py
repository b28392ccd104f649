"""The live engine's per-message cost without sockets: a recorded stream of 64 KiB columns-v1
frames (250 forklift sessions, 1.12 M events, 1,150 messages) replayed through an engine's
rounds on a fresh SQLite file (`bench/replay.py`), each phase's CPU seconds on its own
(check, decode, chain, store, answer; then score). Quiet and repeatable where the socket
benchmark (`test_bench_engine.py`) is not: no sender process, no ZeroMQ threads, no scoring
process competing for the two cores, and CPU seconds of the replaying thread, not wall time.

``extra_info``: per phase, µs a message, best and median over the rounds; ingest and scoring
events/s from the CPU seconds.

Run: pytest bench/test_bench_ingest_replay.py --benchmark-only -s
Smoke (20 sessions, nothing measured):
pytest bench/test_bench_ingest_replay.py --benchmark-disable -q
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import pytest

from assessengine.runtime.pipeline import RubricLibrary

from .replay import PHASES, RUBRIC_DIR, Overlap, Phases, record, replay_in_temp, replay_ingest

SESSIONS = 250
FRAME_BYTES = 64 * 2**10
ROUNDS = 5


def _smoke(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("benchmark_disable", False))


def _summary(results: list[Phases]) -> dict[str, Any]:
    """Per phase (and ``ingest``, their sum but the scoring), µs a message: best, median."""
    per = [r.per_message_us() for r in results]
    out: dict[str, Any] = {}
    for phase in (*PHASES, "ingest"):
        values = [p[phase] for p in per]
        out[phase] = {"best": round(min(values), 1), "median": round(statistics.median(values), 1)}
    events = results[0].events
    out["ingest_events_per_cpu_s"] = round(max(events / r.ingest for r in results))
    out["score_events_per_cpu_s"] = round(max(events / r.seconds["score"] for r in results))
    return out


def test_ingest_replay_phases(benchmark: Any, request: pytest.FixtureRequest) -> None:
    library, _ = RubricLibrary.load([RUBRIC_DIR])
    recording = record(20 if _smoke(request) else SESSIONS, FRAME_BYTES)
    replay_in_temp(recording, library)  # warm-up: numba loads its cache
    results: list[Phases] = []

    def one_round() -> None:
        results.append(replay_in_temp(recording, library))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    assert all(r.messages == len(recording.messages) for r in results)
    benchmark.extra_info.update(messages=len(recording.messages), events=recording.events,
                                **_summary(results))  # fmt: skip
    print(f"\ningest replay: {benchmark.extra_info}")


def test_ingest_replay_commit_overlap(benchmark: Any, request: pytest.FixtureRequest) -> None:
    """The same recording through the ingest alone, the group commits in the engine's commit
    thread (`overlap_commits=True`, the default for such rounds) and in the ingest thread (serial),
    alternately in the same process: wall seconds, and the ratio before / overlapped (above 1:
    the overlap is faster), best and median over the pairs."""
    library, _ = RubricLibrary.load([RUBRIC_DIR])
    recording = record(20 if _smoke(request) else SESSIONS, FRAME_BYTES)
    runs: dict[bool, list[Overlap]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        replay_ingest(recording, library, Path(folder), overlap=True)  # warm-up

        def pair() -> None:
            for overlap in (False, True):
                runs[overlap].append(replay_ingest(recording, library, Path(folder),
                                                   overlap=overlap))  # fmt: skip

        benchmark.pedantic(pair, rounds=2 * ROUNDS, iterations=1)
    ratios = [a.wall / b.wall for a, b in zip(runs[False], runs[True], strict=True)]
    events = recording.events
    benchmark.extra_info.update({
        "events": events,
        "serial_events_per_s": {"best": round(events / min(r.wall for r in runs[False])),
                                "median": round(events / statistics.median(
                                    r.wall for r in runs[False]))},
        "overlap_events_per_s": {"best": round(events / min(r.wall for r in runs[True])),
                                 "median": round(events / statistics.median(
                                     r.wall for r in runs[True]))},
        "ratio_serial_over_overlap": {"best": round(max(ratios), 2),
                                      "median": round(statistics.median(ratios), 2)},
        "cpu_s_median": {"serial": round(statistics.median(r.cpu for r in runs[False]), 3),
                         "overlap": round(statistics.median(r.cpu for r in runs[True]), 3)},
    })  # fmt: skip
    print(f"\ncommit overlap: {benchmark.extra_info}")
