"""Telemetry logs recorded on real equipment, as uploaded: an events JSONL file (the format of
`core.events`, one session) or CSV with a header row of signal names plus ``t`` and ``event``
columns (and optionally ``seq``). Both become one session's `Columns`, checked against the
scenario; every problem names its line (and column for CSV). A CSV file is read per column
(`csv_columns`) when it is provably clean, else row by row (the messages)."""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from ...core.codec import Columns, Layout, encode_columns_v1
from ...core.events import INT64_MAX, EventBatch
from ...core.problems import did_you_mean
from ...core.scenario import SAMPLE, Scenario
from ...errors import EventsError
from ...inputs.jsonl import read_jsonl
from .csv_columns import read_columns
from .errors import FieldProblem, InvalidError

Format = Literal["jsonl", "csv"]
RESERVED_COLUMNS: Final = ("t", "event", "seq")
MAX_PROBLEMS: Final = 20


@dataclass(frozen=True, slots=True)
class FieldLog:
    """One session's events from an uploaded log. `seq` runs 0, 1, 2 ... (`renumbered` when the
    file's own seqs did not); `close_t` is the file's close, else the last event's t."""

    columns: Columns
    close_t: float
    open: Mapping[str, Any] = field(default_factory=dict)
    renumbered: bool = False


def guess_format(filename: str, content_type: str | None, declared: str | None) -> Format:
    """`declared` if given, else from the file name's suffix or the content type."""
    if declared is not None:
        if declared not in ("jsonl", "csv"):
            raise InvalidError("unknown format", [FieldProblem("format", "use jsonl or csv")])
        return "jsonl" if declared == "jsonl" else "csv"
    name, kind = filename.lower(), (content_type or "").lower()
    if name.endswith(".csv") or "csv" in kind:
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")) or "json" in kind:
        return "jsonl"
    raise InvalidError(
        "cannot tell the file's format",
        [FieldProblem("format", "name the file *.jsonl or *.csv, or give format=jsonl|csv")],
    )


