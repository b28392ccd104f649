"""Rubric check: every problem of a rubric, located by data path, in words a trainer can act on.

Two layers, both pure (no files, no YAML):

- **structure**: `Rubric.model_validate` errors, translated by `problems.py` (unknown key with
  "did you mean", wrong type, missing key, bad duration, bad condition with its offset, choices
  listed) and stripped of pydantic's follow-on noise;
- **meaning**: checks against the `Scenario` (signal and event names), duplicate ids and
  competency codes, unknown competencies, `all_before` listing its own `before` event, and the
  shape of explicit state machines (undefined, unreachable and dead-end states).

Semantic checks run on every criterion that is structurally valid, even when others are not, so
one run reports as much as it can. Positions are the caller's business: a `Problem` names a path
such as ``("criteria", 2, "never")`` and, for conditions, an offset inside that text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .expr import Expr, name_positions
from .model import Step
from .problems import DataPath, Problem, did_you_mean, problems_from_validation
from .rubric import Competency, Criterion, Machine, Rubric
from .scenario import Scenario

__all__ = ["Problem", "check_rubric", "validate_rubric"]

TERMINALS = ("pass", "fail")

M = TypeVar("M", bound=BaseModel)


def check_rubric(data: object, scenario: Scenario | None) -> tuple[Rubric | None, list[Problem]]:
    """Validate `data` as a rubric and check it against `scenario` (None: skip name checks).

    Returns the rubric (None when its structure is invalid) and every problem found; the rubric
    is valid exactly when the list is empty.
    """
    rubric, problems = validate_rubric(data)
    if scenario is not None:
        problems = [_event_in_bad_condition(p, data, scenario) for p in problems]
    parts = _Parts.of_rubric(rubric) if rubric is not None else _Parts.of_data(data)
    return rubric, problems + parts.hidden + _semantics(parts, scenario)


def validate_rubric(data: object) -> tuple[Rubric | None, list[Problem]]:
    """The structural layer only: the rubric, or None and its translated validation errors."""
    try:
        return Rubric.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from_validation(exc, Rubric)


# ================================================================================= meaning


@dataclass(frozen=True, slots=True)
class _Parts:
    """The structurally valid pieces of a rubric, each with its index."""

    scenario_id: str | None
    competencies: list[tuple[int, Competency]]
    competencies_complete: bool
    criteria: list[tuple[int, Criterion]]
    codes: list[tuple[DataPath, str]]  # every competency code written, valid item or not
    ids: list[tuple[DataPath, str]]  # every criterion id written, valid criterion or not
    hidden: list[Problem]  # misplaced keys that a first misplaced key hid from validation

    @classmethod
    def of_rubric(cls, rubric: Rubric) -> _Parts:
        return cls(
            rubric.scenario,
            list(enumerate(rubric.competencies)),
            True,
            list(enumerate(rubric.criteria)),
            [(("competencies", i, "code"), c.code) for i, c in enumerate(rubric.competencies)],
            [(("criteria", i, "id"), c.id) for i, c in enumerate(rubric.criteria)],
            [],
        )

    @classmethod
    def of_data(cls, data: object) -> _Parts:
        if not isinstance(data, dict):
            return cls(None, [], False, [], [], [], [])
        scenario_id = data.get("scenario")
        hidden: list[Problem] = []
        competencies, complete = _valid_items(
            data.get("competencies", []), Competency, ("competencies",), hidden
        )
        criteria, _ = _valid_items(data.get("criteria"), Criterion, ("criteria",), hidden)
        return cls(
            scenario_id if isinstance(scenario_id, str) else None,
            competencies,
            complete,
            criteria,
            _written(data.get("competencies"), "competencies", "code"),
            _written(data.get("criteria"), "criteria", "id"),
            hidden,
        )


def _written(items: object, where: str, key: str) -> list[tuple[DataPath, str]]:
    """The text values of `key` in each mapping of the list `items` (duplicates are found
    among every name written, even in items with other problems)."""
    if not isinstance(items, list):
        return []
    return [
        ((where, i, key), item[key])
        for i, item in enumerate(items)
        if isinstance(item, dict) and isinstance(item.get(key), str)
    ]


def _valid_items(
    items: object, model: type[M], at: DataPath, hidden: list[Problem]
) -> tuple[list[tuple[int, M]], bool]:
    """The items of a list that validate as `model` (once their unknown and misplaced keys
    are dropped), and whether all of them did; appends to `hidden` the misplaced keys that
    only showed once another was dropped."""
    if not isinstance(items, list):
        return [], False
    valid: list[tuple[int, M]] = []
    for index, item in enumerate(items):
        parsed = _lenient(item, model, (*at, index), hidden)
        if parsed is not None:
            valid.append((index, parsed))
    return valid, len(valid) == len(items)


def _lenient(item: object, model: type[M], at: DataPath, hidden: list[Problem]) -> M | None:
    """`item` as `model`, without its unknown keys and the keys that do not belong with the
    rest (`misplaced_key`: `within` beside `never`, `points` on a critical criterion); None if
    it has any other structural error. A model reports one misplaced key at a time: those
    found after the first round go to `hidden`, located under `at`."""
    for round_ in range(_MAX_PRUNED):
        try:
            return model.model_validate(item)
        except ValidationError as exc:
            paths = [_prunable(e) for e in exc.errors(include_url=False)]
            if round_ > 0:
                hidden += [
                    Problem((*at, *p.path), p.message, p.offset, p.at_key, p.first)
                    for p in problems_from_validation(exc, model)
                ]
        if any(path is None for path in paths):
            return None
        item = _without(item, [p for p in paths if p is not None])
    return None


_MAX_PRUNED = 8
"""Rounds of pruning (a model validator reports one misplaced key at a time)."""


def _prunable(error: ErrorDetails) -> DataPath | None:
    if error["type"] == "extra_forbidden":
        return tuple(error["loc"])
    if error["type"] == "misplaced_key":
        return (*error["loc"], (error.get("ctx") or {})["key"])
    return None


def _without(data: object, paths: Sequence[DataPath]) -> object:
    """A copy of nested dicts/lists `data` without the entries at `paths`."""
    if isinstance(data, dict):
        drop = {p[0] for p in paths if len(p) == 1}
        return {
            k: _without(v, [p[1:] for p in paths if len(p) > 1 and p[0] == k])
            for k, v in data.items()
            if k not in drop
        }
    if isinstance(data, list):
        return [_without(v, [p[1:] for p in paths if p[0] == i]) for i, v in enumerate(data)]
    return data


def _semantics(parts: _Parts, scenario: Scenario | None) -> list[Problem]:
    problems = list(_scenario_id(parts.scenario_id, scenario))
    problems += _duplicates(parts.codes, "competency code")
    problems += _duplicates(parts.ids, "criterion id")
    known = [c.code for _, c in parts.competencies] if parts.competencies_complete else None
    for index, criterion in parts.criteria:
        problems += _criterion(("criteria", index), criterion, known, scenario)
    return problems


def _scenario_id(rubric_scenario: str | None, scenario: Scenario | None) -> Iterator[Problem]:
    if scenario is not None and rubric_scenario not in (None, scenario.scenario):
        yield Problem(
            ("scenario",),
            f"this rubric is for scenario '{rubric_scenario}', "
            f"but the scenario found is '{scenario.scenario}'",
        )


def _duplicates(named: Iterable[tuple[DataPath, str]], what: str) -> Iterator[Problem]:
    first: dict[str, DataPath] = {}
    for path, name in named:
        if name in first:
            yield Problem(path, f"duplicate {what} '{name}'", first=first[name])
        else:
            first[name] = path


def _criterion(
    base: DataPath, criterion: Criterion, codes: list[str] | None, scenario: Scenario | None
) -> Iterator[Problem]:
    yield from _competency(base, criterion.competency, codes)
    if criterion.all_before is not None:
        before = criterion.all_before.before
        for j, event in enumerate(criterion.all_before.events):
            if event == before:
                yield Problem(
                    (*base, "all_before", "events", j),
                    f"'{event}' is also the `before` event: it cannot occur before itself",
                )
    if criterion.machine is not None:
        yield from _machine((*base, "machine"), criterion.machine)
    if scenario is not None:
        for path, ref in _references(criterion):
            yield from _names((*base, *path), ref, scenario)


def _competency(base: DataPath, code: str | None, codes: list[str] | None) -> Iterator[Problem]:
    if code is None or codes is None or code in codes:
        return
    if codes:
        listed = f" (the rubric lists: {', '.join(codes)})"
    else:
        listed = "; list it under `competencies` first"
    yield Problem((*base, "competency"), f"unknown competency '{code}'{listed}")


# ------------------------------------------------------------------------- names in criteria

Reference = Expr | str  # a condition or expression, or an event name
Refs = Iterator[tuple[DataPath, Reference]]


def _references(criterion: Criterion) -> Refs:
    """Every condition and event name the criterion writes, with its path in the criterion."""
    template = criterion.template
    return _REFERENCES[template](getattr(criterion, template))


def _step(path: DataPath, step: Step) -> Refs:
    if step.event is not None:
        yield path, step.event
    elif step.when is not None:
        yield (*path, "when"), step.when


def _optional(path: DataPath, ref: Reference | None) -> Refs:
    if ref is not None:
        yield path, ref


def _all_before_refs(t: Any) -> Refs:
    for j, event in enumerate(t.events):
        yield ("all_before", "events", j), event
    yield ("all_before", "before"), t.before


def _sequence_refs(steps: Any) -> Refs:
    for j, step in enumerate(steps):
        yield from _step(("sequence", j), step)


def _count_refs(t: Any) -> Refs:
    yield from _optional(("count", "event"), t.event)
    yield from _optional(("count", "when"), t.when)


def _response_refs(t: Any) -> Refs:
    yield from _step(("response", "after"), t.after)
    yield from _step(("response", "expect"), t.expect)


def _precede_refs(t: Any) -> Refs:
    yield ("precede", "event"), t.event
    yield from _step(("precede", "by"), t.by)


def _duration_refs(t: Any) -> Refs:
    yield from _step(("duration", "from"), t.from_)
    yield from _step(("duration", "to"), t.to)


def _metric_refs(t: Any) -> Refs:
    yield ("metric", "of"), t.of
    yield from _optional(("metric", "where"), t.where)


def _machine_refs(machine: Any) -> Refs:
    for state, transitions in machine.states.items():
        for k, tr in enumerate(transitions):
            yield from _optional(("machine", "states", state, k, "on"), tr.on)
            yield from _optional(("machine", "states", state, k, "when"), tr.when)


_REFERENCES: dict[str, Callable[[Any], Refs]] = {
    "never": lambda expr: iter([(("never",), expr)]),
    "always": lambda expr: iter([(("always",), expr)]),
    "all_before": _all_before_refs,
    "sequence": _sequence_refs,
    "count": _count_refs,
    "response": _response_refs,
    "precede": _precede_refs,
    "duration": _duration_refs,
    "metric": _metric_refs,
    "observed": lambda _: iter(()),
    "machine": _machine_refs,
}


def _names(path: DataPath, ref: Reference, scenario: Scenario) -> Iterator[Problem]:
    if isinstance(ref, str):
        if ref not in scenario.event_code:
            yield Problem(path, _unknown_event(ref, scenario))
        return
    for name in name_positions(ref.root):
        if name.name not in scenario.signals:
            yield Problem(path, _unknown_signal(name.name, scenario, path), offset=name.pos)


def _unknown_signal(name: str, scenario: Scenario, path: DataPath) -> str:
    if name in scenario.event_code:
        return _event_not_condition(name, path)
    return _unknown("signal", name, scenario.signal_names, scenario.scenario)


def _event_not_condition(name: str, path: DataPath) -> str:
    """What to write instead of event `name` inside the condition at `path`."""
    if path[-1] in ("never", "always") or "count" in path or "metric" in path:
        use = f"to count or forbid it, use `count: {{event: {name}, max: 0}}` (or `min:`)"
    elif "machine" in path:
        use = f"to react to it, use `on: {name}` in the transition (`when:` for the signals)"
    else:
        use = f"write the step as the event itself, `{name}`, not {{when: ...}}"
    return f"'{name}' is an event, not a signal: events are not conditions; {use}"


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _event_in_bad_condition(problem: Problem, data: object, scenario: Scenario) -> Problem:
    """A condition that does not parse because it names an event (``speed > 8 or horn``):
    say so at the event, instead of the parser's words about the grammar."""
    if problem.offset is None or not problem.message.startswith("bad condition"):
        return problem
    text = _text_at(data, problem.path)
    for word in _WORD.finditer(text or ""):
        name = word.group()
        if name in scenario.event_code and name not in scenario.signal_index:
            message = _event_not_condition(name, problem.path)
            return Problem(problem.path, message, offset=word.start())
    return problem


