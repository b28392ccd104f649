"""Splitting a cohort's events files into row-group tasks, so that a small cohort (a few large
files) still gives every Dask worker work.

    parts, rows = rescore.plan(root, manifest, scenario)        # one partition per file
    parts = split(root, parts, tasks=TASKS_PER_WORKER * workers)   # grouping.TASKS_PER_WORKER

Planning reads each file's Parquet footer only (row groups, their row counts and the min/max
statistics of their ``session`` column), never its rows. A session can only have rows in a
row group whose [min, max] holds its id, so the row groups whose ranges hold the same wanted
session are joined into one unit (a session never spans tasks), and row groups that can hold
no wanted session are not read at all. Consecutive units of one file are packed into tasks of
about ``total rows / tasks`` rows (a file gets its share of the `tasks`, cut at the
unit boundaries nearest to equal shares); a task never spans files. With export's layout (each
session's rows in one row group, sessions in id order within a file) every row group can be
its own unit; with ids whose ranges overlap the units are larger, at worst the whole file.

Nothing is split when the cohort already has `tasks` files or more, nor a file whose footer
cannot be read (not Parquet: Arrow IPC; corrupt: its one task names the problem) or that lacks
``session`` statistics in a row group.

The file-bytes check (`rescore.checked_batches`) still happens once per file: a file left
whole is hashed by its task, as before; a file split into several tasks is hashed here, on
the client, before dispatch (at most `tasks` files, since only cohorts of fewer files are
split), and its tasks carry the answer (`Partition.bytes_match`): when the bytes differ, each
task recomputes its sessions' events digests and refuses the file naming the session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from .grouping import cuts
from .location import ArchiveRoot
from .rescore import Partition, bytes_match


@dataclass(frozen=True, slots=True)
class Unit:
    """Row groups of one file (ascending) that hold whole sessions (indexes into the
    partition's sessions), and their row count."""

    groups: tuple[int, ...]
    sessions: tuple[int, ...]
    rows: int


def split(root: ArchiveRoot, parts: Sequence[Partition], tasks: int) -> list[Partition]:
    """See the module docstring. The partitions returned are numbered 0.. in order (a file's
    tasks in row-group order); their sessions together are `parts`' sessions."""
    if len(parts) >= tasks or not parts:
        return list(parts)
    units = {p.index: file_units(root, p) for p in parts}
    total = sum(sum(u.rows for u in found) for found in units.values() if found)
    if total == 0:
        return list(parts)
    out: list[Partition] = []
    for part in parts:
        found = units[part.index]
        rows = sum(u.rows for u in found) if found else 0
        pieces = ([list(found[lo:hi]) for lo, hi in
                   cuts([u.rows for u in found], max(1, round(tasks * rows / total)))]
                  if found else [])  # fmt: skip
        if len(pieces) <= 1:
            out.append(dataclasses.replace(part, index=len(out)))
            continue
        match = bytes_match(root, part)
        for piece in pieces:
            out.append(_piece(part, piece, len(out), match))
    return out


def file_units(root: ArchiveRoot, part: Partition) -> list[Unit] | None:
    """The units of `part`'s file in row-group order (None: it cannot be split); a wanted
    session no row group can hold joins the first unit (its task then finds no rows)."""
    ranges = _session_ranges(root, part.path)
    if ranges is None:
        return None
    parent = list(range(len(ranges)))

    def find(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    home: list[int | None] = []
    for sid in part.sessions:
        holding = [g for g, (_, low, high) in enumerate(ranges) if low <= sid <= high]
        for g in holding[1:]:
            parent[find(g)] = find(holding[0])
        home.append(holding[0] if holding else None)
    members: dict[int, list[int]] = {}
    for g in range(len(ranges)):
        members.setdefault(find(g), []).append(g)
    by_root: dict[int, list[int]] = {}
    for k, at in enumerate(home):
        if at is not None:
            by_root.setdefault(find(at), []).append(k)
    units = sorted((Unit(tuple(members[r]), tuple(ks), sum(ranges[g][0] for g in members[r]))
                    for r, ks in by_root.items()), key=lambda u: u.groups[0])  # fmt: skip
    orphans = tuple(k for k, at in enumerate(home) if at is None)
    if orphans:
        if not units:
            return None
        first = units[0]
        units[0] = Unit(first.groups, tuple(sorted(first.sessions + orphans)), first.rows)
    return units


def _session_ranges(root: ArchiveRoot, path: str) -> list[tuple[int, str, str]] | None:
    """Per row group: (rows, min session, max session) from the footer; None when the footer
    cannot be read or a row group has no ``session`` statistics."""
    try:
        with root.fs.open(root.full(path), "rb") as handle:
            meta = pq.ParquetFile(handle).metadata
    except (pa.ArrowException, OSError, ValueError):
        return None
    names = [meta.schema.column(c).path for c in range(meta.num_columns)]
    if "session" not in names:
        return None
    column = names.index("session")
    out = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        stats = group.column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        low, high = stats.min, stats.max
        if isinstance(low, bytes) or isinstance(high, bytes):
            low, high = bytes(low).decode(), bytes(high).decode()
        if not isinstance(low, str) or not isinstance(high, str):
            return None
        out.append((group.num_rows, low, high))
    return out


def _piece(part: Partition, piece: Sequence[Unit], index: int, match: bool) -> Partition:
    keep = sorted(k for unit in piece for k in unit.sessions)
    sessions = tuple(part.sessions[k] for k in keep)
    return Partition(index, part.path, sessions,
                     tuple(part.close_t[k] for k in keep), tuple(part.digests[k] for k in keep),
                     {s: part.observations[s] for s in sessions if s in part.observations},
                     part.file_sha256,
                     row_groups=tuple(sorted(g for unit in piece for g in unit.groups)),
                     bytes_match=match, events=sum(unit.rows for unit in piece))  # fmt: skip

