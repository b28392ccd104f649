"""Cohort re-scoring from an archive: one partition per events file (or per run of its row
groups, `split`), scored with the kernel; `DaskRunner` sends consecutive partitions as one Dask
task when there are many (`grouping`).

    job = Job.of(root, rubric, scenario)
    parts = plan(root, manifest, scenario.scenario, since=..., until=...)
    for done in run_local(job, parts): ...                 # in this process
    with DaskRunner(workers=2) as runner:                  # or scheduler="tcp://host:8786"
        for done in runner.run(job, parts): ...

A task (`score_partition`) streams its file (or only its row groups) through
`reader.event_batches` into `core.kernel_scorer.score_stream` (bounded memory). It first
hashes the file's bytes (unless the planner did, for a file split into several tasks:
`Partition.bytes_match`; each file is hashed once): when they give the sha256 the manifest
recorded at export, the rows are those the export wrote and digested; otherwise (or for a
manifest without it) it recomputes each session's events digest while scoring and refuses the
file, naming the session, when one differs from the sessions table's ``events_sha256``. The
task reads the file itself (from the archive's directory or bucket): nothing but the
partition's description travels from the client to the worker.
Its reports equal `assessengine score` on the same sessions: the same
compiled kernel, the same rows, the same close times.

On Dask distributed each task is retried on another worker when the worker running it dies
(the scheduler does this); a task is pure, so a retried task gives the same result.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..core.codec import Layout
from ..core.compiler import CompiledRubric, compile_rubric
from ..core.events import EventBatch
from ..core.kernel_scorer import outline_stream, score_stream
from ..core.report import Verdict
from ..core.rubric import Rubric
from ..core.scenario import Scenario
from ..core.scoring import Outline
from ..errors import AssessEngineError, ScoringError
from ..extras import missing_extra
from ..runtime import fused
from ..runtime.malloc import keep_freed_memory
from . import batches
from .digest import Digests, file_sha256
from .export import ROW_GROUP_ROWS
from .grouping import group
from .layout import Manifest
from .location import ArchiveError, ArchiveRoot
from .reader import event_batches, read_sessions

Observations = Mapping[str, Mapping[str, Verdict]]
Task = Callable[["Partition", "Job"], "PartitionResult"]
CONNECT_TIMEOUT: Final = 5.0
"""Seconds to wait for a Dask scheduler to answer."""
NO_WORKERS_TIMEOUT: Final = 120.0
"""Seconds a run waits while the cluster has no worker at all before it gives up."""
BATCH_ROWS: Final = ROW_GROUP_ROWS
"""Rows a task reads and scores at a time: a whole row group of export's files (reading one
in two record batches of 65,536 rows cost a task about 1.25x the decoding time)."""
LOCAL_WORKER_CONFIG: Final = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Dask settings of the workers a `DaskRunner` starts: no statistical profiler (it samples
every thread's stack 100 times a second, taking the GIL from the task, for a dashboard page
nobody reads here; the worker's event-loop thread spent 0.13-0.17 s of CPU per 2.47 M events
without it, 0.16-0.22 s with it); and the event loop's periodic checks spaced out: its tick
(which only warns of a blocked loop) every second instead of 20 ms, the system monitor (CPU,
memory and network counters for the dashboard) every 5 s instead of 0.5 s, the memory monitor
(spilling, pausing) every second instead of 0.1 s. Together they took the event-loop thread
from 0.13-0.14 to 0.09 s of CPU per run of 2.47 M events (two alternated pairs; the task
thread lost the GIL less: 0.47-0.49 against 0.59-0.62 s)."""
WATCH_SECONDS: Final = 5.0
"""Seconds without a finished task after which a run checks that the cluster has workers."""


class SchedulerError(AssessEngineError):
    """The Dask scheduler cannot be reached, or the cluster could not be started (or Dask,
    the ``archive`` extra, is not installed)."""


