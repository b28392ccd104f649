"""The reference scorer: a plain, event-by-event interpreter of the rubric language.

It reads `RUBRIC-LANGUAGE.md` and `docs/semantics.md` literally and is the oracle that the
compiled kernel is property-tested against, so it is written to be obviously right rather than
fast. It shares nothing with the kernel beyond the parsed models: conditions are evaluated here
by a scalar three-valued interpreter over the expression AST (missing = ``None``; truth values
``True``/``False``/``None`` for unknown).

Two entry points:

- ``score_session(rubric, scenario, session, observations)`` scores a whole recorded session;
- ``ReferenceSession(rubric, session_id)`` scores incrementally: ``step(event)`` per event in
  ``seq`` order, ``report()`` at any time, ``close(t, observations)`` once at the end.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..errors import ScoringError
from .events import Event, SessionEvents
from .expr import Arith, Call, Compare, Logic, Name, Neg, Node, Not, Num
from .model import Step
from .report import (
    CONTRIB_MAX,
    PENDING,
    CriterionResult,
    Evidence,
    Outcome,
    SessionReport,
    Value,
    Verdict,
)
from .rubric import (
    AllBefore,
    Count,
    Criterion,
    DurationTemplate,
    Machine,
    Metric,
    Precede,
    Response,
    Rubric,
)
from .scenario import Scenario

Held = Mapping[str, float]
"""Signal name -> held value (sample-and-hold); a missing signal has no key."""


def pass_or_fail(text: str | None) -> Verdict | None:
    """`pass` or `fail` as a verdict, else None (a machine's terminal states; an assessor's
    recorded outcome)."""
    if text == "pass":
        return "pass"
    if text == "fail":
        return "fail"
    return None


# ------------------------------------------------------------------- three-valued expressions


def number(node: Node, held: Held) -> float | None:
    """The value of a numeric expression; ``None`` when missing (a NaN result is missing)."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        return held.get(node.name)
    if isinstance(node, Neg):
        x = number(node.operand, held)
        return None if x is None else -x
    if isinstance(node, Arith):
        a, b = number(node.left, held), number(node.right, held)
        if a is None or b is None:
            return None
        return _arith(node.op, a, b)
    if isinstance(node, Call) and node.fn != "between":
        args = [number(arg, held) for arg in node.args]
        a = args[0]
        if node.fn == "abs":
            return None if a is None else abs(a)
        b = args[1]
        if a is None or b is None:
            return None
        if node.fn == "min":
            return b if b < a else a
        return b if b > a else a
    raise TypeError(f"not a number expression: {node!r}")


def _arith(op: str, a: float, b: float) -> float | None:
    if op == "+":
        result = a + b
    elif op == "-":
        result = a - b
    elif op == "*":
        result = a * b
    elif b == 0:
        return None
    else:
        result = a / b
    return None if math.isnan(result) else result


def truth(node: Node, held: Held) -> bool | None:
    """The truth value of a condition: True, False, or None for unknown (Kleene logic)."""
    if isinstance(node, Not):
        inner = truth(node.operand, held)
        return None if inner is None else not inner
    if isinstance(node, Logic):
        left, right = truth(node.left, held), truth(node.right, held)
        if node.op == "and":
            return _and(left, right)
        if left is True or right is True:
            return True
        if left is None or right is None:
            return None
        return False
    if isinstance(node, Compare):
        return _compare(node.op, number(node.left, held), number(node.right, held))
    if isinstance(node, Call) and node.fn == "between":
        x, low, high = (number(arg, held) for arg in node.args)
        return _and(_compare(">=", x, low), _compare("<=", x, high))
    raise TypeError(f"not a condition: {node!r}")


def _and(left: bool | None, right: bool | None) -> bool | None:
    if left is False or right is False:
        return False
    if left is None or right is None:
        return None
    return True


