"""A criterion's evidence in words, and the thresholds its conditions draw on the timeline.

Pure functions: a rubric criterion (None when the rubric version is not known here), the stored
evidence of its verdict (a dict read back from a report, possibly of an older version without
the newer fields), and the scenario's units in; text and numbers out. Evidence read back goes
through `finite`, so a missing or non-finite value is never shown as a number.

What the text says, per template (the deciding verdict is ``fail`` unless said):

- never/always: the condition with units, how long the episode lasted and what the rubric
  allows; the signals' range over the episode. A pass shows no values (whole-session extremes
  looked like violations).
- metric: ``35.1 s of speed > 12 km/h, limit 10 s``, ``highest speed 14.2 km/h at 1:02.0,
  limit 12 km/h``; and how many intervals contributed.
- count: ``collision 2 times, at most 0``.
- sequence: the step that came out of order, or the step not done (in time).
- response / precede / duration: what was waited for, from when, and the limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..core import expr
from ..core.model import Step
from ..core.report import finite
from ..core.rubric import Criterion
from .timeline import format_t

_OPS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "=", "!=": "≠"}


@dataclass(frozen=True, slots=True)
class Threshold:
    """A number a criterion's condition compares a signal with: drawn as a line on its lane."""

    signal: str
    value: float
    criterion: str
    op: str


def thresholds(criterion: Criterion) -> list[Threshold]:
    """Every ``signal OP number`` (either way round) and ``between(signal, a, b)`` in the
    criterion's conditions and expressions, de-duplicated, in the order written."""
    found: dict[tuple[str, float], Threshold] = {}
    for node in _nodes(criterion):
        for name, value, op in _comparisons(node):
            found.setdefault((name, value), Threshold(name, value, criterion.id, op))
    return list(found.values())


def _nodes(criterion: Criterion) -> Iterator[expr.Node]:
    """The root of every expression in the criterion."""
    stack: list[Any] = [criterion]
    while stack:
        obj = stack.pop()
        if isinstance(obj, expr.Expr):
            yield obj.root
        elif isinstance(obj, Step):
            if obj.when is not None:
                yield obj.when.root
        elif isinstance(obj, tuple | list):
            stack.extend(reversed(obj))
        elif isinstance(obj, Mapping):
            stack.extend(reversed(list(obj.values())))
        elif hasattr(type(obj), "model_fields"):
            stack.extend(reversed([getattr(obj, n) for n in type(obj).model_fields]))


def _comparisons(node: expr.Node) -> Iterator[tuple[str, float, str]]:
    if isinstance(node, expr.Compare):
        left, right = node.left, node.right
        if isinstance(left, expr.Name) and isinstance(right, expr.Num):
            yield left.name, right.value, node.op
        elif isinstance(left, expr.Num) and isinstance(right, expr.Name):
            yield right.name, left.value, node.op
        return
    if isinstance(node, expr.Call) and node.fn == "between":
        x, low, high = node.args
        if isinstance(x, expr.Name):
            for bound, op in ((low, ">="), (high, "<=")):
                if isinstance(bound, expr.Num):
                    yield x.name, bound.value, op
        return
    for child in _children(node):
        yield from _comparisons(child)


def _children(node: expr.Node) -> tuple[expr.Node, ...]:
    if isinstance(node, expr.Neg | expr.Not):
        return (node.operand,)
    if isinstance(node, expr.Arith | expr.Logic | expr.Compare):
        return (node.left, node.right)
    if isinstance(node, expr.Call):
        return node.args
    return ()


# ================================================================================ in words


def condition_text(node: expr.Node, units: Mapping[str, str]) -> str:
    """A condition as written, with the unit after each number compared with a signal:
    ``load > 50 kg and speed > 8 km/h``."""
    if isinstance(node, expr.Logic):
        return f"{_sub(node.left, node, units)} {node.op} {_sub(node.right, node, units)}"
    if isinstance(node, expr.Not):
        return f"not ({condition_text(node.operand, units)})"
    if isinstance(node, expr.Compare):
        left, right = node.left, node.right
        if isinstance(left, expr.Name) and isinstance(right, expr.Num):
            return f"{left.name} {_OPS[node.op]} {quantity(right.value, units.get(left.name))}"
        if isinstance(left, expr.Num) and isinstance(right, expr.Name):
            return f"{quantity(left.value, units.get(right.name))} {_OPS[node.op]} {right.name}"
    return expr.unparse(node)


def _sub(node: expr.Node, parent: expr.Logic, units: Mapping[str, str]) -> str:
    text = condition_text(node, units)
    if isinstance(node, expr.Logic) and node.op != parent.op:
        return f"({text})"
    return text


