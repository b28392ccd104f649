"""`assessengine rescore` on Dask distributed: one LocalCluster (2 worker processes, one thread
each) for the whole module. Reports equal `assessengine score` on all four scenarios; a worker
killed mid-job changes nothing; faults are one line and a non-zero exit."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assessengine.adapters.library import load_rubric, load_scenario
from assessengine.archive.export import export
from assessengine.archive.layout import Manifest
from assessengine.archive.location import ArchiveError, ArchiveRoot
from assessengine.archive.rescore import (
    DaskRunner,
    Job,
    Partition,
    PartitionFailed,
    PartitionResult,
    plan,
    run_local,
    score_partition,
)
from assessengine.cli import main
from assessengine.sim.generate import SimBatch
from assessengine.storage import open_store

from .archive_data import RUBRICS, fill_store, write_jsonl

distributed = pytest.importorskip("distributed")
# one worker runs the whole module (with `pytest -n 2 --dist loadgroup`, the README's command),
# so the module's one LocalCluster is started once, not once per xdist worker
pytestmark = pytest.mark.xdist_group("dask")

SESSIONS = 3
FILE_ROWS = 4000  # several events files per scenario: tasks for both workers


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, SimBatch]]:
    """An archive of SESSIONS sessions of each of the four scenarios, and the runs."""
    folder = tmp_path_factory.mktemp("rescore")
    store = open_store(folder / "engine.db")
    try:
        runs = {sc: fill_store(store, sc, SESSIONS, seed=3) for sc in RUBRICS}
        export(store, ArchiveRoot.open(str(folder / "archive")), load_scenario=load_scenario,
               file_rows=FILE_ROWS)  # fmt: skip
    finally:
        store.close()
    _warm_up(ArchiveRoot.open(str(folder / "archive")))
    return folder / "archive", runs


def _warm_up(root: ArchiveRoot) -> None:
    """Score one file of each scenario here first: numba compiles the kernel for the arrays the
    reader gives and caches it on disk, so the workers load it instead of each compiling it
    (minutes on a loaded machine, in a fresh clone)."""
    manifest = Manifest.load(root)
    assert manifest is not None
    for scenario_id, path in RUBRICS.items():
        rubric, scenario = load_rubric(path)
        parts, _ = plan(root, manifest, scenario_id)
        list(run_local(Job.of(root, rubric, scenario), parts[:1]))


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("scenario", sorted(RUBRICS))
def test_rescore_reports_equal_score_on_the_same_sessions(
    scenario: str, scheduler: str, archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path
) -> None:
    archive, runs = archived
    rubric = str(RUBRICS[scenario])
    code, out, err = _run("rescore", "--rubric", rubric, "--archive", str(archive),
                          "--scheduler", scheduler, "--json", "--quiet")  # fmt: skip
    assert code == 0, err
    rescored = json.loads(out)
    events = write_jsonl([runs[scenario]], tmp_path / "events.jsonl")
    code, out, err = _run("score", str(events), "--rubric", rubric, "--json")
    assert code == 0, err
    scored = json.loads(out)["sessions"]
    assert [r["session"] for r in rescored["sessions"]] == [r["session"] for r in scored]
    assert rescored["sessions"] == scored
    summary = rescored["summary"]
    assert summary["sessions"] == SESSIONS
    assert summary["events"] == len(runs[scenario])
    assert summary["changed_sessions"] == 0


def test_the_summary_counts_changed_verdicts_per_criterion(
    scheduler: str, archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path
) -> None:
    archive, _ = archived
    text = RUBRICS["network-lab"].read_text().replace("version: 1\n", "version: 2\n", 1)
    stricter = text.replace("      at_end: pass\n", "      at_end: fail\n", 1)
    assert stricter != text
    variant = tmp_path / "network-lab.yaml"
    variant.write_text(stricter)
    out_file = tmp_path / "reports.parquet"
    code, out, err = _run("rescore", "--rubric", str(variant), "--archive", str(archive),
                          "--scheduler", scheduler, "--out", str(out_file), "-q",
                          "--scenarios", str(RUBRICS["network-lab"].parents[1] / "scenarios")
                          )  # fmt: skip
    assert code == 0, err
    assert f"{SESSIONS} session(s)" in out
    assert "esd_protection:" in out
    assert "pass -> fail" in out
    import pyarrow.parquet as pq  # noqa: PLC0415

    table = pq.read_table(out_file)
    assert table.num_rows == SESSIONS
    assert table.column_names == ["session", "learner", "outcome", "score", "report"]


# ------------------------------------------------------------------------------ a worker dies


def stall_once(partition: Partition, job: Job) -> PartitionResult:
    """The first partition's first attempt writes its worker's pid and waits to be killed;
    every other attempt scores as usual."""
    marker = Path(job.url) / "stalled.pid"
    if partition.index == 0:
        try:
            with marker.open("x") as f:
                f.write(str(os.getpid()))
        except FileExistsError:
            pass
        else:
            time.sleep(120)
    return score_partition(partition, job)


def _lhd_job(
    archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    *, grouped: bool,
) -> tuple[Path, Job, list[Partition], dict[int, Any]]:
    """A copy of the archive, the LHD job on it, its partitions (several files, all in one
    Dask task when `grouped`, else a task each) and their reports scored in process."""
    from assessengine.archive import grouping  # noqa: PLC0415

    monkeypatch.setattr(grouping, "TASKS_PER_WORKER", 0 if grouped else 100)
    archive = tmp_path / "archive"
    shutil.copytree(archived[0], archive)
    root = ArchiveRoot.open(str(archive))
    manifest = Manifest.load(root)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS["lhd-underground"])
    job = Job.of(root, rubric, scenario)
    parts, _ = plan(root, manifest, scenario.scenario)
    assert len(parts) > 1
    assert len(grouping.group(parts, workers=2)) == (1 if grouped else len(parts))
    return archive, job, parts, {r.index: r.reports for r in run_local(job, parts)}


@pytest.mark.parametrize("grouped", [False, True], ids=["task-per-file", "one-task"])
def test_a_worker_killed_mid_job_leaves_the_result_unchanged(
    scheduler: str, archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, grouped: bool,
) -> None:
    # grouped: every file in one task (grouping.group), retried whole on the other worker
    archive, job, parts, expected = _lhd_job(archived, tmp_path, monkeypatch, grouped=grouped)
    with DaskRunner(scheduler=scheduler, task=stall_once) as runner, \
            ThreadPoolExecutor(1) as pool:  # fmt: skip
        running = pool.submit(lambda: list(runner.run(job, parts)))
        marker = archive / "stalled.pid"
        deadline = time.monotonic() + 120
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline, "the stalled task never started"
            time.sleep(0.05)
        os.kill(int(marker.read_text()), signal.SIGKILL)
        results = running.result(timeout=300)
        runner.client.wait_for_workers(2, timeout=120)
    assert all(isinstance(r, PartitionResult) for r in results)
    got = {r.index: r.reports for r in results if isinstance(r, PartitionResult)}
    assert got == expected


def test_a_grouped_run_gives_each_file_its_own_outcome(
    scheduler: str, archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive, job, parts, expected = _lhd_job(archived, tmp_path, monkeypatch, grouped=True)
    victim = parts[0]  # the files after it in the task are still scored
    (archive / victim.path).write_bytes(b"PAR1" + b"\0" * 100 + b"PAR1")
    with DaskRunner(scheduler=scheduler) as runner:
        items = list(runner.run(job, parts, keep_going=True))
        with pytest.raises(ArchiveError, match="not a readable Parquet file"):
            list(runner.run(job, parts))
    failed = [item for item in items if isinstance(item, PartitionFailed)]
    assert [f.partition.index for f in failed] == [victim.index]
    assert isinstance(failed[0].error, ArchiveError)
    assert victim.path in str(failed[0].error)
    assert {r.index: r.reports for r in items if isinstance(r, PartitionResult)} == {
        k: reports for k, reports in expected.items() if k != victim.index}  # fmt: skip


# ------------------------------------------------------------------------------ faults


def test_a_corrupt_file_fails_the_run_naming_it_and_writes_no_reports(
    scheduler: str, archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(archived[0], archive)
    manifest = Manifest.load(ArchiveRoot.open(str(archive)))
    assert manifest is not None
    victim = archive / manifest.events_files("haul-truck-surface")[0].path
    victim.write_bytes(b"PAR1" + b"\0" * 100 + b"PAR1")
    out_file = tmp_path / "reports.parquet"
    code, _, err = _run("rescore", "--rubric", str(RUBRICS["haul-truck-surface"]),
                        "--archive", str(archive), "--scheduler", scheduler,
                        "--out", str(out_file), "-q")  # fmt: skip
    assert code == 1
    assert f"error: {victim}: not a readable Parquet file" in err
    assert "no reports written" in err
    assert "Traceback" not in err
    assert not out_file.exists()


def test_an_unreachable_scheduler_is_one_line_exit_2(
    archived: tuple[Path, dict[str, SimBatch]],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = _run("rescore", "--rubric", str(RUBRICS["network-lab"]), "--archive",
                        str(archived[0]), "--scheduler", f"tcp://127.0.0.1:{port}",
                        "-q")  # fmt: skip
    assert code == 2
    assert err.startswith(f"error: Dask scheduler tcp://127.0.0.1:{port}: cannot connect")
    assert err.count("\n") == 1


def test_workers_and_scheduler_together_are_a_usage_error(
    archived: tuple[Path, dict[str, SimBatch]],
) -> None:
    code, _, err = _run("rescore", "--rubric", str(RUBRICS["network-lab"]), "--archive",
                        str(archived[0]), "--scheduler", "tcp://127.0.0.1:1",
                        "--workers", "2")  # fmt: skip
    assert code == 2
    assert "give --workers or --scheduler, not both" in err


def test_where_names_another_scenario_is_a_usage_error(
    archived: tuple[Path, dict[str, SimBatch]],
) -> None:
    code, _, err = _run("rescore", "--rubric", str(RUBRICS["network-lab"]), "--archive",
                        str(archived[0]), "--where", "scenario=lhd-underground")  # fmt: skip
    assert code == 2
    assert "the rubric scores scenario 'network-lab'" in err


# ------------------------------------------------------------------------------ warm-up


def compiled_rubrics() -> list[str]:
    """The keys of the rubrics compiled in this (worker) process."""
    from assessengine.archive import rescore  # noqa: PLC0415

    return list(rescore._COMPILED)


def test_warm_up_compiles_the_rubric_on_every_worker(
    scheduler: str, archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path
) -> None:
    text = RUBRICS["network-lab"].read_text().replace("version: 1\n", "version: 7\n", 1)
    variant = tmp_path / "network-lab.yaml"
    variant.write_text(text)  # a rubric no other test compiled on the workers
    rubric, scenario = load_rubric(variant, scenario_dirs=(
        RUBRICS["network-lab"].parents[1] / "scenarios",))
    job = Job.of(ArchiveRoot.open(str(archived[0])), rubric, scenario)
    with DaskRunner(scheduler=scheduler) as runner:
        runner.warm_up(job)
        found = runner.client.run(compiled_rubrics)
    assert len(found) == 2
    assert all(any(k.startswith(rubric.sha256()) for k in keys) for keys in found.values())


def test_one_file_split_by_row_groups_gives_each_worker_tasks_and_the_same_reports(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assessengine.archive.export as export_module  # noqa: PLC0415
    from assessengine.archive.grouping import TASKS_PER_WORKER  # noqa: PLC0415
    from assessengine.archive.split import split  # noqa: PLC0415

    monkeypatch.setattr(export_module, "ROW_GROUP_ROWS", 1)  # a row group per session
    store = open_store(tmp_path / "engine.db")
    try:
        fill_store(store, "network-lab", 6, seed=7)
        export(store, ArchiveRoot.open(str(tmp_path / "archive")), load_scenario=load_scenario)
    finally:
        store.close()
    root = ArchiveRoot.open(str(tmp_path / "archive"))
    manifest = Manifest.load(root)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS["network-lab"])
    job = Job.of(root, rubric, scenario)
    parts, _ = plan(root, manifest, "network-lab")
    assert len(parts) == 1
    with DaskRunner(scheduler=scheduler) as runner:
        pieces = split(root, parts, TASKS_PER_WORKER * runner.worker_count())
        assert len(pieces) == 6  # 2 workers x 3 tasks, one session each
        results = sorted(runner.run(job, pieces), key=lambda r: r.index)
    assert all(isinstance(r, PartitionResult) for r in results)
    split_reports = [r for result in results for r in result.reports]  # type: ignore[union-attr]
    assert split_reports == [r for result in run_local(job, parts) for r in result.reports]


def faults_of_arrays_allocated_again() -> int:
    """Page faults of this process while an 8 MiB block is allocated, written and freed 20
    times (run on a worker; a bytearray: 4 KiB pages, where numpy would ask for huge ones)."""
    import resource  # noqa: PLC0415

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block = bytearray(8 << 20)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_workers_keep_freed_memory_after_a_task(
    scheduler: str, archived: tuple[Path, dict[str, SimBatch]]
) -> None:
    # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536: without
    # runtime.malloc.keep_freed_memory each of those blocks is fresh pages (2,048 faults)
    root = ArchiveRoot.open(str(archived[0]))
    manifest = Manifest.load(root)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS["network-lab"])
    parts, _ = plan(root, manifest, scenario.scenario)
    job = Job.of(root, rubric, scenario)
    with DaskRunner(scheduler=scheduler) as runner:
        list(runner.run(job, parts))
        after_tasks = runner.client.run(faults_of_arrays_allocated_again)
        runner.warm_up(job)
        after_warm_up = runner.client.run(faults_of_arrays_allocated_again)
    assert len(after_tasks) == 2
    assert min(after_tasks.values()) < 4096, after_tasks  # a worker that ran the tasks
    assert all(n < 4096 for n in after_warm_up.values()), after_warm_up  # every worker


def worker_settings() -> dict[str, object]:
    import dask  # noqa: PLC0415

    keys = ("distributed.worker.profile.enabled", "distributed.admin.tick.interval",
            "distributed.admin.system-monitor.interval",
            "distributed.worker.memory.monitor-interval")  # fmt: skip
    return {key: dask.config.get(key) for key in keys}


def test_the_local_cluster_runs_its_workers_without_profiler_and_with_sparse_monitors() -> None:
    with DaskRunner(workers=1) as runner:
        runner.client.wait_for_workers(1, timeout=120)
        found = runner.client.run(worker_settings)
    assert list(found.values()) == [{
        "distributed.worker.profile.enabled": False,
        "distributed.admin.tick.interval": "1s",
        "distributed.admin.system-monitor.interval": "5s",
        "distributed.worker.memory.monitor-interval": "1s",
    }]  # fmt: skip



def test_a_run_on_a_cluster_without_workers_gives_up_naming_the_scheduler(
    archived: tuple[Path, dict[str, SimBatch]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from assessengine.archive import rescore  # noqa: PLC0415

    monkeypatch.setattr(rescore, "WATCH_SECONDS", 0.2)
    monkeypatch.setattr(rescore, "NO_WORKERS_TIMEOUT", 0.5)
    root = ArchiveRoot.open(str(archived[0]))
    manifest = Manifest.load(root)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS["network-lab"])
    parts, _ = plan(root, manifest, scenario.scenario)
    empty = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0",
                                     silence_logs=logging.ERROR)  # fmt: skip
    try:
        with (DaskRunner(scheduler=empty.scheduler_address) as runner,
              pytest.raises(rescore.SchedulerError, match="no worker for")):  # fmt: skip
            list(runner.run(Job.of(root, rubric, scenario), parts))
    finally:
        empty.close()