def _compare(op: str, a: float | None, b: float | None) -> bool | None:
    if a is None or b is None:
        return None
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "==":
        return a == b
    return a != b


def holds(node: Node, held: Held) -> bool:
    """A condition holds only when it is true (unknown does not hold)."""
    return truth(node, held) is True


def matches(step: Step, event: Event, held: Held) -> bool:
    """A step matches an event named like it, or an event at which its condition holds."""
    if step.event is not None:
        return event.event == step.event
    assert step.when is not None
    return holds(step.when.root, held)


# -------------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Mark:
    """A point of the session: an event's ``seq`` and ``t`` (``seq`` is None at the close of an
    empty session)."""

    seq: int | None
    t: float


def mark(event: Event) -> Mark:
    return Mark(event.seq, event.t)


@dataclass(frozen=True, slots=True)
class Decision:
    """What a template decided. `anchor` None means the session's first event."""

    verdict: Verdict
    anchor: Mark | None = None
    extremes: Mapping[str, Value] | None = None
    measured: float | None = None
    contributing: Contributing | None = None
    steps_done: int | None = None
    out_of_order: int | None = None


class Contributing:
    """The intervals that contributed to a count or a metric, in time order: an interval that
    starts where the previous one ended extends it; the first `CONTRIB_MAX` are listed, all are
    counted."""

    def __init__(self) -> None:
        self.listed: list[tuple[float, float]] = []
        self.total = 0
        self.last_end: float | None = None

    def add(self, start: float, end: float) -> None:
        if self.total and self.last_end == start:
            if self.total <= CONTRIB_MAX:
                self.listed[-1] = (self.listed[-1][0], end)
        else:
            if self.total < CONTRIB_MAX:
                self.listed.append((start, end))
            self.total += 1
        self.last_end = end

    def only(self, t: float) -> None:
        """The instant `t` alone contributes (a best or a last value)."""
        self.listed = [(t, t)]
        self.total = 1
        self.last_end = t


class Extremes:
    """Min and max of each named signal's held values over the events it was shown."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = names
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}

    def reset(self) -> None:
        self.low.clear()
        self.high.clear()

    def add(self, held: Held) -> None:
        for name in self.names:
            value = held.get(name)
            if value is None:
                continue
            if name not in self.low or value < self.low[name]:
                self.low[name] = value
            if name not in self.high or value > self.high[name]:
                self.high[name] = value

    def values(self) -> dict[str, Value]:
        return {n: {"min": self.low.get(n), "max": self.high.get(n)} for n in self.names}


class Template:
    """One criterion's template, advanced event by event until it decides."""

    def step(self, event: Event, held: Held) -> Decision | None:
        """Advance over one event; return a decision taken at it, if any."""
        raise NotImplementedError

    def close(self, t: float) -> Decision | None:
        """The verdict 'at end' for a still-pending criterion; None leaves it pending."""
        raise NotImplementedError


# -------------------------------------------------------------------------------- templates


class Never(Template):
    """`never: COND` (or `always: COND`, i.e. never `not COND`), with `for` and `allow`."""

    def __init__(self, cond: Node, *, always: bool, for_: float, allow: int, names: Sequence[str]):
        self.cond = cond
        self.bad: bool = not always  # the truth value that makes an event part of an episode
        self.for_ = for_
        self.allow = allow
        self.episode_start: Mark | None = None
        self.episode_counted = False
        self.counted = 0
        self.episode = Extremes(names)
        self.session = Extremes(names)

    def step(self, event: Event, held: Held) -> Decision | None:
        self.session.add(held)
        if truth(self.cond, held) is not self.bad:
            self.episode_start = None
            return None
        if self.episode_start is None:
            self.episode_start = mark(event)
            self.episode_counted = False
            self.episode.reset()
        self.episode.add(held)
        if not self.episode_counted and event.t - self.episode_start.t >= self.for_:
            self.episode_counted = True
            self.counted += 1
            if self.counted > self.allow:
                return Decision("fail", self.episode_start, extremes=self.episode.values())
        return None

    def close(self, t: float) -> Decision:
        return Decision("pass", extremes=self.session.values())


