"""`rubric diff`: recorded or stored sessions scored under two versions; a changed limit flips
known verdicts, shown with the evidence of both; different scenarios and misuse exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assessengine.cli import main
from assessengine.core.events import parse_events_lines
from assessengine.core.rubric import Rubric
from assessengine.core.rubric_diff import rubric_changes, scenario_mismatch
from assessengine.storage import open_store

from .test_api_support import _append

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"

RUBRIC = """\
rubric: speed-test
version: {version}
title: Speed test
scenario: {scenario}
criteria:
  - {{id: loaded_speed, title: Loaded speed, points: 10, never: "load > 50 and speed > {limit}",
     for: 1s}}
  - {{id: horn, title: Horn, points: 10, count: {{event: horn, min: 1}}}}
"""


def _session(sid: str, learner: str, speed: float) -> list[str]:
    """A session with a horn, then 3 s of loaded travel at `speed` (samples every 0.5 s)."""
    lines = [{"session": sid, "open": {"learner": learner, "scenario": "forklift-warehouse"}},
             {"session": sid, "seq": 0, "t": 0.0, "event": "horn"}]  # fmt: skip
    lines += [{"session": sid, "seq": k, "t": (k - 1) * 0.5, "event": "sample",
               "signals": {"load": 60.0, "speed": speed}} for k in range(1, 8)]  # fmt: skip
    lines.append({"session": sid, "close": {"t": 4.0}})
    return [json.dumps(line) for line in lines]


SESSIONS = [("S1", "L1", 7.5), ("S2", "L2", 6.0), ("S3", "L3", 9.0)]
# S1: v1 (limit 8) passes, v2 (limit 7) fails at t=1 (seq 3); S2 passes and S3 fails under both


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "rubrics"
    folder.mkdir()
    paths = {}
    for name, version, limit, scenario in [("v1", 1, 8, "forklift-warehouse"),
                                           ("v2", 2, 7, "forklift-warehouse"),
                                           ("haul", 3, 7, "haul-truck-surface")]:  # fmt: skip
        text = RUBRIC.format(version=version, limit=limit, scenario=scenario)
        if scenario != "forklift-warehouse":
            text = text.replace("load > 50 and ", "")
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(text, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(line for s in SESSIONS for line in _session(*s)) + "\n")
    paths["events"] = events
    return paths


def _run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["rubric", "diff", *map(str, args),
                                       "--scenarios", str(SCENARIOS)])  # fmt: skip
    return result.exit_code, result.stdout, result.stderr


EXPECTED_S1 = [
    "S1 (L1): pass 100.0 -> fail 50.0",
    "  loaded_speed: pass -> fail",
    "    before: pass at t=4 s (seq 7), window t=0-4 s; load 60, speed 7.5",
    "    after:  fail at t=1 s (seq 3), window t=0-1 s; load 60, speed 7.5",
]


def test_a_lower_limit_flips_the_known_verdict_with_the_evidence_of_both(
    files: dict[str, Path],
) -> None:
    code, out, _ = _run(files["v1"], files["v2"], "--events", files["events"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "speed-test v1 -> speed-test v2 (3 session(s) scored under both)"
    edit = "never 'load > 50 and speed > 8' -> 'load > 50 and speed > 7'"
    assert f"  criterion loaded_speed: {edit}" in lines
    start = lines.index(EXPECTED_S1[0])
    assert lines[start : start + 4] == EXPECTED_S1
    assert not any(line.startswith(("S2", "S3")) for line in lines)
    assert lines[-3:] == [
        "totals: 1 of 3 session(s) change, 1 verdict(s) change, 1 outcome(s) change",
        "  outcome pass -> fail: 1",
        "  loaded_speed: pass -> fail: 1",
    ]


def test_same_version_twice_changes_nothing(files: dict[str, Path]) -> None:
    code, out, _ = _run(files["v1"], files["v1"], "--events", files["events"])
    assert code == 0
    assert "  (none)" in out.splitlines()
    assert out.splitlines()[-1] == (
        "totals: 0 of 3 session(s) change, 0 verdict(s) change, 0 outcome(s) change")


def test_json_names_both_versions_and_each_changed_criterion(files: dict[str, Path]) -> None:
    code, out, _ = _run(files["v1"], files["v2"], "--events", files["events"], "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["old"]["version"], data["new"]["version"]) == (1, 2)
    assert (data["sessions"], data["changed_sessions"], data["changed_verdicts"]) == (3, 1, 1)
    (s1,) = data["changed"]
    assert s1["session"] == "S1"
    (change,) = s1["criteria"]
    assert (change["id"], change["before"]["verdict"], change["after"]["verdict"]) == (
        "loaded_speed", "pass", "fail")
    assert (change["after"]["evidence"]["t"], change["after"]["evidence"]["seq"]) == (1.0, 3)


def _stored(tmp_path: Path, files: dict[str, Path], url: str | None = None) -> str:
    """The sessions of the events file in a store (SQLite in `tmp_path`, or the store `url`),
    closed, as the engine stores them; the store's URL."""
    from assessengine.adapters.library import load_rubric  # noqa: PLC0415
    from assessengine.core.codec import Layout  # noqa: PLC0415

    rubric, scenario = load_rubric(files["v1"], scenario_dirs=(SCENARIOS,))
    parsed = parse_events_lines(files["events"].read_text().splitlines(), scenario=scenario)
    target = url or str(tmp_path / "engine.db")
    store = open_store(target)
    try:
        for s in parsed.sessions.values():
            _append(store, s, rubric.rubric, rubric.version, rubric.sha256(),  # type: ignore[arg-type]
                    scenario.scenario, Layout.of(scenario), False)  # fmt: skip
            store.close_session(s.session, s.end_t)
    finally:
        store.close()
    return target


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_stored_sessions_give_the_same_diff(
    tmp_path: Path, files: dict[str, Path], backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_store_url") if backend == "postgresql" else None
    db = _stored(tmp_path, files, url)
    code, out, _ = _run(files["v1"], files["v2"], "--db", db)
    assert code == 0
    lines = out.splitlines()
    start = lines.index(EXPECTED_S1[0])
    assert lines[start : start + 4] == EXPECTED_S1
    assert lines[-3] == "totals: 1 of 3 session(s) change, 1 verdict(s) change, 1 outcome(s) change"


def test_where_narrows_the_stored_sessions(tmp_path: Path, files: dict[str, Path]) -> None:
    db = _stored(tmp_path, files)
    code, out, _ = _run(files["v1"], files["v2"], "--db", db, "--where", "learner=L2")
    assert code == 0
    assert out.splitlines()[0].endswith("(1 session(s) scored under both)")
    assert out.splitlines()[-1].startswith("totals: 0 of 1 session(s) change")


def test_rubrics_of_different_scenarios_are_one_line_and_exit_2(files: dict[str, Path]) -> None:
    code, out, err = _run(files["v1"], files["haul"], "--events", files["events"])
    assert (code, out) == (2, "")
    assert err == (
        "error: the rubrics are for different scenarios: speed-test v1 is for"
        " 'forklift-warehouse', speed-test v3 for 'haul-truck-surface'; a diff compares"
        " versions of a rubric for the same scenario\n")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "give exactly one of --events FILE or --db URL"),
        (("--events", "E", "--db", "x.db"), "give exactly one of --events FILE or --db URL"),
        (("--events", "E", "--where", "learner=L1"), "--where goes with --db"),
        (("--db", "x.db", "--where", "colour=red"), "'colour=red': expected KEY=VALUE"),
        (("--db", "x.db", "--where", "version=two"), "a version is a whole number"),
    ],
)
def test_misuse_is_one_message_and_exit_2(
    files: dict[str, Path], extra: tuple[str, ...], message: str
) -> None:
    args = [a.replace("E", str(files["events"])) if a == "E" else a for a in extra]
    code, _, err = _run(files["v1"], files["v2"], *args)
    assert code == 2
    assert message in err


