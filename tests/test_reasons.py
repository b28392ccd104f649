"""Why a session has its outcome, in words (`core.reasons`), and how the session page reads
evidence stored before its newer fields existed."""

from __future__ import annotations

from assessengine.api import session_view
from assessengine.api.service.models import CriterionOut
from assessengine.core.reasons import Change, Item, change_reasons, outcome_reasons, report_reasons


def _items(**verdicts: str) -> list[Item]:
    """Criteria a (critical), b (30 points), c (70 points), o (observed, 10 points)."""
    spec = {"a": (True, 0.0, False), "b": (False, 30.0, False), "c": (False, 70.0, False),
            "o": (False, 10.0, True)}  # fmt: skip
    return [Item(k, f"Title {k.upper()}", crit, pts, verdicts.get(k, "pass"), observed=obs)
            for k, (crit, pts, obs) in spec.items()]  # fmt: skip


def test_a_failed_critical_criterion_is_named_by_its_title() -> None:
    reasons = outcome_reasons("fail", 100.0, 80.0, _items(a="fail"))
    assert [(r.kind, r.text, r.criterion) for r in reasons] == [
        ("critical_failed", "Critical criterion failed: Title A", "a")
    ]


def test_a_score_below_the_pass_mark_names_the_failed_criteria_with_their_points() -> None:
    reasons = outcome_reasons("fail", 70.0, 80.0, _items(b="fail"))
    assert [r.text for r in reasons] == [
        "Score 70 is below the pass mark 80: failed Title B (30 points)"
    ]


def test_critical_and_score_reasons_both_appear_when_both_failed() -> None:
    reasons = outcome_reasons("fail", 30.0, 80.0, _items(a="fail", c="fail"))
    assert [r.kind for r in reasons] == ["critical_failed", "below_pass_mark"]


def test_a_pass_says_no_critical_failed_and_the_score_against_the_pass_mark() -> None:
    (reason,) = outcome_reasons("pass", 90.0, 80.0, _items())
    assert reason.text == "No critical criterion failed; score 90 reaches the pass mark 80"


def test_an_incomplete_outcome_lists_each_pending_item() -> None:
    reasons = outcome_reasons("incomplete", 90.0, 80.0, _items(o="pending", b="pending"))
    assert [r.text for r in reasons] == [
        "Not decided yet: Title B",
        "Waiting for an assessor's observation: Title O",
        "Score so far 90, pass mark 80",
    ]


def test_a_score_that_cannot_reach_the_pass_mark_says_so() -> None:
    reasons = outcome_reasons("fail", 85.0, 80.0, _items(b="fail", o="pending"))
    assert reasons[0].text.startswith("Score 85 cannot reach the pass mark 80")


def test_an_unknown_pass_mark_leaves_the_score_out() -> None:
    assert outcome_reasons("pass", 90.0, None, _items())[0].text == "No critical criterion failed"


def test_overrides_and_observations_say_who_changed_what_and_when() -> None:
    changes = [
        Change("a", "pass", "Sam Okafor", "2026-12-06T10:15:02Z", "sensor fault",
               machine_verdict="fail"),
        Change("o", "pass", "Ana Lima", "2026-12-06T10:20:00Z", "looked both times"),
    ]  # fmt: skip
    texts = [r.text for r in change_reasons(_items(), changes)]
    assert texts == [
        "Sam Okafor overrode Title A (fail by the scorer) to pass on 2026-12-06 10:15: "
        "sensor fault",
        "Ana Lima observed Title O: pass on 2026-12-06 10:20: looked both times",
    ]


def test_a_stored_report_with_a_non_finite_score_still_gives_reasons() -> None:
    report = {"outcome": "fail", "score": float("nan"), "criteria": [
        {"id": "a", "title": "Gate", "critical": True, "points": 0, "verdict": "fail"}]}
    assert [r.text for r in report_reasons(report, 80.0)] == ["Critical criterion failed: Gate"]


def test_evidence_of_an_older_report_without_contributing_is_shown_as_its_interval() -> None:
    old = CriterionOut.model_validate({
        "id": "empty_speed", "title": "Empty travel", "competency": None, "critical": False,
        "points": 10.0, "template": "metric", "scorer_verdict": "fail", "verdict": "fail",
        "decided_by": "scorer", "observation": None, "override": None, "final_verdict": "fail",
        "evidence": {"seq": 9, "t": 60.0, "t_start": 0.0, "t_end": 60.0, "seq_start": 0,
                     "seq_end": 9, "values": {"speed": 3.0}, "measured": 12.5},
    })  # fmt: skip
    row = session_view._row("S1", 4, old)
    assert row is not None
    assert (row.spans, row.t_start, row.t_end, row.number) == ([], 0.0, 60.0, 4)
    view = session_view.criterion_view("S1", 4, old, None, {})
    assert view["interval"] == "0:00.0 - 1:00.0 (60.0 s)"
    assert view["zoom"] == "/sessions/S1?zoom=empty_speed#timeline"