@dataclass(frozen=True, slots=True)
class Job:
    """What every task needs: where the archive is, and the rubric to score with; `key`
    names the compiled rubric in a worker's cache (the rubric's sha256 and the scenario),
    computed once by `of` rather than by every task. `reports`: whether a task returns each
    session's whole report (`PartitionResult.reports`) or only its outline
    (`PartitionResult.outlines`, always there), which is all a summary needs."""

    url: str
    storage_options: Mapping[str, Any]
    rubric: Rubric
    scenario: Scenario
    key: str
    reports: bool = True
    fused_cache: str | None = None
    """Where the fused steps are (`runtime.fused`: the planning process's, which every worker
    process then installs too, `_compiled`); None: the table-driven kernel."""

    @classmethod
    def of(cls, root: ArchiveRoot, rubric: Rubric, scenario: Scenario, *,
           reports: bool = True) -> Job:  # fmt: skip
        cache = fused.installed_cache_dir()
        return cls(root.url, dict(root.storage_options), rubric, scenario,
                   rubric.sha256() + scenario.model_dump_json(), reports,
                   None if cache is None else str(cache))  # fmt: skip

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its rubric and scenario as one opaque blob, unpickled only by a process
        that has not seen `key` yet (`_job`): a job travels inside every task, and rebuilding
        the two pydantic models cost a worker about 1 ms a task (5 % of a 100,000-row task)."""
        return (_job, (self.url, dict(self.storage_options), self.key, self.reports,
                       _models_blob(self), self.fused_cache))  # fmt: skip


_MODELS: dict[str, tuple[Rubric, Scenario]] = {}
"""A process's rubric and scenario per `Job.key` (each process holds the few it has seen)."""
_BLOBS: dict[str, bytes] = {}


def _models_blob(job: Job) -> bytes:
    found = _BLOBS.get(job.key)
    if found is None:
        found = _BLOBS[job.key] = pickle.dumps((job.rubric, job.scenario))
    return found


def _job(url: str, options: dict[str, Any], key: str, reports: bool, blob: bytes,
         fused_cache: str | None) -> Job:  # fmt: skip
    """A pickled `Job` back (`Job.__reduce__`); its models are loaded from `blob` once per
    process and key."""
    models = _MODELS.get(key)
    if models is None:
        models = _MODELS[key] = pickle.loads(blob)  # our own Job's pickle (Job.__reduce__)
    return Job(url, options, models[0], models[1], key, reports, fused_cache)


@dataclass(frozen=True, slots=True)
class Partition:
    """One events file and the sessions to score from it (in this order)."""

    index: int
    path: str
    sessions: tuple[str, ...]
    close_t: tuple[float, ...]
    digests: tuple[str, ...]
    observations: Mapping[str, Mapping[str, Verdict]] = field(default_factory=dict)
    file_sha256: str | None = None
    row_groups: tuple[int, ...] | None = None
    """The Parquet row groups to read (None: the whole file); they hold every row of
    `sessions` (`split`)."""
    bytes_match: bool | None = None
    """Whether the file's bytes give `file_sha256`, when the planner already checked (a file
    split into several tasks, `split`); None: the task checks it."""
    events: int = 0
    """The rows the task reads, as the sessions table and the footer count them (0: not
    known); `grouping.group` weighs tasks by it."""


@dataclass(frozen=True, slots=True)
class PartitionResult:
    """The reports of one partition (`SessionReport.to_data()`, in its sessions' order; empty
    when the job asked for outlines only, `Job.reports`) and their outlines (always)."""

    index: int
    path: str
    reports: list[dict[str, Any]]
    events: int
    seconds: float
    outlines: list[Outline] = field(default_factory=list)