def test_a_missing_events_file_or_store_is_one_line_and_exit_2(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    code, _, err = _run(files["v1"], files["v2"], "--events", tmp_path / "none.jsonl")
    assert code == 2
    assert err.startswith("error: ")
    assert len(err.splitlines()) == 1
    code, _, err = _run(files["v1"], files["v2"], "--db", tmp_path / "none.db")
    assert (code, err) == (2, f"error: no store at {tmp_path / 'none.db'}\n")


def test_a_rubric_with_problems_prints_them_and_exits_2(files: dict[str, Path]) -> None:
    files["v2"].write_text(files["v2"].read_text().replace("speed > 7", "sped > 7"))
    code, out, _ = _run(files["v1"], files["v2"], "--events", files["events"])
    assert code == 2
    assert f"{files['v2']}:6:" in out
    assert "unknown signal 'sped'" in out


def test_rubric_changes_name_added_removed_and_edited_criteria() -> None:
    def rubric(version: int, criteria: list[dict[str, object]], min_score: int) -> Rubric:
        return Rubric.model_validate({"rubric": "r", "version": version, "title": "R",
                                      "scenario": "s", "criteria": criteria,
                                      "pass": {"min_score": min_score}})  # fmt: skip

    old = rubric(1, [{"id": "a", "title": "A", "never": "x > 1"},
                     {"id": "b", "title": "B", "count": {"event": "e", "max": 0}}], 80)
    new = rubric(2, [{"id": "b", "title": "B", "count": {"event": "e", "max": 1}},
                     {"id": "c", "title": "C", "always": "x < 3"}], 90)  # fmt: skip
    assert rubric_changes(old, new) == [
        "criterion a: removed", "criterion c: added", "criterion b: count.max 0 -> 1",
        "pass.min_score 80 -> 90",
    ]
    assert scenario_mismatch(old, new) is None


@pytest.mark.parametrize(
    ("where", "scored"),
    [
        (("since=2000-01-01",), 3),
        (("since=2000-01-01,until=2000-01-02",), 0),
        (("learner=L2,since=2000-01-01", "until=2999-01-01T00:00:00Z"), 1),
    ],
)
def test_where_takes_the_time_window_of_rescore_comma_separated_or_repeated(
    tmp_path: Path, files: dict[str, Path], where: tuple[str, ...], scored: int
) -> None:
    db = _stored(tmp_path, files)
    args = [a for w in where for a in ("--where", w)]
    code, out, err = _run(files["v1"], files["v2"], "--db", db, *args)
    assert code == 0, err
    assert out.splitlines()[0].endswith(f"({scored} session(s) scored under both)")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (("learner=L1", "learner=L2"), "--where learner: given twice ('L1', 'L2')"),
        (("since=2026-02-01,until=2026-01-01",), "until=2026-01-01 is not after since=2026-02-01"),
        (("since=yesterday",), "--where since 'yesterday': expected an ISO date"),
    ],
)
def test_a_bad_window_or_a_key_given_twice_is_one_message_and_exit_2(
    tmp_path: Path, files: dict[str, Path], where: tuple[str, ...], message: str
) -> None:
    args = [a for w in where for a in ("--where", w)]
    code, _, err = _run(files["v1"], files["v2"], "--db", tmp_path / "x.db", *args)
    assert code == 2
    assert message in err