def quantity(value: float, unit: str | None) -> str:
    """``12 km/h``; a unit-less number alone."""
    number = f"{value:.4g}"
    return f"{number} {unit}" if unit else number


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 60 else f"{value:.1f} s ({format_t(value)})"


def _step_text(step: Step, units: Mapping[str, str]) -> str:
    if step.event is not None:
        return step.event
    assert step.when is not None
    return f"when {condition_text(step.when.root, units)}"


def evidence_lines(
    criterion: Criterion | None, verdict: str, evidence: Mapping[str, Any],
    units: Mapping[str, str],
) -> list[str]:  # fmt: skip
    """What the criteria table says of a verdict's evidence, line by line (empty when the
    template says nothing beyond the interval, or the rubric is not known)."""
    if criterion is None or verdict == "pending":
        return []
    ev = _Ev(evidence)
    if criterion.never is not None or criterion.always is not None:
        return _never_lines(criterion, verdict, ev, units)
    if criterion.metric is not None:
        return _metric_lines(criterion, ev, units)
    if criterion.count is not None:
        return _count_lines(criterion, ev, units)
    if criterion.sequence is not None:
        return _sequence_lines(criterion, verdict, ev, units)
    if criterion.response is not None and verdict == "fail":
        r = criterion.response
        start = "" if ev.t_start is None else f" at {format_t(ev.t_start)}"
        return [f"After {_step_text(r.after, units)}{start}, no "
                f"{_step_text(r.expect, units)} within {seconds(r.within)}"]  # fmt: skip
    if criterion.precede is not None and verdict == "fail":
        p = criterion.precede
        limit = "" if p.within is None else f" within {seconds(p.within)} before"
        at = "" if ev.t is None else f" at {format_t(ev.t)}"
        return [f"{p.event}{at} without {_step_text(p.by, units)}{limit or ' before it'}"]
    if criterion.duration is not None:
        return _duration_lines(criterion, verdict, ev, units)
    if criterion.all_before is not None and verdict == "fail":
        a = criterion.all_before
        return [f"{a.before} before all of: {', '.join(a.events)}"]
    return []


