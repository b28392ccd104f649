"""Session and seq bookkeeping of the ingest protocol, against the `Store` port.

For each EVENTS message, `IngestRules.events` decides: store all, store only the new tail (a
partial overlap with what is stored), duplicate (re-ACK, store nothing), or reject (NACK
``gap`` with the expected seq, ``closed``, ``unknown_session``, or a codec code). Accepted
batches are kept pending until `commit` appends them in one transaction; ACK them only after
`commit` returned, and `commit` before `open_many` / `close_many` (a CLOSE counts the stored
events). The engine's loop (`Engine._round`), per round of messages:

    for msg in messages:
        if msg is about a session whose OPEN or CLOSE is pending: store what is pending
        EVENTS: decision = rules.events(msg.header, msg.raw_header, msg.payload), kept
        OPEN / CLOSE: kept (one per session)
    store what is pending: rules.commit(), rules.open_many(OPENs), rules.close_many(CLOSEs);
    then answer every message in arrival order (ACK, NACK, OPENED, CLOSED)

The rules keep a small per-session cache (next seq, last t, status) so the hot path does not
read the store; all writes to sessions and batches must therefore go through these rules.
Not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .core.codec import (
    COLUMNS_V1,
    Bytes,
    CodecError,
    Columns,
    Layout,
    decode_columns_v1,
    decode_events,
    decode_json_v1,
    slice_payload,
)
from .core.wire import Close, Events
from .storage.port import (
    Payload,
    SessionInfo,
    SessionRecord,
    Store,
    StoredBatch,
    StoreError,
    kept_payload,
)


@dataclass(frozen=True, slots=True)
class Accept:
    """A batch (or its new tail) to store: exactly what `Store.append_batches` takes, plus the
    decoded rows for the scorer."""

    session: str
    first_seq: int
    count: int
    encoding: str
    header: bytes       # the EVENTS header as received (rewritten for a tail)
    payload: Payload    # the payload as received, not copied (only the tail's rows for a tail)
    columns: Columns    # decoded rows first_seq .. first_seq + count - 1

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1

    def item(self) -> tuple[str, int, int, str, bytes, Payload]:
        return (self.session, self.first_seq, self.count, self.encoding, self.header, self.payload)


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Every seq of the batch is stored already: answer ACK `ack_seq`, store nothing."""

    session: str
    ack_seq: int


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer NACK `code`."""

    session: str
    code: str
    message: str
    expected_seq: int | None = None


Decision = Accept | Duplicate | Reject
SeqCase = Literal["all", "tail", "duplicate", "gap", "closed", "unknown_session"]


def classify(
    record: SessionRecord | None, first_seq: int, count: int, *, next_seq: int | None = None
) -> SeqCase:
    """What a batch of seqs `first_seq .. first_seq + count - 1` is for the session, by seq
    arithmetic alone. `next_seq` overrides the record's (batches accepted but not committed)."""
    if record is None:
        return "unknown_session"
    expected = record.next_seq if next_seq is None else next_seq
    if first_seq + count <= expected:
        return "duplicate"
    if record.status == "closed":
        return "closed"
    if first_seq > expected:
        return "gap"
    return "all" if first_seq == expected else "tail"


@dataclass(slots=True)
class _State:
    record: SessionRecord
    layout: Layout
    next_seq: int
    last_t: float


