"""The input-format registry (`assessengine.inputs`) and `score --format`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from assessengine.core.recorded import Chunk
from assessengine.core.scenario import Scenario
from assessengine.errors import EventsError
from assessengine.inputs import InputFormat, format_for, formats, register, registry
from tests.test_score_cli import good_session, score, write


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
    stream: BinaryIO, *, scenario: Scenario, source: str, skip_invalid: bool
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