def plan(
    root: ArchiveRoot,
    manifest: Manifest,
    scenario: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    sessions: Sequence[str] | None = None,
    observations: Observations | None = None,
) -> tuple[list[Partition], dict[str, dict[str, Any]]]:
    """The partitions of the archived sessions of `scenario` (opened in [since, until), and
    among `sessions` when given), one per events file, in archive order; and per session its
    sessions-table row (learner, report, ...)."""
    table = read_sessions(root, manifest, scenario=scenario, since=since, until=until,
                          columns=["session", "learner", "close_t", "events_sha256", "report",
                                   "file", "events"])  # fmt: skip
    rows = table.to_pylist()
    if sessions is not None:
        keep = set(sessions)
        rows = [r for r in rows if r["session"] in keep]
    by_file: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)
    known = {f.path: f.sha256 for f in manifest.events_files(scenario)}
    for path in by_file:
        if path not in known:
            raise ArchiveError(f"{root.where(path)}: the sessions table names an events file "
                               "the manifest does not list")  # fmt: skip
    obs = observations or {}
    parts = [
        Partition(k, path, tuple(r["session"] for r in group),
                  tuple(float(r["close_t"]) for r in group),
                  tuple(r["events_sha256"] for r in group),
                  {r["session"]: obs[r["session"]] for r in group if r["session"] in obs},
                  known[path], events=sum(int(r["events"]) for r in group))
        for k, (path, group) in enumerate(by_file.items())
    ]  # fmt: skip
    return parts, {r["session"]: r for r in rows}


# ------------------------------------------------------------------------------ one task

_COMPILED: dict[str, CompiledRubric] = {}


def _compiled(job: Job) -> CompiledRubric:
    """The job's compiled rubric (once per process), with the fused steps installed as the
    job says (a worker process scores as the planning process does)."""
    if job.fused_cache is not None and fused.installed_cache_dir() != Path(job.fused_cache):
        fused.install(Path(job.fused_cache))
    found = _COMPILED.get(job.key)
    if found is None:
        found = _COMPILED[job.key] = compile_rubric(job.rubric, job.scenario)
    return found


def score_partition(partition: Partition, job: Job) -> PartitionResult:
    """Score one partition (see the module docstring). Raises ArchiveError naming the file,
    or the session whose events digest does not match."""
    started = time.perf_counter()
    root = ArchiveRoot.open(job.url, storage_options=job.storage_options)
    counted = [0]
    batches = checked_batches(root, partition, job.scenario, counted)
    close_t = np.array(partition.close_t, np.float64)
    full: list[dict[str, Any]] = []
    try:
        if job.reports:
            reports = score_stream(_compiled(job), batches, list(partition.sessions), close_t,
                                   observations=partition.observations)  # fmt: skip
            full, outlines = [r.to_data() for r in reports], [Outline.of(r) for r in reports]
        else:  # verdicts only: no evidence, no reports (docs/performance.md)
            outlines = outline_stream(_compiled(job), batches, list(partition.sessions), close_t,
                                      observations=partition.observations)  # fmt: skip
    except ScoringError as exc:
        raise ArchiveError(f"{root.where(partition.path)}: rows out of order ({exc})") from None
    return PartitionResult(partition.index, partition.path, full, counted[0],
                           time.perf_counter() - started, outlines)


def checked_batches(
    root: ArchiveRoot, partition: Partition, scenario: Scenario, counted: list[int] | None = None
) -> Iterator[EventBatch]:
    """The partition's rows as kernel batches (``session``: indexes into
    `partition.sessions`), checked against the archive: after the last batch it raises
    ArchiveError naming the first session whose events digest does not match (the check the
    module docstring describes). Adds the rows to ``counted[0]`` when given."""
    ids = list(partition.sessions)
    match = partition.bytes_match
    if match is None:
        match = bytes_match(root, partition)
    digests = None if match else Digests(Layout.of(scenario), len(ids))
    for batch in event_batches(root, partition.path, scenario, session_ids=ids, rows=BATCH_ROWS,
                               row_groups=partition.row_groups):  # fmt: skip
        if digests is not None:
            digests.update(batch)
        if counted is not None:
            counted[0] += len(batch)
        yield batch
    found = digests.hexdigests() if digests is not None else partition.digests
    for sid, expected, got in zip(ids, partition.digests, found, strict=True):
        if expected != got:
            raise ArchiveError(f"{root.where(partition.path)}: session {sid!r}: its archived "
                               "events do not match its events digest (events_sha256): the "
                               "file was changed after export")  # fmt: skip


def bytes_match(root: ArchiveRoot, partition: Partition) -> bool:
    """Whether the file's bytes give the sha256 the manifest recorded (False without one, or
    when the file cannot be read: the reader then names the problem)."""
    if partition.file_sha256 is None:
        return False
    try:
        return file_sha256(root.fs, root.full(partition.path)) == partition.file_sha256
    except OSError:
        return False


def warm_up(job: Job) -> None:
    """Compile the job's rubric and load (numba's on-disk cache) the compiled functions a task
    calls, on a one-row batch of the reader's dtypes, so that a worker's first partition does
    not pay for them (a second or more per worker process); and have the process keep freed
    memory (`on_worker`)."""
    keep_freed_memory()
    n = len(job.scenario.signal_names)
    batch = EventBatch(np.zeros(1, np.int32), np.zeros(1, np.int64), np.zeros(1, np.float64),
                       np.zeros(1, np.int32), np.full((n, 1), np.nan))  # fmt: skip
    score_stream(_compiled(job), [batch], ["warm-up"], np.zeros(1, np.float64))
    batches.warm_up()


def on_worker(
    partitions: Sequence[Partition], job: Job, task: Task
) -> list[PartitionResult | ArchiveError]:
    """`task(partition, job)` for each of a group's partitions (`grouping.group`), in order, in
    a Dask worker process: each one's result, or the ArchiveError it raised (the others are
    still scored: a run that keeps going reports each file's outcome; any other exception
    fails the whole task). The process first keeps freed memory
    (`runtime.malloc.keep_freed_memory`, once per process): Dask starts its workers with
    ``MALLOC_TRIM_THRESHOLD_=65536``, under which every array of a few MiB a task allocates,
    batch after batch, is fresh pages: 87,000 page faults and 1.5x the CPU time for 2.47 M
    events in 25 files (docs/performance.md)."""
    keep_freed_memory()
    out: list[PartitionResult | ArchiveError] = []
    for partition in partitions:
        try:
            out.append(task(partition, job))
        except ArchiveError as exc:
            out.append(exc)
    return out


def run_local(job: Job, partitions: Sequence[Partition]) -> Iterator[PartitionResult]:
    """Every partition in this process, in order (no Dask)."""
    for partition in partitions:
        yield score_partition(partition, job)


# ------------------------------------------------------------------------------ Dask