def parse_log(data: bytes, fmt: Format, scenario: Scenario, filename: str) -> FieldLog:
    """Parse an uploaded log; raises InvalidError naming the first problems (line, column)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        problem = FieldProblem("file", "not UTF-8")
        raise InvalidError("the file is not UTF-8 text", [problem]) from None
    jsonl = data.removeprefix(codecs.BOM_UTF8)
    log = _jsonl(jsonl, scenario, filename) if fmt == "jsonl" else _csv(text, scenario)
    if not len(log.columns):
        raise InvalidError("the log has no events", [FieldProblem("file", "no events")])
    return log


# ===================================================================================== JSONL


def _jsonl(data: bytes, scenario: Scenario, filename: str) -> FieldLog:
    """The one session of an events file, read into columns (`inputs.jsonl`)."""
    chunks = read_jsonl(io.BytesIO(data), scenario=scenario, source=filename)
    ids: list[str] = []
    parts: list[EventBatch] = []
    meta: Mapping[str, Any] = {}
    close_t: float | None = None
    try:
        for chunk in chunks:
            ids.extend(chunk.sessions)
            parts.append(chunk.batch)
            meta = chunk.opens.get(0, meta)
            close_t = float(chunk.close_t[0]) if chunk.closed.shape[0] else close_t
    except EventsError as exc:
        line = _line_of(str(exc), filename)
        raise InvalidError("the events file has a bad line",
                      [FieldProblem("file", str(exc), line=line)]) from None  # fmt: skip
    if len(ids) != 1:
        found = ", ".join(ids) or "none"
        raise InvalidError(
            "a field log holds exactly one session",
            [FieldProblem("file", f"found {len(ids)} sessions: {found}")],
        )
    t = np.concatenate([b.t for b in parts])
    event = np.concatenate([b.event for b in parts])
    signals = np.concatenate([b.signals for b in parts], axis=1)
    seq = np.concatenate([b.seq for b in parts])
    expected = np.arange(t.shape[0], dtype=np.int64)
    renumbered = not np.array_equal(seq, expected)
    end_t = close_t if close_t is not None else float(t[-1]) if t.shape[0] else 0.0
    return FieldLog(Columns(expected, t, event, signals), end_t, meta, renumbered)


def _line_of(message: str, filename: str) -> int | None:
    head = message.removeprefix(f"{filename}:").split(":", 1)[0]
    return int(head) if head.isdigit() else None


# ===================================================================================== CSV


def _csv(text: str, scenario: Scenario) -> FieldLog:
    rows = _rows(text)
    header = next(rows, None)
    if header is None:
        raise InvalidError("the CSV file is empty", [FieldProblem("file", "no header row", line=1)])
    names = [h.strip() for h in header]
    columns = _columns(names, scenario)
    fast = read_columns(text, names, columns, scenario)
    if fast is not None:
        cols, seq = fast
        n = len(cols)
        renumbered = not np.array_equal(seq, np.arange(n, dtype=np.int64))
        return FieldLog(cols, float(cols.t[-1]) if n else 0.0, {}, renumbered)
    return _csv_rows(rows, names, columns, scenario)


def _csv_rows(
    rows: Iterator[list[str]], names: list[str], columns: dict[str, int], scenario: Scenario
) -> FieldLog:
    """The rows after the header, read one by one, every problem named by line and column
    (at most `MAX_PROBLEMS`)."""
    n_signals = len(scenario.signal_names)
    t: list[float] = []
    codes: list[int] = []
    seqs: list[int] = []
    values: list[list[float]] = []
    problems: list[FieldProblem] = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        parsed = _row(row, names, columns, scenario, line, problems, n_signals)
        if parsed is not None:
            row_t, code, seq, signals = parsed
            if t and row_t < t[-1]:
                problems.append(FieldProblem("file", f"t {row_t} goes backwards (previous "
                                             f"{t[-1]})", line=line, column=columns["t"] + 1))
                continue  # fmt: skip
            t.append(row_t)
            codes.append(code)
            seqs.append(seq if seq is not None else len(seqs))
            values.append(signals)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise InvalidError(f"the CSV file has {len(problems)} problem(s)", problems)
    n = len(t)
    cols = Columns(
        np.arange(n, dtype=np.int64),
        np.array(t, np.float64),
        np.array(codes, np.int32),
        np.array(values, np.float64).T.reshape(n_signals, n).copy(),
    )
    renumbered = seqs != list(range(n))
    return FieldLog(cols, t[-1] if t else 0.0, {}, renumbered)


def _rows(text: str) -> Iterator[list[str]]:
    """The CSV rows of `text`; InvalidError naming the line of a cell longer than
    `csv.field_size_limit()` (131,072 characters) or any other fault of the CSV syntax."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            limit = csv.field_size_limit()
            reason = (f"a cell is longer than {limit} characters" if "field limit" in str(exc)
                      else f"not readable as CSV ({exc})")  # fmt: skip
            problem = FieldProblem("file", reason, line=reader.line_num)
            raise InvalidError("the CSV file cannot be read", [problem]) from None
        yield row


def _columns(names: list[str], scenario: Scenario) -> dict[str, int]:
    """Column name -> position; raises InvalidError for an unknown or repeated column, or no t."""
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    known = [*RESERVED_COLUMNS, *scenario.signal_names]
    for k, name in enumerate(names):
        if name in seen:
            problems.append(FieldProblem("file", f"column {name!r} appears twice", 1, k + 1))
        elif name not in known:
            hint = did_you_mean(name, known)
            problems.append(FieldProblem(
                "file", f"unknown column {name!r}{hint}; signals of scenario "
                f"{scenario.scenario!r}: {', '.join(scenario.signal_names)}", 1, k + 1,
            ))  # fmt: skip
        seen.setdefault(name, k)
    if "t" not in seen:
        problems.append(FieldProblem("file", "the header has no 't' column", 1, 1))
    if problems:
        raise InvalidError("the CSV header does not fit the scenario", problems)
    return seen


