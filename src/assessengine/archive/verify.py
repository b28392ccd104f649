"""`archive verify`: is the archive what its manifest says, and does it match the store?

Checks, each problem one line naming the file or session:

1. files:    every file the manifest lists exists with the listed size and, when the manifest
             recorded it, the sha256 of its bytes.
2. events:   every archived session's rows in its events file give its ``events_sha256`` and
             its event count (the whole file is read, in bounded memory).
3. store:    (with a store) every archived session exists there with the same chain head, so
             the store's hash chain still vouches for what was archived.

Files under the root that the manifest does not name (left by a run cut short) are listed as
notes: they are not part of the archive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..core.codec import Layout
from ..core.scenario import Scenario
from ..errors import AssessEngineError
from ..storage.port import Store
from .digest import Digests, file_sha256
from .layout import MANIFEST, STAGING_DIR, Manifest
from .location import ArchiveError, ArchiveRoot
from .reader import event_batches, read_sessions


@dataclass(slots=True)
class VerifyResult:
    sessions: int = 0
    events: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    root: ArchiveRoot,
    manifest: Manifest,
    *,
    load_scenario: Callable[[str], Scenario],
    store: Store | None = None,
) -> VerifyResult:
    """Run the checks of the module docstring. Raises ArchiveError only when the archive
    cannot be read at all (a sessions part that is corrupt); every other finding is a
    problem in the result."""
    result = VerifyResult(files=len(manifest.files))
    _check_files(root, manifest, result)
    table = read_sessions(root, manifest, columns=["session", "scenario", "file", "events",
                                                   "events_sha256", "chain_head"])  # fmt: skip
    rows = table.to_pylist()
    result.sessions = len(rows)
    by_file: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_file.setdefault(str(row["file"]), []).append(row)
    for path, group in by_file.items():
        _check_events(root, path, group, load_scenario, result)
    if store is not None:
        for row in rows:
            record = store.session(str(row["session"]))
            if record is None:
                result.problems.append(f"session {row['session']!r}: not in the store")
            elif record.chain_head != row["chain_head"]:
                result.problems.append(f"session {row['session']!r}: the store's chain head "
                                       f"{record.chain_head[:16]}... is not the archived "
                                       f"{str(row['chain_head'])[:16]}...")  # fmt: skip
    return result


def _sha256(root: ArchiveRoot, path: str) -> str:
    try:
        return file_sha256(root.fs, root.full(path))
    except Exception as exc:
        raise ArchiveError(f"{root.where(path)}: cannot read: {exc}") from None


def _check_files(root: ArchiveRoot, manifest: Manifest, result: VerifyResult) -> None:
    listed = {root.full(f.path) for f in manifest.files}
    for entry in manifest.files:
        try:
            size = root.fs.size(root.full(entry.path))
        except FileNotFoundError:
            result.problems.append(f"{root.where(entry.path)}: listed in the manifest but missing")
            continue
        except Exception as exc:
            raise ArchiveError(f"{root.where(entry.path)}: cannot read: {exc}") from None
        if size != entry.bytes:
            result.problems.append(f"{root.where(entry.path)}: {size} bytes, the manifest says "
                                   f"{entry.bytes}")  # fmt: skip
        elif entry.sha256 is not None and _sha256(root, entry.path) != entry.sha256:
            result.problems.append(f"{root.where(entry.path)}: its bytes do not give the "
                                   "manifest's sha256 (the file was changed after export)")
    try:
        found = root.fs.find(root.path)
    except Exception:
        found = []
    skip = {root.full(MANIFEST)}
    for path in sorted(str(f) for f in found):
        if path not in listed and path not in skip:
            staged = STAGING_DIR in path.split("/")
            result.notes.append(f"{path}: not in the manifest (not part of the archive"
                                + ("; left by an export cut short" if staged else "") + ")")


def _check_events(
    root: ArchiveRoot,
    path: str,
    group: list[dict[str, object]],
    load_scenario: Callable[[str], Scenario],
    result: VerifyResult,
) -> None:
    scenario_id = str(group[0]["scenario"])
    try:
        scenario = load_scenario(scenario_id)
    except AssessEngineError as exc:
        result.problems.append(f"{root.where(path)}: scenario {scenario_id!r}: {exc}")
        return
    ids = [str(r["session"]) for r in group]
    digests = Digests(Layout.of(scenario), len(ids))
    counts = [0] * len(ids)
    try:
        for batch in event_batches(root, path, scenario, session_ids=ids):
            digests.update(batch)
            for k, n in zip(*_bincount(batch.session), strict=True):
                counts[k] += n
    except ArchiveError as exc:
        result.problems.append(str(exc))
        return
    for k, row in enumerate(group):
        result.events += counts[k]
        if digests.hexdigest(k) != row["events_sha256"] or counts[k] != row["events"]:
            result.problems.append(f"{root.where(path)}: session {row['session']!r}: its rows "
                                   f"({counts[k]} events) do not match its events digest "
                                   f"({row['events']} events archived)")  # fmt: skip


def _bincount(sessions: object) -> tuple[list[int], list[int]]:
    values, counts = np.unique(np.asarray(sessions), return_counts=True)
    return values.tolist(), counts.tolist()
