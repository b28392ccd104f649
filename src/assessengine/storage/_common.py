"""Rules every `Store` implementation shares, so that the fake and SQLite behave the same:
argument checks, the append plan (seq check + chain), JSON shapes, timestamps."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, TypeVar, get_args

import orjson

from ..core import chain
from ..core.ids import id_problem
from .port import (
    BatchRefusedError,
    Payload,
    SessionInfo,
    SessionRecord,
    Source,
    Status,
    StoredBatch,
    StoreError,
    kept_payload,
)

AppendItem = tuple[str, int, int, str, bytes, Payload]
"""(session, first_seq, count, encoding, header, payload), as `Store.append_batches` takes."""

SOURCES: Final = get_args(Source)
STATUSES: Final = get_args(Status)
MAX_SEQ: Final = 2**63 - 1


def now() -> str:
    """The current time, ISO 8601 UTC with microseconds: ``2025-01-31T12:00:00.123456Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------------------ group calls

T = TypeVar("T")
R = TypeVar("R")


def each(action: Callable[[T], R], items: Iterable[T]) -> list[R | StoreError]:
    """`action` of each item in order: its result, or the StoreError it raised (the other
    items go on), as the group calls (`open_sessions`, `close_sessions`) answer."""
    out: list[R | StoreError] = []
    for item in items:
        try:
            out.append(action(item))
        except StoreError as exc:
            out.append(exc)
    return out


def single(results: Sequence[R | StoreError]) -> R:
    """The one answer of a group call made for one item; its StoreError is raised."""
    (result,) = results
    if isinstance(result, StoreError):
        raise result
    return result


# ------------------------------------------------------------------------------ sessions


def info_json(info: SessionInfo) -> str:
    """The canonical JSON of `info` (what the genesis hashes). Raises StoreError on bad info."""
    if not isinstance(info, SessionInfo):
        raise StoreError(f"expected a SessionInfo, got {type(info).__name__}")
    for name in ("session", "learner"):  # a backstop: every edge checks them already
        problem = id_problem(getattr(info, name), name)
        if problem is not None:
            raise StoreError(f"session info: {problem}")
    for name in ("scenario", "rubric", "rubric_sha256"):
        value = getattr(info, name)
        if not isinstance(value, str):
            raise StoreError(f"session info: {name} must be a string, got {value!r}")
    if isinstance(info.rubric_version, bool) or not isinstance(info.rubric_version, int):
        raise StoreError(
            f"session info: rubric_version must be an integer, got {info.rubric_version!r}"
        )
    if info.source not in SOURCES:
        raise StoreError(
            f"session info: source must be one of {', '.join(SOURCES)}, got {info.source!r}"
        )
    if not isinstance(info.metadata, Mapping):
        raise StoreError("session info: metadata must be a mapping")
    try:
        return chain.canonical_json(chain.info_data(info)).decode("utf-8")
    except ValueError as exc:
        raise StoreError(f"session {info.session!r}: metadata must be plain JSON ({exc})") from None


def info_from_json(text: str) -> SessionInfo:
    data = json.loads(text)
    return SessionInfo(**data)


def genesis(text: str) -> str:
    """The genesis hash of an info's canonical JSON (as `info_json` gives)."""
    return chain.genesis_of_data(json.loads(text))


def opened_record(text: str, stamp: str) -> SessionRecord:
    """The record of a session a store has just inserted from `text` (`info_json`) at `stamp`:
    open, no batch, its head the genesis. What reading the row back would give (stores return
    it instead of reading it back)."""
    data = json.loads(text)
    return SessionRecord(info=SessionInfo(**data), status="open", opened_at=stamp, next_seq=0,
                         chain_head=chain.genesis_of_data(data), batches=0)  # fmt: skip


def closed_record(record: SessionRecord, close_t: float, stamp: str) -> SessionRecord:
    """`record` (read in the closing transaction) as closing it at `close_t` at `stamp` leaves
    it: what reading the row back after the UPDATE would give."""
    return SessionRecord(info=record.info, status="closed", opened_at=record.opened_at,
                         next_seq=record.next_seq, chain_head=record.chain_head,
                         batches=record.batches, close_t=close_t, closed_at=stamp)  # fmt: skip


def conflict_message(session: str, stored: str, given: str) -> str:
    """The refusal of an OPEN whose info differs from the stored session's (canonical JSON)."""
    a, b = from_json(stored), from_json(given)
    fields = ", ".join(k for k in a if a[k] != b.get(k)) or "info"
    return f"session {session!r} already exists with different info ({fields} differ)"


def reclose_message(session: str, stored: float | None, given: float) -> str:
    return f"session {session!r} is already closed at t={stored}, not t={given}"


def check_close_t(session: str, close_t: float) -> float:
    if (
        isinstance(close_t, bool)
        or not isinstance(close_t, int | float)
        or not math.isfinite(close_t)
    ):
        raise StoreError(f"session {session!r}: close_t must be a finite number, got {close_t!r}")
    return float(close_t)


def check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise StoreError(f"status must be one of {', '.join(STATUSES)} or None, got {status!r}")


# ------------------------------------------------------------------------------ batches


@dataclass(frozen=True, slots=True)
class Head:
    """Where a session's chain stands. `key` is the store's own handle (SQLite rowid)."""

    key: int
    status: Status
    next_seq: int
    chain: str
    batches: int


