"""Reading recorded sessions (issue 22, item 1): `assessengine score` on JSON Lines, today's
path against the column reader, on the same file in the same run.

- today's path: `core.events.parse_events_lines` (an `Event` object per line) then
  `core.offline.score_sessions` (`batch_from_events`, the kernel) -- what `score` ran before;
- the column reader: `inputs.read_input` (pyarrow per 8 MB block, checks per column) then
  `core.offline.score_chunks` (sessions streamed to the kernel), with 1 and with 2 processes
  parsing (``score --workers``);
- peak memory of each path, in a fresh process (Linux /proc: the peak reset once the kernel
  is loaded), above that process's resident size then;
- the compiled parser of the events layout (`inputs.jsonl_scan`) against pyarrow's JSON
  reader (the column path before it), end to end, rounds interleaved A B A B in one process;
- uploaded CSV logs: per column (`api.service.csv_columns`) against row by row, interleaved.

The file: SESSIONS simulated forklift sessions (mixed profiles, sensor noise and drop),
interleaved 100 lines at a time, written to a temporary folder (about 150 MB; not timed). Every
timing starts with the kernel loaded. Targets: the column reader at least 10x today's path and
at least 500 K events/s (measured on a quiet machine; on a shared one, read the ratios).
Run: pytest bench/test_bench_reader.py --benchmark-only -s
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest

from assessengine.adapters.library import load_rubric
from assessengine.api.service import uploads
from assessengine.core.compiler import compile_rubric
from assessengine.core.events import parse_events_lines
from assessengine.core.offline import score_chunks, score_sessions
from assessengine.inputs import jsonl_scan, read_input
from assessengine.sim import SensorOptions, jsonl_lines, simulate

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "rubrics" / "forklift-load-handling.yaml"
SESSIONS = 160  # about 720 K events, 150 MB of JSON Lines
RATES: dict[str, float] = {}
MEMORY: dict[str, int] = {}


@dataclass(frozen=True)
class EventsFile:
    path: Path
    events: int
    sessions: int


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> EventsFile:
    _, scenario = load_rubric(RUBRIC)
    noisy = SensorOptions(noise=1.0, drop=0.05)
    sim = simulate(scenario, "mixed", SESSIONS, seed=3, options=noisy)
    per_session: dict[str, list[str]] = {}
    for line in jsonl_lines(sim):
        per_session.setdefault(line[13 : line.index('"', 13)], []).append(line)
    path = tmp_path_factory.mktemp("bench-reader") / "events.jsonl"
    queues = list(per_session.values())
    with path.open("w") as out:
        while any(queues):
            for q in queues:
                out.writelines(ln + "\n" for ln in q[:100])
                del q[:100]
    small = path.with_name("warm.jsonl")
    small.write_text("\n".join(jsonl_lines(simulate(scenario, "mixed", 1, seed=1))) + "\n")
    _today(small)  # the kernel loaded, for both paths
    return EventsFile(path, len(sim), SESSIONS)


def _today(path: Path) -> int:
    rubric, scenario = load_rubric(RUBRIC)
    with path.open(encoding="utf-8") as lines:
        parsed = parse_events_lines(lines, scenario=scenario, source=str(path))
    return len(score_sessions(rubric, scenario, list(parsed.sessions.values())))


def _columns(path: Path, workers: int) -> int:
    rubric, scenario = load_rubric(RUBRIC)
    chunks = read_input(path, scenario=scenario, workers=workers)
    return len(score_chunks(compile_rubric(rubric, scenario), chunks).reports)


def _record(benchmark: Any, name: str, events: int) -> float:
    rate = events / benchmark.stats.stats.min
    benchmark.extra_info |= {"events": events, "events_per_s": round(rate)}
    RATES[name] = rate
    print(f"\n{name}: {events:,} events, {rate:,.0f} events/s")
    return rate


def test_today_path(benchmark: Any, events_file: EventsFile) -> None:
    result = benchmark.pedantic(_today, args=(events_file.path,), rounds=1, iterations=1)
    assert result == events_file.sessions
    _record(benchmark, "today", events_file.events)


@pytest.mark.parametrize("workers", [1, 2])
def test_column_reader(benchmark: Any, events_file: EventsFile, workers: int) -> None:
    result = benchmark.pedantic(_columns, args=(events_file.path, workers), rounds=3,
                                iterations=1)  # fmt: skip
    assert result == events_file.sessions
    _record(benchmark, f"columns-{workers}", events_file.events)


_MEASURE = """
import re, sys
from pathlib import Path
from bench.test_bench_reader import _columns, _today

def status(key):
    return int(re.search(key + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))

_today(Path(sys.argv[1]))
Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from here
before = status("VmRSS")
if sys.argv[2] == "today":
    _today(Path(sys.argv[3]))
else:
    _columns(Path(sys.argv[3]), int(sys.argv[2]))
