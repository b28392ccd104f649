"""The archive on S3-compatible object storage: a real S3 HTTP server (moto's, started on
127.0.0.1 and a free port, tests/s3_server.py), reached through s3fs with the standard AWS
environment variables, as the CLI does."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from assessengine.adapters.library import load_rubric
from assessengine.archive.layout import Manifest
from assessengine.archive.location import ArchiveRoot, s3_options
from assessengine.archive.rescore import Job, plan, run_local
from assessengine.cli import main
from assessengine.storage import open_store

from .archive_data import RUBRICS, fill_store
from .pg_server import free_port
from .s3_server import KEY, REGION, SECRET, aws_environ, s3_server

pytest.importorskip("s3fs")
BUCKET = "assess"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server() as url:
        boto3 = pytest.importorskip("boto3")
        boto3.client("s3", endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                     region_name=REGION).create_bucket(Bucket=BUCKET)  # fmt: skip
        yield url


@pytest.fixture(scope="module")
def store_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("s3store") / "engine.db"
    store = open_store(db)
    try:
        fill_store(store, "lhd-underground", 4)
    finally:
        store.close()
    return db


def _run(env: Mapping[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner(env=dict(env)).invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _objects(root: ArchiveRoot) -> dict[str, int]:
    return {str(k): int(v["size"]) for k, v in root.fs.find(root.path, detail=True).items()}


def test_export_verify_and_rescore_on_s3(endpoint: str, store_db: Path) -> None:
    env = aws_environ(endpoint)
    url = f"s3://{BUCKET}/site-a/archive"
    code, out, err = _run(env, "archive", "export", "--db", str(store_db), "--out", url, "-q")
    assert code == 0, err
    assert "archived 4 session(s)" in out
    code, out, err = _run(env, "archive", "verify", url, "--db", str(store_db))
    assert code == 0, err + out
    assert ": ok" in out
    root = ArchiveRoot.open(url, storage_options=s3_options(env))
    before = _objects(root)
    assert any(k.endswith("manifest.json") for k in before)
    assert not any("_staging" in k for k in before)
    code, out, _ = _run(env, "archive", "export", "--db", str(store_db), "--out", url, "-q")
    assert code == 0
    assert "archived 0 session(s)" in out
    assert _objects(root) == before
    manifest = Manifest.load(root)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS["lhd-underground"])
    parts, rows = plan(root, manifest, scenario.scenario)
    reports = [r for res in run_local(Job.of(root, rubric, scenario), parts) for r in res.reports]
    assert len(reports) == 4
    assert all(r == json.loads(rows[r["session"]]["report"]) for r in reports)
    code, out, err = _run(env, "score", url, "--rubric", str(RUBRICS["lhd-underground"]),
                          "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["sessions"] == reports


def test_a_missing_bucket_is_one_line_exit_2(endpoint: str, store_db: Path) -> None:
    code, _, err = _run(aws_environ(endpoint), "archive", "export", "--db", str(store_db),
                        "--out", "s3://no-such-bucket/archive", "-q")  # fmt: skip
    assert code == 2
    assert err.startswith("error: s3://no-such-bucket/archive: ")
    assert err.count("\n") == 1


def test_an_unreachable_endpoint_is_one_line_exit_2(store_db: Path) -> None:
    env = aws_environ(f"http://127.0.0.1:{free_port()}")
    code, _, err = _run(env, "archive", "export", "--db", str(store_db), "--out",
                        f"s3://{BUCKET}/archive", "-q")  # fmt: skip
    assert code == 2
    assert err.startswith(f"error: s3://{BUCKET}/archive: cannot reach the archive")
    assert err.count("\n") == 1
    code, _, err = _run(env, "rescore", "--rubric", str(RUBRICS["lhd-underground"]),
                        "--archive", f"s3://{BUCKET}/archive", "-q")  # fmt: skip
    assert code == 2
    assert err.startswith(f"error: s3://{BUCKET}/archive: cannot reach the archive")
