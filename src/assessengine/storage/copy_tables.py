"""Copy the HTTP app's tables (the review store's and the credential store's) from one store's
database into another's, between any two dialects, through SQLAlchemy Core on the schema both
share (`storage.schema`).

Tables go in dependency order (`APP_TABLES`: a row's references are copied before it), each
row with its primary key as the source holds it, so every reference (a revocation to its
credential, a credential to its status slot, a re-scoring's id in the audit log) stays
intact. A row the target holds already, the same, is left alone: running a copy again
duplicates nothing, and adds only what the source gained since.

A row of the same key with other content is refused (StoreError naming the table and the key;
the tables and rows before it are copied), except where the app itself rewrites a row in
place and the source's is the later state: a token revoked or an OAuth grant used since
(``revoked_at``, ``used_at`` set, the rest the same), a session's outcome recomputed since
(a later ``updated_at``), a status list signed again since (a later ``valid_until``), a
share link hidden since (``hidden_at`` and ``hidden_by`` set). Those are brought up to date.

On PostgreSQL the identity sequences of the tables copied with their ids are moved past the
highest id, so the app's next row gets a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from . import schema
from .port import StoreError
from .url import one_line

Row = Mapping[Any, Any]

CHUNK_ROWS: Final = 1000  # rows compared and written per target transaction
PROGRESS_ROWS: Final = 100_000  # rows read between two progress reports on a long table

APP_TABLES: Final = (
    schema.review_tokens,
    schema.review_rubrics,
    schema.review_rescores,
    schema.review_observations,
    schema.review_overrides,
    schema.review_outcomes,
    schema.review_outcomes_due,  # (a copy of a hub's) sessions the target is to recompute
    schema.review_audit,
    schema.review_double_assignments,
    schema.review_double_marks,
    schema.credential_status_lists,
    schema.credential_status_slots,
    schema.credential_issued,
    schema.credential_revocations,
    schema.credential_status_published,
    schema.credential_shares,
    schema.oauth_clients,
    schema.oauth_grants,
)
"""Every table of the review, credential and OAuth stores, references first."""

ENGINE_TABLES: Final = frozenset(
    {"schema_version", "sessions", "batches", "payload_files", "head_changes", "decisions",
     "reports"}
)  # fmt: skip
"""The engine's tables: copied through the `Store` port (`storage.copy`), or the store's own
bookkeeping (schema_version, payload_files, head_changes), never by this module."""

DERIVED_TABLES: Final = frozenset({"cohort_sessions", "cohort_verdicts", "cohort_changes"})
"""The cohort index (`storage.cohorts`) and its change marks: derived from reports and
reviews and rebuilt on the target when first used, never copied."""


def _set_since(*columns: str) -> Callable[[Row, Row], bool]:
    """The source's row is the target's with `columns` set since (a token revoked, an OAuth
    code redeemed, a share hidden: NULL there), the rest the same."""

    def set_since(there: Row, given: Row) -> bool:
        same = all(there[k] == given[k] for k in given if k not in columns)
        return same and all(there[c] is None and given[c] is not None for c in columns)

    return set_since


def _later(column: str) -> Callable[[Row, Row], bool]:
    def later(there: Row, given: Row) -> bool:
        return bool(given[column] > there[column])

    return later


SUPERSEDES: Final[dict[str, Callable[[Row, Row], bool]]] = {
    "review_tokens": _set_since("revoked_at"),
    "review_outcomes": _later("updated_at"),
    "credential_status_published": _later("valid_until"),
    "oauth_grants": _set_since("used_at"),
    "credential_shares": _set_since("hidden_at", "hidden_by"),
}
"""For the rows the app rewrites in place: whether the source's row (`given`) is a later state
of the target's (`there`), to bring it up to date rather than refuse it."""


@dataclass(frozen=True, slots=True)
class TableCopied:
    """What a copy did to one table of the target."""

    table: str
    added: int = 0
    updated: int = 0
    read: int = 0  # rows of the source read so far
    finished: bool = True  # False: a report on the way (see `copy_tables`)


