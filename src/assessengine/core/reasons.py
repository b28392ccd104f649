"""Why a session has its outcome, in words: the reasons shown on the session page, listed in the
API's session answer (``reasons``) and carried by the xAPI statements.

Pure: criteria and an outcome in, reasons out. The reasons of an outcome follow the rules that
decided it (RUBRIC-LANGUAGE.md "Scoring and outcome"):

- ``fail``: every critical criterion that failed, by title; the score against the pass mark when
  it is (or, with the pending items passing, would still be) below it, with the non-critical
  criteria that failed;
- ``pass``: no critical criterion failed, and the score against the pass mark;
- ``incomplete``: every pending item (an observation awaited, a criterion not decided yet), and
  the score against the pass mark.

`change_reasons` adds who changed what (overrides and the observations that decided an item),
for an outcome that counts with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .report import finite

ReasonKind = Literal[
    "critical_failed", "below_pass_mark", "pass_mark_met", "pending", "override", "observation",
]


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason: its kind, the text for people, the criterion it names (if one)."""

    kind: ReasonKind
    text: str
    criterion: str | None = None

    def to_data(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "criterion": self.criterion}


@dataclass(frozen=True, slots=True)
class Item:
    """A criterion as the reasons see it: its final verdict, and whether it is `observed`."""

    id: str
    title: str
    critical: bool
    points: float
    verdict: str
    observed: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """An assessor's change: an override (`machine_verdict` given) or an observation."""

    criterion: str
    verdict: str
    by: str
    at: str
    text: str
    machine_verdict: str | None = None


def outcome_reasons(
    outcome: str, score: float | None, min_score: float | None, items: Sequence[Item]
) -> list[Reason]:
    """The reasons for `outcome`, given the criteria's final verdicts (see the module doc);
    `score` None (not a finite number) and `min_score` None (rubric unknown) leave the score
    out."""
    reasons: list[Reason] = []
    critical = [i for i in items if i.critical and i.verdict == "fail"]
    pending = [i for i in items if i.verdict == "pending"]
    failed = [i for i in items if not i.critical and i.verdict == "fail"]
    if outcome == "fail":
        reasons += [Reason("critical_failed", f"Critical criterion failed: {i.title}", i.id)
                    for i in critical]  # fmt: skip
        if score is not None and min_score is not None and (score < min_score or not critical):
            reasons.append(_below(score, min_score, failed, pending))
    elif outcome == "pass":
        text = "No critical criterion failed"
        if score is not None and min_score is not None:
            text += f"; score {_num(score)} reaches the pass mark {_num(min_score)}"
        reasons.append(Reason("pass_mark_met", text))
    else:
        reasons += [Reason("pending", _pending_text(i), i.id) for i in pending]
        if score is not None and min_score is not None:
            kind: ReasonKind = "pass_mark_met" if score >= min_score else "below_pass_mark"
            text = f"Score so far {_num(score)}, pass mark {_num(min_score)}"
            reasons.append(Reason(kind, text))
    return reasons


def _below(
    score: float, min_score: float, failed: Sequence[Item], pending: Sequence[Item]
) -> Reason:
    text = f"Score {_num(score)} is below the pass mark {_num(min_score)}"
    if pending and score >= min_score:
        text = f"Score {_num(score)} cannot reach the pass mark {_num(min_score)}"
    if failed:
        text += ": failed " + ", ".join(f"{i.title} ({_num(i.points)} points)" for i in failed)
    return Reason("below_pass_mark", text)


def _pending_text(item: Item) -> str:
    if item.observed:
        return f"Waiting for an assessor's observation: {item.title}"
    return f"Not decided yet: {item.title}"


def change_reasons(items: Sequence[Item], changes: Iterable[Change]) -> list[Reason]:
    """Who changed what: each override (the machine verdict it replaced, the reason) and each
    observation, by title, oldest first (as given)."""
    titles = {i.id: i.title for i in items}
    out: list[Reason] = []
    for ch in changes:
        title = titles.get(ch.criterion, ch.criterion)
        when = ch.at[:16].replace("T", " ")
        if ch.machine_verdict is not None:
            text = (f"{ch.by} overrode {title} ({_verdict(ch.machine_verdict)} by the scorer) "
                    f"to {_verdict(ch.verdict)} on {when}: {ch.text}")  # fmt: skip
            out.append(Reason("override", text, ch.criterion))
        else:
            text = f"{ch.by} observed {title}: {_verdict(ch.verdict)} on {when}: {ch.text}"
            out.append(Reason("observation", text, ch.criterion))
    return out


def report_reasons(report: Mapping[str, Any], min_score: float | None) -> list[Reason]:
    """`outcome_reasons` of a stored report (``SessionReport.to_data()`` shape), whose pending
    criteria of a closed session are the `observed` ones."""
    items = [
        Item(str(c["id"]), str(c["title"]), bool(c.get("critical")),
             _points(c.get("points")), str(c["verdict"]), observed=c["verdict"] == "pending")
        for c in report.get("criteria", [])
    ]  # fmt: skip
    return outcome_reasons(str(report["outcome"]), finite(report.get("score")), min_score, items)


def _points(value: object) -> float:
    number = finite(value)
    return 0.0 if number is None else number


def _verdict(verdict: str) -> str:
    return {"not_applicable": "not applicable"}.get(verdict, verdict)


def _num(value: float) -> str:
    return f"{value:.4g}"