class AllBeforeT(Template):
    def __init__(self, spec: AllBefore) -> None:
        self.spec = spec
        self.seen: set[str] = set()

    def step(self, event: Event, held: Held) -> Decision | None:
        if event.event == self.spec.before:
            missing = [name for name in self.spec.events if name not in self.seen]
            return Decision("fail" if missing else "pass")
        if event.event in self.spec.events:
            self.seen.add(event.event)
        return None

    def close(self, t: float) -> Decision:
        return Decision(self.spec.if_never)


class SequenceT(Template):
    def __init__(self, steps: Sequence[Step], within: float | None) -> None:
        self.steps = steps
        self.within = within
        # a step 'written the same as an earlier one' never fails the sequence by matching early
        self.repeat = [s.text in {e.text for e in steps[:j]} for j, s in enumerate(steps)]
        self.done = 0
        self.first: Mark | None = None  # where S1 was done

    def step(self, event: Event, held: Held) -> Decision | None:
        first, within = self.first, self.within
        if first is not None and within is not None and event.t > first.t + within:
            return Decision("fail", first, steps_done=self.done)
        if matches(self.steps[self.done], event, held):
            if self.done == 0:
                self.first = mark(event)
            self.done += 1
            if self.done == len(self.steps):
                return Decision("pass", self.first, steps_done=self.done)
            return None
        for j in range(self.done + 1, len(self.steps)):
            if not self.repeat[j] and matches(self.steps[j], event, held):
                return Decision("fail", self.first, steps_done=self.done, out_of_order=j + 1)
        return None

    def close(self, t: float) -> Decision:
        return Decision("fail", self.first, steps_done=self.done)


class CountT(Template):
    def __init__(self, spec: Count) -> None:
        self.spec = spec
        self.count = 0
        self.previous_held = False  # did `when` hold at the session's previous event?
        self.contributing = Contributing()  # the counted occurrences, as instants

    def step(self, event: Event, held: Held) -> Decision | None:
        if self.spec.when is not None:
            now = holds(self.spec.when.root, held)
            hit = now and not self.previous_held
            self.previous_held = now
        else:
            hit = event.event == self.spec.event
        if not hit:
            return None
        self.count += 1
        self.contributing.add(event.t, event.t)
        if self.spec.max is not None and self.count > self.spec.max:
            return self.decision("fail")
        if self.spec.max is None and self.spec.min is not None and self.count >= self.spec.min:
            return self.decision("pass")
        return None

    def decision(self, verdict: Verdict) -> Decision:
        return Decision(verdict, measured=float(self.count), contributing=self.contributing)

    def close(self, t: float) -> Decision:
        return self.decision("pass" if self.count >= (self.spec.min or 0) else "fail")


class ResponseT(Template):
    def __init__(self, spec: Response) -> None:
        self.spec = spec
        self.waiting: deque[Mark] = deque()  # unanswered As, oldest first

    def step(self, event: Event, held: Held) -> Decision | None:
        if self.waiting and event.t > self.waiting[0].t + self.spec.within:
            return Decision("fail", self.waiting[0])
        if matches(self.spec.expect, event, held):
            self.waiting.clear()
        if matches(self.spec.after, event, held):
            self.waiting.append(mark(event))
        return None

    def close(self, t: float) -> Decision:
        if self.waiting:
            return Decision("fail", self.waiting[0])
        return Decision("pass")


class PrecedeT(Template):
    def __init__(self, spec: Precede) -> None:
        self.spec = spec
        self.last_b: Mark | None = None

    def step(self, event: Event, held: Held) -> Decision | None:
        if event.event == self.spec.event:
            b, within = self.last_b, self.spec.within
            if b is None or (within is not None and event.t - b.t > within):
                return Decision("fail", mark(event))
        if matches(self.spec.by, event, held):
            self.last_b = mark(event)
        return None

    def close(self, t: float) -> Decision:
        return Decision("pass")