def check_items(items: Sequence[AppendItem]) -> list[AppendItem]:
    """The items with the header as `bytes` and the payload as `bytes` or a read-only
    `memoryview` (kept as given: no copy); BatchRefusedError names a malformed one."""
    checked: list[AppendItem] = []
    for index, item in enumerate(items):
        if not isinstance(item, tuple) or len(item) != 6:
            raise BatchRefusedError(
                f"item {index}: expected (session, first_seq, count, encoding, header, payload)",
                index=index,
                session="",
            )
        problem = _item_problem(item)
        if problem:
            raise BatchRefusedError(f"item {index}: {problem}", index=index, session=str(item[0]))
        session, first_seq, count, encoding, header, payload = item
        checked.append((session, first_seq, count, encoding, bytes(header), kept_payload(payload)))
    return checked


def _item_problem(item: tuple[Any, ...]) -> str | None:
    session, first_seq, count, encoding, header, payload = item
    if not isinstance(session, str) or not session:
        return f"session must be a non-empty string, got {session!r}"
    for name, value, low in (("first_seq", first_seq, 0), ("count", count, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return f"{name} must be an integer >= {low}, got {value!r}"
    if first_seq + count > MAX_SEQ:
        return f"first_seq + count exceeds {MAX_SEQ}"
    if not isinstance(encoding, str) or not encoding:
        return f"encoding must be a non-empty string, got {encoding!r}"
    for name, value in (("header", header), ("payload", payload)):
        if not isinstance(value, bytes | bytearray | memoryview):
            return f"{name} must be bytes, got {type(value).__name__}"
    return None


def plan_appends(
    items: Sequence[AppendItem],
    digests: Sequence[tuple[bytes, bytes]],
    head_of: Callable[[str], Head | None],
    received_at: str,
) -> list[tuple[int, StoredBatch]]:
    """The batches to store, each with its session's key, chained in order. Raises
    BatchRefusedError for an unknown or closed session or a first_seq that is not next."""
    heads: dict[str, Head] = {}
    planned: list[tuple[int, StoredBatch]] = []
    for index, (item, (hd, pd)) in enumerate(zip(items, digests, strict=True)):
        session, first_seq, count, encoding, header, payload = item
        head = heads[session] if session in heads else head_of(session)
        if head is None:
            raise BatchRefusedError(f"unknown session {session!r}", index=index, session=session)
        if head.status != "open":
            raise BatchRefusedError(
                f"session {session!r} is closed; it takes no more events",
                index=index,
                session=session,
            )
        if first_seq != head.next_seq:
            raise BatchRefusedError(
                f"session {session!r}: batch starts at seq {first_seq}, "
                f"the session expects seq {head.next_seq}",
                index=index,
                session=session,
                expected_seq=head.next_seq,
            )
        value = chain.link(head.chain, hd, pd)
        # positional, and a new Head rather than `dataclasses.replace`: this loop runs once per
        # stored batch on the ingest path (a third of its cost was the two constructions)
        planned.append((head.key, StoredBatch(session, head.batches, first_seq, count, encoding,
                                              header, payload, value, received_at)))  # fmt: skip
        heads[session] = Head(head.key, head.status, first_seq + count, value, head.batches + 1)
    return planned


# ------------------------------------------------------------------------------ JSON rows


def decision_rows(session: str, rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(criterion, verdict, row JSON) per decision row; StoreError names a malformed row."""
    out: list[tuple[str, str, str]] = []
    for i, row in enumerate(rows):
        if type(row) is not dict and not isinstance(row, Mapping):  # dict: skip the ABC check
            raise StoreError(f"session {session!r}: decision {i} must be a mapping")
        criterion, verdict = row.get("criterion"), row.get("verdict")
        if not isinstance(criterion, str) or not isinstance(verdict, str):
            raise StoreError(
                f"session {session!r}: decision {i} needs string 'criterion' and 'verdict'"
            )
        evidence = row.get("evidence")
        if type(evidence) is not dict and not isinstance(evidence, Mapping):
            raise StoreError(f"session {session!r}: decision {i} needs an 'evidence' mapping")
        out.append((criterion, verdict, to_json(session, f"decision {i}", row)))
    return out


def first_final_save(
    rows: Mapping[str, R], reports: Mapping[str, T], reported: Collection[str]
) -> tuple[dict[str, R], dict[str, T]]:
    """`rows` and `reports` without the sessions of `reports` that have a stored report
    already (`reported`): a session's final results (its last decisions with its report) are
    stored once; a second final save of them (another engine that derived them too) is left
    out. Decisions saved without a report are the owner's progress: always kept."""
    drop = set(reported) & set(reports)
    if not drop:
        return dict(rows), dict(reports)
    return ({sid: r for sid, r in rows.items() if sid not in drop},
            {sid: r for sid, r in reports.items() if sid not in drop})  # fmt: skip


class ReportRow(NamedTuple):
    """A report as the ``reports`` table stores it: its JSON text, and the outcome and score
    copied into columns of their own (what the session list filters on and shows)."""

    text: str
    outcome: str | None
    score: float | None


def report_row(session: str, report: Mapping[str, Any]) -> ReportRow:
    """The row of `report`: outcome when it is a string, score when it is a finite number
    (else None, as the migration's backfill reads them); StoreError if it is not JSON."""
    text = to_json(session, "report", report)
    outcome, score = report.get("outcome"), report.get("score")
    return ReportRow(text, outcome if isinstance(outcome, str) else None, _finite(score))


def _finite(value: object) -> float | None:
    """`value` as a float when it is a finite number (not a bool), else None (`to_json`
    has refused an int beyond 64 bits already)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def to_json(session: str, what: str, data: Mapping[str, Any]) -> str:
    """Compact, strict JSON (RFC 8259) of a decision row or report: NaN and infinities are
    written as null. orjson: the engine saves one of these per decision."""
    try:
        return orjson.dumps(data if type(data) is dict else dict(data)).decode("utf-8")
    except (TypeError, ValueError) as exc:
        raise StoreError(f"session {session!r}: {what} is not JSON ({exc})") from None


def from_json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    return data