print(before, status("VmHWM"))
"""


@pytest.mark.parametrize("path", ["today", "1"])
def test_peak_memory(benchmark: Any, events_file: EventsFile, path: str) -> None:
    """Peak resident memory of one path in a fresh process (Linux: VmHWM, reset once the
    kernel is loaded by scoring one small file), and how far above the resident size then."""
    warm = events_file.path.with_name("warm.jsonl")
    args = [sys.executable, "-c", _MEASURE, str(warm), path, str(events_file.path)]

    def run() -> tuple[int, int]:
        out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
        before, after = map(int, out.stdout.split())
        return before, after

    before, after = benchmark.pedantic(run, rounds=1, iterations=1)
    size = events_file.path.stat().st_size
    MEMORY[path] = (after - before) * 1024
    benchmark.extra_info |= {"file_bytes": size, "peak_kib": after,
                             "above_warm_kib": after - before}  # fmt: skip
    print(f"\npeak memory, {'today' if path == 'today' else 'columns'}: "
          f"{after / 1024:,.0f} MiB, {(after - before) / 1024:,.0f} MiB above the warm process "
          f"(file {size / 2**20:,.0f} MiB)")


def _interleaved(cases: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Seconds of each case, rounds alternating between the cases (A B A B ...)."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def _ratio_line(what: str, times: dict[str, list[float]], new: str, old: str) -> dict[str, float]:
    best = min(times[old]) / min(times[new])
    median = statistics.median(times[old]) / statistics.median(times[new])
    print(f"\n{what}: {new} / {old} = {best:.2f}x best, {median:.2f}x median "
          f"({len(times[new])} rounds each)")
    return {"best": round(best, 2), "median": round(median, 2)}


def test_compiled_parser_against_pyarrow(benchmark: Any, events_file: EventsFile) -> None:
    """`score` on the file with the compiled parser, and with pyarrow's JSON reader only
    (jsonl_scan declining every block), 5 rounds each, interleaved."""

    def pyarrow_only() -> None:
        with patch.object(jsonl_scan, "parse", lambda *_: None):
            _columns(events_file.path, 1)

    cases = {"compiled": lambda: _columns(events_file.path, 1), "pyarrow": pyarrow_only}
    times = benchmark.pedantic(_interleaved, args=(cases, 5), rounds=1, iterations=1)
    for name, seconds in times.items():
        rate = events_file.events / min(seconds)
        print(f"\n{name}: best {rate:,.0f} events/s, median "
              f"{events_file.events / statistics.median(seconds):,.0f}")
    benchmark.extra_info |= _ratio_line("JSON Lines", times, "compiled", "pyarrow")


def test_csv_upload_columns_against_rows(benchmark: Any) -> None:
    """One 200,000-row CSV field log (forklift signals, 3 decimals), parsed per column and
    row by row (`uploads._csv`), 5 rounds each, interleaved."""
    _, scenario = load_rubric(RUBRIC)
    names = list(scenario.signal_names)
    rows = (f"{k / 10:.1f},{'horn' if k % 97 == 0 else ''},"
            + ",".join(f"{(k * (j + 3)) % 1000 / 7:.3f}" for j in range(len(names)))
            for k in range(200_000))  # fmt: skip
    text = ",".join(["t", "event", *names]) + "\n" + "\n".join(rows) + "\n"

    def by_rows() -> None:
        with patch.object(uploads, "read_columns", lambda *_: None):
            uploads._csv(text, scenario)

    cases = {"columns": lambda: uploads._csv(text, scenario), "rows": by_rows}
    times = benchmark.pedantic(_interleaved, args=(cases, 5), rounds=1, iterations=1)
    for name, seconds in times.items():
        print(f"\ncsv {name}: best {200_000 / min(seconds):,.0f} rows/s")
    benchmark.extra_info |= _ratio_line("CSV upload", times, "columns", "rows")


def test_ratios(benchmark: Any) -> None:
    """The ratios of the rates measured above in this run."""
    if not {"today", "columns-1", "columns-2"} <= set(RATES):
        pytest.skip("run the whole module: the ratios need every rate")
    one = RATES["columns-1"] / RATES["today"]
    two = RATES["columns-2"] / RATES["today"]
    benchmark.extra_info |= {"columns_over_today": round(one, 2),
                             "two_workers_over_today": round(two, 2)}  # fmt: skip
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\nratios: column reader / today = {one:.1f} (1 process), {two:.1f} (2 processes) "
          f"(target >= 10); one process (the default): {RATES['columns-1']:,.0f} events/s "
          "(target >= 500,000)"
          + (f"; memory above warm: today {MEMORY['today'] / 2**20:,.0f} MiB, columns "
             f"{MEMORY['1'] / 2**20:,.0f} MiB" if {"today", "1"} <= set(MEMORY) else ""))
    print(json.dumps({k: round(v) for k, v in RATES.items()}))
