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


def _guide_test_file() -> str:
    """The rubric test file shown in docs/rubrics.md, "Testing your rubric"."""
    guide = (REPO / "docs" / "rubrics.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in guide.split("```yaml\n")[1:]]
    (block,) = [b for b in blocks if b.startswith("# rubrics/forklift-load-handling.tests.yaml")]
    return block


def _guide_failure_line() -> str:
    guide = (REPO / "docs" / "rubrics.md").read_text(encoding="utf-8")
    prefix = "rubrics/forklift-load-handling.tests.yaml:"
    (line,) = [x for x in guide.splitlines() if x.startswith(prefix) and "example '" in x]
    return line


def test_the_guides_test_file_passes_and_its_failure_reads_as_the_guide_says(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "rubrics"
    folder.mkdir()
    rubric = folder / "forklift-load-handling.yaml"
    rubric.write_text((REPO / "rubrics" / rubric.name).read_text(encoding="utf-8"),
                      encoding="utf-8")  # fmt: skip
    tests = path_of_tests(rubric)
    tests.write_text(_guide_test_file(), encoding="utf-8")
    result = run_rubric_tests(rubric, tests)
    assert (result.problems, result.failures) == ((), ())
    planted = _guide_test_file().replace(
        "{verdict: fail, t: 15.5, seq: 2}", "pass" + " " * 27, 1
    )
    tests.write_text(planted, encoding="utf-8")
    result = run_rubric_tests(rubric, tests)
    assert [str(f).replace(str(tmp_path) + "/", "") for f in result.failures] == [
        _guide_failure_line()
    ]
