"""Events: JSON records (one per line in an events file) and batches as numpy columns.

An events file is JSON Lines. Each line is one of::

    {"session": "S1", "open": {"learner": "L1", "scenario": "...", "rubric": "..."}}
    {"session": "S1", "seq": 0, "t": 0.0, "event": "sample", "signals": {"speed": 3.2}}
    {"session": "S1", "close": {"t": 612.0}}

Session ids (and an open record's ``learner``) follow the id rule of `core.ids`. A signal
value of ``null`` or NaN counts as not reported. Within a session ``seq`` must strictly
increase and ``t`` must not decrease; sessions may be interleaved.

Limits (docs/operations.md, "Limits"), each a message naming the line: ``seq`` is an integer
from 0 to 2**63 - 1 (it is stored as int64); ``t`` and signal values are finite numbers; a
record nests at most `MAX_RECORD_DEPTH` levels (`load_record` checks it before parsing).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import EventsError
from .ids import check_id
from .scenario import Scenario

INT64_MAX = 2**63 - 1
MAX_RECORD_DEPTH = 64
"""How deep one JSON record of an events file may nest (an event needs 2 levels)."""


def load_record(line: str) -> Any:
    """The JSON value of one line; ValueError naming the fault when it is not JSON or nests
    deeper than `MAX_RECORD_DEPTH` (checked before parsing, so no line can exhaust the
    parser's recursion)."""
    if line.count("[") + line.count("{") > MAX_RECORD_DEPTH and _depth(line) > MAX_RECORD_DEPTH:
        raise ValueError(f"the record nests more than {MAX_RECORD_DEPTH} levels deep")
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:  # an integer of more digits than Python reads
        raise ValueError(f"not valid JSON ({exc})") from None


def _depth(text: str) -> int:
    """The deepest nesting of [ and { outside JSON strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


@dataclass(frozen=True, slots=True)
class Event:
    """One event of one session. `signals` holds only the values reported at this event."""

    seq: int
    t: float
    event: str
    signals: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class SessionEvents:
    """Everything an events file says about one session, in arrival order."""

    session: str
    events: list[Event] = field(default_factory=list)
    open: Mapping[str, Any] = field(default_factory=dict)
    close_t: float | None = None

    @property
    def end_t(self) -> float:
        """The close time: as given, else the t of the last event (0 for an empty session)."""
        if self.close_t is not None:
            return self.close_t
        return self.events[-1].t if self.events else 0.0


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events of many sessions, as columns. Within one session, rows are in `seq` order.

    session: NDArray[np.int32]    (n,) the session's slot in the scorer's session table
    seq:     NDArray[np.int64]    (n,)
    t:       NDArray[np.float64]  (n,) seconds since the session started
    event:   NDArray[np.int32]    (n,) index into `Scenario.event_names` (0 = sample)
    signals: NDArray[np.float64]  (n_signals, n) reported values, NaN = not reported;
                                  row order = `Scenario.signal_names`
    """

    session: NDArray[np.int32]
    seq: NDArray[np.int64]
    t: NDArray[np.float64]
    event: NDArray[np.int32]
    signals: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def take(self, rows: NDArray[np.intp] | slice) -> EventBatch:
        """The sub-batch of the given rows (order kept)."""
        return EventBatch(
            self.session[rows],
            self.seq[rows],
            self.t[rows],
            self.event[rows],
            self.signals[:, rows],
        )


def batch_from_events(scenario: Scenario, rows: Iterable[tuple[int, Event]]) -> EventBatch:
    """Build a batch from (session slot, event) pairs. Names must belong to `scenario`
    (checked when the events were parsed)."""
    items = list(rows)
    n = len(items)
    signals = np.full((len(scenario.signal_names), n), np.nan, dtype=np.float64)
    index = scenario.signal_index
    for j, (_, ev) in enumerate(items):
        for name, value in ev.signals.items():
            signals[index[name], j] = value
    return EventBatch(
        session=np.fromiter((s for s, _ in items), dtype=np.int32, count=n),
        seq=np.fromiter((e.seq for _, e in items), dtype=np.int64, count=n),
        t=np.fromiter((e.t for _, e in items), dtype=np.float64, count=n),
        event=np.fromiter(
            (scenario.event_code[e.event] for _, e in items), dtype=np.int32, count=n
        ),
        signals=signals,
    )


def empty_batch(n_signals: int) -> EventBatch:
    return EventBatch(
        np.empty(0, np.int32),
        np.empty(0, np.int64),
        np.empty(0, np.float64),
        np.empty(0, np.int32),
        np.empty((n_signals, 0), np.float64),
    )


# ------------------------------------------------------------------------------ events files


@dataclass(slots=True)
class EventsFile:
    """Parsed events file: sessions in order of first appearance, and how many lines were
    skipped as invalid (only with ``skip_invalid``)."""

    sessions: dict[str, SessionEvents]
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def parse_events_lines(
    lines: Iterable[str],
    *,
    scenario: Scenario | None = None,
    source: str = "<events>",
    skip_invalid: bool = False,
) -> EventsFile:
    """Parse JSON Lines of events. Blank lines are ignored.

    Raises EventsError naming ``source:LINE`` at the first bad line, unless `skip_invalid`, in
    which case bad lines are skipped, counted in `skipped` and described in `problems`.
    With a `scenario`, event and signal names must be the scenario's.
    """
    result = EventsFile(sessions={})
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            _apply_line(result.sessions, line, scenario)
        except ValueError as exc:
            message = f"{source}:{number}: {exc}"
            if not skip_invalid:
                raise EventsError(message) from None
            result.skipped += 1
            result.problems.append(message)
    return result


def session_record(line: str) -> tuple[dict[str, Any], str]:
    """A line's JSON object and its checked session id (ValueError naming what is wrong)."""
    record = load_record(line)
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    if "session" not in record:
        raise ValueError("missing field 'session'")
    return record, check_id(record["session"], "session")


def _apply_line(sessions: dict[str, SessionEvents], line: str, scenario: Scenario | None) -> None:
    record, session = session_record(line)
    current = sessions.get(session)
    if "open" in record:
        check_keys(record, {"session", "open"})
        if current is not None and (current.events or current.open):
            raise ValueError(reopened(session))
        sessions.setdefault(session, SessionEvents(session)).open = check_open(record)
        return
    if current is not None and current.close_t is not None:
        raise ValueError(already_closed(session))
    if "close" in record:
        t = check_close(record)
        if current is not None and current.events and t < current.events[-1].t:
            raise ValueError(close_before_last(t))
        sessions.setdefault(session, SessionEvents(session)).close_t = t
        return
    event = parse_event(record, scenario)
    current = sessions.setdefault(session, SessionEvents(session))
    if current.events:
        last = current.events[-1]
        problem = order_problem(event, last.seq, last.t)
        if problem is not None:
            raise ValueError(problem)
    current.events.append(event)


def reopened(session: str) -> str:
    """The message for an open record after the session's first event or non-empty open."""
    return f"session {session!r} is opened twice or after its first event"


def already_closed(session: str) -> str:
    """The message for a record (other than open) of a session already closed."""
    return f"session {session!r} is already closed"


def close_before_last(t: float) -> str:
    """The message for a close time before the session's last event."""
    return f"close t={t} is before the session's last event"


def order_problem(event: Event, last_seq: int, last_t: float) -> str | None:
    """Why `event` cannot follow an event (last_seq, last_t) of its session, or None."""
    if event.seq <= last_seq:
        return f"seq {event.seq} does not increase (previous seq {last_seq})"
    if event.t < last_t:
        return f"t {event.t} goes backwards (previous t {last_t})"
    return None


def check_open(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The metadata of an open record, after its own checks (the caller checks the record's
    fields and the session's state first, in that order)."""
    if not isinstance(record["open"], dict):
        raise ValueError("'open' must be an object")
    if "learner" in record["open"]:
        check_id(record["open"]["learner"], "open.learner")
    return record["open"]


def check_close(record: Mapping[str, Any]) -> float:
    """The close time of a close record (its stateless checks)."""
    check_keys(record, {"session", "close"})
    close = record["close"]
    if not isinstance(close, dict):
        raise ValueError("'close' must be an object such as {\"t\": 612.0}")
    return _number(close.get("t"), "close.t")


def parse_event(record: Mapping[str, Any], scenario: Scenario | None) -> Event:
    """The event of an event record; ValueError naming the first faulty field."""
    check_keys(record, {"session", "seq", "t", "event", "signals"})
    for key in ("seq", "t", "event"):
        if key not in record:
            raise ValueError(f"missing field {key!r}")
    seq = record["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= INT64_MAX:
        raise ValueError(f"'seq' must be an integer from 0 to {INT64_MAX}, got {_show(seq)}")
    t = _number(record["t"], "t")
    if t < 0:
        raise ValueError(f"'t' must be >= 0, got {t!r}")
    name = record["event"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"'event' must be a non-empty string, got {name!r}")
    if scenario is not None and name not in scenario.event_code:
        raise ValueError(f"unknown event {name!r} for scenario {scenario.scenario!r}")
    raw = record.get("signals", {})
    if not isinstance(raw, dict):
        raise ValueError("'signals' must be an object of name -> number")
    signals: dict[str, float] = {}
    for key, value in raw.items():
        if scenario is not None and key not in scenario.signal_index:
            raise ValueError(f"unknown signal {key!r} for scenario {scenario.scenario!r}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"signal {key!r} must be a number or null, got {_show(value)}")
        number = _float(value)
        if math.isnan(number):
            continue
        if math.isinf(number):
            raise ValueError(f"signal {key!r} is infinite")
        signals[key] = number
    return Event(seq=seq, t=t, event=name, signals=signals)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what!r} must be a number, got {_show(value)}")
    number = _float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what!r} must be finite, got {_show(value)}")
    return number


def _float(value: int | float) -> float:
    """`value` as a float; an integer too large for one is infinite."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _show(value: object) -> str:
    """A value in a message, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_keys(record: Mapping[str, Any], allowed: set[str]) -> None:
    """ValueError naming the first field of `record` (alphabetically) not in `allowed`."""
    extra = sorted(set(record) - allowed)
    if extra:
        raise ValueError(f"unexpected field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def event_records(sessions: Sequence[SessionEvents]) -> Iterable[dict[str, Any]]:
    """The JSON records of sessions (open, events, close), session by session."""
    for s in sessions:
        if s.open:
            yield {"session": s.session, "open": dict(s.open)}
        for e in s.events:
            rec: dict[str, Any] = {"session": s.session, "seq": e.seq, "t": e.t, "event": e.event}
            if e.signals:
                rec["signals"] = dict(e.signals)
            yield rec
        if s.close_t is not None:
            yield {"session": s.session, "close": {"t": s.close_t}}
