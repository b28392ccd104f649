"""Every command that reads an input file (a scenario, a rubric, a policy, a credential)
answers a malformed one the same way `rubric check` does: one ``FILE:LINE:COL: message`` line
per problem, exit status 2, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from assessengine.cli import main

LOCATED = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): \S", re.MULTILINE)
BAD_YAML = "scenario: x\ntitle: [1\n"
BAD_POLICY = "policy: p\n  bad: : x\n"
BAD_JSON = '{"a": 1,\n "b": }'


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


CASES = {
    "simulate a malformed scenario": ("scenario.yaml", BAD_YAML, ["simulate", "{file}"]),
    "simulate a scenario with a bad value": (
        "scenario.yaml",
        "scenario: x\ntitle: X\nsignals: {v: {unit: m, range: [0, 'a']}}\nevents: {}\n",
        ["simulate", "{file}"],
    ),
    "credential check a malformed policy": ("policy.yaml", BAD_POLICY,
                                            ["credential", "check", "{file}"]),
    "credential verify a malformed document": ("credential.json", BAD_JSON,
                                               ["credential", "verify", "{file}"]),
    "rubric check a malformed rubric": ("rubric.yaml", BAD_YAML, ["rubric", "check", "{file}"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_input_file_is_located_and_exits_2(tmp_path: Path, case: str) -> None:
    name, text, args = CASES[case]
    path = _file(tmp_path, name, text)
    result = CliRunner().invoke(main, [a.format(file=path) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    found = LOCATED.findall(result.output)
    assert found, result.output
    assert {file for file, _, _ in found} == {str(path)}
    assert all(int(line) >= 1 and int(col) >= 1 for _, line, col in found)


def test_credential_check_of_a_valid_policy_still_exits_0() -> None:
    shipped = Path(__file__).parents[1] / "credentials"
    files = sorted(shipped.glob("*.yaml"))
    assert files
    result = CliRunner().invoke(main, ["credential", "check", *map(str, files)])
    assert result.exit_code == 0, result.output
