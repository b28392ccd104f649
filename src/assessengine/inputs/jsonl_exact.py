"""The exact JSON Lines path: one block of lines read record by record, with the messages and
the semantics of `core.events.parse_events_lines` (whose checks it shares), against the
reader's `Ledger`. The column path (`jsonl_columns`) hands it every block it cannot prove
clean, so every message a user sees comes from here."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.events import (
    Event,
    already_closed,
    batch_from_events,
    check_close,
    check_keys,
    check_open,
    close_before_last,
    order_problem,
    parse_event,
    reopened,
    session_record,
)
from ..core.recorded import Chunk
from ..core.scenario import Scenario
from ..errors import EventsError
from .ledger import Ledger


def read_block(
    block: bytes,
    first_line: int,
    ledger: Ledger,
    *,
    scenario: Scenario,
    source: str,
    skip_invalid: bool,
) -> tuple[Chunk, int]:
    """The chunk of `block` (whole lines; line breaks \\n, \\r\\n or \\r, as Python's text
    files read them) whose first line is number `first_line + 1`, and how many lines it has.
    Raises EventsError ``SOURCE:LINE: message`` at the first bad line unless `skip_invalid`."""
    state = _Block(ledger, scenario)
    problems: list[str] = []
    lines = block.splitlines(keepends=True)
    for number, raw in enumerate(lines, start=first_line + 1):
        try:
            text = _text(raw)
            if text.strip():
                state.apply(text)
        except ValueError as exc:
            message = f"{source}:{number}: {exc}"
            if not skip_invalid:
                raise EventsError(message) from None
            problems.append(message)
    return state.chunk(tuple(problems)), len(lines)


def _text(raw: bytes) -> str:
    """A line as a text file reads it: UTF-8, its line break (if any) as \\n."""
    body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith((b"\r", b"\n")) else raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start + 1} of the line)") from None
    return text + "\n" if len(body) < len(raw) else text


class _Block:
    """One block's records applied line by line to the ledger."""

    def __init__(self, ledger: Ledger, scenario: Scenario) -> None:
        self.ledger = ledger
        self.scenario = scenario
        self.first_new = len(ledger)
        self.rows: list[tuple[int, Event]] = []
        self.opens: dict[int, Any] = {}
        self.closed: list[tuple[int, float]] = []

    def apply(self, line: str) -> None:
        """Check one record against its session's past, then record it (ValueError if bad)."""
        record, session = session_record(line)
        led = self.ledger
        k = led.ordinal.get(session)
        if "open" in record:
            check_keys(record, {"session", "open"})
            if k is not None and (led.has_events[k] or led.has_open[k]):
                raise ValueError(reopened(session))
            meta = check_open(record)
            k = led.add(session)
            led.has_open[k] = bool(meta)
            self.opens[k] = meta
            return
        if k is not None and led.closed[k]:
            raise ValueError(already_closed(session))
        if "close" in record:
            t = check_close(record)
            if k is not None and led.has_events[k] and t < led.last_t[k]:
                raise ValueError(close_before_last(t))
            k = led.add(session)
            led.closed[k] = True
            self.closed.append((k, t))
            return
        event = parse_event(record, self.scenario)
        if k is not None and led.has_events[k]:
            problem = order_problem(event, int(led.last_seq[k]), float(led.last_t[k]))
            if problem is not None:
                raise ValueError(problem)
        k = led.add(session)
        led.has_events[k] = True
        led.last_seq[k] = event.seq
        led.last_t[k] = event.t
        self.rows.append((k, event))

    def chunk(self, problems: tuple[str, ...]) -> Chunk:
        closed = np.array([k for k, _ in self.closed], np.int64)
        return Chunk(
            sessions=tuple(self.ledger.ids[self.first_new :]),
            batch=batch_from_events(self.scenario, self.rows),
            opens=self.opens,
            closed=closed,
            close_t=np.array([t for _, t in self.closed], np.float64),
            problems=problems,
        )