class _Ev:
    """Evidence numbers read back safely."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.t = finite(data.get("t"))
        self.t_start = finite(data.get("t_start"))
        self.t_end = finite(data.get("t_end"))
        self.measured = finite(data.get("measured"))

    def int_of(self, key: str) -> int | None:
        value = self.data.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def contributing(self) -> tuple[list[tuple[float, float]], int]:
        """The contributing intervals (finite ones) and their total; ([], 0) if none."""
        pairs: list[tuple[float, float]] = []
        for item in self.data.get("contributing") or []:
            if isinstance(item, list | tuple) and len(item) == 2:
                a, b = finite(item[0]), finite(item[1])
                if a is not None and b is not None:
                    pairs.append((a, b))
        total = self.int_of("contributing_total")
        return pairs, max(total or 0, len(pairs))


def _never_lines(c: Criterion, verdict: str, ev: _Ev, units: Mapping[str, str]) -> list[str]:
    cond = c.never if c.never is not None else c.always
    assert cond is not None
    words = "never" if c.never is not None else "always"
    rule = f"Rule: {words} {condition_text(cond.root, units)}"
    if c.for_:
        rule += f" for {seconds(c.for_)} or longer"
    if c.allow:
        rule += f", {c.allow} time{'s' if c.allow != 1 else ''} allowed"
    if verdict != "fail":
        return [rule]
    lines = [rule]
    if ev.t_start is not None and ev.t is not None:
        what = "held" if c.never is not None else "did not hold"
        lines.append(f"The condition {what} from {format_t(ev.t_start)}, "
                     f"{seconds(ev.t - ev.t_start)} by {format_t(ev.t)}")  # fmt: skip
    for name, value in sorted((ev.data.get("values") or {}).items()):
        if isinstance(value, Mapping):
            lo, hi = finite(value.get("min")), finite(value.get("max"))
            if lo is not None and hi is not None:
                unit = units.get(name)
                span = quantity(lo, unit) if lo == hi else f"{lo:.4g} to {quantity(hi, unit)}"
                lines.append(f"{name} {span} during it")
    return lines


_AGG_WORDS = {"max": "highest", "min": "lowest", "mean": "mean", "sum": "sum", "last": "last"}


def _metric_lines(c: Criterion, ev: _Ev, units: Mapping[str, str]) -> list[str]:
    m = c.metric
    assert m is not None
    root = m.of.root
    where = "" if m.where is None else f" while {condition_text(m.where.root, units)}"
    unit = "s" if m.aggregate == "time_true" else (
        None if m.aggregate == "count" else units.get(root.name) if isinstance(root, expr.Name)
        else None
    )  # fmt: skip
    limits = []
    if m.at_most is not None:
        limits.append(f"limit {quantity(m.at_most, unit)}")
    if m.at_least is not None:
        limits.append(f"at least {quantity(m.at_least, unit)}")
    limit = f", {' and '.join(limits)}" if limits else ""
    value = ev.measured
    if value is None:
        return [f"Nothing to measure{where}"]
    if m.aggregate == "time_true":
        head = f"{value:.1f} s of {condition_text(root, units)}{where}"
    elif m.aggregate == "count":
        head = f"{value:.4g} events with {condition_text(root, units)}{where}"
    else:
        text = condition_text(root, units) if isinstance(root, expr.Compare) else expr.unparse(root)
        head = f"{_AGG_WORDS[m.aggregate]} {text} {quantity(value, unit)}{where}"
    lines = [head + limit]
    pairs, total = ev.contributing()
    if m.aggregate in ("max", "min", "last") and pairs:
        lines[0] += f" (at {format_t(pairs[0][0])})"
    elif total:
        lines.append(_contributing_text(pairs, total, instants=m.aggregate in ("count", "sum")))
    return lines


def _contributing_text(pairs: list[tuple[float, float]], total: int, *, instants: bool) -> str:
    shown = ", ".join(
        format_t(a) if instants or a == b else f"{format_t(a)}-{format_t(b)}" for a, b in pairs[:5]
    )
    more = f" and {total - min(len(pairs), 5)} more" if total > min(len(pairs), 5) else ""
    noun = "times" if instants else "intervals"
    return f"{total} {noun}: {shown}{more}"


def _count_lines(c: Criterion, ev: _Ev, units: Mapping[str, str]) -> list[str]:
    n = c.count
    assert n is not None
    what = n.event if n.event is not None else (
        f"episodes of {condition_text(n.when.root, units)}" if n.when is not None else "events"
    )  # fmt: skip
    limits = ([] if n.min is None else [f"at least {n.min}"]) + (
        [] if n.max is None else [f"at most {n.max}"])  # fmt: skip
    counted = ev.measured
    head = what if counted is None else f"{what}: {counted:.0f} time{'s' if counted != 1 else ''}"
    if limits:
        head += f", {' and '.join(limits)}"
    pairs, total = ev.contributing()
    lines = [head]
    if total:
        lines.append(_contributing_text(pairs, total, instants=True))
    return lines


def _sequence_lines(c: Criterion, verdict: str, ev: _Ev, units: Mapping[str, str]) -> list[str]:
    steps = c.sequence
    assert steps is not None
    names = [_step_text(s, units) for s in steps]
    done, early = ev.int_of("steps_done"), ev.int_of("out_of_order")
    order = " → ".join(f"{k + 1}. {n}" for k, n in enumerate(names))
    if verdict != "fail" or done is None:
        return [f"Steps: {order}"]
    at = "" if ev.t is None else f" at {format_t(ev.t)}"
    nxt = names[done] if 0 <= done < len(names) else "?"
    if early is not None and 1 <= early <= len(names):
        return [f"Step {early} ({names[early - 1]}){at} came before step {done + 1} ({nxt})",
                f"Steps: {order}"]  # fmt: skip
    if c.within is not None and ev.t is not None and ev.t_start is not None and done > 0 and (
        ev.t - ev.t_start > c.within
    ):  # fmt: skip
        return [f"Step {done + 1} ({nxt}) not done within {seconds(c.within)} of step 1",
                f"Steps: {order}"]  # fmt: skip
    return [f"Step {done + 1} ({nxt}) never came ({done} of {len(names)} done)",
            f"Steps: {order}"]  # fmt: skip


def _duration_lines(c: Criterion, verdict: str, ev: _Ev, units: Mapping[str, str]) -> list[str]:
    d = c.duration
    assert d is not None
    limits = []
    if d.min is not None:
        limits.append(f"at least {seconds(d.min)}")
    if d.max is not None:
        limits.append(f"at most {seconds(d.max)}")
    rule = (f"From {_step_text(d.from_, units)} to {_step_text(d.to, units)}"
            f"{': ' + ' and '.join(limits) if limits else ''}")  # fmt: skip
    if verdict == "not_applicable":
        return [rule, f"{_step_text(d.from_, units)} never happened"]
    if ev.t_start is None or ev.t is None:
        return [rule]
    return [rule, f"Took {seconds(ev.t - ev.t_start)} (from {format_t(ev.t_start)})"
            if verdict == "pass" or ev.t - ev.t_start <= (d.max or float("inf"))
            else f"Not done {seconds(d.max or 0.0)} after {format_t(ev.t_start)}"]  # fmt: skip
