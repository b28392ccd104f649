"""The shipped rubrics' tests (`rubrics/NAME.tests.yaml`) pass on the kernel and the reference
scorer, and every criterion a shipped rubric decides passes in one example and fails in another
(every state and transition of its machines reached too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from assessengine.adapters.library import rubric_files
from assessengine.adapters.rubric_tests_file import path_of_tests, run_rubric_tests
from assessengine.cli import main

REPO = Path(__file__).resolve().parents[1]
SHIPPED = rubric_files(REPO / "rubrics")


def test_every_shipped_rubric_is_listed() -> None:
    assert [p.stem for p in SHIPPED] == [
        "forklift-load-handling",
        "haul-truck-surface",
        "lhd-underground",
        "network-lab",
    ]


@pytest.mark.parametrize("rubric", SHIPPED, ids=lambda p: p.stem)
def test_shipped_tests_pass_on_both_scorers_and_reach_everything(rubric: Path) -> None:
    result = run_rubric_tests(rubric, path_of_tests(rubric))
    assert not result.missing
    assert [str(p) for p in result.problems] == []
    assert [str(f) for f in result.failures] == []
    assert result.coverage is not None
    assert [str(g) for g in result.gaps] == []
    assert result.coverage.verdicts[0] == result.coverage.verdicts[1]


def test_rubric_check_checks_test_files_against_the_rubric_beside_them(tmp_path: Path) -> None:
    folder = tmp_path / "rubrics"
    folder.mkdir()
    source = REPO / "rubrics" / "network-lab.yaml"
    (folder / "network-lab.yaml").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    tests = folder / "network-lab.tests.yaml"
    tests.write_text("examples:\n  - {name: e, events: [[0, lab_strated]], outcome: pass}\n",
                     encoding="utf-8")  # fmt: skip
    orphan = folder / "gone.tests.yaml"
    orphan.write_text("examples: []\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["rubric", "check", str(tests), str(orphan)])
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        f"{tests}:2:28: unknown event 'lab_strated' (did you mean 'lab_started'?)",
        f"{orphan}:1:1: no rubric beside these tests (expected gone.yaml)",
    ]