def _text_at(data: object, path: DataPath) -> str | None:
    """The text at `path` in plain data, if there is text there."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data if isinstance(data, str) else None


def _unknown_event(name: str, scenario: Scenario) -> str:
    if name in scenario.signals:
        return f"'{name}' is a signal, not an event"
    return _unknown("event", name, scenario.event_names, scenario.scenario)


def _unknown(what: str, name: str, known: Sequence[str], scenario_id: str) -> str:
    hint = did_you_mean(name, known)
    if hint:
        return f"unknown {what} '{name}'{hint}"
    return f"unknown {what} '{name}': scenario '{scenario_id}' does not define it"


# ---------------------------------------------------------------------------------- machines


def _machine(path: DataPath, machine: Machine) -> Iterator[Problem]:
    """Terminal names used as states, undefined states, unreachable and dead-end states."""
    states = [s for s in machine.states if s not in TERMINALS]
    for terminal in TERMINALS:
        if terminal in machine.states:
            message = f"'{terminal}' is a built-in terminal state; do not define it"
            yield Problem((*path, "states", terminal), message, at_key=True)
    if machine.initial not in states:
        message = f"initial state '{machine.initial}' is not defined under `states`"
        yield Problem((*path, "initial"), message + did_you_mean(machine.initial, states))
    for state, k, target in _edges(machine):
        if target not in states and target not in TERMINALS:
            message = f"state '{target}' is not defined under `states` (nor pass or fail)"
            yield Problem((*path, "states", state, k, "to"), message + did_you_mean(target, states))
    yield from _graph(path, machine, states)


def _graph(path: DataPath, machine: Machine, states: list[str]) -> Iterator[Problem]:
    edges = [(s, t) for s, _, t in _edges(machine) if s in states]
    reached = _closure({machine.initial}, edges) if machine.initial in states else set(states)
    alive = _closure(set(TERMINALS), [(t, s) for s, t in edges])
    for state in states:
        key = (*path, "states", state)
        if state not in reached:
            message = f"state '{state}' cannot be reached from the initial state"
            yield Problem(key, f"{message} '{machine.initial}'", at_key=True)
        elif state not in alive:
            message = f"from state '{state}' neither pass nor fail can be reached"
            yield Problem(key, message, at_key=True)


def _edges(machine: Machine) -> Iterator[tuple[str, int, str]]:
    for state, transitions in machine.states.items():
        for k, transition in enumerate(transitions):
            yield state, k, transition.to


def _closure(start: set[str], edges: Sequence[tuple[str, str]]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        here = todo.pop()
        for source, target in edges:
            if source == here and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen
