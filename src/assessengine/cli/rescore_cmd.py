"""`assessengine rescore`: score an archived cohort again with a rubric, on Dask distributed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq

from ..adapters.library import load_rubric
from ..archive.compare import Summary
from ..archive.grouping import TASKS_PER_WORKER
from ..archive.layout import require_manifest
from ..archive.location import ArchiveError
from ..archive.rescore import (
    DaskRunner,
    Job,
    Partition,
    PartitionFailed,
    PartitionResult,
    SchedulerError,
    plan,
)
from ..archive.split import split
from ..core.jsontext import dumps
from ..errors import RubricError
from ._app import main, scenario_dirs_option
from .archive_cmd import EXIT_FAILED, EXIT_USAGE, fail, open_root
from .where import parse_where, window

WHERE_KEYS = ("scenario", "since", "until")


@main.command("rescore")
@click.option("--rubric", "rubric_path", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The rubric YAML file to score with.")
@click.option("--archive", "archive_url", required=True, metavar="DIR|URL",
              help="The archive (assessengine archive export): a directory or s3://BUCKET/PREFIX.")
@click.option("--workers", type=click.IntRange(1, 256), metavar="N",
              help="Worker processes of the local Dask cluster (one thread each). "
              "Default: the number of CPUs.")
@click.option("--scheduler", metavar="tcp://HOST:PORT",
              help="Run on this existing Dask scheduler instead of a local cluster.")
@click.option("--where", "where", multiple=True, metavar="scenario=ID,since=DATE,until=DATE",
              help="Only these sessions: of this scenario (must be the rubric's), opened at or "
              "after since, before until. Comma-separated or repeated.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.parquet", help="Write the reports here as Parquet.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"sessions": [REPORT, ...], "summary": {...}} as JSON.')
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@scenario_dirs_option
def rescore(
    rubric_path: Path,
    archive_url: str,
    workers: int | None,
    scheduler: str | None,
    where: tuple[str, ...],
    out: Path | None,
    as_json: bool,
    quiet: bool,
    scenario_dirs: tuple[Path, ...],
) -> None:
    """Score every archived session of the rubric's scenario with RUBRIC, in parallel on Dask
    distributed (each events file scored with the kernel; many small files grouped into fewer
    tasks, few large ones split by row groups), and say what
    changed against the archived reports: sessions, events, events/s, and per criterion the
    sessions whose verdict differs.

    \b
    The reports are those `assessengine score` gives on the same sessions. A worker that
    dies mid-job has its tasks run again on another (the result is the same).

    \b
    Exit status: 0 when every session was scored; 1 when a file of the archive is corrupt,
    lacks a column, or holds a session whose events do not match its digest (each named on
    stderr; no report file is written); 2 on a usage problem or when the archive or the
    scheduler cannot be reached.

    \b
    Example:
      assessengine rescore --rubric rubrics/lhd-underground.yaml --archive s3://assess/archive \\
          --workers 4 --where since=2026-01-01 --out reports.parquet
    """
    if workers is not None and scheduler is not None:
        raise click.UsageError("give --workers or --scheduler, not both")
    if out is not None and as_json:
        raise click.UsageError("give --out or --json, not both")
    try:
        rubric, scenario = load_rubric(rubric_path, scenario_dirs=scenario_dirs)
    except RubricError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(EXIT_USAGE) from None
    since, until = _window(where, scenario.scenario)
    root = open_root(archive_url)
    try:
        manifest = require_manifest(root)
        partitions, rows = plan(root, manifest, scenario.scenario, since=since,
                                until=until)  # fmt: skip
    except ArchiveError as exc:
        raise fail(exc) from None
    # the summary alone needs each report's verdicts only: the tasks then ship outlines
    job = Job.of(root, rubric, scenario, reports=as_json or out is not None)
    # the reports in the plan's order (files, then each file's sessions), as `score` gives them
    order = {sid: k for k, sid in enumerate(s for p in partitions for s in p.sessions)}
    started = time.perf_counter()
    results: list[PartitionResult] = []
    errors: list[BaseException] = []
    try:
        if partitions:  # no cluster to start for an empty cohort
            with DaskRunner(workers=workers or os.cpu_count() or 1,
                            scheduler=scheduler) as runner:  # fmt: skip
                runner.warm_up(job)  # each worker loads the kernel now, all at once
                # a cohort of few files: tasks by row groups, so that every worker has work
                partitions = split(root, partitions, TASKS_PER_WORKER * runner.worker_count())
                started = time.perf_counter()  # events/s of the work, not of the start-up
                results, errors = _collect(runner.run(job, partitions, keep_going=True),
                                           partitions, quiet)  # fmt: skip
    except SchedulerError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE) from None
    if errors:
        for error in errors:
            click.echo(f"error: {error}", err=True)
        click.echo(f"rescore: {len(errors)} of {len(partitions)} task(s) failed; no reports "
                   "written", err=True)  # fmt: skip
        raise SystemExit(EXIT_FAILED)
    summary = Summary(seconds=time.perf_counter() - started)
    summary.events = sum(r.events for r in results)
    for outline in sorted((o for result in results for o in result.outlines),
                          key=lambda o: order[o.session]):  # fmt: skip
        summary.add(outline.to_data(), rows[outline.session]["report"])
    reports = sorted((r for result in results for r in result.reports),
                     key=lambda r: order[r["session"]])  # fmt: skip
    if as_json:
        click.echo(dumps({"sessions": reports, "summary": summary.to_data()}, indent=2))
        return
    if out is not None:
        write_reports(out, reports, rows)
    click.echo(summary.render() + (f"\nreports: {out}" if out is not None else ""))


def _window(where: Sequence[str], scenario: str) -> tuple[datetime | None, datetime | None]:
    """`--where`'s time window (`cli.where`); UsageError for another scenario than the rubric's."""
    found = parse_where(where, WHERE_KEYS)
    if "scenario" in found and found["scenario"] != scenario:
        raise click.UsageError(f"--where scenario={found['scenario']}: the rubric scores "
                               f"scenario {scenario!r}")  # fmt: skip
    return window(found)


def _collect(
    stream: Iterator[PartitionResult | PartitionFailed],
    partitions: Sequence[Partition],
    quiet: bool,
) -> tuple[list[PartitionResult], list[BaseException]]:
    results: list[PartitionResult] = []
    errors: list[BaseException] = []
    with _progress_bar(quiet, len(partitions)) as advance:
        for item in stream:
            if isinstance(item, PartitionFailed):
                if not isinstance(item.error, ArchiveError):
                    raise item.error
                errors.append(item.error)
            else:
                results.append(item)
            if advance is not None:
                advance(1)
    return results, errors


def _progress_bar(quiet: bool, total: int) -> AbstractContextManager[Any]:
    if quiet:
        return nullcontext(None)
    return _RichProgress(total)


class _RichProgress:
    """A rich progress bar over tasks done, on stderr (the reports go to stdout)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import Progress  # noqa: PLC0415

        self.progress = Progress(console=Console(stderr=True), transient=True)
        self.total = total
        self.task: Any = None

    def __enter__(self) -> Any:
        self.progress.start()
        self.task = self.progress.add_task("rescore: tasks", total=self.total)
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def write_reports(out: Path, reports: Sequence[dict[str, Any]],
                  rows: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    """The reports as Parquet (session, learner, outcome, score, report JSON), written to a
    temporary name beside `out` and renamed: `out` is complete or absent."""
    table = pa.table({
        "session": [r["session"] for r in reports],
        "learner": [rows[r["session"]]["learner"] for r in reports],
        "outcome": [r["outcome"] for r in reports],
        "score": pa.array([r["score"] for r in reports], pa.float64()),
        "report": [dumps(r, sort_keys=True) for r in reports],
    })  # fmt: skip
    temp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, temp, compression="zstd")
        temp.replace(out)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise click.ClickException(f"{out}: cannot write the reports: {exc.strerror}") from None