class DurationT(Template):
    def __init__(self, spec: DurationTemplate) -> None:
        self.spec = spec
        self.a: Mark | None = None  # the first A

    def step(self, event: Event, held: Held) -> Decision | None:
        low, high = self.spec.min, self.spec.max
        if self.a is None:
            if matches(self.spec.from_, event, held):
                self.a = mark(event)
            return None
        if high is not None and event.t > self.a.t + high:
            return Decision("fail", self.a)
        if matches(self.spec.to, event, held):
            took = event.t - self.a.t
            ok = (low is None or took >= low) and (high is None or took <= high)
            return Decision("pass" if ok else "fail", self.a)
        return None

    def close(self, t: float) -> Decision:
        return Decision("fail", self.a) if self.a is not None else Decision("not_applicable")


class MetricT(Template):
    """Aggregates kept events; an event's weight is known when the next event (or the close)
    arrives, so weighted sums are added one event late, still in event order. Contributing: the
    spans `mean` and `time_true` weigh (a kept, for `time_true` true, event to the next), the
    instants of the events `sum` and `count` add up, the first instant of a `max`/`min`'s
    final value, the instant of the `last` value."""

    def __init__(self, spec: Metric) -> None:
        self.spec = spec
        self.kept = 0
        self.sum_v = 0.0
        self.sum_vw = 0.0
        self.sum_w = 0.0
        self.best: float | None = None  # max or min so far
        self.last: float | None = None
        self.trues = 0
        self.time_true = 0.0
        self.previous_t: float | None = None
        self.previous_value: float | bool | None = None  # the previous event's, if kept
        self.contributing = Contributing()

    def step(self, event: Event, held: Held) -> None:
        if self.previous_t is not None:
            self.weigh(self.previous_t, event.t)
        self.previous_t = event.t
        self.previous_value = self.keep(held, event.t)

    def keep(self, held: Held, t: float) -> float | bool | None:
        """Take the event into the unweighted aggregates; its value if kept, else None."""
        if self.spec.where is not None and not holds(self.spec.where.root, held):
            return None
        root = self.spec.of.root
        value = truth(root, held) if self.spec.of.kind == "bool" else number(root, held)
        if value is None:
            return None
        self.kept += 1
        agg = self.spec.aggregate
        if isinstance(value, bool):
            self.trues += value
            if value and agg == "count":
                self.contributing.add(t, t)
            return value
        self.sum_v += value
        self.last = value
        best = self.best
        if best is None or (agg == "max" and value > best) or (agg == "min" and value < best):
            self.best = value
            if agg in ("max", "min"):
                self.contributing.only(t)
        if agg == "last":
            self.contributing.only(t)
        elif agg == "sum":
            self.contributing.add(t, t)
        return value

    def weigh(self, start: float, end: float) -> None:
        """The previous event, kept at `start`, weighs up to `end`."""
        value, weight = self.previous_value, end - start
        if value is None:
            return
        if isinstance(value, bool):
            if value:
                self.time_true += weight
                if self.spec.aggregate == "time_true":
                    self.contributing.add(start, end)
            return
        self.sum_vw += value * weight
        self.sum_w += weight
        if self.spec.aggregate == "mean":
            self.contributing.add(start, end)

    def measured(self) -> float:
        agg = self.spec.aggregate
        if agg in ("max", "min"):
            assert self.best is not None
            return self.best
        if agg == "last":
            assert self.last is not None
            return self.last
        if agg == "sum":
            return self.sum_v
        if agg == "count":
            return float(self.trues)
        if agg == "time_true":
            return self.time_true
        return self.sum_vw / self.sum_w if self.sum_w != 0 else self.sum_v / self.kept

    def close(self, t: float) -> Decision:
        if self.previous_t is not None:
            self.weigh(self.previous_t, t)
        if self.kept == 0:
            return Decision("not_applicable", contributing=self.contributing)
        value = self.measured()
        high, low = self.spec.at_most, self.spec.at_least
        # an aggregate can be NaN although no kept value is (inf * 0 s in a mean, inf + -inf
        # in a sum, from arithmetic past the float range): it is within no bounds, so the
        # criterion fails, with no measured value (docs/semantics.md 15)
        bad = (math.isnan(value) or (high is not None and value > high)
               or (low is not None and value < low))  # fmt: skip
        measured = None if math.isnan(value) else value
        return Decision("fail" if bad else "pass", measured=measured,
                        contributing=self.contributing)  # fmt: skip


