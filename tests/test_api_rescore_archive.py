"""The API's cohort re-score with an archive configured (setting archive_url): archived
sessions are scored from the Parquet archive (the `assessengine rescore` path), with the same
results as from the store; a corrupt archived file is each of its sessions' problem; an
archive that cannot be read leaves the re-score to the store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assessengine.adapters.library import load_scenario
from assessengine.api.app import create_app
from assessengine.archive.cohort import ArchiveSource
from assessengine.archive.export import export
from assessengine.archive.layout import Manifest
from assessengine.archive.location import ArchiveRoot
from assessengine.compose import archive_source
from assessengine.settings import Settings
from assessengine.storage import open_store

from .pg_server import free_port
from .test_api_support import FORKLIFT, Api, copy_template, make_tokens

RUBRIC = "forklift-load-handling"


def _stricter() -> str:
    text = FORKLIFT.read_text()
    text = text.replace('never: "load > 50 and speed > 8"', 'never: "load > 50 and speed > 2"')
    return text.replace("version: 1\n", "version: 2\n", 1)


def _api(db: Path, archive: ArchiveSource | None, stored: Any) -> Iterator[Api]:
    app = create_app(db_path=db, web=False, archive=archive)
    with TestClient(app) as client:
        yield Api(client, app.state.service, db, stored, make_tokens(app.state.service))


def _rescore(api: Api) -> dict[str, Any]:
    upload = api.post("/api/v1/rubrics", "trainer",
                      files={"file": ("r.yaml", _stricter().encode())})  # fmt: skip
    assert upload.status_code == 201, upload.text
    answer = api.post("/api/v1/rescores", "trainer", json={
        "rubric": RUBRIC, "version": 2, "cohort": {"rubric": RUBRIC, "limit": 100},
    })  # fmt: skip
    assert answer.status_code == 201, answer.text
    return {s["session"]: s for s in answer.json()["sessions"]}


@pytest.fixture
def archived(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> tuple[Path, Any, Path]:
    db, stored = copy_template(tmp_path_factory, tmp_path)
    root = ArchiveRoot.open(str(tmp_path / "archive"))
    store = open_store(db)
    try:
        export(store, root, load_scenario=load_scenario)
    finally:
        store.close()
    return db, stored, tmp_path / "archive"


def _from_store(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "plain"
    folder.mkdir()
    db, stored = copy_template(tmp_path_factory, folder)
    for api in _api(db, None, stored):
        return _rescore(api)
    raise AssertionError("no api")


def test_a_cohort_rescore_from_the_archive_equals_one_from_the_store(
    archived: tuple[Path, Any, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    db, stored, folder = archived
    source = archive_source(Settings.load(flags={"archive_url": str(folder)}, environ={}))
    assert source is not None
    for api in _api(db, source, stored):
        from_archive = _rescore(api)
    assert from_archive == _from_store(tmp_path_factory, tmp_path)
    assert any(s["changed"] for s in from_archive.values())


def test_a_corrupt_archived_file_is_its_sessions_problem(
    archived: tuple[Path, Any, Path],
) -> None:
    db, stored, folder = archived
    root = ArchiveRoot.open(str(folder))
    manifest = Manifest.load(root)
    assert manifest is not None
    (entry,) = manifest.events_files("forklift-warehouse")
    Path(root.full(entry.path)).write_bytes(b"not parquet at all")
    for api in _api(db, ArchiveSource(root), stored):
        results = _rescore(api)
    assert results
    for result in results.values():
        assert result["after"] is None
        assert result["problem"].startswith("archive: ")
        assert "not a readable Parquet file" in result["problem"]


def test_an_unreadable_archive_leaves_the_rescore_to_the_store(
    archived: tuple[Path, Any, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    db, stored, folder = archived
    root = ArchiveRoot.open(str(folder))
    (folder / "manifest.json").write_text("{not json")
    for api in _api(db, ArchiveSource(root), stored):
        results = _rescore(api)
    assert results == _from_store(tmp_path_factory, tmp_path)
    shutil.rmtree(folder)


def test_an_unreachable_dask_scheduler_leaves_the_rescore_to_the_store(
    archived: tuple[Path, Any, Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    db, stored, folder = archived
    source = ArchiveSource(ArchiveRoot.open(str(folder)), scheduler=f"tcp://127.0.0.1:{free_port()}")
    for api in _api(db, source, stored):
        results = _rescore(api)
    assert results == _from_store(tmp_path_factory, tmp_path)
