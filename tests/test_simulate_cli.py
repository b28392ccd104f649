"""`assessengine simulate`: files, standard output, determinism, and refused options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assessengine.cli import main, simulate_cmd

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_writes_an_events_file_that_score_reads(tmp_path: Path) -> None:
    out = tmp_path / "ev.jsonl"
    code, _, err = run("network-lab", "--profile", "forgets-save", "-n", "3", "--seed", "4",
                       "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert "3 sessions" in err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sum("open" in r for r in lines) == sum("close" in r for r in lines) == 3
    result = CliRunner().invoke(
        main, ["score", "--json", "--rubric", str(ROOT / "rubrics" / "network-lab.yaml"), str(out)]
    )
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)["sessions"]
    assert [r["outcome"] for r in reports] == ["fail"] * 3


def test_same_seed_same_bytes_to_a_file_or_standard_output(tmp_path: Path) -> None:
    out = tmp_path / "ev.jsonl"
    args = ("haul-truck-surface", "-p", "mixed", "-n", "2", "--seed", "8", "--noise", "1",
            "--drop", "0.1", "--jitter", "0.05")  # fmt: skip
    assert run(*args, "--out", str(out))[0] == 0
    code, stdout, _ = run(*args, "--out", "-")
    assert code == 0
    assert out.read_text() == stdout


def test_long_runs_are_written_in_chunks_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, whole, _ = run("network-lab", "-p", "mixed", "-n", "5", "--seed", "2")
    assert code == 0
    monkeypatch.setattr(simulate_cmd, "CHUNK", 2)
    code, chunked, err = run("network-lab", "-p", "mixed", "-n", "5", "--seed", "2")
    assert code == 0
    assert chunked == whole
    assert "simulating 5 sessions" in err


def test_mix_and_rubric_options() -> None:
    code, stdout, _ = run("lhd-underground", "-p", "mixed", "--mix", "speeder=1", "-n", "2",
                          "--rubric", "lhd-night-shift")  # fmt: skip
    assert code == 0
    opens = [json.loads(x)["open"] for x in stdout.splitlines() if '"open"' in x]
    assert {o["profile"] for o in opens} == {"speeder"}
    assert {o["rubric"] for o in opens} == {"lhd-night-shift"}


def test_list_profiles_names_each_profile_and_what_it_breaks() -> None:
    code, stdout, _ = run("forklift-warehouse", "--list-profiles")
    assert code == 0
    assert "speeder" in stdout
    assert "loaded_speed, empty_speed" in stdout
    assert "mixed" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lhd-underground", "-p", "nobody"], "unknown profile 'nobody'"),
        (["lhd-underground", "--mix", "speeder=1"], "--mix goes with --profile mixed"),
        (["lhd-underground", "-p", "mixed", "--mix", "speeder"], "NAME=WEIGHT"),
        (["lhd-underground", "--drop", "1"], "--drop"),
        (["lhd-underground", "--connect", "tcp://127.0.0.1:1", "-o", "x.jsonl"], "leave out --out"),
        (["lhd-underground", "--rate", "realtime"], "--rate goes with --connect"),
        (["lhd-underground", "--encoding", "json-v1"], "--encoding goes with --connect"),
        (["lhd-underground", "--rate", "1"], "Invalid value for '--rate'"),
        (["no-such-scenario"], "not found"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    code, _, err = run(*args)
    assert code != 0
    assert message in err