def _row(
    row: list[str], names: list[str], columns: Mapping[str, int], scenario: Scenario,
    line: int, problems: list[FieldProblem], n_signals: int,
) -> tuple[float, int, int | None, list[float]] | None:  # fmt: skip
    if len(row) != len(names):
        problems.append(FieldProblem("file", f"{len(row)} cells, the header has {len(names)}",
                                     line=line, column=1))  # fmt: skip
        return None
    count = len(problems)
    t = _number(row, columns["t"], "t", line, problems)
    if t is not None and (t < 0 or not math.isfinite(t)):
        problems.append(FieldProblem("file", f"t must be finite and >= 0, got {t}", line,
                                     columns["t"] + 1))  # fmt: skip
    code = 0
    if "event" in columns:
        name = row[columns["event"]].strip() or SAMPLE
        if name not in scenario.event_code:
            hint = did_you_mean(name, scenario.event_names)
            problems.append(FieldProblem("file", f"unknown event {name!r}{hint}", line,
                                         columns["event"] + 1))  # fmt: skip
        else:
            code = scenario.event_code[name]
    seq = None
    if "seq" in columns:
        seq = _seq(row, columns["seq"], line, problems)
    signals = [math.nan] * n_signals
    for name, k in columns.items():
        if name in RESERVED_COLUMNS:
            continue
        value = _number(row, k, name, line, problems)
        if value is not None and math.isinf(value):
            problems.append(FieldProblem("file", f"{name} is infinite", line, k + 1))
        elif value is not None:
            signals[scenario.signal_index[name]] = value
    if len(problems) > count or t is None:
        if t is None and len(problems) == count:
            problems.append(FieldProblem("file", "t is empty", line, columns["t"] + 1))
        return None
    return t, code, seq, signals


def _number(
    row: list[str], k: int, name: str, line: int, problems: list[FieldProblem]
) -> float | None:
    cell = row[k].strip()
    if not cell or cell.lower() in ("nan", "null", "na"):
        return None
    try:
        return float(cell)
    except ValueError:
        problems.append(FieldProblem("file", f"{name}: {cell!r} is not a number", line, k + 1))
        return None


def _seq(row: list[str], k: int, line: int, problems: list[FieldProblem]) -> int | None:
    """The seq cell: empty, or a whole number from 0 to 2**63 - 1 (``12``, ``12.0``)."""
    value = _number(row, k, "seq", line, problems)
    if value is None:
        return None
    if not (value.is_integer() and 0 <= value <= INT64_MAX):  # inf, nan: not integers
        problems.append(FieldProblem("file", f"seq must be a whole number from 0 to "
                                     f"{INT64_MAX}, got {row[k].strip()[:40]!r}", line, k + 1))
        return None  # fmt: skip
    return int(value)


def encode_batches(
    session: str, cols: Columns, layout: Layout, rows: int
) -> list[tuple[str, int, int, str, bytes, bytes]]:
    """The log as columns-v1 batches of at most `rows` events, as `Store.append_batches` takes
    them (seqs 0, 1, 2 ...; EVENTS headers as the engine stores them)."""
    items = []
    for start in range(0, len(cols), rows):
        end = start + rows
        part = Columns(cols.seq[start:end], cols.t[start:end], cols.event[start:end],
                       cols.signals[:, start:end])  # fmt: skip
        header = {"session": session, "first_seq": start, "count": len(part),
                  "encoding": "columns-v1", "dtype": layout.dtype_header()}  # fmt: skip
        items.append((session, start, len(part), "columns-v1", json.dumps(header).encode(),
                      encode_columns_v1(part, layout)))  # fmt: skip
    return items
