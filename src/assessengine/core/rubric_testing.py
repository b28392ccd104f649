"""Running a rubric's tests: every example on the compiled kernel AND the reference scorer,
each expectation compared with both, and what the examples exercised (coverage).

Pure: the caller gives the checked `RubricTests` and one session per example (the event
table, or the simulated session); failures are located by data path in the test file, coverage
gaps by data path in the rubric.

An expectation holds when both scorers give the expected verdict and, where written, the
deciding event's `t` (within `T_TOLERANCE`) and `seq`; an expected `score` holds within
`SCORE_TOLERANCE` (trainers write one decimal). When the two scorers disagree (an engine bug,
never the trainer's), the failure names both results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from . import kernel_scorer
from .events import SessionEvents
from .problems import DataPath, Problem
from .reference import MachineT, ReferenceSession
from .report import CriterionResult, SessionReport
from .rubric import Criterion, Rubric
from .rubric_tests import Example, ExpectedVerdict, RubricTests
from .scenario import Scenario

T_TOLERANCE = 1e-6
"""An expected deciding time matches within a microsecond (times are written in decimals)."""
SCORE_TOLERANCE = 0.05
"""An expected score matches when it is the score rounded to one decimal."""
SCORERS = ("kernel", "reference")


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed expectation: where it is written in the test file, and what went wrong."""

    path: DataPath
    example: str
    message: str

    def __str__(self) -> str:
        return f"example '{self.example}': {self.message}"


@dataclass(slots=True)
class Coverage:
    """What the examples exercised, by criterion id: the verdicts reached (on the reference
    scorer; the kernel agrees or a failure says so), and for explicit machines the states
    entered and the transitions fired, as (state, index in that state's list)."""

    verdicts: dict[str, set[str]] = field(default_factory=dict)
    states: dict[str, set[str]] = field(default_factory=dict)
    transitions: dict[str, set[tuple[str, int]]] = field(default_factory=dict)

    def add(self, session: ReferenceSession) -> None:
        for run in session.runs:
            cid = run.criterion.id
            self.verdicts.setdefault(cid, set()).add(run.verdict)
            if isinstance(run.template, MachineT):
                self.states.setdefault(cid, set()).update(run.template.entered)
                self.transitions.setdefault(cid, set()).update(run.template.fired)


@dataclass(frozen=True, slots=True)
class TestRun:
    """The outcome of running one test file: the failures (none: every expectation held),
    the number of expectations checked, and the coverage."""

    __test__ = False  # not a pytest test class, whatever its name

    failures: tuple[Failure, ...]
    expectations: int
    coverage: Coverage

    @property
    def ok(self) -> bool:
        return not self.failures


def run_tests(
    rubric: Rubric, scenario: Scenario, tests: RubricTests, sessions: Sequence[SessionEvents]
) -> TestRun:
    """Score `sessions` (one per example of `tests`, in order, with distinct ids) on both
    scorers and compare every expectation. `tests` must be checked against `rubric` first
    (`rubric_tests.check_tests`): every criterion it names exists."""
    observations = {s.session: ex.observations for s, ex in zip(sessions, tests.examples,
                                                                  strict=True)}  # fmt: skip
    kernel = kernel_scorer.score_sessions(rubric, scenario, sessions, observations)
    coverage = Coverage()
    failures: list[Failure] = []
    count = 0
    for index, (example, session, by_kernel) in enumerate(
        zip(tests.examples, sessions, kernel, strict=True)
    ):
        scorer = ReferenceSession(rubric, session.session)
        for event in session.events:
            scorer.step(event)
        by_reference = scorer.close(session.end_t, example.observations)
        coverage.add(scorer)
        base: DataPath = ("examples", index)
        found = list(_compare(base, example, {"kernel": by_kernel, "reference": by_reference}))
        failures += found
        count += len(example.expect) + (example.outcome is not None) + (example.score is not None)
    return TestRun(tuple(failures), count, coverage)


def _compare(
    base: DataPath, example: Example, reports: Mapping[str, SessionReport]
) -> Iterator[Failure]:
    results = {name: {c.id: c for c in report.criteria} for name, report in reports.items()}
    for cid, expected in example.expect.items():
        got = {name: by_id[cid] for name, by_id in results.items()}
        if not all(_holds(expected, result) for result in got.values()):
            message = f"{cid} expected {_expected(expected)}, got {_got(got)}"
            yield Failure((*base, "expect", cid), example.name, message)
    if example.outcome is not None:
        outcomes = {name: r.outcome for name, r in reports.items()}
        if any(o != example.outcome for o in outcomes.values()):
            got_text = _one_or_each(outcomes, lambda name: _outcome(reports[name]))
            message = f"outcome expected {example.outcome}, got {got_text}"
            yield Failure((*base, "outcome"), example.name, message)
    if example.score is not None:
        scores = {name: r.score for name, r in reports.items()}
        if any(abs(s - example.score) > SCORE_TOLERANCE for s in scores.values()):
            got_text = _one_or_each(scores, lambda name: f"{scores[name]:.1f}")
            message = f"score expected {example.score:g}, got {got_text}"
            yield Failure((*base, "score"), example.name, message)