class ObservedT(Template):
    """Decided by an assessor only; see `ReferenceSession.close`."""

    def step(self, event: Event, held: Held) -> None:
        return None

    def close(self, t: float) -> None:
        return None


class MachineT(Template):
    def __init__(self, spec: Machine) -> None:
        self.spec = spec
        self.state = spec.initial
        self.entry_t = 0.0  # the initial state is entered at t = 0
        self.entry: Mark | None = None  # anchor: the session's first event for the initial state
        self.runs: dict[int, float] = {}  # transition index -> t of the first event of its run
        # what the session exercised (`rubric test --coverage`): states entered, and the
        # transitions that fired as (state, index in that state's list)
        self.entered: set[str] = {spec.initial}
        self.fired: set[tuple[str, int]] = set()

    def step(self, event: Event, held: Held) -> Decision | None:
        verdict = pass_or_fail(self.state)
        if verdict is not None:  # a machine that starts in a terminal state
            return Decision(verdict)
        transitions = self.spec.states.get(self.state, ())
        for i, tr in enumerate(transitions):
            if tr.for_ is not None:
                assert tr.when is not None
                if not holds(tr.when.root, held):
                    self.runs.pop(i, None)
                elif i not in self.runs:
                    self.runs[i] = event.t
        for i, tr in enumerate(transitions):
            if tr.on is not None and event.event != tr.on:
                continue
            if tr.when is not None and not holds(tr.when.root, held):
                continue
            if tr.for_ is not None and (i not in self.runs or event.t - self.runs[i] < tr.for_):
                continue
            if tr.after is not None and event.t - self.entry_t < tr.after:
                continue
            self.fired.add((self.state, i))
            self.entered.add(tr.to)
            verdict = pass_or_fail(tr.to)
            if verdict is not None:
                return Decision(verdict, self.entry)
            self.state, self.entry_t, self.entry, self.runs = tr.to, event.t, mark(event), {}
            return None
        return None

    def close(self, t: float) -> Decision:
        verdict = pass_or_fail(self.state)
        if verdict is not None:
            return Decision(verdict)
        for i, tr in enumerate(self.spec.states.get(self.state, ())):
            if tr.on is not None or tr.when is not None or tr.after is None:
                continue  # at the close there is no event: only pure timeouts can fire
            if t - self.entry_t >= tr.after:
                self.fired.add((self.state, i))
                self.entered.add(tr.to)
                verdict = pass_or_fail(tr.to)
                if verdict is not None:
                    return Decision(verdict, self.entry)
                break
        return Decision(self.spec.at_end, self.entry)


# ---------------------------------------------------------------------------------- criteria


def _step_names(steps: Iterable[Step]) -> set[str]:
    return {name for s in steps if s.when is not None for name in s.when.names}


