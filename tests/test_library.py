"""Finding and loading scenarios and rubrics; problems located in the right file."""

from __future__ import annotations

from pathlib import Path

import pytest

import assessengine
from assessengine.adapters.library import (
    check_rubric_file,
    find_scenario,
    list_scenarios,
    load_rubric,
    load_scenario,
    search_path,
)
from assessengine.errors import RubricError, ScenarioError

REPO = Path(__file__).resolve().parents[1]

MINI = """\
scenario: mini
title: Mini
signals:
  speed: {unit: km/h, range: [0, 20]}
events:
  horn: Horn
"""

RUBRIC = """\
rubric: r
version: 1
title: R
scenario: mini
criteria:
  - {id: c, title: C, never: speed > 8}
"""


def _file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_scenarios_dir_beside_the_rubrics_dir_is_searched_first(tmp_path: Path) -> None:
    _file(tmp_path / "project" / "scenarios" / "mini.yaml", MINI)
    _file(tmp_path / "elsewhere" / "mini.yaml", MINI.replace("speed:", "load:"))
    rubric_path = _file(tmp_path / "project" / "rubrics" / "r.yaml", RUBRIC)
    rubric, scenario = load_rubric(rubric_path, scenario_dirs=(tmp_path / "elsewhere",))
    assert rubric.scenario == scenario.scenario == "mini"
    assert set(scenario.signals) == {"speed"}


def test_given_scenario_dirs_are_searched_when_there_is_no_sibling_dir(tmp_path: Path) -> None:
    _file(tmp_path / "lib" / "mini.yaml", MINI)
    rubric_path = _file(tmp_path / "r.yaml", RUBRIC)
    _, scenario = load_rubric(rubric_path, scenario_dirs=(tmp_path / "lib",))
    assert scenario.title == "Mini"


def test_shipped_scenarios_are_found_from_anywhere(tmp_path: Path) -> None:
    rubric_path = _file(tmp_path / "r.yaml", RUBRIC.replace("mini", "forklift-warehouse"))
    _, scenario = load_rubric(rubric_path)
    assert scenario.scenario == "forklift-warehouse"


def test_the_bundled_or_repository_scenarios_are_on_the_search_path() -> None:
    places = [Path(str(p)) for p in search_path()]
    package = Path(assessengine.__file__).parent
    editable = package.parent.name == "src"
    expected = REPO / "scenarios" if editable else package / "_data" / "scenarios"
    assert expected in places


def test_search_path_order_and_no_missing_dirs(tmp_path: Path) -> None:
    sibling = tmp_path / "scenarios"
    given = tmp_path / "given"
    sibling.mkdir()
    given.mkdir()
    places = search_path(
        rubric_path=tmp_path / "rubrics" / "r.yaml",
        scenario_dirs=(given, tmp_path / "absent", sibling),
    )
    assert places[:2] == [sibling, given]
    assert tmp_path / "absent" not in places


def test_list_scenarios_includes_bundled_and_given_ones(tmp_path: Path) -> None:
    _file(tmp_path / "mini.yaml", MINI)
    _file(tmp_path / "notes.txt", "not a scenario")
    assert {"forklift-warehouse", "mini"} <= set(list_scenarios(scenario_dirs=(tmp_path,)))
    assert "notes" not in list_scenarios(scenario_dirs=(tmp_path,))


def test_load_scenario_by_id_and_by_path(tmp_path: Path) -> None:
    path = _file(tmp_path / "mini.yaml", MINI)
    assert load_scenario("mini", scenario_dirs=(tmp_path,)).title == "Mini"
    assert load_scenario(path).title == "Mini"
    assert load_scenario(str(path)).title == "Mini"
    assert load_scenario("forklift-warehouse").signals["speed"].unit == "km/h"


def test_an_unknown_scenario_id_names_the_places_searched(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"scenario 'nope' not found \(searched: .*scenarios"):
        find_scenario("nope", scenario_dirs=(tmp_path,))


def test_an_invalid_scenario_file_gives_located_problems(tmp_path: Path) -> None:
    path = _file(tmp_path / "mini.yaml", MINI.replace("range: [0, 20]", "range: [20, 0]", 1))
    path.write_text(path.read_text() + "  hron: Horn\nsignal: x\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value).splitlines() == [
        f"{path}:4:10: range must be [low, high] with low <= high",
        f"{path}:8:1: unknown key 'signal' (did you mean 'signals'?)",
    ]


def test_a_rubric_on_an_invalid_scenario_reports_both_files(tmp_path: Path) -> None:
    scenario_path = _file(tmp_path / "scenarios" / "mini.yaml", MINI.replace("title: Mini\n", ""))
    rubric_path = _file(tmp_path / "rubrics" / "r.yaml", RUBRIC)
    with pytest.raises(RubricError) as caught:
        load_rubric(rubric_path)
    assert [str(p) for p in caught.value.problems] == [
        f"{rubric_path}:4:11: scenario 'mini' is invalid (see {scenario_path})",
        f"{scenario_path}:1:1: missing required key 'title'",
    ]


def test_an_unknown_scenario_lists_the_known_ones(tmp_path: Path) -> None:
    _file(tmp_path / "scenarios" / "mini.yaml", MINI)
    rubric_path = _file(tmp_path / "rubrics" / "r.yaml", RUBRIC.replace("mini", "crane-yard"))
    result = check_rubric_file(rubric_path)
    known = sorted({*list_scenarios(), "mini"})
    assert "forklift-warehouse" in known
    assert [str(p) for p in result.problems] == [
        f"{rubric_path}:4:11: unknown scenario 'crane-yard'; known scenarios: "
        f"{', '.join(known)} (add a directory with --scenarios DIR)"
    ]
    assert result.rubric is not None
    assert not result.ok


def test_a_scenario_file_declaring_another_id_is_a_rubric_problem(tmp_path: Path) -> None:
    _file(tmp_path / "scenarios" / "mini.yaml", MINI.replace("scenario: mini", "scenario: midi"))
    rubric_path = _file(tmp_path / "rubrics" / "r.yaml", RUBRIC)
    assert [str(p) for p in check_rubric_file(rubric_path).problems] == [
        f"{rubric_path}:4:11: this rubric is for scenario 'mini', but the scenario found is 'midi'"
    ]


def test_an_unreadable_rubric_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("title: caf\xe9\n".encode("latin-1"))
    assert [str(p) for p in check_rubric_file(path).problems] == [
        f"{path}:1:1: cannot read: the file is not UTF-8 text"
    ]
