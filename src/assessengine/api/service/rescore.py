"""Re-score stored sessions under another rubric version and say which verdicts changed.

The stored events are decoded (`core.codec`) and scored with the compiled kernel
(`core.kernel_scorer.score_columns`), all sessions in one pass; each session's in-field
observations are applied to the new report as they are to the old one. Stored reports are not
changed: a re-score is a comparison, recorded in the audit log.

With an archive configured (setting ``archive_url``), the archived sessions are scored from it
the way ``assessengine rescore`` does (`archive.cohort.ArchiveSource`: the Parquet reader and
one kernel pass per events file, in process or on a Dask scheduler); the others, and all of
them when the archive cannot be reached (logged), from the store. A session in an archived
file that is corrupt or altered gets that as its `problem`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...core.codec import CodecError, Columns, Layout
from ...core.report import SessionReport, Verdict
from ...core.rubric_diff import score_many
from ...core.session_columns import decode_session
from ...storage.port import SessionRecord, StoredBatch
from ...storage.reviews import ObservationRow
from .catalog import Entry
from .models import OutcomeScore, SessionRescore, VerdictChange

if TYPE_CHECKING:
    from ...archive.cohort import ArchiveSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored session to re-score, with what the comparison starts from."""

    record: SessionRecord
    before: dict[str, Verdict]          # criterion -> verdict with observations (no overrides)
    before_outcome: OutcomeScore | None
    observations: Sequence[ObservationRow]


def rescore(
    target: Entry,
    candidates: Sequence[Candidate],
    batches: Callable[[str], Iterable[StoredBatch]],
    *,
    archive: ArchiveSource | None = None,
) -> list[SessionRescore]:
    """One result per candidate, in order. A session that cannot be re-scored (other scenario,
    still open, undecodable batch) gets a `problem` instead of verdicts."""
    layout = Layout.of(target.scenario)
    results: dict[str, SessionRescore] = {}
    if archive is not None:
        results = _from_archive(archive, target, candidates)
    usable: list[tuple[Candidate, Columns]] = []
    for cand in candidates:
        if cand.record.info.session in results:
            continue
        problem = _unusable(cand.record, target)
        if problem is None:
            try:
                usable.append((cand, decode_session(batches(cand.record.info.session), layout)))
            except CodecError as exc:
                problem = f"a stored batch does not decode: {exc}"
        if problem is not None:
            results[cand.record.info.session] = _refused(cand, problem)
    for cand, report in zip((c for c, _ in usable), _score(target, usable), strict=True):
        results[cand.record.info.session] = _compare(cand, report)
    return [results[c.record.info.session] for c in candidates]


def _from_archive(
    archive: ArchiveSource, target: Entry, candidates: Sequence[Candidate]
) -> dict[str, SessionRescore]:
    """The results of the candidates the archive holds (none when it cannot be reached)."""
    from ...archive.location import ArchiveError  # noqa: PLC0415 - pyarrow only when archived
    from ...archive.rescore import SchedulerError  # noqa: PLC0415

    usable = {c.record.info.session: c for c in candidates
              if _unusable(c.record, target) is None}  # fmt: skip
    observations = {sid: {o.criterion: o.verdict for o in c.observations}
                    for sid, c in usable.items() if c.observations}  # fmt: skip
    try:
        found = archive.rescore(target.rubric, target.scenario, list(usable),
                                observations)  # type: ignore[arg-type]  # fmt: skip
    except (ArchiveError, SchedulerError) as exc:
        log.warning("re-scoring from the store: the archive cannot be read: %s", exc)
        return {}
    results = {sid: _refused(usable[sid], problem) for sid, problem in found.problems.items()}
    for sid, data in found.reports.items():
        criteria = data.get("criteria")
        verdicts = ({str(c["id"]): c["verdict"] for c in criteria}
                    if isinstance(criteria, list) else {})  # fmt: skip
        after = OutcomeScore(outcome=data["outcome"], score=data["score"])
        results[sid] = _compared(usable[sid], verdicts, after)
    return results


def _unusable(record: SessionRecord, target: Entry) -> str | None:
    if record.info.scenario != target.rubric.scenario:
        return (f"the session's scenario is {record.info.scenario!r}; rubric "
                f"{target.rubric.rubric!r} v{target.rubric.version} is for "
                f"{target.rubric.scenario!r}")  # fmt: skip
    if record.status != "closed" or record.close_t is None:
        return "the session is still open"
    return None


def _score(target: Entry, usable: Sequence[tuple[Candidate, Columns]]) -> list[SessionReport]:
    sessions = [(c.record.info.session, cols, _close_t(c.record)) for c, cols in usable]
    observations = {c.record.info.session: {o.criterion: o.verdict for o in c.observations}
                    for c, _ in usable}  # fmt: skip
    return score_many(target.compiled, sessions, observations)  # type: ignore[arg-type]


def _close_t(record: SessionRecord) -> float:
    assert record.close_t is not None  # `_unusable` refused open sessions
    return record.close_t


def _compare(cand: Candidate, report: SessionReport) -> SessionRescore:
    return _compared(cand, {c.id: c.verdict for c in report.criteria},
                     OutcomeScore(outcome=report.outcome, score=report.score))  # fmt: skip


def _compared(cand: Candidate, after: dict[str, Verdict], outcome: OutcomeScore) -> SessionRescore:
    changed = [VerdictChange(criterion=cid, before=cand.before.get(cid), after=after.get(cid))
               for cid in [*cand.before, *(k for k in after if k not in cand.before)]
               if cand.before.get(cid) != after.get(cid)]  # fmt: skip
    return SessionRescore(
        session=cand.record.info.session, learner=cand.record.info.learner,
        before=cand.before_outcome, after=outcome, changed=changed,
    )  # fmt: skip


def _refused(cand: Candidate, problem: str) -> SessionRescore:
    return SessionRescore(session=cand.record.info.session, learner=cand.record.info.learner,
                          before=cand.before_outcome, after=None, changed=[],
                          problem=problem)  # fmt: skip