def signal_names(c: Criterion) -> tuple[str, ...]:
    """The signals a criterion names (every condition and expression in it), sorted."""
    names: set[str] = set()
    cond = c.never or c.always
    if cond is not None:
        names |= cond.names
    if c.sequence is not None:
        names |= _step_names(c.sequence)
    if c.count is not None and c.count.when is not None:
        names |= c.count.when.names
    if c.response is not None:
        names |= _step_names((c.response.after, c.response.expect))
    if c.precede is not None:
        names |= _step_names((c.precede.by,))
    if c.duration is not None:
        names |= _step_names((c.duration.from_, c.duration.to))
    if c.metric is not None:
        names |= c.metric.of.names | (c.metric.where.names if c.metric.where else frozenset())
    if c.machine is not None:
        for transitions in c.machine.states.values():
            names |= {n for tr in transitions if tr.when is not None for n in tr.when.names}
    return tuple(sorted(names))


def make_template(c: Criterion) -> Template:
    """A fresh, undecided template for criterion `c`."""
    cond = c.never if c.never is not None else c.always
    if cond is not None:
        return Never(
            cond.root,
            always=c.always is not None,
            for_=c.for_ or 0.0,
            allow=c.allow or 0,
            names=signal_names(c),
        )
    if c.all_before is not None:
        return AllBeforeT(c.all_before)
    if c.sequence is not None:
        return SequenceT(c.sequence, c.within)
    if c.count is not None:
        return CountT(c.count)
    if c.response is not None:
        return ResponseT(c.response)
    if c.precede is not None:
        return PrecedeT(c.precede)
    if c.duration is not None:
        return DurationT(c.duration)
    if c.metric is not None:
        return MetricT(c.metric)
    if c.machine is not None:
        return MachineT(c.machine)
    return ObservedT()


@dataclass(slots=True)
class _Run:
    criterion: Criterion
    template: Template
    names: tuple[str, ...]
    verdict: Verdict = "pending"
    evidence: Evidence = field(default=PENDING)


# ----------------------------------------------------------------------------------- session


