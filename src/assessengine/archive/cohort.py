"""The archive as the HTTP API's source for cohort re-scores (setting ``archive_url``).

    source = ArchiveSource(ArchiveRoot.open(settings.archive_url),
                           scheduler=settings.archive_scheduler)
    found = source.rescore(rubric, scenario, ["S1", "S2"], observations={"S1": {...}})

The same path as ``assessengine rescore``: `rescore.plan` over the sessions table, then one
`rescore.score_partition` per events file, in this process or on the Dask scheduler given
(there, a cohort of few files split by row groups, `split`, as the CLI does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.report import Verdict
from ..core.rubric import Rubric
from ..core.scenario import Scenario
from .grouping import TASKS_PER_WORKER
from .layout import Manifest
from .location import ArchiveError, ArchiveRoot
from .rescore import DaskRunner, Job, Partition, PartitionResult, plan, run_local
from .split import split


@dataclass(slots=True)
class Rescored:
    """Reports of the archived sessions asked for (`SessionReport.to_data()`), and why the
    others in an unreadable or altered file could not be scored (session -> one line)."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ArchiveSource:
    """An archive the API re-scores from; `scheduler` (tcp://HOST:PORT) runs the tasks on
    Dask, else they run in the API's process."""

    root: ArchiveRoot
    scheduler: str | None = None

    def rescore(
        self,
        rubric: Rubric,
        scenario: Scenario,
        sessions: Sequence[str],
        observations: Mapping[str, Mapping[str, Verdict]] | None = None,
    ) -> Rescored:
        """Score those of `sessions` that are archived (the others are in neither map).
        Raises ArchiveError when the archive cannot be reached or read at all."""
        manifest = Manifest.load(self.root)
        out = Rescored()
        if manifest is None or not sessions:
            return out
        parts, _ = plan(self.root, manifest, scenario.scenario, sessions=sessions,
                        observations=observations)  # fmt: skip
        job = Job.of(self.root, rubric, scenario)
        if self.scheduler is None:
            for part in parts:
                self._take(part, _attempt(job, part), out)
            return out
        with DaskRunner(scheduler=self.scheduler) as runner:
            parts = split(self.root, parts, TASKS_PER_WORKER * runner.worker_count())
            by_index = {p.index: p for p in parts}
            for item in runner.run(job, parts, keep_going=True):
                if isinstance(item, PartitionResult):
                    self._take(by_index[item.index], item, out)
                elif isinstance(item.error, ArchiveError):
                    self._take(item.partition, item.error, out)
                else:
                    raise item.error
        return out

    @staticmethod
    def _take(part: Partition, result: PartitionResult | ArchiveError, out: Rescored) -> None:
        if isinstance(result, ArchiveError):
            out.problems |= dict.fromkeys(part.sessions, f"archive: {result}")
            return
        out.reports |= {str(r["session"]): r for r in result.reports}


def _attempt(job: Job, part: Partition) -> PartitionResult | ArchiveError:
    try:
        return next(iter(run_local(job, [part])))
    except ArchiveError as exc:
        return exc
