"""Copy every session of one store into another, through the `Store` port (so between any two
backends: SQLite to PostgreSQL, back, or SQLite to SQLite).

For each session, in open order: OPEN it in the target (identical info: the same genesis),
append the batches the target does not have yet (their header and payload bytes as stored, so
every chain value comes out the same, and is checked to), the decisions it does not have yet,
the report if it differs, and CLOSE it at the same close_t if it is closed. Running a copy
again adds only what the source gained meanwhile: nothing is duplicated. A target that holds
something else under the same session id (other info, another chain, other decisions) is
refused with a StoreError naming the session, before anything of that session is written
that would not match.

The port does not carry the times a store records (opened_at, received_at, closed_at,
recorded_at, saved_at): the target records those of the copy, then `copy_times` sets them to
the source's, table by table through SQLAlchemy Core on the schema both stores share
(`storage.schema`). The chain covers headers and payloads, not these times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sqlalchemy as sa

from . import schema
from .copy_tables import TableCopied, copy_tables
from .engines import engine_for
from .port import SessionRecord, Store, StoredBatch, StoreError
from .url import one_line

GROUP_BYTES: Final = 16 * 2**20  # payload bytes per target transaction
GROUP_BATCHES: Final = 256


@dataclass(frozen=True, slots=True)
class Copied:
    """What one copy added to the target (zero everywhere for a copy that was complete)."""

    sessions: int = 0
    batches: int = 0
    payload_bytes: int = 0
    decisions: int = 0
    reports: int = 0
    closed: int = 0

    def __add__(self, other: Copied) -> Copied:
        return Copied(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def _values(self) -> tuple[int, ...]:
        return (self.sessions, self.batches, self.payload_bytes, self.decisions, self.reports,
                self.closed)  # fmt: skip


def copy_store(
    source: Store, target: Store, *, progress: Callable[[str, Copied], None] | None = None
) -> Copied:
    """Copy every session of `source` into `target` (see the module); what was added.
    `progress(session, copied_so_far)` after each session. StoreError on a conflict."""
    total = Copied()
    for record in source.sessions():
        total += copy_session(source, target, record)
        if progress is not None:
            progress(record.info.session, total)
    return total


def copy_session(source: Store, target: Store, record: SessionRecord) -> Copied:
    """Copy one session (`record`, as `source` holds it) into `target`; what was added."""
    sid = record.info.session
    there = target.session(sid)
    opened = target.open_session(record.info)  # StoreError when the info differs
    batches, nbytes = _copy_batches(source, target, sid, opened)
    decisions = _copy_decisions(source, target, sid)
    report = source.report(sid)
    reported = report is not None and target.report(sid) != report
    if reported:
        assert report is not None
        target.save_report(sid, report)
    closed = record.status == "closed" and opened.status != "closed"
    if record.status == "closed":
        assert record.close_t is not None
        target.close_session(sid, record.close_t)  # StoreError at another close_t
    return Copied(int(there is None), batches, nbytes, decisions, int(reported), int(closed))


def _copy_batches(
    source: Store, target: Store, sid: str, opened: SessionRecord
) -> tuple[int, int]:
    """Append the batches of `sid` past the target's; (batches, payload bytes) added."""
    added = nbytes = 0
    pending: list[StoredBatch] = []
    for batch in source.batches(sid):
        if batch.index < opened.batches:
            if batch.index == opened.batches - 1 and batch.chain != opened.chain_head:
                raise StoreError(
                    f"session {sid!r}: the target's batches are not the source's (chain "
                    f"differs at batch {batch.index}); nothing more of it was copied"
                )
            continue
        pending.append(batch)
        if len(pending) >= GROUP_BATCHES or sum(len(b.payload) for b in pending) >= GROUP_BYTES:
            added, nbytes = _append(target, pending, added, nbytes)
            pending = []
    if pending:
        added, nbytes = _append(target, pending, added, nbytes)
    return added, nbytes


def _append(target: Store, batches: list[StoredBatch], added: int, nbytes: int) -> tuple[int, int]:
    stored = target.append_batches(
        [(b.session, b.first_seq, b.count, b.encoding, b.header, b.payload) for b in batches]
    )
    for given, got in zip(batches, stored, strict=True):
        if got.chain != given.chain:  # cannot happen when the heads matched: a guard
            raise StoreError(f"session {given.session!r}: batch {given.index} chained differently")
    return added + len(stored), nbytes + sum(len(b.payload) for b in batches)


