"""How the service's answers are assembled from store rows: session summaries and details,
event series (raw or downsampled)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from ...core.codec import Columns, Layout
from ...core.reasons import Change, Item, change_reasons, outcome_reasons
from ...core.report import finite
from ...storage.port import SessionRecord
from ...storage.reviews import SessionRow
from . import series
from .errors import FieldProblem, InvalidError
from .models import (
    EventOut,
    ObservationOut,
    OutcomeScore,
    OverrideOut,
    ReasonOut,
    SeriesOut,
    SessionDetail,
    SessionSummary,
)
from .verdicts import Reviewed, observation_out, override_out


def summary(row: SessionRow) -> SessionSummary:
    if row.reviewed is not None:
        r = row.reviewed
        machine: OutcomeScore | None = OutcomeScore(outcome=cast(Any, r.outcome), score=r.score)
        overridden = OutcomeScore(outcome=cast(Any, r.outcome_with_overrides),
                                  score=r.score_with_overrides)  # fmt: skip
        count = r.overrides
    elif row.report_outcome is not None:
        machine = overridden = OutcomeScore(outcome=cast(Any, row.report_outcome),
                                            score=finite(row.report_score))  # fmt: skip
        count = 0
    else:
        machine = overridden = None
        count = 0
    return SessionSummary(
        session=row.session, learner=row.learner, scenario=row.scenario, rubric=row.rubric,
        rubric_version=row.rubric_version, source=cast(Any, row.source),
        status=cast(Any, row.status), opened_at=row.opened_at, closed_at=row.closed_at,
        machine=machine, with_overrides=overridden, overridden=count > 0,
    )  # fmt: skip


def detail(
    record: SessionRecord, available: bool, reviewed: Reviewed | None,
    observations: Sequence[Any], overrides: Sequence[Any], *, min_score: float | None = None,
) -> SessionDetail:  # fmt: skip
    info = record.info
    observed = [observation_out(o) for o in observations]
    overridden = [override_out(o) for o in overrides]
    return SessionDetail(
        session=info.session, learner=info.learner, scenario=info.scenario, rubric=info.rubric,
        rubric_version=info.rubric_version, source=info.source, status=record.status,
        opened_at=record.opened_at, closed_at=record.closed_at,
        machine=None if reviewed is None else reviewed.machine,
        with_overrides=None if reviewed is None else reviewed.with_overrides,
        overridden=bool(overrides), rubric_sha256=info.rubric_sha256,
        rubric_available=available, scored=None if reviewed is None else reviewed.scored,
        close_t=record.close_t, batches=record.batches, chain_head=record.chain_head,
        metadata=dict(info.metadata), criteria=[] if reviewed is None else reviewed.criteria,
        observations=observed, overrides=overridden, pass_mark=min_score,
        reasons=[] if reviewed is None else reasons_of(reviewed, observed, overridden, min_score),
    )  # fmt: skip


def reasons_of(
    reviewed: Reviewed, observations: Sequence[ObservationOut],
    overrides: Sequence[OverrideOut], min_score: float | None,
) -> list[ReasonOut]:  # fmt: skip
    """Why the session has its outcome with overrides (the one that counts), then who changed
    what: each override, and each observation that decided an item, oldest first."""
    items = [Item(c.id, c.title, c.critical, c.points or 0.0, c.final_verdict,
                  observed=c.template == "observed") for c in reviewed.criteria]  # fmt: skip
    final = reviewed.with_overrides
    found = outcome_reasons(final.outcome, final.score, min_score, items)
    changes = sorted(
        [Change(o.criterion, o.verdict, o.by, o.recorded_at, o.reason, o.machine_verdict)
         for o in overrides]
        + [Change(o.criterion, o.verdict, o.by, o.recorded_at, o.note) for o in observations],
        key=lambda ch: ch.at,
    )  # fmt: skip
    found += change_reasons(items, changes)
    return [ReasonOut(kind=r.kind, text=r.text, criterion=r.criterion) for r in found]


def signal_names(signals: Sequence[str] | None, layout: Layout) -> list[str]:
    if not signals:
        return list(layout.signal_names)
    unknown = [s for s in signals if s not in layout.signal_index]
    if unknown:
        known = ", ".join(layout.signal_names)
        problems = [FieldProblem("query.signals", f"unknown: {s!r}; known: {known}")
                    for s in unknown]  # fmt: skip
        raise InvalidError("unknown signals", problems)
    return list(dict.fromkeys(signals))


def series_out(
    session_id: str, cols: Columns, layout: Layout, names: Sequence[str], lo: float,
    hi: float, buckets: int | None, *, whole: Columns | None = None, times: bool = True,
) -> SeriesOut:  # fmt: skip
    """`cols` (the rows in [lo, hi]) as raw rows or `buckets` buckets; `whole`: the whole
    session's held rows, when the signals are sample-and-hold (`series.held`): each bucket
    then also holds the value held at its start."""
    rows = [layout.signal_index[n] for n in names]
    marked = np.flatnonzero(cols.event != 0)[: series.MAX_EVENTS]
    events = [EventOut(seq=int(cols.seq[k]), t=float(cols.t[k]),
                       event=layout.event_names[int(cols.event[k])]) for k in marked.tolist()]
    if buckets is None:
        if len(cols) > series.MAX_RAW_ROWS:
            raise InvalidError(
                f"{len(cols)} rows in this range (at most {series.MAX_RAW_ROWS} raw rows); "
                "ask for buckets=N or a shorter range",
                [FieldProblem("query.buckets", "required for this many rows")],
            )
        return SeriesOut(
            session=session_id, t_from=lo, t_to=hi, downsampled=False, rows=len(cols),
            t=cols.t.tolist(), seq=cols.seq.tolist(),
            values={n: series.plain(cols.signals[k]) for n, k in zip(names, rows, strict=True)},
            events=events,
        )  # fmt: skip
    b = series.downsample(cols.t, cols.signals[rows], lo, hi, buckets, times=times)
    if whole is not None:
        b = series.hold_buckets(b, whole.t, whole.signals[rows])

    def per(arr: Any) -> dict[str, list[float | None]]:
        return {n: series.plain(arr[i]) for i, n in enumerate(names)}

    return SeriesOut(
        session=session_id, t_from=lo, t_to=hi, downsampled=True, rows=len(cols),
        t=b.start.tolist(), t_end=b.end.tolist(), min=per(b.lo), max=per(b.hi),
        t_min=per(b.t_lo) if times else None, t_max=per(b.t_hi) if times else None,
        events=events,
    )  # fmt: skip
