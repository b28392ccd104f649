"""`MemoryStore`: the `Store` fake for unit tests (dicts and lists, nothing on disk).

It follows the same rules as `SqliteStore` (shared in `_store_common`): the same checks and
error messages, the same chain, JSON round trips for metadata, decisions and reports (so a
tuple comes back as a list, exactly as from SQLite). Thread-safe through one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core import chain
from . import _common as common
from .port import Payload, SessionInfo, SessionRecord, Status, StoredBatch, StoreError


@dataclass(slots=True)
class _Session:
    key: int
    info_json: str
    genesis: str
    opened_at: str
    status: Status = "open"
    close_t: float | None = None
    closed_at: str | None = None
    batches: list[StoredBatch] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    decided: set[str] = field(default_factory=set)  # the criteria of `decisions`
    report: str | None = None

    def decide(self, checked: Sequence[tuple[str, str, str]]) -> None:
        """Keep each (criterion, verdict, row JSON) whose criterion has no decision yet."""
        for criterion, _, text in checked:
            if criterion not in self.decided:
                self.decided.add(criterion)
                self.decisions.append(text)

    def head(self) -> common.Head:
        last = self.batches[-1] if self.batches else None
        return common.Head(
            key=self.key,
            status=self.status,
            next_seq=last.first_seq + last.count if last else 0,
            chain=last.chain if last else self.genesis,
            batches=len(self.batches),
        )

    def record(self) -> SessionRecord:
        head = self.head()
        return SessionRecord(
            info=common.info_from_json(self.info_json),
            status=self.status,
            opened_at=self.opened_at,
            next_seq=head.next_seq,
            chain_head=head.chain,
            batches=head.batches,
            close_t=self.close_t,
            closed_at=self.closed_at,
        )


class MemoryStore:
    """A `Store` held in memory. `close()` makes every later call raise StoreError."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._closed = False

    def open_session(self, info: SessionInfo) -> SessionRecord:
        return common.single(self.open_sessions([info]))

    def open_sessions(self, infos: Sequence[SessionInfo]) -> list[SessionRecord | StoreError]:
        with self._lock:
            self._check_open()
            return common.each(self._open_one, infos)

    def _open_one(self, info: SessionInfo) -> SessionRecord:
        text = common.info_json(info)
        existing = self._sessions.get(info.session)
        if existing is not None:
            if existing.info_json != text:
                raise StoreError(common.conflict_message(info.session, existing.info_json, text))
            return existing.record()
        entry = _Session(len(self._sessions), text, common.genesis(text), common.now())
        self._sessions[info.session] = entry
        return entry.record()

    def session(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            self._check_open()
            entry = self._sessions.get(session_id)
            return entry.record() if entry else None

    def append_batches(
        self, items: Sequence[tuple[str, int, int, str, bytes, Payload]]
    ) -> list[StoredBatch]:
        checked = [(*item[:5], bytes(item[5])) for item in common.check_items(items)]  # kept
        digests = [chain.digests(item[4], item[5]) for item in checked]
        with self._lock:
            self._check_open()
            planned = common.plan_appends(checked, digests, self._head, common.now())
            for _, batch in planned:
                self._sessions[batch.session].batches.append(batch)
        return [batch for _, batch in planned]

    def batches(self, session_id: str) -> Iterator[StoredBatch]:
        with self._lock:
            stored = list(self._entry(session_id).batches)
        return iter(stored)

    def close_sessions(
        self, closing: Sequence[tuple[str, float]]
    ) -> list[SessionRecord | StoreError]:
        return common.each(lambda item: self.close_session(*item), closing)

    def close_session(self, session_id: str, close_t: float) -> SessionRecord:
        value = common.check_close_t(session_id, close_t)
        with self._lock:
            entry = self._entry(session_id)
            if entry.status == "closed":
                if entry.close_t != value:
                    raise StoreError(common.reclose_message(session_id, entry.close_t, value))
                return entry.record()
            entry.status, entry.close_t, entry.closed_at = "closed", value, common.now()
            return entry.record()

    def file_session(
        self,
        info: SessionInfo,
        items: Sequence[tuple[str, int, int, str, bytes, Payload]],
        close_t: float,
        report: Mapping[str, Any],
    ) -> SessionRecord:
        text = common.info_json(info)
        value = common.check_close_t(info.session, close_t)
        report_text = common.to_json(info.session, "report", report)
        checked = [(*item[:5], bytes(item[5])) for item in common.check_items(items)]
        if any(item[0] != info.session for item in checked):
            raise StoreError(f"session {info.session!r}: every batch must be of this session")
        digests = [chain.digests(item[4], item[5]) for item in checked]
        with self._lock:
            self._check_open()
            if info.session in self._sessions:
                raise StoreError(f"session {info.session!r} exists already")
            entry = _Session(len(self._sessions), text, common.genesis(text), common.now())
            planned = common.plan_appends(checked, digests, lambda _: entry.head(), common.now())
            entry.batches.extend(batch for _, batch in planned)  # nothing is kept before here
            entry.status, entry.close_t, entry.closed_at = "closed", value, common.now()
            entry.report = report_text
            self._sessions[info.session] = entry
            return entry.record()

    def save_decisions(self, session_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        checked = common.decision_rows(session_id, rows)
        with self._lock:
            self._entry(session_id).decide(checked)

    def decisions(self, session_id: str) -> list[dict[str, Any]]:
        with self._lock:
            texts = list(self._entry(session_id).decisions)
        return [common.from_json(text) for text in texts]

    def save_report(self, session_id: str, report: Mapping[str, Any]) -> None:
        text = common.to_json(session_id, "report", report)
        with self._lock:
            self._entry(session_id).report = text

    def save_results(
        self,
        decisions: Mapping[str, Sequence[Mapping[str, Any]]],
        reports: Mapping[str, Mapping[str, Any]],
    ) -> None:
        rows = {sid: common.decision_rows(sid, given) for sid, given in decisions.items()}
        texts = {sid: common.to_json(sid, "report", report) for sid, report in reports.items()}
        with self._lock:
            entries = {sid: self._entry(sid) for sid in {*rows, *texts}}  # all exist, or nothing
            done = {sid for sid in texts if entries[sid].report is not None}
            rows, texts = common.first_final_save(rows, texts, done)
            for sid, given in rows.items():
                entries[sid].decide(given)
            for sid, text in texts.items():
                entries[sid].report = text

    def report(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._entry(session_id).report
        return None if text is None else common.from_json(text)

    def sessions(self, *, status: Status | None = None) -> list[SessionRecord]:
        common.check_status(status)
        with self._lock:
            self._check_open()
            entries = list(self._sessions.values())
        return [e.record() for e in entries if status is None or e.status == status]

    def close(self) -> None:
        with self._lock:
            self._closed = True

    # ------------------------------------------------------------------------------ helpers

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def _entry(self, session_id: str) -> _Session:
        self._check_open()
        entry = self._sessions.get(session_id)
        if entry is None:
            raise StoreError(f"unknown session {session_id!r}")
        return entry

    def _head(self, session_id: str) -> common.Head | None:
        entry = self._sessions.get(session_id)
        return entry.head() if entry else None