def _copy_decisions(source: Store, target: Store, sid: str) -> int:
    """Save the decisions of `sid` the target does not have (its are a prefix of the
    source's, or StoreError); how many."""
    given, there = source.decisions(sid), target.decisions(sid)
    if given[: len(there)] != there:
        raise StoreError(f"session {sid!r}: the target's decisions are not the source's")
    missing = given[len(there) :]
    if missing:
        target.save_decisions(sid, missing)
    return len(missing)



def copy_rest(
    source: str | Path,
    target: str | Path,
    sessions: Iterable[str],
    *,
    progress: Callable[[TableCopied], None] | None = None,
) -> list[TableCopied]:
    """What `copy_store` cannot carry through the port, from the store `source` names into the
    store `target` names (both open already, `sessions` copied): the times of `sessions`
    (`copy_times`), then the HTTP app's tables (`copy_tables.copy_tables`, `progress` as
    there); what was done, per table. StoreError (one line) on a conflict or a database
    error."""
    reading, writing = engine_for(source), engine_for(target)
    try:
        copy_times(reading, writing, sessions)
        return copy_tables(reading, writing, progress=progress)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(one_line(str(exc))) from exc
    finally:
        reading.dispose()
        writing.dispose()


def copy_times(source: sa.Engine, target: sa.Engine, sessions: Iterable[str]) -> None:
    """Set the times the target recorded for `sessions` (all copied: the same batches and
    decisions in the same order) to the source's, one transaction per session. Rows already
    right are left alone, so a second run writes nothing."""
    with source.connect() as reading:
        for session in sessions:
            times = _times(reading, session)
            with target.begin() as writing:
                _set_times(writing, session, times)


@dataclass(frozen=True, slots=True)
class _Times:
    opened_at: str
    closed_at: str | None
    received: list[tuple[int, str]]  # (idx, received_at) of each batch
    recorded: list[str]  # recorded_at of each decision, in order
    saved_at: str | None


def _times(db: sa.Connection, session: str) -> _Times:
    s, b, d, r = schema.sessions, schema.batches, schema.decisions, schema.reports
    key, opened_at, closed_at = db.execute(
        sa.select(s.c.id, s.c.opened_at, s.c.closed_at).where(s.c.session == session)
    ).one()
    received = db.execute(
        sa.select(b.c.idx, b.c.received_at).where(b.c.session_id == key).order_by(b.c.idx)
    ).all()
    recorded = db.scalars(
        sa.select(d.c.recorded_at).where(d.c.session_id == key).order_by(d.c.id)
    ).all()
    saved_at = db.scalar(sa.select(r.c.saved_at).where(r.c.session_id == key))
    return _Times(opened_at, closed_at, [(i, at) for i, at in received], list(recorded),
                  saved_at)  # fmt: skip


def _set_times(db: sa.Connection, session: str, times: _Times) -> None:
    s, b, d, r = schema.sessions, schema.batches, schema.decisions, schema.reports
    key = db.scalar(sa.select(s.c.id).where(s.c.session == session))
    db.execute(sa.update(s).where(s.c.id == key).values(
        opened_at=times.opened_at, closed_at=times.closed_at))  # fmt: skip
    changed: sa.BindParameter[str] = sa.bindparam("at")
    if times.received:
        db.execute(
            sa.update(b).where(b.c.session_id == key, b.c.idx == sa.bindparam("i"),
                               b.c.received_at != changed).values(received_at=changed),
            [{"i": i, "at": at} for i, at in times.received],
        )  # fmt: skip
    ids = db.scalars(sa.select(d.c.id).where(d.c.session_id == key).order_by(d.c.id)).all()
    if ids:
        db.execute(
            sa.update(d).where(d.c.id == sa.bindparam("row_id"), d.c.recorded_at != changed)
            .values(recorded_at=changed),
            [{"row_id": i, "at": at} for i, at in zip(ids, times.recorded, strict=True)],
        )  # fmt: skip
    if times.saved_at is not None:
        db.execute(sa.update(r).where(r.c.session_id == key).values(saved_at=times.saved_at))


def refresh_statistics(target: str | Path) -> bool:
    """After a bulk load into the store `target` names: ``ANALYZE`` it when it is on
    PostgreSQL, so its planner knows the copied tables' sizes and values from the first query
    (autovacuum gets there only later; until then a listing may run a plan made for empty
    tables). True when it ran; a SQLite store is left as it is (its queries are planned
    without statistics). StoreError (one line) on a database error."""
    engine = engine_for(target)
    try:
        if engine.dialect.name != "postgresql":
            return False
        with engine.connect() as connection:
            connection.execute(sa.text("ANALYZE"))
            connection.commit()
        return True
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(one_line(str(exc))) from exc
    finally:
        engine.dispose()
