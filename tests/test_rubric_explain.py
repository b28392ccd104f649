"""`rubric explain`: each criterion as a sentence from its template, critical ones marked, the
pass rule in words; Markdown and HTML; the same page served at /rubrics/{id}."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from assessengine.adapters.library import load_rubric, load_scenario
from assessengine.adapters.standards import schema_problems
from assessengine.api.app import create_app
from assessengine.cli import main
from assessengine.core.explain import explain, pass_rule
from assessengine.core.explain_render import STYLE_HASH, html_page, markdown
from assessengine.core.policy import Policy
from assessengine.core.rubric import Rubric
from assessengine.credential_service import EngineUrls

REPO = Path(__file__).resolve().parents[1]
FORKLIFT = REPO / "rubrics" / "forklift-load-handling.yaml"
SCENARIO = load_scenario(REPO / "scenarios" / "forklift-warehouse.yaml")


def _rule(**criterion: Any) -> str:
    rubric = Rubric.model_validate({
        "rubric": "r", "version": 1, "title": "R", "scenario": "forklift-warehouse",
        "criteria": [{"id": "c", "title": "C", **criterion}],
    })  # fmt: skip
    (text,) = explain(rubric, SCENARIO).criteria
    return text.rule


SENTENCES = [
    pytest.param({"never": "load > 50 and speed > 8", "for": "1s"},
                 "Never: load above 50 kg and speed above 8 km/h, for 1 s or longer.",
                 id="never-for"),
    pytest.param({"never": "speed > 12"}, "Never: speed above 12 km/h.", id="never"),
    pytest.param({"never": "8 < speed"}, "Never: speed above 8 km/h.", id="number-first"),
    pytest.param({"never": "load > 50 and speed > 1 and fork_height > 0.3", "for": 2,
                  "allow": 1},
                 "At most once: load above 50 kg and speed above 1 km/h and fork height above"
                 " 0.3 m, for 2 s or longer.", id="never-allow"),
    pytest.param({"always": "load <= 50 or (speed <= 1 and mast_tilt >= 1)", "for": "3s"},
                 "Always: load at most 50 kg or (speed at most 1 km/h and mast tilt at least"
                 " 1 deg) (a lapse shorter than 3 s is tolerated).", id="always-for"),
    pytest.param({"never": "between(speed, 2, 5) and not (load > 0)"},
                 "Never: speed between 2 and 5 km/h and not (load above 0 kg).",
                 id="between-and-not"),
    pytest.param({"never": "abs(mast_tilt) > 5"},
                 "Never: mast tilt (either direction) above 5 deg.", id="abs"),
    pytest.param({"all_before": {"events": ["inspect_tyres", "inspect_horn"],
                                 "before": "engine_start", "if_never": "not_applicable"}},
                 "Before “engine started”: “pre-operation check - tyres” and “pre-operation"
                 " check - horn and lights”, each at least once. If “engine started” never"
                 " happens, this is not assessed.", id="all-before"),
    pytest.param({"sequence": ["seatbelt_on", {"when": "speed > 0.5"}], "within": "10min"},
                 "In this order: “seatbelt fastened”, then speed above 0.5 km/h, all within"
                 " 10 min.", id="sequence-within"),
    pytest.param({"count": {"event": "collision", "max": 0}},
                 "Never: “contact with racking, load or person”.", id="count-max-0"),
    pytest.param({"count": {"event": "horn", "min": 4}}, "At least 4 times: “horn sounded”.",
                 id="count-min"),
    pytest.param({"count": {"when": "speed > 12", "max": 2}},
                 "At most twice: episodes of speed above 12 km/h.", id="count-when"),
    pytest.param({"count": {"event": "horn", "min": 1, "max": 3}},
                 "Between 1 and 3 times: “horn sounded”.", id="count-between"),
    pytest.param({"response": {"after": {"when": "pedestrian_distance < 5"},
                               "expect": {"when": "speed < 0.5"}, "within": "3s"}},
                 "Every time pedestrian distance below 5 m: speed below 0.5 km/h within 3 s"
                 " after it.", id="response"),
    pytest.param({"precede": {"event": "intersection_entered", "by": "horn", "within": "5s"}},
                 "Before each “the truck entered an aisle intersection”: “horn sounded”, at"
                 " most 5 s earlier.", id="precede-within"),
    pytest.param({"precede": {"event": "intersection_entered", "by": "horn"}},
                 "Before each “the truck entered an aisle intersection”: “horn sounded” (at"
                 " any time earlier).", id="precede"),
    pytest.param({"duration": {"from": "pallet_picked", "to": "pallet_placed", "max": "4min",
                               "min": "20s"}},
                 "From the first “a pallet was picked up” to the next “a pallet was set down”:"
                 " between 20 s and 4 min.", id="duration"),
    pytest.param({"metric": {"aggregate": "time_true", "of": "speed > 12",
                             "where": "load <= 50", "at_most": 10}},
                 "The total time with speed above 12 km/h (counting only while load at most"
                 " 50 kg): at most 10 s.", id="metric-time-true"),
    pytest.param({"metric": {"aggregate": "max", "of": "abs(mast_tilt)", "at_most": 6}},
                 "The highest mast tilt (either direction): at most 6 deg.", id="metric-max"),
    pytest.param({"metric": {"aggregate": "mean", "of": "speed", "at_least": 2,
                             "at_most": 9.5}},
                 "The average speed: between 2 km/h and 9.5 km/h.", id="metric-mean"),
    pytest.param({"observed": {"item": "Looks  over\nthe shoulder."}},
                 "An assessor watches and records: Looks over the shoulder.", id="observed"),
    pytest.param({"machine": {"initial": "clear", "at_end": "pass", "states": {
        "clear": [{"when": "pedestrian_distance < 5", "to": "near"}],
        "near": [{"on": "collision", "to": "fail"},
                 {"when": "speed > 3", "for": "1s", "to": "fail"},
                 {"after": "30s", "to": "clear"}]}}},
                 "Judged step by step, starting in state 'clear'. In state 'clear': pedestrian"
                 " distance below 5 m: on to 'near'. In state 'near': “contact with racking,"
                 " load or person”: it is failed; speed above 3 km/h for 1 s or longer: it is"
                 " failed; after 30 s in this state: on to 'clear'. If the session ends in"
                 " another state, it is met.", id="machine"),
]  # fmt: skip


@pytest.mark.parametrize(("criterion", "sentence"), SENTENCES)
def test_each_template_reads_as_one_sentence(criterion: dict[str, Any], sentence: str) -> None:
    assert _rule(**criterion) == sentence


def test_every_template_has_a_sentence_here() -> None:
    from assessengine.core.rubric import TEMPLATES  # noqa: PLC0415

    keys = {k for p in SENTENCES for k in p.values[0] if k in TEMPLATES}  # type: ignore[union-attr]
    assert keys == set(TEMPLATES)


def test_shipped_rubric_groups_criteria_by_competency_and_marks_critical_ones() -> None:
    rubric, scenario = load_rubric(FORKLIFT)
    e = explain(rubric, scenario)
    assert [c.code for c in e.competencies] == [c.code for c in rubric.competencies]
    assert [c.id for c in e.criteria] == [c.id for c in rubric.criteria]  # already in order
    assert {c.id for c in e.criteria if c.critical} == {c.id for c in rubric.criteria
                                                       if c.critical}  # fmt: skip
    loaded = "Never: load above 50 kg and speed above 8 km/h, for 1 s or longer."
    assert e.criteria[2].rule == loaded


def test_pass_rule_names_the_critical_count_the_points_and_the_threshold() -> None:
    rubric, _ = load_rubric(FORKLIFT)
    rule = pass_rule(rubric)
    assert rule[0].startswith("Every critical criterion (4, marked critical) must be met")
    assert "the 100 points of the other criteria" in rule[1]
    assert "at least 80 %" in rule[1]
    assert any("assessor" in line for line in rule)


def test_pass_rule_without_critical_criteria_or_assessor_items_says_only_the_score() -> None:
    rubric = Rubric.model_validate({"rubric": "r", "version": 1, "title": "R", "scenario": "s",
                                    "criteria": [{"id": "c", "title": "C", "never": "x > 1"}],
                                    "pass": {"min_score": 100}})  # fmt: skip
    assert pass_rule(rubric) == (
        "The score is the share of the 1 points of the other criteria that you earn; you need"
        " at least 100 %.",
    )


def test_markdown_lists_sections_tags_and_escapes_markdown() -> None:
    rubric, scenario = load_rubric(FORKLIFT)
    rubric = rubric.model_copy(update={"title": "Forklift *basics* [v1]"})
    text = markdown(explain(rubric, scenario))
    assert text.startswith("# Forklift \\*basics\\* \\[v1\\]\n")
    assert "## How you pass" in text
    assert "## MH-101: Pre-use inspection of a lift truck" in text
    assert "- **Loaded travel at or under 8 km/h** (20 points)  \n" in text
    assert "- **No contact with racking, loads or people** (critical)  \n" in text
    assert "(10 points, judged by an assessor)" in text


def test_html_escapes_what_the_trainer_wrote() -> None:
    rubric, scenario = load_rubric(FORKLIFT)
    rubric = rubric.model_copy(update={"title": '<script>alert("x")</script>'})
    page = html_page(explain(rubric, scenario))
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.count('<li class="criterion critical"') == 4


def test_style_hash_is_the_hash_of_the_pages_inline_style() -> None:
    rubric, scenario = load_rubric(FORKLIFT)
    (style,) = re.findall(r"<style>(.*?)</style>", html_page(explain(rubric, scenario)), re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"sha256-{digest}" == STYLE_HASH


# ----------------------------------------------------------------------------------------- CLI


def test_cli_prints_markdown_by_default() -> None:
    result = CliRunner().invoke(main, ["rubric", "explain", str(FORKLIFT)])
    assert result.exit_code == 0, result.output
    rubric, scenario = load_rubric(FORKLIFT)
    assert result.stdout == markdown(explain(rubric, scenario))


def test_cli_writes_html_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "f.html"
    args = ["rubric", "explain", str(FORKLIFT), "--format", "html", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert (result.exit_code, result.stdout) == (0, "")
    rubric, scenario = load_rubric(FORKLIFT)
    assert out.read_text(encoding="utf-8") == html_page(explain(rubric, scenario))


def test_cli_a_rubric_with_problems_prints_them_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "rubrics" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text(FORKLIFT.read_text(encoding="utf-8").replace('"load > 50 and speed > 8"',
                                                                '"lod > 50"'), encoding="utf-8")
    result = CliRunner().invoke(main, ["rubric", "explain", str(bad)])
    assert result.exit_code == 2
    assert re.fullmatch(rf"{re.escape(str(bad))}:\d+:\d+: unknown signal 'lod' \(did you mean"
                        r" 'load'\?\)\n", result.stdout)  # fmt: skip


def test_cli_refuses_an_unknown_format_with_exit_2() -> None:
    result = CliRunner().invoke(main, ["rubric", "explain", str(FORKLIFT), "--format", "pdf"])
    assert result.exit_code == 2
    assert "'pdf' is not one of 'md', 'html'" in result.stderr


# ------------------------------------------------------------------------------------ web page


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(db_path=tmp_path / "store.db")
    with TestClient(app) as http:
        yield http


def test_page_is_public_and_the_same_html_as_the_cli(client: TestClient) -> None:
    answer = client.get("/rubrics/forklift-load-handling")
    assert answer.status_code == 200
    rubric, scenario = load_rubric(FORKLIFT)
    assert answer.text == html_page(explain(rubric, scenario))
    csp = answer.headers["content-security-policy"]
    assert f"style-src '{STYLE_HASH}'" in csp
    assert "default-src 'none'" in csp


def test_page_of_a_version(client: TestClient) -> None:
    answer = client.get("/rubrics/forklift-load-handling", params={"version": 1})
    assert answer.status_code == 200
    assert 'data-version="1"' in answer.text


@pytest.mark.parametrize(
    ("url", "status"),
    [("/rubrics/no-such-rubric", 404), ("/rubrics/forklift-load-handling?version=99", 404),
     ("/rubrics/forklift-load-handling?version=0", 422),
     ("/rubrics/forklift-load-handling?version=x", 422)],
)  # fmt: skip
def test_unknown_rubric_or_version_is_a_4xx(client: TestClient, url: str, status: int) -> None:
    answer = client.get(url)
    assert answer.status_code == status
    if status == 404:
        assert "There is no published rubric" in answer.text


# ------------------------------------------------------------------------ credentials link here


def _policy(*rubrics: str) -> Policy:
    return Policy.model_validate({
        "policy": "p", "achievement": {"name": "N", "description": "D", "criteria": "Pass."},
        "requirements": [{"rubric": r, "source": "simulator"} for r in rubrics],
    })  # fmt: skip


def test_a_policy_of_one_rubric_has_the_rubric_page_as_its_criteria_id() -> None:
    urls = EngineUrls("https://engine.example.org")
    assert urls.criteria(_policy("forklift-load-handling")) == (
        "https://engine.example.org/rubrics/forklift-load-handling", "Pass.")


def test_a_policy_of_several_rubrics_links_each_page_in_its_narrative() -> None:
    url, narrative = EngineUrls("https://e.example").criteria(_policy("a-1", "b-2"))
    assert url is None
    assert narrative == ("Pass.\n\nThe rubrics in plain language: [a-1](https://e.example/rubrics"
                         "/a-1), [b-2](https://e.example/rubrics/b-2).")  # fmt: skip


def test_the_sample_credentials_criteria_page_is_served(client: TestClient) -> None:
    document = json.loads((REPO / "docs" / "sample-credential.json").read_text())
    criteria = document["credentialSubject"]["achievement"]["criteria"]
    path = urlsplit(criteria["id"]).path
    assert path == "/rubrics/forklift-load-handling"
    assert client.get(path).status_code == 200
    assert schema_problems(document) == ()
