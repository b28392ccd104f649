"""Hypothesis strategies: random rubrics over every template and machine, and random sessions.

The scenario is small on purpose (three signals, four events) so that random conditions and
event streams collide often: equal times, missing and NaN signals, overlapping episodes.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from assessengine.core.duration import parse_duration
from assessengine.core.events import Event, SessionEvents
from assessengine.core.rubric import Rubric
from assessengine.core.scenario import Scenario

SCENARIO = Scenario.model_validate(
    {
        "scenario": "prop",
        "title": "Property-test scenario",
        "signals": {
            "x": {"unit": "1", "range": [0, 5]},
            "y": {"unit": "1", "range": [0, 5]},
            "z": {"unit": "1", "range": [-5, 5]},
        },
        "events": {"a": "A", "b": "B", "c": "C", "d": "D"},
    }
)
EVENTS = ("a", "b", "c", "d")
SIGNALS = ("x", "y", "z")
DURATIONS = st.sampled_from([0, 0.5, 1, 2, 3, "1.5s", "500ms"])
NUMBERS = st.sampled_from([0, 1, 2, 3, 1.5])

_num_atoms = st.one_of(st.sampled_from(SIGNALS), NUMBERS.map(str))


@st.composite
def numeric_exprs(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(_num_atoms)
    form = draw(st.sampled_from(["bin", "abs", "minmax", "neg"]))
    a = draw(numeric_exprs(depth - 1))
    if form == "abs":
        return f"abs({a})"
    if form == "neg":
        return f"-({a})"
    b = draw(numeric_exprs(depth - 1))
    if form == "minmax":
        return f"{draw(st.sampled_from(['min', 'max']))}({a}, {b})"
    return f"({a} {draw(st.sampled_from(['+', '-', '*', '/']))} {b})"


@st.composite
def conditions(draw: st.DrawFn, depth: int = 2) -> str:
    if depth == 0 or draw(st.integers(0, 2)) > 0:
        if draw(st.integers(0, 5)) == 0:
            lo, hi = sorted([draw(NUMBERS), draw(NUMBERS)])
            return f"between({draw(numeric_exprs(1))}, {lo}, {hi})"
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        return f"{draw(numeric_exprs(1))} {op} {draw(numeric_exprs(1))}"
    form = draw(st.sampled_from(["and", "or", "not"]))
    a = draw(conditions(depth - 1))
    if form == "not":
        return f"not ({a})"
    return f"({a}) {form} ({draw(conditions(depth - 1))})"


steps = st.one_of(st.sampled_from(EVENTS), conditions(1).map(lambda c: {"when": c}))


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def machines(draw: st.DrawFn) -> dict[str, Any]:
    names = [f"s{i}" for i in range(draw(st.integers(1, 3)))]
    targets = [*names, "pass", "fail"]
    states: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        transitions = []
        for _ in range(draw(st.integers(0, 3))):
            tr: dict[str, Any] = {"to": draw(st.sampled_from(targets))}
            kind = draw(st.sampled_from(["on", "when", "for", "after", "on+when", "after+on"]))
            if "on" in kind:
                tr["on"] = draw(st.sampled_from(EVENTS))
            if kind in ("when", "for", "on+when"):
                tr["when"] = draw(conditions(1))
            if kind == "for":
                tr["for"] = draw(DURATIONS)
            if "after" in kind:
                tr["after"] = draw(DURATIONS)
            transitions.append(tr)
        states[name] = transitions
    return {
        "initial": draw(st.sampled_from(names)),
        "at_end": draw(st.sampled_from(["pass", "fail"])),
        "states": states,
    }


@st.composite
def templates(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ["never", "always", "all_before", "sequence", "count", "response", "precede",
             "duration", "metric", "observed", "machine"]
        )
    )  # fmt: skip
    if kind in ("never", "always"):
        body: dict[str, Any] = {kind: draw(conditions())}
        if draw(st.booleans()):
            body["for"] = draw(DURATIONS)
        if draw(st.booleans()):
            body["allow"] = draw(st.integers(0, 2))
        return body
    if kind == "all_before":
        listed = draw(st.lists(st.sampled_from(EVENTS[:3]), min_size=1, max_size=3, unique=True))
        spec: dict[str, Any] = {"events": listed, "before": "d"}
        if draw(st.booleans()):
            spec["if_never"] = draw(st.sampled_from(["fail", "pass", "not_applicable"]))
        return {"all_before": spec}
    if kind == "sequence":
        body = {"sequence": draw(st.lists(steps, min_size=1, max_size=4))}
        if draw(st.booleans()):
            body["within"] = draw(DURATIONS)
        return body
    if kind == "count":
        spec = (
            {"event": draw(st.sampled_from(EVENTS))}
            if draw(st.booleans())
            else {"when": draw(conditions(1))}
        )
        low = draw(st.integers(0, 3))
        high = draw(_optional(st.integers(low, 4)))
        if high is None:
            low = max(low, 1)
        else:
            spec["max"] = high
        if low or high is None or draw(st.booleans()):
            spec["min"] = low
        return {"count": spec}
    if kind == "response":
        return {
            "response": {"after": draw(steps), "expect": draw(steps), "within": draw(DURATIONS)}
        }
    if kind == "precede":
        spec = {"event": draw(st.sampled_from(EVENTS)), "by": draw(steps)}
        if draw(st.booleans()):
            spec["within"] = draw(DURATIONS)
        return {"precede": spec}
    if kind == "duration":
        spec = {"from": draw(steps), "to": draw(steps)}
        bounds = draw(st.sampled_from(["min", "max", "both"]))
        lo, hi = sorted([draw(DURATIONS.map(_seconds)), draw(DURATIONS.map(_seconds))])
        if bounds in ("min", "both"):
            spec["min"] = lo
        if bounds in ("max", "both"):
            spec["max"] = hi
        return {"duration": spec}
    if kind == "metric":
        aggregate = draw(
            st.sampled_from(["max", "min", "mean", "sum", "last", "count", "time_true"])
        )
        of = draw(conditions(1)) if aggregate in ("count", "time_true") else draw(numeric_exprs())
        spec = {"aggregate": aggregate, "of": of}
        if draw(st.booleans()):
            spec["where"] = draw(conditions(1))
        bound = draw(st.sampled_from(["at_most", "at_least", "both"]))
        if bound in ("at_most", "both"):
            spec["at_most"] = draw(st.sampled_from([0, 1, 2, 3, 5, 10]))
        if bound in ("at_least", "both"):
            spec["at_least"] = draw(st.sampled_from([0, 1, 2, 3]))
        return {"metric": spec}
    if kind == "observed":
        return {"observed": {"item": "Checks the load chart"}}
    return {"machine": draw(machines())}


def _seconds(value: Any) -> float:
    return parse_duration(value)


@st.composite
def rubrics(draw: st.DrawFn) -> Rubric:
    criteria = []
    for i in range(draw(st.integers(1, 4))):
        crit = {"id": f"c{i}", "title": f"Criterion {i}", **draw(templates())}
        if draw(st.integers(0, 3)) == 0:
            crit["critical"] = True
        elif draw(st.booleans()):
            crit["points"] = draw(st.sampled_from([0, 1, 2, 5]))
        criteria.append(crit)
    return Rubric.model_validate(
        {
            "rubric": "prop-rubric",
            "version": 1,
            "title": "Generated",
            "scenario": "prop",
            "criteria": criteria,
            "pass": {"min_score": draw(st.sampled_from([0, 50, 70, 100]))},
        }
    )


VALUES = st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5, math.nan,
                          # extremes (arithmetic past the float range), -0.0, a decimal
                          1e308, -1e308, 5e-324, -0.0, 0.1])  # fmt: skip


@st.composite
def sessions(draw: st.DrawFn, name: str) -> SessionEvents:
    events = []
    t = draw(st.sampled_from([0.0, 0.0, 1.0]))
    for seq in range(draw(st.integers(0, 20))):
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 0.1, 0.2]))  # decimals too
        kind = draw(st.sampled_from(["sample", "sample", "sample", *EVENTS]))
        signals = {s: draw(VALUES) for s in SIGNALS if draw(st.integers(0, 2)) == 0}
        # NaN stays in: a reported NaN must count as not reported
        events.append(
            Event(seq=seq + draw(st.sampled_from([0, 0, 3])), t=t, event=kind, signals=signals)
        )
    close = None
    if draw(st.booleans()):
        close = t + draw(st.sampled_from([0.0, 0.5, 2.0, 10.0]))
    return SessionEvents(session=name, events=_increasing(events), close_t=close)


def _increasing(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for e in events:
        seq = out[-1].seq + 1 if out and e.seq <= out[-1].seq else e.seq
        out.append(Event(seq, e.t, e.event, e.signals))
    return out


@st.composite
def session_sets(draw: st.DrawFn) -> list[SessionEvents]:
    return [draw(sessions(f"S{i}")) for i in range(draw(st.integers(1, 3)))]