class ReferenceSession:
    """One session being scored event by event.

    Feed events in ``seq`` order with `step`; `report` gives the verdicts so far (undecided
    criteria pending); `close` decides what is still pending and returns the final report.
    Raises ScoringError for an event out of order, a close before the last event, or any use
    after the close.
    """

    def __init__(self, rubric: Rubric, session: str = "") -> None:
        self.rubric = rubric
        self.session = session
        self.runs = [_Run(c, make_template(c), signal_names(c)) for c in rubric.criteria]
        self.held: dict[str, float] = {}
        self.first: Mark | None = None
        self.last: Mark | None = None
        self.closed = False

    def step(self, event: Event) -> None:
        """Score one event (the next in `seq` order)."""
        self._check(event)
        for name, value in event.signals.items():
            if value is not None and not math.isnan(value):  # NaN / null: not reported
                self.held[name] = value
        here = mark(event)
        if self.first is None:
            self.first = here
        self.last = here
        for run in self.runs:
            if run.verdict == "pending":
                decision = run.template.step(event, self.held)
                if decision is not None:
                    self._decide(run, decision, here)

    def close(
        self, t: float | None = None, observations: Mapping[str, Verdict] | None = None
    ) -> SessionReport:
        """Close at time `t` (default: the last event's t, 0 for an empty session) and return the
        final report. `observations` maps `observed` criterion ids to an assessor's verdict,
        `pass` or `fail`; anything else (or no entry) leaves the criterion pending, and entries
        for criteria that are not `observed` are ignored."""
        if self.closed:
            raise ScoringError(f"session {self.session!r} is already closed")
        if t is None:
            t = self.last.t if self.last is not None else 0.0
        if self.last is not None and t < self.last.t:
            raise ScoringError(f"close t={t} is before the last event's t={self.last.t}")
        self.closed = True
        end = Mark(self.last.seq if self.last is not None else None, t)
        observations = observations or {}
        for run in self.runs:
            if run.verdict != "pending":
                continue
            if run.criterion.observed is not None:
                recorded = pass_or_fail(observations.get(run.criterion.id))
                if recorded is not None:
                    self._decide(run, Decision(recorded), end)
                continue
            decision = run.template.close(t)
            if decision is not None:
                if decision.verdict == "pass":  # every pass at end is anchored at the start
                    decision = replace(decision, anchor=None)
                self._decide(run, decision, end)
        return self.report()

    def report(self) -> SessionReport:
        """The verdicts so far, with score and outcome."""
        results = tuple(
            CriterionResult(
                id=r.criterion.id,
                title=r.criterion.title,
                critical=r.criterion.critical,
                points=r.criterion.weight,
                verdict=r.verdict,
                evidence=r.evidence,
            )
            for r in self.runs
        )
        score = _score(results, assume_pending_pass=False)
        return SessionReport(
            session=self.session,
            rubric=self.rubric.rubric,
            rubric_version=self.rubric.version,
            rubric_sha256=self.rubric.sha256(),
            outcome=_outcome(results, score, self.rubric.pass_.min_score),
            score=score,
            criteria=results,
        )

    def _check(self, event: Event) -> None:
        if self.closed:
            raise ScoringError(f"session {self.session!r} is closed")
        if self.last is not None:
            assert self.last.seq is not None
            if event.seq <= self.last.seq:
                raise ScoringError(f"seq {event.seq} does not increase (last {self.last.seq})")
            if event.t < self.last.t:
                raise ScoringError(f"t {event.t} goes backwards (last {self.last.t})")

    def _decide(self, run: _Run, decision: Decision, at: Mark) -> None:
        anchor = decision.anchor if decision.anchor is not None else self.first
        if decision.extremes is not None:
            values: Mapping[str, Value] = decision.extremes
        else:
            values = {name: self.held.get(name) for name in run.names}
        run.verdict = decision.verdict
        found = decision.contributing
        run.evidence = Evidence(
            seq=at.seq,
            t=at.t,
            t_start=anchor.t if anchor is not None else None,
            t_end=at.t,
            seq_start=anchor.seq if anchor is not None else None,
            seq_end=at.seq,
            values=values,
            measured=decision.measured,
            contributing=None if found is None else tuple(found.listed),
            contributing_total=None if found is None else found.total,
            steps_done=decision.steps_done,
            out_of_order=decision.out_of_order,
        )


# --------------------------------------------------------------------------- score, outcome


def _score(results: Sequence[CriterionResult], *, assume_pending_pass: bool) -> float:
    """100 × passed points / points of the non-critical, not-n/a criteria (100 if none);
    with `assume_pending_pass`, the best score still reachable."""
    passed = 0.0
    total = 0.0
    for r in results:
        if r.critical or r.verdict == "not_applicable":
            continue
        total += r.points
        if r.verdict == "pass" or (assume_pending_pass and r.verdict == "pending"):
            passed += r.points
    return 100.0 if total == 0 else 100.0 * passed / total


def _outcome(results: Sequence[CriterionResult], score: float, min_score: float) -> Outcome:
    critical = [r.verdict for r in results if r.critical]
    if "fail" in critical or _score(results, assume_pending_pass=True) < min_score:
        return "fail"
    undecided = any(r.verdict == "pending" for r in results)
    gates_open = all(v in ("pass", "not_applicable") for v in critical)
    if not undecided and gates_open and score >= min_score:
        return "pass"
    return "incomplete"


def score_session(
    rubric: Rubric,
    scenario: Scenario,
    session: SessionEvents,
    observations: Mapping[str, Verdict] | None = None,
) -> SessionReport:
    """Score a whole session: its events in order, closed at `session.end_t`.

    `scenario` is accepted for symmetry with the kernel (which needs its name tables); the
    reference works on names directly. `observations` gives assessors' verdicts for `observed`
    criteria (see `ReferenceSession.close`).
    """
    del scenario
    scorer = ReferenceSession(rubric, session.session)
    for event in session.events:
        scorer.step(event)
    return scorer.close(session.end_t, observations)