def _holds(expected: ExpectedVerdict, result: CriterionResult) -> bool:
    if result.verdict != expected.verdict:
        return False
    t, seq = result.evidence.t, result.evidence.seq
    if expected.t is not None and (t is None or abs(t - expected.t) > T_TOLERANCE):
        return False
    return expected.seq is None or seq == expected.seq


def _expected(expected: ExpectedVerdict) -> str:
    where = []
    if expected.t is not None:
        where.append(f"t={expected.t:g} s")
    if expected.seq is not None:
        where.append(f"seq {expected.seq}")
    return expected.verdict + (f" at {', '.join(where)}" if where else "")


def _got(results: Mapping[str, CriterionResult]) -> str:
    """``pass (decided at t=12.4 s, seq 37)``, once when both scorers agree, else each
    named."""
    texts = {name: _result(r) for name, r in results.items()}
    return _one_or_each(texts, lambda name: texts[name])


def _one_or_each(values: Mapping[str, object], show: Callable[[str], str]) -> str:
    if len(set(map(repr, values.values()))) == 1:
        return show(next(iter(values)))
    return " but ".join(f"{show(name)} on the {name}" for name in values)


def _result(result: CriterionResult) -> str:
    if result.verdict == "pending":
        return "pending (no assessor's recording)"
    evidence = result.evidence
    if evidence.t is None:
        return f"{result.verdict} (decided at the close)"
    seq = f", seq {evidence.seq}" if evidence.seq is not None else ", at the close"
    return f"{result.verdict} (decided at t={evidence.t:g} s{seq})"


def _outcome(report: SessionReport) -> str:
    failed = [c.id for c in report.criteria if c.verdict == "fail"]
    detail = f"; failed: {', '.join(failed)}" if failed else ""
    return f"{report.outcome} (score {report.score:.1f}{detail})"


# =================================================================================== coverage


@dataclass(frozen=True, slots=True)
class CoverageSummary:
    """Counts of what the examples reach: the pass and fail verdicts of the criteria the
    rubric decides (2 per criterion), and the states and transitions of explicit machines;
    `gaps` says what is not reached, each at its place in the rubric."""

    verdicts: tuple[int, int]
    states: tuple[int, int]
    transitions: tuple[int, int]
    gaps: tuple[Problem, ...]

    def __str__(self) -> str:
        return (
            f"pass/fail verdicts {_ratio(self.verdicts)}, machine states {_ratio(self.states)}, "
            f"transitions {_ratio(self.transitions)}"
        )


def _ratio(pair: tuple[int, int]) -> str:
    return f"{pair[0]}/{pair[1]}"


def coverage_gaps(rubric: Rubric, coverage: Coverage) -> CoverageSummary:
    """What no example reaches, in rubric order: for every criterion the rubric decides (not
    `observed`), a pass and a fail; for every explicit machine, each state it defines and each
    transition."""
    gaps: list[Problem] = []
    verdicts = states = transitions = (0, 0)
    for index, criterion in enumerate(rubric.criteria):
        if criterion.observed is not None:
            continue
        base: DataPath = ("criteria", index)
        seen = coverage.verdicts.get(criterion.id, set())
        missing = [(v, w) for v, w in (("pass", "passes"), ("fail", "fails")) if v not in seen]
        verdicts = (verdicts[0] + 2 - len(missing), verdicts[1] + 2)
        gaps += [
            Problem((*base, "id"), f"'{criterion.id}' {word} in no example") for _, word in missing
        ]
        if criterion.machine is not None:
            found = list(_machine_gaps(base, criterion, coverage))
            n_states = len(criterion.machine.states)
            n_transitions = sum(len(t) for t in criterion.machine.states.values())
            missed_states = sum(1 for kind, _ in found if kind == "state")
            states = (states[0] + n_states - missed_states, states[1] + n_states)
            missed = len(found) - missed_states
            transitions = (transitions[0] + n_transitions - missed, transitions[1] + n_transitions)
            gaps += [gap for _, gap in found]
    return CoverageSummary(verdicts, states, transitions, tuple(gaps))


def _machine_gaps(
    base: DataPath, criterion: Criterion, coverage: Coverage
) -> Iterator[tuple[str, Problem]]:
    assert criterion.machine is not None
    entered = coverage.states.get(criterion.id, set())
    fired = coverage.transitions.get(criterion.id, set())
    for state, transitions in criterion.machine.states.items():
        at: DataPath = (*base, "machine", "states", state)
        if state not in entered:
            message = f"'{criterion.id}': state '{state}' is entered in no example"
            yield "state", Problem(at, message, at_key=True)
        for k, transition in enumerate(transitions):
            if (state, k) not in fired:
                message = (
                    f"'{criterion.id}': transition {state} -> {transition.to} "
                    f"({_trigger(transition)}) fires in no example"
                )
                yield "transition", Problem((*at, k), message)


def _trigger(transition: object) -> str:
    parts = []
    for key, label in (("on", "on"), ("when", "when"), ("for_", "for"), ("after", "after")):
        value = getattr(transition, key)
        if value is not None:
            shown = f"{value:g}s" if isinstance(value, float) else str(value)
            parts.append(f"{label} {shown}")
    return ", ".join(parts)