def copy_tables(
    source: sa.Engine,
    target: sa.Engine,
    *,
    progress: Callable[[TableCopied], None] | None = None,
    every: int = PROGRESS_ROWS,
) -> list[TableCopied]:
    """Copy every table of `APP_TABLES` from `source` into `target` (see the module); what
    was done, per table. `progress(done)` after each table (``finished``), and on the way
    through a long one after about every `every` rows read (not ``finished``). A table the
    source does not have (a store of an older release, never migrated) is skipped.
    StoreError on a conflict."""
    present = set(sa.inspect(source).get_table_names())
    done = []
    for table in APP_TABLES:
        copied = copy_table(source, target, table, progress, every) if table.name in present \
            else TableCopied(table.name)  # fmt: skip
        done.append(copied)
        if progress is not None:
            progress(copied)
    return done


def copy_table(
    source: sa.Engine,
    target: sa.Engine,
    table: sa.Table,
    progress: Callable[[TableCopied], None] | None = None,
    every: int = PROGRESS_ROWS,
) -> TableCopied:
    """Copy the rows of `table` the target lacks or holds in an earlier state; one target
    transaction per `CHUNK_ROWS` rows (the chunks before a conflict stay copied).
    `progress` as `copy_tables` says, but never ``finished``."""
    key = list(table.primary_key.columns)
    supersedes = SUPERSEDES.get(table.name)
    added = updated = read = 0
    with source.connect() as reading:
        rows = reading.execution_options(yield_per=CHUNK_ROWS).execute(
            sa.select(table).order_by(*key)
        )
        for chunk in rows.mappings().partitions(CHUNK_ROWS):
            with target.begin() as writing:
                new, changed = _compare(writing, table, key, chunk, supersedes)
                for row in changed:
                    writing.execute(sa.update(table).where(*_matches(key, row)).values(row))
                if new:
                    _insert(writing, table, new)
            added, updated = added + len(new), updated + len(changed)
            read += len(chunk)
            if progress is not None and read // every > (read - len(chunk)) // every:
                progress(TableCopied(table.name, added, updated, read, finished=False))
    if added and target.dialect.name == "postgresql":
        _advance_identity(target, table)
    return TableCopied(table.name, added, updated, read)


def _compare(
    db: sa.Connection,
    table: sa.Table,
    key: list[sa.Column[Any]],
    chunk: Sequence[Row],
    supersedes: Callable[[Row, Row], bool] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of `chunk` the target lacks, and those it holds in an earlier state."""
    keys = [tuple(row[c.name] for c in key) for row in chunk]
    selector = key[0].in_([k[0] for k in keys]) if len(key) == 1 else sa.tuple_(*key).in_(keys)
    there = {
        tuple(row[c.name] for c in key): row
        for row in db.execute(sa.select(table).where(selector)).mappings()
    }
    new, changed = [], []
    for ident, row in zip(keys, chunk, strict=True):
        held = there.get(ident)
        if held is None:
            new.append(dict(row))
        elif dict(held) == dict(row):
            continue
        elif supersedes is not None and supersedes(held, row):
            changed.append(dict(row))
        else:
            raise StoreError(
                f"{table.name} {_key_text(key, ident)}: the target holds other content under "
                "this key; nothing more of this table was copied"
            )
    return new, changed


def _matches(key: list[sa.Column[Any]], row: Row) -> list[sa.ColumnElement[bool]]:
    return [c == row[c.name] for c in key]


def _key_text(key: list[sa.Column[Any]], ident: tuple[Any, ...]) -> str:
    return ", ".join(f"{c.name}={v!r}" for c, v in zip(key, ident, strict=True))


def _insert(db: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    try:
        db.execute(sa.insert(table), rows)
    except sa.exc.IntegrityError as exc:  # another key, the same unique value (a token hash)
        raise StoreError(
            f"{table.name}: the target holds a row under another key that conflicts with one "
            f"copied ({one_line(str(exc.orig))}); nothing more of this table was copied"
        ) from None


def _advance_identity(target: sa.Engine, table: sa.Table) -> None:
    """Move the identity sequence of `table` (if it has one) past its highest id."""
    identity = [c for c in table.columns if c.identity is not None]
    if not identity:
        return
    column = identity[0]
    highest = sa.select(sa.func.max(column)).scalar_subquery()
    with target.begin() as db:
        db.execute(sa.select(sa.func.setval(
            sa.func.pg_get_serial_sequence(table.name, column.name), highest)))  # fmt: skip
