"""The input-format registry (`assessengine.inputs`) and `score --format`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from assessengine.adapters.library import load_rubric
from assessengine.cli.score_cmd import Progress
from assessengine.core.compiler import compile_rubric
from assessengine.core.offline import score_chunks
from assessengine.core.recorded import Chunk
from assessengine.core.scenario import Scenario
from assessengine.errors import EventsError
from assessengine.inputs import InputFormat, format_for, formats, register, registry
from assessengine.inputs.jsonl import read_jsonl
from tests.test_score_cli import RUBRIC, good_session, score, write

RUBRIC_MODEL, SCENARIO = load_rubric(RUBRIC)
COMPILED = compile_rubric(RUBRIC_MODEL, SCENARIO)


@pytest.mark.parametrize("name", ["run.jsonl", "RUN.JSONL", "run.ndjson", "run.json"])
def test_json_lines_is_chosen_by_its_suffixes(name: str) -> None:
    assert format_for(name).name == "jsonl"


@pytest.mark.parametrize("name", ["-", "events.txt", "events"])
def test_stdin_and_unclaimed_suffixes_read_as_json_lines(name: str) -> None:
    assert format_for(name).name == "jsonl"


def test_an_unknown_declared_format_names_the_known_ones() -> None:
    with pytest.raises(EventsError, match=r"unknown input format 'nope' \(known: .*jsonl"):
        format_for("run.jsonl", "nope")


def _nothing(
    stream: BinaryIO, *, scenario: Scenario, source: str, skip_invalid: bool, workers: int = 1
) -> Iterator[Chunk]:
    yield Chunk.empty(len(scenario.signal_names))


def test_a_registered_format_is_found_by_suffix_and_by_name() -> None:
    fmt = InputFormat("testfmt", (".testfmt",), _nothing, "a test format")
    register(fmt)
    try:
        assert format_for("a/b.TESTFMT") is fmt
        assert format_for("b.jsonl", "testfmt") is fmt
        assert fmt in formats()
    finally:
        del registry._FORMATS["testfmt"]


def test_score_format_flag_with_an_unknown_name_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = score("--format", "nope", str(write(tmp_path, good_session())))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unknown input format 'nope' (known: arrow, jsonl, parquet)"
    ]


def test_score_reads_a_file_of_any_name_as_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.txt"
    path.write_text("\n".join(good_session()) + "\n")
    assert score("--format", "jsonl", str(path)).exit_code == 0
    assert score(str(path)).exit_code == 0


def test_a_line_that_is_not_utf8_is_located_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = good_session()
    path.write_bytes(("\n".join(lines[:3]) + "\n").encode() + b'{"session": "\xff"}\n'
                     + ("\n".join(lines[3:]) + "\n").encode())  # fmt: skip
    result = score(str(path))
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}:4: not UTF-8 text (byte 14 of the line)"
    skipped = score("--skip-invalid", str(path))
    assert skipped.exit_code == 0
    assert "skipped 1 invalid line(s)" in skipped.output


# ------------------------------------------------------------------------------------ workers


def _many_sessions(n: int) -> str:
    """`n` sessions, interleaved line by line."""
    sessions = [good_session(f"S{k}", speed=float(k % 15)) for k in range(n)]
    return "\n".join(s[j] for j in range(len(sessions[0])) for s in sessions) + "\n"


def _read(data: bytes, workers: int) -> tuple[list[Any], list[str]]:
    chunks = read_jsonl(io.BytesIO(data), scenario=SCENARIO, source="f.jsonl", skip_invalid=True,
                        workers=workers, block_bytes=2048)  # fmt: skip
    reports = score_chunks(COMPILED, chunks)
    return [r.to_data() for r in reports.reports], reports.problems


def test_workers_give_the_same_reports_and_problems_as_one_process() -> None:
    lines = _many_sessions(30).splitlines()
    bad = next(i for i in range(600, len(lines)) if '"seq"' in lines[i])  # one bad line, far in
    lines[bad] = lines[bad].replace('"seq": ', '"seq": -', 1)
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > 20 * 2048  # the workers do start (after SERIAL_BLOCKS blocks)
    one, two = _read(data, 1), _read(data, 2)
    assert one == two
    assert len(one[0]) == 30
    assert len(one[1]) == 1
    assert one[1][0].startswith(f"f.jsonl:{bad + 1}: 'seq' must be an integer")


def test_workers_stop_at_the_same_first_bad_line(tmp_path: Path) -> None:
    lines = _many_sessions(8).splitlines()
    lines[150] = "{oops"
    data = ("\n".join(lines) + "\n").encode()
    for workers in (1, 2):
        chunks = read_jsonl(io.BytesIO(data), scenario=SCENARIO, source="f.jsonl",
                            workers=workers, block_bytes=2048)  # fmt: skip
        with pytest.raises(EventsError, match=r"^f\.jsonl:151: not valid JSON"):
            score_chunks(COMPILED, chunks)


def test_score_workers_flag_keeps_the_output(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(_many_sessions(4))
    outputs = {score("--json", "--workers", n, str(path)).output for n in ("1", "2")}
    assert len(outputs) == 1
    assert score("--workers", "0", str(path)).exit_code == 2


def test_progress_goes_to_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Progress, "EVERY", 0.0)
    path = tmp_path / "events.jsonl"
    path.write_text(_many_sessions(3))
    result = score("--json", "--progress", str(path))
    assert result.exit_code == 0
    assert json.loads(result.stdout)["sessions"]
    assert result.stderr.splitlines()[-1].startswith("read 78 events, 3 sessions (")
