"""`assessengine score`: output formats, engines, and how bad events files are reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assessengine.cli import main, score_cmd

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "rubrics" / "forklift-load-handling.yaml"


def line(**record: Any) -> str:
    return json.dumps(record)


def good_session(session: str = "S1", *, speed: float = 5.0) -> list[str]:
    events = ["inspect_tyres", "inspect_forks", "inspect_hydraulics", "inspect_horn",
              "seatbelt_on", "engine_start"]  # fmt: skip
    out = [line(session=session, open={"learner": "L1", "scenario": "forklift-warehouse"})]
    out += [line(session=session, seq=i, t=float(i), event=e) for i, e in enumerate(events)]
    out += [
        line(session=session, seq=6 + i, t=6.0 + i / 10, event="sample",
             signals={"speed": speed, "load": 0.0, "fork_height": 0.1})
        for i in range(20)
    ]  # fmt: skip
    out.append(line(session=session, close={"t": 9.0}))
    return out


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def score(*args: str) -> Any:
    return CliRunner().invoke(main, ["score", "--rubric", str(RUBRIC), *args])


def test_json_report_has_the_documented_shape(tmp_path: Path) -> None:
    result = score("--json", str(write(tmp_path, good_session())))
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)["sessions"]
    assert set(report) == {"session", "rubric", "rubric_version", "rubric_sha256", "outcome",
                           "score", "criteria"}  # fmt: skip
    assert report["session"] == "S1"
    assert report["rubric"] == "forklift-load-handling"
    assert len(report["rubric_sha256"]) == 64
    first = report["criteria"][0]
    assert set(first) == {"id", "title", "critical", "points", "verdict", "evidence"}
    assert {"seq", "t", "t_start", "t_end", "seq_start", "seq_end", "values"} <= set(
        first["evidence"]
    )


def test_reference_engine_prints_the_same_json(tmp_path: Path) -> None:
    events = str(write(tmp_path, good_session("A") + good_session("B", speed=14.0)))
    kernel = score("--json", events)
    reference = score("--json", "--reference", events)
    assert kernel.exit_code == reference.exit_code == 0
    assert json.loads(kernel.output) == json.loads(reference.output)


def test_table_lists_each_session_with_outcome_and_score(tmp_path: Path) -> None:
    result = score(str(write(tmp_path, good_session("A") + good_session("B", speed=14.0))))
    assert result.exit_code == 0
    rows = {ln.split()[0]: ln.split() for ln in result.output.splitlines()[1:3]}
    assert set(rows) == {"A", "B"}
    assert rows["B"][1] in ("fail", "incomplete")
    assert "2 session(s)" in result.output


def test_the_table_ends_with_the_failed_sessions_of_each_criterion(tmp_path: Path) -> None:
    events = str(write(tmp_path, good_session("A") + good_session("B", speed=14.0)
                       + good_session("C", speed=14.0)))  # fmt: skip
    reports = json.loads(score("--json", events).output)["sessions"]
    failed: dict[str, int] = {}
    for report in reports:
        for criterion in report["criteria"]:
            if criterion["verdict"] == "fail":
                failed[criterion["id"]] = failed.get(criterion["id"], 0) + 1
    assert failed, reports
    last = score(events).output.rstrip().splitlines()[-1]
    ranked = sorted(failed, key=lambda cid: (-failed[cid], cid))  # most failed first
    expected = ", ".join(f"{cid} ({failed[cid]})" for cid in ranked)
    assert last == f"failed sessions per criterion: {expected}"


def test_a_session_without_close_closes_at_its_last_event(tmp_path: Path) -> None:
    lines = [ln for ln in good_session() if '"close"' not in ln]
    (report,) = json.loads(score("--json", str(write(tmp_path, lines))).output)["sessions"]
    ends = {c["evidence"]["t"] for c in report["criteria"] if c["verdict"] != "pending"}
    assert max(ends) == pytest.approx(7.9)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "events.jsonl:3: not valid JSON"),
        (line(session="S1", t=1.0, event="horn"), "events.jsonl:3: missing field 'seq'"),
        (line(session="S1", seq=0, t=5.0, event="horn"), "events.jsonl:3: seq 0 does not increase"),
        (line(session="S1", seq=9, t=-1.0, event="horn"), "events.jsonl:3: 't' must be >= 0"),
        (line(session="S1", seq=9, t=0.5, event="honk"), "events.jsonl:3: unknown event 'honk'"),
        (line(session="S1", seq=9, t=0.5, event="sample", signals={"sped": 1}),
         "events.jsonl:3: unknown signal 'sped'"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_named_and_exits_2(tmp_path: Path, bad: str, message: str) -> None:
    lines = good_session()
    lines.insert(2, bad)
    result = CliRunner().invoke(
        main, ["score", "--rubric", str(RUBRIC), str(write(tmp_path, lines))]
    )
    assert result.exit_code == 2
    assert message in result.output


def test_t_going_backwards_is_refused(tmp_path: Path) -> None:
    lines = good_session()
    lines.insert(8, line(session="S1", seq=100, t=0.5, event="horn"))
    result = score(str(write(tmp_path, lines)))
    assert result.exit_code == 2
    assert "events.jsonl:9: t 0.5 goes backwards" in result.output


def test_skip_invalid_skips_and_counts_bad_lines(tmp_path: Path) -> None:
    lines = good_session()
    lines[3:3] = ["{oops", line(session="S1", seq=0, t=9.0, event="horn")]
    result = score("--skip-invalid", "--json", str(write(tmp_path, lines)))
    assert result.exit_code == 0
    assert "skipped 2 invalid line(s)" in result.output


def test_events_for_another_scenario_are_refused(tmp_path: Path) -> None:
    lines = [line(session="S1", open={"learner": "L", "scenario": "network-lab"})]
    result = score(str(write(tmp_path, lines)))
    assert result.exit_code == 2
    assert "network-lab" in result.output


def test_console_script_scores_from_stdin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "assessengine", "score", "--rubric", str(RUBRIC), "--json", "-"],
        input="\n".join(good_session()) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sessions"][0]["session"] == "S1"


@pytest.mark.parametrize(("cores", "expected"), [(None, 1), (1, 1), (2, 1), (8, 7)])
def test_score_parses_on_the_cores_the_scoring_leaves_by_default(
    monkeypatch: pytest.MonkeyPatch, cores: int | None, expected: int
) -> None:
    """On 2 cores two parsing processes ran at 0.58x one (docs/performance.md): the default
    leaves one core to the scoring."""
    monkeypatch.setattr(score_cmd.os, "cpu_count", lambda: cores)
    assert score_cmd.default_workers() == expected


def test_score_waits_for_the_fused_step_after_reading_before_scoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first `score` run: the rubric's fused step compiles (asked for before the reading)
    while the first chunk is read; the first chunk is scored only once the step is ready,
    so that a small input read before the step is ready does not compile the table-driven
    kernel as well (35 -> 14 s on a first run, docs/performance.md)."""
    from assessengine.core import offline  # noqa: PLC0415

    calls: list[str] = []
    real_read, real_add = score_cmd.read_input, offline._Run.add

    def read_input(*args: Any, **kwargs: Any) -> Any:
        for chunk in real_read(*args, **kwargs):
            calls.append("read")
            yield chunk

    def wait_for(rubrics: Any) -> int:
        calls.append(f"wait for {[c.rubric.rubric for c in rubrics]}")
        return 0

    def add(self: Any, chunk: Any) -> None:
        calls.append("scored")
        real_add(self, chunk)

    monkeypatch.setattr(score_cmd, "read_input", read_input)
    monkeypatch.setattr(score_cmd.fused, "wait_for", wait_for)
    monkeypatch.setattr(offline._Run, "add", add)
    events = write(tmp_path, good_session("S1") + good_session("S2"))
    result = CliRunner().invoke(main, ["score", "--rubric", str(RUBRIC), "--json", str(events)])
    assert result.exit_code == 0, result.output
    assert calls[:3] == ["read", "wait for ['forklift-load-handling']", "scored"]
    assert calls.count("wait for ['forklift-load-handling']") == 1


def test_fused_step_first_waits_once_and_not_for_an_empty_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[object] = []
    monkeypatch.setattr(score_cmd.fused, "wait_for", waits.append)
    compiled: Any = object()
    assert list(score_cmd.fused_step_first(iter([]), compiled)) == []
    assert waits == []
    assert list(score_cmd.fused_step_first(iter(["a", "b", "c"]), compiled)) == ["a", "b", "c"]
    assert waits == [[compiled]]