class DaskRunner:
    """A Dask distributed client: on a LocalCluster of `workers` processes (one thread each)
    that it starts and stops, or on the existing `scheduler` (``tcp://HOST:PORT``).

    `run` yields each partition's result as it completes (any order), the partitions grouped
    into fewer Dask tasks when there are many (`grouping.group`: a group's results arrive
    together). A partition that fails stops the run (its error re-raised, the other tasks
    cancelled) unless `keep_going`, which yields the error in place of the result (an
    ArchiveError for its partition alone; any other error of a task for each partition of its
    group). Raises SchedulerError when the scheduler cannot be reached or the cluster cannot
    start."""

    def __init__(self, *, workers: int = 2, scheduler: str | None = None,
                 task: Task = score_partition) -> None:  # fmt: skip
        self.workers, self.scheduler, self.task = workers, scheduler, task
        self.cluster: Any = None
        self.client: Any = None

    def __enter__(self) -> DaskRunner:
        try:
            import dask  # noqa: PLC0415 - heavy, only when used
            from distributed import Client, LocalCluster  # noqa: PLC0415
        except ModuleNotFoundError as exc:  # the archive extra not installed
            raise SchedulerError(missing_extra(exc) or str(exc)) from None
        try:
            if self.scheduler is not None:
                self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT,
                                     set_as_default=False)  # fmt: skip
            else:
                with dask.config.set(LOCAL_WORKER_CONFIG):  # the nannies pass it on
                    self.cluster = LocalCluster(
                        n_workers=self.workers, threads_per_worker=1, processes=True,
                        dashboard_address=":0", silence_logs=logging.ERROR,
                    )  # fmt: skip
                self.client = Client(self.cluster, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            self.__exit__(None, None, None)
            where = self.scheduler or "a local cluster"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SchedulerError(f"Dask scheduler {where}: cannot connect ({first[:200]})"
                                 ) from None  # fmt: skip
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def worker_count(self) -> int:
        """The workers of the cluster (at least 1): those started, or the scheduler's now."""
        assert self.client is not None, "use DaskRunner as a context manager"
        if self.cluster is not None:
            return max(1, self.workers)
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def warm_up(self, job: Job) -> None:
        """Run `warm_up` on every worker now, all at once (a worker where it fails is left
        alone: its tasks will say what is wrong)."""
        assert self.client is not None, "use DaskRunner as a context manager"
        self.client.run(warm_up, job, on_error="ignore")

    def run(
        self, job: Job, partitions: Sequence[Partition], *, keep_going: bool = False
    ) -> Iterator[PartitionResult | PartitionFailed]:
        """See the class docstring. Raises SchedulerError when the cluster has had no worker
        for `NO_WORKERS_TIMEOUT` seconds while tasks were pending (instead of waiting for
        ever)."""
        from distributed import wait  # noqa: PLC0415

        assert self.client is not None, "use DaskRunner as a context manager"
        if not partitions:
            return
        # the job travels inside each task (it is small), not scattered: data scattered to
        # workers is lost with a worker that dies, and the tasks needing it could not be retried
        groups = group(partitions, workers=self.worker_count())
        futures = self.client.map(on_worker, groups, job=job, task=self.task,
                                  pure=False)  # fmt: skip
        of = {future.key: parts for future, parts in zip(futures, groups, strict=True)}
        pending = list(futures)
        idle_since: float | None = None
        try:
            while pending:
                # woken by the first task to finish (a poll every 20 ms kept a run's last
                # result waiting 10 ms on average, docs/performance.md)
                try:
                    with self.client.as_current():
                        done = wait(pending, timeout=WATCH_SECONDS,
                                    return_when="FIRST_COMPLETED").done  # fmt: skip
                except TimeoutError:
                    idle_since = self._watch(idle_since)
                    continue
                idle_since = None
                finished = [f for f in pending if f in done]  # in submission order
                pending = [f for f in pending if f not in done]
                yield from self._outcomes(finished, of, keep_going)
        finally:
            self.client.cancel(futures)

    def _outcomes(
        self, done: list[Any], of: Mapping[str, Sequence[Partition]], keep_going: bool
    ) -> Iterator[PartitionResult | PartitionFailed]:
        """The results of finished futures' partitions (fetched at once), or their errors."""
        ok = [f for f in done if f.status != "error"]
        results = iter(self.client.gather(ok) if ok else [])
        for future in done:
            parts = of[future.key]
            outcomes: Sequence[PartitionResult | BaseException] = (
                next(results) if future.status != "error" else [future.exception()] * len(parts))
            for part, outcome in zip(parts, outcomes, strict=True):
                if isinstance(outcome, PartitionResult):
                    yield outcome
                elif not keep_going:
                    raise outcome
                else:
                    yield PartitionFailed(part, outcome)

    def _watch(self, idle_since: float | None) -> float | None:
        """Since when the cluster has had no worker (None: it has some)."""
        if self.client.scheduler_info().get("workers"):
            return None
        now = time.monotonic()
        if idle_since is not None and now - idle_since > NO_WORKERS_TIMEOUT:
            where = self.scheduler or "the local cluster"
            raise SchedulerError(f"Dask scheduler {where}: no worker for "
                                 f"{NO_WORKERS_TIMEOUT:.0f} s; tasks cannot run")  # fmt: skip
        return idle_since if idle_since is not None else now


@dataclass(frozen=True, slots=True)
class PartitionFailed:
    """A task that raised (with `DaskRunner.run(keep_going=True)`)."""

    partition: Partition
    error: BaseException
