"""A rubric version before it is published: what it would change on the stored sessions.

A draft is the checked text of a new version, not stored: the trainers' page holds it between
"see the diff" and "publish" (publishing is the ordinary upload). `preview` scores the newest
closed sessions of the rubric under the version now published and under the draft (the
assessors' in-field observations applied to both) and compares them (`core.rubric_diff`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from ...core.codec import CodecError, Columns, Layout
from ...core.latest import latest_by
from ...core.report import Verdict
from ...core.rubric_diff import RubricDiff, diff_reports, scenario_mismatch, score_many
from ...core.session_columns import decode_session
from ...storage.port import SessionRecord, StoredBatch
from ...storage.reviews import ObservationRow
from .catalog import Entry

PREVIEW_SESSIONS: Final = 200
"""The most sessions a draft is tried on (the newest closed ones of its rubric)."""


@dataclass(frozen=True, slots=True)
class Preview:
    """A checked draft and, when a version is published already, the diff against it
    (`diff` None: a new rubric, or `mismatch` says why the two cannot be compared)."""

    draft: Entry
    base: Entry | None
    diff: RubricDiff | None
    mismatch: str | None = None


def preview(
    draft: Entry,
    base: Entry | None,
    records: Sequence[SessionRecord],
    batches: Callable[[str], Iterable[StoredBatch]],
    observations: Sequence[ObservationRow],
) -> Preview:
    """`draft` against `base` on the closed sessions `records` (of the draft's scenario)."""
    if base is None:
        return Preview(draft, None, None)
    mismatch = scenario_mismatch(base.rubric, draft.rubric)
    if mismatch is not None:
        return Preview(draft, base, None, mismatch)
    layout = Layout.of(draft.scenario)
    sessions: list[tuple[str, Columns, float]] = []
    skipped: list[tuple[str, str]] = []
    for record in records:
        sid = record.info.session
        if record.info.scenario != draft.rubric.scenario or record.close_t is None:
            continue
        try:
            sessions.append((sid, decode_session(batches(sid), layout), record.close_t))
        except CodecError as exc:
            skipped.append((sid, f"a stored batch does not decode: {exc}"))
    recorded: dict[str, dict[str, Verdict]] = {}
    for (session, criterion), o in latest_by(observations, _session_criterion).items():
        recorded.setdefault(session, {})[criterion] = o.verdict  # type: ignore[assignment]
    before = score_many(base.compiled, sessions, recorded)
    after = score_many(draft.compiled, sessions, recorded)
    learners = {r.info.session: r.info.learner for r in records}
    diff = diff_reports(base.rubric, draft.rubric, before, after, learners=learners,
                        skipped=skipped)  # fmt: skip
    return Preview(draft, base, diff)


def _session_criterion(row: ObservationRow) -> tuple[str, str]:
    return row.session, row.criterion
