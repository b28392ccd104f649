"""`archive.split`: a cohort of one small events file holding several sessions in several row
groups becomes several tasks (row groups planned from the footer only), whose reports equal
the one-task run; a session spanning row groups stays in one task; the file's bytes are hashed
once; a changed file is still refused by name. (On Dask: tests/test_rescore_dask.py.)"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import assessengine.archive.export as export_module
import assessengine.archive.rescore as rescore_module
from assessengine.adapters.library import load_rubric, load_scenario
from assessengine.archive.layout import Manifest
from assessengine.archive.location import ArchiveError, ArchiveRoot
from assessengine.archive.rescore import Job, Partition, plan, run_local
from assessengine.archive.split import file_units, split
from assessengine.storage import open_store

from .archive_data import RUBRICS, fill_store

SCENARIO = "network-lab"
SESSIONS = 6


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One events file of SESSIONS sessions, each in its own row group."""
    folder = tmp_path_factory.mktemp("split")
    store = open_store(folder / "engine.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export_module, "ROW_GROUP_ROWS", 1)  # a row group per session
        try:
            fill_store(store, SCENARIO, SESSIONS, seed=5)
            export_module.export(store, ArchiveRoot.open(str(folder / "archive")),
                                 load_scenario=load_scenario)  # fmt: skip
        finally:
            store.close()
    return folder / "archive"


def _planned(path: Path) -> tuple[ArchiveRoot, Job, list[Partition]]:
    root = ArchiveRoot.open(str(path))
    manifest = Manifest.load(root)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS[SCENARIO])
    parts, _ = plan(root, manifest, SCENARIO)
    return root, Job.of(root, rubric, scenario), parts


def _copy(archive: Path, tmp_path: Path) -> Path:
    """A copy of the module's archive, for a test that changes it."""
    return Path(shutil.copytree(archive, tmp_path / "archive"))


def _rewrite(path: str, table: pa.Table, sessions: Sequence[str], *, halves: bool) -> None:
    """Write `table` (rows grouped by session, in `sessions` order) to `path`: each session's
    rows in one row group, or in two when `halves`."""
    ids = table.column("session").to_pylist()
    with pq.ParquetWriter(path, table.schema, compression="zstd") as writer:
        lo = 0
        for sid in sessions:
            n = ids.count(sid)
            cut = max(1, n // 2) if halves else n
            writer.write_table(table.slice(lo, cut), row_group_size=max(cut, 1))
            if n > cut:
                writer.write_table(table.slice(lo + cut, n - cut), row_group_size=n)
            lo += n


def _reports(job: Job, parts: list[Partition]) -> list[dict[str, object]]:
    return [r for result in run_local(job, parts) for r in result.reports]


def test_one_file_of_several_row_groups_splits_into_tasks_with_the_same_reports(
    archive: Path,
) -> None:
    root, job, parts = _planned(archive)
    assert len(parts) == 1
    assert len(parts[0].sessions) == SESSIONS
    assert pq.ParquetFile(root.full(parts[0].path)).metadata.num_row_groups == SESSIONS
    pieces = split(root, parts, tasks=3)
    assert len(pieces) == 3
    assert [p.index for p in pieces] == [0, 1, 2]
    assert [s for p in pieces for s in p.sessions] == list(parts[0].sessions)
    groups = [g for p in pieces for g in p.row_groups or ()]
    assert sorted(groups) == list(range(SESSIONS))  # each row group read by one task only
    assert all(p.bytes_match is True for p in pieces)
    assert _reports(job, pieces) == _reports(job, parts)


def test_a_cohort_with_enough_files_is_left_one_task_per_file(archive: Path) -> None:
    root, _, parts = _planned(archive)
    assert split(root, parts, tasks=1) == parts


def test_a_session_spanning_row_groups_stays_in_one_task(archive: Path, tmp_path: Path) -> None:
    root, job, parts = _planned(_copy(archive, tmp_path))
    path = root.full(parts[0].path)
    _rewrite(path, pq.read_table(path), parts[0].sessions, halves=True)
    units = file_units(root, parts[0])
    assert units is not None
    assert any(len(u.groups) > 1 for u in units)
    pieces = split(root, parts, tasks=4)
    assert len(pieces) > 1
    seen = [g for p in pieces for g in p.row_groups or ()]
    assert len(seen) == len(set(seen))
    # the bytes changed (rows did not): the tasks check each session's events digest instead
    assert all(p.bytes_match is False for p in pieces)
    assert _reports(job, pieces) == _reports(job, parts)


def test_a_split_file_is_hashed_once(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, job, parts = _planned(archive)
    calls: list[str] = []
    real = rescore_module.file_sha256

    def counting(fs: object, path: str) -> str:
        calls.append(path)
        return real(fs, path)

    monkeypatch.setattr(rescore_module, "file_sha256", counting)
    pieces = split(root, parts, tasks=3)
    _reports(job, pieces)
    assert len(calls) == 1


def test_a_changed_split_file_is_refused_naming_it_and_the_session(
    archive: Path, tmp_path: Path
) -> None:
    root, job, parts = _planned(_copy(archive, tmp_path))
    path = root.full(parts[0].path)
    table = pq.read_table(path)
    t = table.column("t").to_pylist()
    t[-1] += 1.0  # the last session's last event a second later
    changed = table.set_column(table.schema.get_field_index("t"), "t", [t])
    _rewrite(path, changed, parts[0].sessions, halves=False)
    pieces = split(root, parts, tasks=3)
    assert len(pieces) > 1
    with pytest.raises(ArchiveError) as caught:
        _reports(job, pieces)
    message = str(caught.value)
    assert parts[0].path in message
    assert repr(parts[0].sessions[-1]) in message
    assert "do not match its events digest" in message
