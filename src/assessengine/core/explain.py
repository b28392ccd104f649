"""A rubric in plain language, for learners: each criterion as a sentence from its template.

`explain(rubric, scenario)` turns a checked rubric into an `Explanation`: the competencies, per
criterion its title, one rule sentence generated from the template (``never: "load > 50 and
speed > 8"`` with ``for: 1s`` reads "Never: load above 50 kg and speed above 8 km/h, for 1 s or
longer."), whether it is critical, its points, and how the pass is decided. Signals are named
in words with their units from the scenario, events by the scenario's description of them.
Rendering to Markdown or HTML is `core.explain_render`. Pure: data in, data out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from .expr import Arith, Call, Compare, Expr, Logic, Name, Neg, Node, Not, Num
from .model import Step
from .rubric import Count, Criterion, Machine, Metric, Rubric, Transition
from .scenario import SAMPLE, Scenario


@dataclass(frozen=True, slots=True)
class CriterionText:
    """One criterion as a learner reads it."""

    id: str
    title: str
    rule: str            # the sentence generated from the template
    critical: bool
    points: float        # weight in the score (0 for critical criteria)
    competency: str | None
    observed: bool       # judged by an assessor, not by the machine


@dataclass(frozen=True, slots=True)
class CompetencyText:
    code: str
    name: str
    criteria: tuple[CriterionText, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """A rubric in plain language: criteria grouped by competency (in the rubric's order of
    competencies; criteria without one last, under `other`), and the pass rule in words."""

    rubric: str
    version: int
    title: str
    description: str
    scenario_title: str
    competencies: tuple[CompetencyText, ...]
    other: tuple[CriterionText, ...]
    pass_rule: tuple[str, ...]

    @property
    def criteria(self) -> tuple[CriterionText, ...]:
        return (*(c for comp in self.competencies for c in comp.criteria), *self.other)


def explain(rubric: Rubric, scenario: Scenario) -> Explanation:
    """The plain-language explanation of `rubric` (valid for `scenario`)."""
    words = _Words(scenario)
    texts = [_criterion(c, words) for c in rubric.criteria]
    groups = tuple(
        CompetencyText(comp.code, comp.name, tuple(t for t in texts if t.competency == comp.code))
        for comp in rubric.competencies
    )
    codes = {comp.code for comp in rubric.competencies}
    return Explanation(
        rubric=rubric.rubric, version=rubric.version, title=rubric.title,
        description=rubric.description.strip(), scenario_title=scenario.title,
        competencies=groups, other=tuple(t for t in texts if t.competency not in codes),
        pass_rule=pass_rule(rubric),
    )  # fmt: skip


def pass_rule(rubric: Rubric) -> tuple[str, ...]:
    """How the outcome is decided, one sentence per line."""
    critical = [c for c in rubric.criteria if c.critical]
    scored = [c for c in rubric.criteria if not c.critical]
    total = sum(c.weight for c in scored)
    lines = []
    if critical:
        lines.append(
            f"Every critical criterion ({len(critical)}, marked critical) must be met: failing"
            " one fails the session, whatever the score."
        )
    if scored:
        need = _number(rubric.pass_.min_score)
        lines.append(
            f"The score is the share of the {_number(total)} points of the other criteria that"
            f" you earn; you need at least {need} %."
        )
    if any(_may_not_apply(c) for c in scored):
        lines.append(
            "A criterion that does not apply to your session (for example, a timed task you"
            " were not given) counts neither for nor against you."
        )
    if any(c.observed is not None for c in rubric.criteria):
        lines.append(
            "Criteria judged by an assessor are decided when the assessor records them; until"
            " then the result is incomplete."
        )
    return tuple(lines)


def _may_not_apply(c: Criterion) -> bool:
    if c.all_before is not None:
        return c.all_before.if_never == "not_applicable"
    return c.duration is not None or c.metric is not None


# ==================================================================================== criteria


def _criterion(c: Criterion, words: _Words) -> CriterionText:
    return CriterionText(
        id=c.id, title=c.title, rule=_rule(c, words), critical=c.critical, points=c.weight,
        competency=c.competency, observed=c.observed is not None,
    )  # fmt: skip


def _rule(c: Criterion, w: _Words) -> str:
    if c.never is not None or c.always is not None:
        return _episodes(c, w)
    if c.all_before is not None:
        t = c.all_before
        listed = _join([w.event(e) for e in t.events], "and")
        text = f"Before {w.event(t.before)}: {listed}, each at least once."
        if t.if_never != "fail":
            result = "met" if t.if_never == "pass" else "not assessed"
            text += f" If {w.event(t.before)} never happens, this is {result}."
        return text
    if c.sequence is not None:
        steps = ", then ".join(w.step(s) for s in c.sequence)
        within = f", all within {_duration(c.within)}" if c.within is not None else ""
        return f"In this order: {steps}{within}."
    if c.count is not None:
        return _count(c.count, w)
    if c.response is not None:
        r = c.response
        return (f"Every time {w.step(r.after)}: {w.step(r.expect)} within"
                f" {_duration(r.within)} after it.")  # fmt: skip
    if c.precede is not None:
        p = c.precede
        when = (f", at most {_duration(p.within)} earlier" if p.within is not None
                else " (at any time earlier)")  # fmt: skip
        return f"Before each {w.event(p.event)}: {w.step(p.by)}{when}."
    if c.duration is not None:
        d = c.duration
        bounds = _bounds(d.min, d.max, _duration)
        return f"From the first {w.step(d.from_)} to the next {w.step(d.to)}: {bounds}."
    if c.metric is not None:
        return _metric(c.metric, w)
    if c.observed is not None:
        return f"An assessor watches and records: {' '.join(c.observed.item.split())}"
    assert c.machine is not None  # one template is set (the model guarantees it)
    return _machine(c.machine, w)


def _episodes(c: Criterion, w: _Words) -> str:
    if c.never is not None:
        head, cond = "Never", w.condition(c.never)
    else:
        assert c.always is not None
        head, cond = "Always", w.condition(c.always)
    allow = c.allow or 0
    if c.for_:
        span = _duration(c.for_)
        tail = f", for {span} or longer" if c.never is not None else (
            f" (a lapse shorter than {span} is tolerated)")  # fmt: skip
    else:
        tail = ""
    if allow and c.never is not None:
        return f"At most {_times(allow)}: {cond}{tail}."
    text = f"{head}: {cond}{tail}."
    if allow:
        text += f" Up to {_times(allow)} this may lapse."
    return text


def _count(t: Count, w: _Words) -> str:
    what = w.event(t.event) if t.event is not None else (
        f"episodes of {w.condition(t.when)}" if t.when is not None else "")  # fmt: skip
    if t.max == 0:
        return f"Never: {what}." if t.event is not None else f"No {what}."
    if t.min is not None and t.max is not None:
        if t.min == t.max:
            return f"Exactly {_times(t.min)}: {what}."
        return f"Between {t.min} and {_times(t.max)}: {what}."
    if t.max is not None:
        return f"At most {_times(t.max)}: {what}."
    return f"At least {_times(t.min or 0)}: {what}."


_AGGREGATES = {
    "max": "The highest {of}", "min": "The lowest {of}", "mean": "The average {of}",
    "sum": "The sum of {of}", "last": "The final {of}",
    "count": "The number of samples with {of}", "time_true": "The total time with {of}",
}  # fmt: skip


def _metric(m: Metric, w: _Words) -> str:
    of = w.condition(m.of) if m.of.kind == "bool" else w.value(m.of)
    head = _AGGREGATES[m.aggregate].format(of=of)
    if m.where is not None:
        head += f" (counting only while {w.condition(m.where)})"
    unit = w.unit_of(m.of) if m.aggregate not in ("count", "time_true") else ""

    def fmt(x: float) -> str:
        if m.aggregate == "time_true":
            return _duration(x)
        return _with_unit(_number(x), unit)

    return f"{head}: {_bounds(m.at_least, m.at_most, fmt)}."


def _machine(m: Machine, w: _Words) -> str:
    parts = [f"Judged step by step, starting in state '{m.initial}'."]
    for state, transitions in m.states.items():
        moves = "; ".join(_transition(t, w) for t in transitions) or "nothing happens"
        parts.append(f"In state '{state}': {moves}.")
    end = "met" if m.at_end == "pass" else "not met"
    parts.append(f"If the session ends in another state, it is {end}.")
    return " ".join(parts)


def _transition(t: Transition, w: _Words) -> str:
    conds = []
    if t.on is not None:
        conds.append(w.event(t.on))
    if t.when is not None:
        held = f" for {_duration(t.for_)} or longer" if t.for_ else ""
        conds.append(f"{w.condition(t.when)}{held}")
    if t.after is not None:
        conds.append(f"after {_duration(t.after)} in this state")
    to = {"pass": "it is met", "fail": "it is failed"}.get(t.to, f"on to '{t.to}'")
    return f"{' and '.join(conds)}: {to}"


# ======================================================================================= words


class _Words:
    """Names, conditions and values of one scenario in words."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def event(self, name: str) -> str:
        """An event by its description in the scenario (``"Seatbelt fastened"``), quoted."""
        if name == SAMPLE:
            return "“a telemetry sample”"
        text = self.scenario.events.get(name, "") or _human(name)
        first = text.split(" ", 1)[0]
        if not (len(first) > 1 and first.isupper()):  # "Seatbelt on" -> "seatbelt on"; "ESD" stays
            text = text[:1].lower() + text[1:]
        return f"“{text}”"

    def step(self, step: Step) -> str:
        if step.event is not None:
            return self.event(step.event)
        assert step.when is not None
        return self.condition(step.when)

    def unit_of(self, expr: Expr) -> str:
        """The unit of a plain signal expression (``speed``, ``abs(mast_tilt)``), else ''."""
        node = expr.root
        while (isinstance(node, Call) and node.fn == "abs") or isinstance(node, Neg):
            node = node.args[0] if isinstance(node, Call) else node.operand
        return self._unit(node)

    def condition(self, expr: Expr) -> str:
        return self._bool(expr.root)

    def value(self, expr: Expr) -> str:
        return self._num(expr.root)

    # ------------------------------------------------------------------------- conditions

    def _bool(self, node: Node, parent: str | None = None) -> str:
        if isinstance(node, Logic):
            text = f"{self._bool(node.left, node.op)} {node.op} {self._bool(node.right, node.op)}"
            return f"({text})" if parent is not None and parent != node.op else text
        if isinstance(node, Not):
            return f"not ({self._bool(node.operand)})"
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, Call) and node.fn == "between":
            x, lo, hi = node.args
            unit = self._unit(x)
            return (f"{self._num(x)} between {self._num(lo, unit, bare=True)} and"
                    f" {self._num(hi, unit)}")  # fmt: skip
        return self._num(node)  # not reached for a checked condition

    def _compare(self, node: Compare) -> str:
        left, right, op = node.left, node.right, node.op
        if isinstance(left, Num) and not isinstance(right, Num):  # 8 < speed: speed above 8
            left, right, op = right, left, _FLIPPED[op]  # type: ignore[assignment]
        unit = self._unit(left) or self._unit(right)
        return f"{self._num(left)} {_COMPARE_WORDS[op]} {self._num(right, unit)}"

    # ----------------------------------------------------------------------------- values

    def _num(self, node: Node, unit: str = "", *, bare: bool = False) -> str:
        if isinstance(node, Num):
            return _number(node.value) if bare else _with_unit(_number(node.value), unit)
        if isinstance(node, Name):
            return _human(node.name)
        if isinstance(node, Neg):
            return f"minus {self._num(node.operand, unit)}"
        if isinstance(node, Call):
            if node.fn == "abs":
                return f"{self._num(node.args[0])} (either direction)"
            which = "smaller" if node.fn == "min" else "larger"
            a, b = (self._num(arg, unit) for arg in node.args[:2])
            return f"the {which} of {a} and {b}"
        if isinstance(node, Arith):
            return f"({self._num(node.left)} {node.op} {self._num(node.right)})"
        return self._bool(node)

    def _unit(self, node: Node) -> str:
        if isinstance(node, Name) and node.name in self.scenario.signals:
            return self.scenario.signals[node.name].unit
        if isinstance(node, Call) and node.fn in ("abs", "min", "max"):
            return next((u for u in map(self._unit, node.args) if u), "")
        if isinstance(node, Neg):
            return self._unit(node.operand)
        return ""


