"""Rubric -> compiled tables for the kernel.

Compile once, apply many: `compile_rubric(rubric, scenario)` turns every criterion into a row of
integer and float parameters, guard conditions into a de-duplicated list of boolean column
programs, and state layouts into offsets. The kernel (`kernel.py`) is one generic, table-driven
loop that serves every rubric; nothing is compiled per rubric at run time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from . import expr
from .kernel_types import Tables
from .masks import MaskProgram, compile_masks
from .model import Step
from .report import CONTRIB_MAX
from .rubric import Criterion, Machine, Rubric
from .scenario import Scenario

# template kinds (the kernel's dispatch codes)
NEVER, ALL_BEFORE, SEQUENCE, COUNT, RESPONSE, PRECEDE, DURATION, METRIC, OBSERVED, MACHINE = range(
    10
)
# verdict codes
PENDING, PASS, FAIL, NOT_APPLICABLE = 0, 1, 2, 3
VERDICT_NAMES = ("pending", "pass", "fail", "not_applicable")
VERDICT_CODES = {name: code for code, name in enumerate(VERDICT_NAMES)}
# machine targets below zero are terminals
TO_PASS, TO_FAIL = -1, -2
# metric aggregates
AGGREGATE_CODES = {
    name: i for i, name in enumerate(("max", "min", "mean", "sum", "last", "count", "time_true"))
}
N_PARAMS = 8

# per-template state widths: (ints, floats); never and machine add per-signal / per-slot floats
_STATE_WIDTH = {
    NEVER: (4, 1),
    ALL_BEFORE: (1, 0),
    SEQUENCE: (2, 1),
    COUNT: (3, 1 + 2 * CONTRIB_MAX),
    RESPONSE: (2, 1),
    PRECEDE: (1, 1),
    DURATION: (2, 1),
    METRIC: (3, 6 + 2 * CONTRIB_MAX),
    OBSERVED: (0, 0),
    MACHINE: (2, 1),
}


@dataclass(frozen=True, slots=True)
class Guard:
    """A boolean column: event equality (`event_code` >= 0) or a condition."""

    event_code: int = -1
    condition: expr.Node | None = None


@dataclass(frozen=True, slots=True)
class CompiledRubric:
    """Everything the kernel needs, as flat arrays. Shapes in comments; C = criteria.

    The kernel reads guards as rows of a (n_guards, n_events) bool matrix and values as rows of a
    (n_signals + n_exprs, n_events) float matrix: held signals first, then metric expressions.
    """

    rubric: Rubric
    scenario: Scenario
    sha256: str
    guards: tuple[Guard, ...]
    value_exprs: tuple[expr.Node, ...]  # metric `of` expressions, rows after the signals
    kind: NDArray[np.int64]  # (C,)
    params_i: NDArray[np.int64]  # (C, N_PARAMS)
    params_f: NDArray[np.float64]  # (C, N_PARAMS)
    list_off: NDArray[np.int64]  # (C,) into `lists`
    list_len: NDArray[np.int64]  # (C,)
    lists: NDArray[np.int64]  # flat guard ids (sequence steps, all_before events)
    repeat: NDArray[np.int64]  # aligned with `lists`: step written like an earlier one
    ev_off: NDArray[np.int64]  # (C,) into `ev_rows`
    ev_len: NDArray[np.int64]  # (C,)
    ev_rows: NDArray[np.int64]  # flat signal rows named by each criterion
    ev_names: tuple[tuple[str, ...], ...]  # (C,) the same, as names
    state_i_off: NDArray[np.int64]  # (C,) offset in the per-session int state
    state_f_off: NDArray[np.int64]  # (C,) offset in the per-session float state
    n_state_i: int
    n_state_f: int
    # explicit machines, flat over all machine criteria
    state_first: NDArray[np.int64]  # (n_machine_states,) first transition
    state_count: NDArray[np.int64]  # (n_machine_states,)
    state_quiet: NDArray[np.int64]  # (n_machine_states,) 1: only its wake guards can move it
    tr_on: NDArray[np.int64]  # (n_transitions,) guard or -1
    tr_when: NDArray[np.int64]  # guard or -1
    tr_for: NDArray[np.float64]  # seconds or NaN
    tr_after: NDArray[np.float64]  # seconds or NaN
    tr_to: NDArray[np.int64]  # local state, TO_PASS or TO_FAIL
    tr_slot: NDArray[np.int64]  # `for` run slot (float state) or -1
    sparse: tuple[tuple[int, ...] | None, ...]  # (C,) guards outside which nothing changes
    visit_key: NDArray[np.int64]  # (C,) the criterion's row list (VISIT_ALL: every row)
    key_off: NDArray[np.int64]  # (K + 1,) row list k is the OR of key_guards[key_off[k]:...]
    key_guards: NDArray[np.int64]  # flat guard ids; an empty range = the non-sample rows
    extremes: NDArray[np.bool_]  # (n_signals,) session extremes kept (named by never/always)
    event_guards: NDArray[np.int64]  # ids of the guards on a named (non-sample) event
    event_table: NDArray[np.bool_]  # (n_event_codes, len(event_guards)) each code's guard bits
    init_i: NDArray[np.int64]  # (n_state_i,) a fresh session's int state
    init_f: NDArray[np.float64]  # (n_state_f,) a fresh session's float state
    masks: MaskProgram  # fills the condition guards and the metric expressions' rows
    max_ev: int = field(default=1)
    # (C,) the criteria whose decisions carry contributing intervals (count, metric), and how
    # many: computed once here, as every step sizes its output by them
    contributing: NDArray[np.bool_] = field(init=False, repr=False, compare=False)
    n_contributing: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        contributing = (self.kind == COUNT) | (self.kind == METRIC)
        contributing.setflags(write=False)
        object.__setattr__(self, "contributing", contributing)
        object.__setattr__(self, "n_contributing", int(np.count_nonzero(contributing)))

    @property
    def tables(self) -> Tables:
        """The tables as the kernel takes them."""
        return Tables(
            self.kind, self.params_i, self.params_f, self.lists, self.repeat, self.list_off,
            self.list_len, self.ev_rows, self.ev_off, self.ev_len, self.state_i_off,
            self.state_f_off, self.state_first, self.state_count, self.state_quiet, self.tr_on,
            self.tr_when, self.tr_for, self.tr_after, self.tr_to, self.tr_slot,
        )  # fmt: skip

    @property
    def n_criteria(self) -> int:
        return int(self.kind.shape[0])

    @property
    def n_signals(self) -> int:
        return len(self.scenario.signal_names)


class _Builder:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.guards: list[Guard] = []
        self.guard_index: dict[str, int] = {}
        self.value_exprs: list[expr.Node] = []
        self.value_index: dict[str, int] = {}
        self.lists: list[int] = []
        self.repeat: list[int] = []
        self.ev_rows: list[int] = []
        self.n_i = 0
        self.n_f = 0
        self.states_first: list[int] = []
        self.states_count: list[int] = []
        self.states_quiet: list[int] = []
        self.tr: dict[str, list[float]] = {
            k: [] for k in ("on", "when", "for", "after", "to", "slot")
        }

    def event_guard(self, name: str) -> int:
        return self._guard(f"event:{name}", Guard(event_code=self.scenario.event_code[name]))

    def condition_guard(self, node: expr.Node) -> int:
        return self._guard(f"when:{expr.unparse(node)}", Guard(condition=node))

    def step_guard(self, step: Step) -> int:
        if step.event is not None:
            return self.event_guard(step.event)
        assert step.when is not None
        return self.condition_guard(step.when.root)

    def _guard(self, key: str, guard: Guard) -> int:
        if key not in self.guard_index:
            self.guard_index[key] = len(self.guards)
            self.guards.append(guard)
        return self.guard_index[key]

    def value_row(self, node: expr.Node) -> int:
        key = expr.unparse(node)
        if key not in self.value_index:
            self.value_index[key] = len(self.value_exprs)
            self.value_exprs.append(node)
        return len(self.scenario.signal_names) + self.value_index[key]

    def add_list(self, guards: list[int], repeats: list[int] | None = None) -> tuple[int, int]:
        off = len(self.lists)
        self.lists.extend(guards)
        self.repeat.extend(repeats or [0] * len(guards))
        return off, len(guards)


def criterion_signals(criterion: Criterion) -> tuple[str, ...]:
    """The signals named anywhere in a criterion, sorted by name."""
    names: set[str] = set()
    for value in _expressions(criterion):
        names |= value.names
    return tuple(sorted(names))


def _expressions(criterion: Criterion) -> list[expr.Expr]:
    found: list[expr.Expr] = []

    def walk(obj: object) -> None:
        if isinstance(obj, expr.Expr):
            found.append(obj)
        elif isinstance(obj, Step):
            if obj.when is not None:
                found.append(obj.when)
        elif isinstance(obj, tuple | list):
            for item in obj:
                walk(item)
        elif isinstance(obj, Mapping):
            for item in obj.values():
                walk(item)
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                walk(getattr(obj, name))

    walk(criterion)
    return found


def compile_rubric(rubric: Rubric, scenario: Scenario) -> CompiledRubric:
    """Compile a checked rubric (names valid for `scenario`) into kernel tables."""
    b = _Builder(scenario)
    n = len(rubric.criteria)
    kind = np.zeros(n, np.int64)
    pi = np.full((n, N_PARAMS), -1, np.int64)
    pf = np.full((n, N_PARAMS), math.nan, np.float64)
    list_off = np.zeros(n, np.int64)
    list_len = np.zeros(n, np.int64)
    ev_off = np.zeros(n, np.int64)
    ev_len = np.zeros(n, np.int64)
    si_off = np.zeros(n, np.int64)
    sf_off = np.zeros(n, np.int64)
    ev_names: list[tuple[str, ...]] = []
    for c, crit in enumerate(rubric.criteria):
        names = criterion_signals(crit)
        ev_names.append(names)
        ev_off[c], ev_len[c] = len(b.ev_rows), len(names)
        b.ev_rows.extend(scenario.signal_index[name] for name in names)
        k = _compile_criterion(b, crit, pi[c], pf[c])
        kind[c] = k
        if crit.all_before is not None or crit.sequence is not None or crit.machine is not None:
            list_off[c], list_len[c] = int(pi[c, 7]), int(pi[c, 6])
        width_i, width_f = _STATE_WIDTH[k]
        if k == NEVER:
            width_f += 2 * len(names)
        if k == MACHINE:
            width_f += int(pi[c, 4])
        si_off[c], sf_off[c] = b.n_i, b.n_f
        b.n_i += width_i
        b.n_f += width_f
    sparse = tuple(sparse_guards(int(kind[c]), pi[c], pf[c], b.lists) for c in range(n))
    init_i = np.zeros(max(b.n_i, 1), np.int64)
    init_i[si_off[kind == NEVER]] = -2  # no row where the condition held yet
    init_i[si_off[kind == COUNT] + 1] = -2
    for m in np.flatnonzero(kind == MACHINE):
        init_i[si_off[m]], init_i[si_off[m] + 1] = pi[m, 2], -1  # initial state, entered at t=0
    extremes = np.zeros(len(scenario.signal_names), np.bool_)
    for never in np.flatnonzero(kind == NEVER):
        extremes[b.ev_rows[ev_off[never] : ev_off[never] + ev_len[never]]] = True
    event_guards = [g for g, guard in enumerate(b.guards) if guard.event_code > 0]
    n_codes = len(scenario.event_names)
    return CompiledRubric(
        rubric=rubric,
        scenario=scenario,
        sha256=rubric.sha256(),
        guards=tuple(b.guards),
        value_exprs=tuple(b.value_exprs),
        kind=kind,
        params_i=pi,
        params_f=pf,
        list_off=list_off,
        list_len=list_len,
        lists=np.array(b.lists, np.int64),
        repeat=np.array(b.repeat, np.int64),
        ev_off=ev_off,
        ev_len=ev_len,
        ev_rows=np.array(b.ev_rows, np.int64),
        ev_names=tuple(ev_names),
        state_i_off=si_off,
        state_f_off=sf_off,
        n_state_i=max(b.n_i, 1),
        n_state_f=max(b.n_f, 1),
        state_first=np.array(b.states_first, np.int64),
        state_count=np.array(b.states_count, np.int64),
        state_quiet=np.array(b.states_quiet, np.int64),
        tr_on=np.array(b.tr["on"], np.int64),
        tr_when=np.array(b.tr["when"], np.int64),
        tr_for=np.array(b.tr["for"], np.float64),
        tr_after=np.array(b.tr["after"], np.float64),
        tr_to=np.array(b.tr["to"], np.int64),
        tr_slot=np.array(b.tr["slot"], np.int64),
        sparse=sparse,
        **_visit_plan(sparse, b.guards),
        extremes=extremes,
        event_guards=np.array(event_guards, np.int64),
        event_table=np.array(
            [[b.guards[g].event_code == code for g in event_guards] for code in range(n_codes)],
            np.bool_,
        ).reshape(n_codes, len(event_guards)),
        init_i=init_i,
        init_f=_fresh_floats(kind, pi, sf_off, max(b.n_f, 1), b),
        masks=compile_masks(scenario.signal_names, [g.condition for g in b.guards], b.value_exprs),
        max_ev=max([1, *(len(x) for x in ev_names)]),
    )


def _fresh_floats(
    kind: NDArray[np.int64], pi: NDArray[np.int64], sf_off: NDArray[np.int64], n_f: int,
    b: _Builder,
) -> NDArray[np.float64]:  # fmt: skip
    """A fresh session's float state: 0.0 wherever no reader (`kernel`'s templates and
    `close`, the generated fused step) reads a field before writing it, so a never-used state
    row's zero bytes need no write there (`ScoringState._reset`, the fused step's
    `_fresh_rows`: field-major columns a session may never touch). Per template:

    - never: the episode's t0 and (min, max) per signal are read only after the episode's
      first row wrote them (`fresh` holds there: the last row's ordinal starts at -2); the
      close reads none of them;
    - sequence: the first step's t is read (expiry, a decision, the close) only when steps
      done > 0, which the write of it comes with;
    - response, duration, precede: their one t is read only when their int flag (waiting,
      started, a B seen) is set, which the write of it comes with (the fused duration's
      ``started & (expired ...)`` reads it unflagged, its value masked by `started`);
    - count, metric: the contributing intervals are read up to their count, written first
      (`kernel.contrib_*_at`); a metric's accumulators are set at its first kept row and read
      after it (the close returns NaN for none before reading them), its pending t and value
      are read only while a weighted event is pending (set with them);
    - machine: the state's entry t is 0.0 (entered at t=0, read by `after` and the close);
      a `for` run's start is NaN (no run) where it is read before written: the runs of the
      initial state's transitions; the others are written NaN when their state is entered,
      and read only in it.
    """
    init_f = np.zeros(n_f, np.float64)
    for m in np.flatnonzero(kind == MACHINE).tolist():
        initial = int(pi[m, 0] + pi[m, 2])
        first = b.states_first[initial]
        for r in range(first, first + b.states_count[initial]):
            if b.tr["slot"][r] >= 0:
                init_f[int(sf_off[m]) + 1 + int(b.tr["slot"][r])] = math.nan
    return init_f


def _bound(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _compile_criterion(
    b: _Builder, crit: Criterion, pi: NDArray[np.int64], pf: NDArray[np.float64]
) -> int:
    """Fill this criterion's parameter rows; return its kind code.

    Parameter layout per kind (i = params_i, f = params_f):
      NEVER      i[0] guard, i[1] allow;            f[0] for
      ALL_BEFORE i[0] before guard, i[1] if_never;  list = listed event guards
      SEQUENCE   list = step guards (+ repeat flags); f[0] within (inf if none)
      COUNT      i[0] guard, i[1] 1 if `when` (episodes), i[2] min, i[3] max (-1 = none),
                 i[5] CONTRIB_MAX
      RESPONSE   i[0] after guard, i[1] expect guard; f[0] within
      PRECEDE    i[0] event guard, i[1] by guard;     f[0] within (inf if none)
      DURATION   i[0] from guard, i[1] to guard;      f[0] min, f[1] max
      METRIC     i[0] value row, i[1] where guard (-1), i[2] aggregate, i[5] CONTRIB_MAX;
                 f[0] at_least, f[1] at_most
      MACHINE    i[0] first state (global), i[1] n states, i[2] initial (local), i[3] at_end
                 verdict, i[4] number of `for` run slots; list = the wake guards of its
                 quiet states (see `_compile_machine`)
    (i[6], i[7] = list length and offset, for kinds that use a list.)
    """
    if crit.never is not None or crit.always is not None:
        node = crit.never.root if crit.never is not None else expr.Not(crit.always.root)  # type: ignore[union-attr]
        pi[0], pi[1] = b.condition_guard(node), crit.allow or 0
        pf[0] = crit.for_ or 0.0
        return NEVER
    if crit.all_before is not None:
        ab = crit.all_before
        pi[0], pi[1] = b.event_guard(ab.before), VERDICT_CODES[ab.if_never]
        pi[7], pi[6] = b.add_list([b.event_guard(e) for e in ab.events])
        return ALL_BEFORE
    if crit.sequence is not None:
        texts = [s.text for s in crit.sequence]
        repeats = [int(texts[j] in texts[:j]) for j in range(len(texts))]
        pi[7], pi[6] = b.add_list([b.step_guard(s) for s in crit.sequence], repeats)
        pf[0] = _bound(crit.within, math.inf)
        return SEQUENCE
    if crit.count is not None:
        cnt = crit.count
        if cnt.event is not None:
            pi[0], pi[1] = b.event_guard(cnt.event), 0
        else:
            assert cnt.when is not None
            pi[0], pi[1] = b.condition_guard(cnt.when.root), 1
        pi[2] = cnt.min or 0
        pi[3] = -1 if cnt.max is None else cnt.max
        pi[5] = CONTRIB_MAX
        return COUNT
    if crit.response is not None:
        r = crit.response
        pi[0], pi[1], pf[0] = b.step_guard(r.after), b.step_guard(r.expect), r.within
        return RESPONSE
    if crit.precede is not None:
        p = crit.precede
        pi[0], pi[1] = b.event_guard(p.event), b.step_guard(p.by)
        pf[0] = _bound(p.within, math.inf)
        return PRECEDE
    if crit.duration is not None:
        d = crit.duration
        pi[0], pi[1] = b.step_guard(d.from_), b.step_guard(d.to)
        pf[0], pf[1] = _bound(d.min, 0.0), _bound(d.max, math.inf)
        return DURATION
    if crit.metric is not None:
        m = crit.metric
        pi[0] = b.value_row(m.of.root)
        pi[1] = -1 if m.where is None else b.condition_guard(m.where.root)
        pi[2] = AGGREGATE_CODES[m.aggregate]
        pi[5] = CONTRIB_MAX
        pf[0], pf[1] = _bound(m.at_least, -math.inf), _bound(m.at_most, math.inf)
        return METRIC
    if crit.observed is not None:
        return OBSERVED
    assert crit.machine is not None
    _compile_machine(b, crit.machine, pi)
    return MACHINE


def _compile_machine(b: _Builder, machine: Machine, pi: NDArray[np.int64]) -> None:
    names = list(machine.states)
    local = {name: i for i, name in enumerate(names)}
    local["pass"], local["fail"] = TO_PASS, TO_FAIL
    pi[0], pi[1], pi[2] = len(b.states_first), len(names), local[machine.initial]
    pi[3] = VERDICT_CODES[machine.at_end]
    slots = 0
    wake: list[int] = []
    for name in names:
        transitions = machine.states[name]
        b.states_first.append(len(b.tr["to"]))
        b.states_count.append(len(transitions))
        guards: list[int] = []
        for tr in transitions:
            on = -1 if tr.on is None else b.event_guard(tr.on)
            when = -1 if tr.when is None else b.condition_guard(tr.when.root)
            guards.append(on if on >= 0 else when)
            b.tr["on"].append(on)
            b.tr["when"].append(when)
            b.tr["for"].append(math.nan if tr.for_ is None else tr.for_)
            b.tr["after"].append(math.nan if tr.after is None else tr.after)
            b.tr["to"].append(local[tr.to])
            if tr.for_ is not None:
                b.tr["slot"].append(slots)
                slots += 1
            else:
                b.tr["slot"].append(-1)
        # quiet: every transition guarded (event or condition), none with `for` or `after`; at
        # a row where none of those guards holds (its `on` event, else its `when`), nothing
        # can happen in this state, so the kernel skips the row after a glance at the wake guards
        quiet = all(g >= 0 and tr.for_ is None and tr.after is None
                    for g, tr in zip(guards, transitions, strict=True))  # fmt: skip
        b.states_quiet.append(int(quiet))
        wake.extend(g for g in guards if quiet and g not in wake)
    pi[4] = slots
    pi[7], pi[6] = b.add_list(wake)


def sparse_guards(
    kind: int,
    pi: NDArray[np.int64],
    pf: NDArray[np.float64],
    lists: list[int],
) -> tuple[int, ...] | None:
    """Guards outside of which the criterion's state cannot change, or None if every event
    matters (timers, episodes, metrics). The kernel then visits only rows where one holds."""
    listed = tuple(lists[int(pi[7]) : int(pi[7] + pi[6])]) if pi[6] > 0 else ()
    if kind in (NEVER, COUNT):
        return (int(pi[0]),)
    if kind == ALL_BEFORE:
        return (int(pi[0]), *listed)
    if kind == PRECEDE:
        return (int(pi[0]), int(pi[1]))
    if kind == SEQUENCE and math.isinf(pf[0]):
        return listed
    return None


VISIT_ALL = -1  # a criterion that visits every row (`CompiledRubric.visit_key`)


def _visit_plan(
    sparse: tuple[tuple[int, ...] | None, ...], guards: list[Guard]
) -> dict[str, NDArray[np.int64]]:
    """The row lists the criteria visit, shared between criteria with the same guards: per
    criterion its list (VISIT_ALL when its guards are None), per list the guards whose rows
    it holds. The criteria whose guards are all named events share one list, the batch's
    non-sample rows (an empty range of guards)."""
    keys: dict[tuple[int, ...], int] = {}
    visit_key = np.full(len(sparse), VISIT_ALL, np.int64)
    for c, gids in enumerate(sparse):
        if gids is not None:
            key = () if _events_only(gids, guards) else gids
            visit_key[c] = keys.setdefault(key, len(keys))
    ordered = sorted(keys, key=keys.__getitem__)
    key_off = np.zeros(len(ordered) + 1, np.int64)
    key_off[1:] = np.cumsum([len(k) for k in ordered])
    flat = [g for key in ordered for g in key]
    return {"visit_key": visit_key, "key_off": key_off, "key_guards": np.array(flat, np.int64)}


def _events_only(gids: tuple[int, ...] | None, guards: list[Guard]) -> bool:
    """Whether all of a criterion's sparse guards are named events other than `sample`."""
    return gids is not None and all(guards[g].event_code > 0 for g in gids)
