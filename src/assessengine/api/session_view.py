"""What the session page shows, from the service's answers: the timeline's pieces (lanes with
thresholds, failed criteria's rows, numbered decisions), the zoom window of a criterion, and
each criterion's row of the criteria table. Pure: no I/O, no web framework.

Criteria are numbered 1, 2, ... in the rubric's order; the same number labels a criterion's
marker and row on the timeline and its row in the table, so a mark is identified without
hovering it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlencode

from ..core.report import finite
from ..core.rubric import Criterion
from . import timeline as tl
from .explain import evidence_lines, thresholds
from .service.catalog import Entry
from .service.models import CriterionOut, SeriesOut, SessionDetail

ZOOM_PAD: Final = 0.15    # a zoom window shows this share of its evidence's span on each side
ZOOM_MIN_PAD_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Zoom:
    """The timeline window around one criterion's evidence."""

    criterion: str
    number: int
    title: str
    t_from: float
    t_to: float


def num(value: object) -> str:
    """A number for people (4 significant digits), or nothing when not a finite number."""
    number = finite(value)
    return "" if number is None else f"{number:.4g}"


def evidence_spans(c: CriterionOut) -> list[tuple[float, float]]:
    """Where a verdict's evidence lies: its contributing intervals when it lists some, else
    its interval, else its deciding moment; [] when it has none."""
    ev = c.evidence
    spans = []
    for item in ev.get("contributing") or []:
        if isinstance(item, list | tuple) and len(item) == 2:
            a, b = finite(item[0]), finite(item[1])
            if a is not None and b is not None:
                spans.append((a, b))
    if spans:
        return spans
    t_start, t_end, t = (finite(ev.get(k)) for k in ("t_start", "t_end", "t"))
    if t_start is not None and t_end is not None:
        return [(t_start, t_end)]
    return [] if t is None else [(t, t)]


def zoom_window(detail: SessionDetail, criterion: str | None) -> Zoom | None:
    """The window that shows `criterion`'s evidence with some context (None: unknown
    criterion, or no evidence to show)."""
    if not criterion:
        return None
    for k, c in enumerate(detail.criteria):
        if c.id != criterion:
            continue
        spans = evidence_spans(c)
        if not spans:
            return None
        lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
        pad = max((hi - lo) * ZOOM_PAD, ZOOM_MIN_PAD_S)
        end = detail.close_t if detail.close_t is not None else hi + pad
        return Zoom(c.id, k + 1, c.title, max(0.0, lo - pad), min(end, hi + pad))
    return None


def zoom_url(session: str, criterion: str) -> str:
    return f"/sessions/{quote(session, safe='')}?{urlencode({'zoom': criterion})}#timeline"


@dataclass(frozen=True, slots=True)
class Timelines:
    """The session page's timeline: `wide` (`tl.WIDTH` units) and `narrow` (`tl.NARROW_WIDTH`,
    for a narrow or zoomed screen; the page's stylesheet shows the one that fits, so its text
    stays 12 px or more), and the letters that stand for events' names (`tl.event_keys`).
    All None / empty: no timeline."""

    wide: str | None = None
    narrow: str | None = None
    event_keys: Mapping[str, str] = field(default_factory=dict)


def timelines(detail: SessionDetail, entry: Entry | None, series: SeriesOut) -> Timelines:
    """`timeline` of `series` at both widths."""
    return Timelines(
        timeline(detail, entry, series),
        timeline(detail, entry, series, width=tl.NARROW_WIDTH),
        tl.event_keys([e.event for e in series.events]),
    )


def confirmation(detail: SessionDetail, done: tuple[str, str] | None) -> str | None:
    """What the page confirms after a review form's POST: `done` = (kind, criterion id)."""
    if done is None:
        return None
    kind, criterion = done
    what = "Observation" if kind == "observation" else "Override"
    for k, c in enumerate(detail.criteria):
        if c.id == criterion:
            return f"{what} recorded for {k + 1}. {c.title}."
    return f"{what} recorded for {criterion}."