# ===================================================================================== helpers

_COMPARE_WORDS: Final = {">": "above", ">=": "at least", "<": "below", "<=": "at most",
                         "==": "equal to", "!=": "not equal to"}  # fmt: skip
_FLIPPED: Final = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


def _human(name: str) -> str:
    return name.replace("_", " ")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _with_unit(number: str, unit: str) -> str:
    """``8 km/h``, ``50%``; a unit of several words (``port number``) is left out."""
    if not unit or " " in unit:
        return number
    return f"{number}{unit}" if unit == "%" else f"{number} {unit}"


def _duration(seconds: float | None) -> str:
    """``1 s``, ``500 ms``, ``4 min``, ``1.5 min``, ``1 h``, ``90 s``."""
    s = float(seconds or 0.0)
    if 0 < s < 1:
        return f"{_number(s * 1000)} ms"
    if s >= 3600 and (s / 3600 * 10).is_integer():
        return f"{_number(s / 3600)} h"
    if s >= 60 and (s / 60 * 10).is_integer():
        return f"{_number(s / 60)} min"
    return f"{_number(s)} s"


def _times(n: int) -> str:
    return "once" if n == 1 else ("twice" if n == 2 else f"{n} times")


def _bounds(low: float | None, high: float | None, fmt: Callable[[float], str]) -> str:
    if low is not None and high is not None:
        return f"between {fmt(low)} and {fmt(high)}"
    if high is not None:
        return f"at most {fmt(high)}"
    return f"at least {fmt(low or 0.0)}"


def _join(items: Sequence[str], word: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