class IngestRules:
    """Decides what happens to each EVENTS / CLOSE / OPEN, and commits accepted batches.

    layout_for: the column layout of a session's scenario (raises KeyError if unknown).
    """

    def __init__(self, store: Store, layout_for: Callable[[SessionInfo], Layout]) -> None:
        self._store = store
        self._layout_for = layout_for
        self._state: dict[str, _State] = {}
        self._pending: list[Accept] = []
        self._pending_bytes = 0

    # -------------------------------------------------------------------------- EVENTS

    def events(self, header: Events, raw_header: bytes, payload: Bytes) -> Decision:
        """Decide about one EVENTS message (header already validated). Accepted batches are
        pending until `commit`."""
        session = header.session
        state = self._load(session)
        if state is None:
            return Reject(session, "unknown_session", f"session {session!r} was never opened; "
                          "send OPEN first")
        case = classify(state.record, header.first_seq, header.count, next_seq=state.next_seq)
        if case == "duplicate":
            return Duplicate(session, state.next_seq - 1)
        if case == "closed":
            return Reject(session, "closed", f"session {session!r} is closed; it holds seqs "
                          f"0..{state.next_seq - 1} and takes no new events")
        if case == "gap":
            return Reject(session, "gap", f"batch starts at seq {header.first_seq}, the session "
                          f"expects seq {state.next_seq}", expected_seq=state.next_seq)
        return self._accept(state, header, raw_header, kept_payload(payload),
                            skip=state.next_seq - header.first_seq)  # fmt: skip

    def _accept(
        self, state: _State, header: Events, raw_header: bytes, payload: Payload, skip: int
    ) -> Decision:
        session = header.session
        min_t = 0.0 if skip else state.last_t
        try:
            if header.encoding == COLUMNS_V1:
                cols = decode_columns_v1(payload, state.layout, dtype=header.dtype,
                                         first_seq=header.first_seq, count=header.count,
                                         min_t=min_t)
            else:
                cols = decode_json_v1(payload, state.layout, first_seq=header.first_seq,
                                      count=header.count, min_t=min_t)
        except CodecError as exc:
            return Reject(session, exc.code, exc.message)
        if skip:
            cols = cols.tail(skip)
            if cols.t[0] < state.last_t:
                return Reject(session, "bad_time", f"seq {int(cols.seq[0])} has t="
                              f"{float(cols.t[0])}, before the session's last stored t="
                              f"{state.last_t}")
            payload = slice_payload(header.encoding, payload, state.layout, skip)
            raw_header = header.model_copy(
                update={"first_seq": state.next_seq, "count": len(cols)}
            ).to_frame()
        accept = Accept(session, int(cols.seq[0]), len(cols), header.encoding, raw_header,
                        payload, cols)
        self._pending.append(accept)
        self._pending_bytes += len(payload)
        state.next_seq = accept.last_seq + 1
        state.last_t = float(cols.t[-1])
        return accept

    def commit(self) -> list[tuple[Accept, StoredBatch]]:
        """Append every pending batch in one store transaction; returns them with their stored
        form. On a store error nothing is stored, the cache is dropped (it is reloaded from the
        store), and the error propagates: answer the pending batches NACK ``internal``.
        (`take`, `append` and `failed` are the same in three steps, for a caller that appends
        in another thread.)"""
        taken = self.take()
        if not taken:
            return []
        try:
            return self.append(taken)
        except BaseException:
            self.failed(taken)
            raise

    def take(self) -> list[Accept]:
        """The pending batches, no longer pending: hand them to `append`. Until that has
        returned, the cache counts them as stored (later batches of their sessions are decided
        after them); when it raises, call `failed`."""
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        return pending

    def append(self, taken: Sequence[Accept]) -> list[tuple[Accept, StoredBatch]]:
        """Append `taken` (from `take`) in one store transaction; returns them with their stored
        form. Touches the store only, not the rules: may run in another thread than the rest
        (one `append` at a time, in the order of the `take`s). A store error propagates."""
        if not taken:
            return []
        stored = self._store.append_batches([a.item() for a in taken])
        return list(zip(taken, stored, strict=True))

    def failed(self, taken: Sequence[Accept]) -> None:
        """`append(taken)` raised: nothing of it is stored; drop the cached state of its
        sessions (reloaded from the store when next needed)."""
        for a in taken:
            self._state.pop(a.session, None)

    @property
    def pending(self) -> Sequence[Accept]:
        return tuple(self._pending)

    @property
    def pending_count(self) -> int:
        """The number of pending batches."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """The payload bytes of the pending batches (what `take` would hand over)."""
        return self._pending_bytes

    # -------------------------------------------------------------------------- OPEN / CLOSE

    def open(self, info: SessionInfo) -> tuple[SessionRecord, Layout] | Reject:
        """Store the session (idempotent for identical info). Call `commit` before."""
        (result,) = self.open_many([info])
        return result

    def open_many(
        self, infos: Sequence[SessionInfo]
    ) -> list[tuple[SessionRecord, Layout] | Reject]:
        """`open` for each info (of distinct sessions), the store's writes in ONE transaction.
        Call `commit` before. Store errors other than a conflict propagate (nothing opened)."""
        if len({i.session for i in infos}) != len(infos):
            raise ValueError("open_many takes one OPEN per session")
        results: list[tuple[SessionRecord, Layout] | Reject | None] = []
        layouts: dict[int, Layout] = {}
        for k, info in enumerate(infos):
            try:
                layouts[k] = self._layout_for(info)
                results.append(None)
            except KeyError:
                results.append(Reject(info.session, "unknown_scenario",
                                      f"unknown scenario {info.scenario!r}"))  # fmt: skip
        writes = list(layouts)
        stored = self._store.open_sessions([infos[k] for k in writes]) if writes else []
        for k, record in zip(writes, stored, strict=True):
            info = infos[k]
            if isinstance(record, StoreError):
                results[k] = Reject(info.session, "session_conflict", f"session "
                                    f"{info.session!r} exists with different details: {record}")
                continue
            if record.status == "open" and record.next_seq == 0 and record.batches == 0:
                self._state[info.session] = _State(record, layouts[k], 0, 0.0)  # nothing to read
            else:
                self._state.pop(info.session, None)  # loaded (last t included) when next needed
            results[k] = (record, layouts[k])
        return [r for r in results if r is not None]

    def close(self, header: Close) -> SessionRecord | Reject:
        """Close the session at `header.t` once all `header.next_seq` events are stored
        (idempotent for the same t). Call `commit` before. A StoreError propagates."""
        (result,) = self.close_many([header])
        if isinstance(result, StoreError):
            raise result
        return result

    def close_many(self, headers: Sequence[Close]) -> list[SessionRecord | Reject | StoreError]:
        """`close` for each header (of distinct sessions), the store's writes in ONE
        transaction: per header the record, a Reject, or the StoreError the store gave for it.
        Call `commit` before. Other store errors propagate (nothing closed)."""
        if len({h.session for h in headers}) != len(headers):
            raise ValueError("close_many takes one CLOSE per session")
        results: list[SessionRecord | Reject | StoreError | None] = [
            self._check_close(h) for h in headers
        ]
        writes = [i for i, r in enumerate(results) if r is None]
        if writes:
            stored = self._store.close_sessions([(headers[i].session, headers[i].t)
                                                 for i in writes])  # fmt: skip
            for i, result in zip(writes, stored, strict=True):
                results[i] = result
                self._state.pop(headers[i].session, None)
        return [r for r in results if r is not None]

    def _check_close(self, header: Close) -> SessionRecord | Reject | None:
        """Why the CLOSE cannot (Reject) or need not (the closed record) be stored; None
        when the store must close the session."""
        session = header.session
        state = self._load(session)
        if state is None:
            return Reject(session, "unknown_session", f"session {session!r} was never opened")
        record = state.record
        if record.status == "closed":
            if record.close_t == header.t:
                return record
            return Reject(session, "closed", f"session {session!r} was closed at t="
                          f"{record.close_t}, not {header.t}")
        if header.next_seq > state.next_seq:
            return Reject(session, "gap", f"CLOSE says {header.next_seq} events were sent, "
                          f"{state.next_seq} are stored", expected_seq=state.next_seq)
        if header.next_seq < state.next_seq:
            return Reject(session, "seq_order", f"CLOSE says {header.next_seq} events were sent, "
                          f"but {state.next_seq} are stored already")
        if header.t < state.last_t:
            return Reject(session, "bad_time", f"CLOSE t={header.t} is before the session's "
                          f"last event t={state.last_t}")
        return None

    # -------------------------------------------------------------------------- cache

    def _load(self, session: str) -> _State | None:
        state = self._state.get(session)
        if state is not None:
            return state
        record = self._store.session(session)
        if record is None:
            return None
        try:
            layout = self._layout_for(record.info)
        except KeyError:
            return None
        if record.status == "closed":  # not cached: only duplicates and re-CLOSE reach it
            return _State(record, layout, record.next_seq, record.close_t or 0.0)
        state = _State(record, layout, record.next_seq, self._last_t(record, layout))
        self._state[session] = state
        return state

    def _last_t(self, record: SessionRecord, layout: Layout) -> float:
        """The t of the session's last stored event (once per session and process)."""
        last: StoredBatch | None = None
        for last in self._store.batches(record.info.session):  # noqa: B007 - want the last one
            pass
        if last is None:
            return 0.0
        cols = decode_events(last.header, last.payload, layout)
        return float(cols.t[-1]) if len(cols) else 0.0

    def discard(self) -> None:
        """Drop the pending batches and the cached state of their sessions (reloaded from the
        store when next needed): after a failure between `events` and `commit`, what was not
        stored must not count as stored."""
        pending = self.take()
        for a in pending:
            self._state.pop(a.session, None)

    def forget(self, session: str) -> None:
        """Drop the cached state of `session` (it is reloaded from the store when needed)."""
        self._state.pop(session, None)