def timeline(detail: SessionDetail, entry: Entry | None, series: SeriesOut, *,
             width: int = tl.WIDTH) -> str:  # fmt: skip
    """The timeline SVG of `series` (downsampled, held) with the rubric's thresholds on the
    lanes, a row per failed criterion and a numbered marker per decision; `width`: its
    width in SVG units (`tl.WIDTH` or `tl.NARROW_WIDTH`)."""
    units = {n: s.unit for n, s in entry.scenario.signals.items()} if entry is not None else {}
    # signal -> limit -> the numbers of the criteria that set it (one line per limit)
    marks: dict[str, dict[float, list[str]]] = {}
    if entry is not None:
        numbers = {c.id: k + 1 for k, c in enumerate(detail.criteria)}
        for criterion in entry.rubric.criteria:
            for th in thresholds(criterion):
                marks.setdefault(th.signal, {}).setdefault(th.value, []).append(
                    f"#{numbers.get(th.criterion, '?')}")  # fmt: skip
    lanes = [
        tl.Lane(n, units.get(n, ""), series.t, series.t_end or series.t,
                (series.min or {}).get(n, []), (series.max or {}).get(n, []),
                thresholds=[(v, " ".join(by)) for v, by in marks.get(n, {}).items()])
        for n in (series.min or {})
    ]  # fmt: skip
    rows = []
    decisions = []
    for k, c in enumerate(detail.criteria):
        ev = c.evidence
        if c.verdict == "fail":
            row = _row(detail.session, k + 1, c)
            if row is not None:
                rows.append(row)
        t = finite(ev.get("t"))
        if t is not None:
            seq = ev.get("seq")
            decisions.append(tl.Decision(c.id, c.title, c.verdict, t,
                                         seq if isinstance(seq, int) else None, k + 1))  # fmt: skip
    events = [tl.Mark(e.event, e.t, e.seq) for e in series.events]
    return tl.timeline_svg(lanes, t_from=series.t_from, t_to=series.t_to, intervals=rows,
                           decisions=decisions, events=events, width=width,
                           label=f"Timeline of session {detail.session}")  # fmt: skip


def _row(session: str, number: int, c: CriterionOut) -> tl.Interval | None:
    ev = c.evidence
    t_start, t_end = finite(ev.get("t_start")), finite(ev.get("t_end"))
    if t_start is None or t_end is None:
        return None
    spans: list[tuple[float, float]] = []
    total = 0
    if "contributing" in ev:
        spans = evidence_spans(c) if ev.get("contributing") else []
        count = ev.get("contributing_total")
        total = max(count if isinstance(count, int) else 0, len(spans))
    return tl.Interval(c.id, c.title, t_start, t_end, spans=spans, total=total, number=number,
                       href=zoom_url(session, c.id))  # fmt: skip


def criterion_view(
    session: str, number: int, c: CriterionOut, criterion: Criterion | None,
    units: Mapping[str, str],
) -> dict[str, Any]:  # fmt: skip
    """What the criteria table shows of a criterion: its number, verdicts, the evidence in
    words (`explain.evidence_lines`), where it lies, and the link that zooms to it."""
    ev = c.evidence
    t_start, t_end, t = (finite(ev.get(k)) for k in ("t_start", "t_end", "t"))
    interval = None
    if t_start is not None and t_end is not None and c.verdict == "fail" and not (
        ev.get("contributing")
    ):  # a count's or metric's evidence is where it contributed, not the whole session
        interval = f"{tl.format_t(t_start)} - {tl.format_t(t_end)} ({t_end - t_start:.1f} s)"
    lines = evidence_lines(criterion, c.verdict, ev, units)
    if criterion is None and c.verdict == "fail":  # rubric not known here: the values as stored
        values = sorted((ev.get("values") or {}).items())
        lines = [f"{name}: {_value_text(v)}" for name, v in values]
    return {
        "c": c, "number": number, "interval": interval, "lines": lines,
        "decided": None if t is None else tl.format_t(t), "seq": ev.get("seq"),
        "observed": c.template == "observed", "overridden": c.override is not None,
        "zoom": zoom_url(session, c.id) if evidence_spans(c) else None,
    }  # fmt: skip


def _value_text(value: Any) -> str:
    if isinstance(value, Mapping):
        lo, hi = finite(value.get("min")), finite(value.get("max"))
        if lo is None and hi is None:
            return "not reported"
        return f"min {num(lo) or '-'}, max {num(hi) or '-'}"
    return num(value) or "not reported"
