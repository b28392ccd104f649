"""Server-side SVG charts for the web pages: a session's timeline and a learner's attempts.

Pure functions, data in and SVG text out: no I/O, no web framework. Every piece of text put
into the SVG (names, titles, notes) is escaped here, so a page may inline the result as is.
Colours are SVG presentation attributes (no ``style``), so the charts render the same inline,
stand-alone, and under a strict Content-Security-Policy. Both charts hold links, so they are
``role="group"`` with a name (an ``img`` may not contain anything interactive); each link's
transparent hit area is ``class="hit"``, which the page's stylesheet outlines on focus; no text
is smaller than `SMALL_TEXT`.

Timeline geometry: time runs left to right over ``[t_from, t_to]`` (the whole session, or a
zoomed window) on a `TimeScale` from ``x = LEFT`` to ``x = width - RIGHT``; one plot-width pixel
is one downsampling bucket (`plot_buckets`). From the top:

- decision markers (a triangle for a fail, a disc otherwise), each labelled with its criterion's
  number (the criteria table's), with a ``<title>`` too; markers closer than `MARKER_GAP` go to
  rows below, and past `MAX_MARKER_ROWS` stack on the last, where one label lists the stacked
  markers' numbers ("6 7 9");
- one row per failed criterion, headed by its number and full title (a link when `Interval.href`
  is given: the page zooms to it). The row's bars: the evidence interval ``t_start..t_end``
  (``<rect class="violation">``), or, for a count or metric whose evidence lists them, each
  contributing interval or instant (``<rect class="contrib">``). Every bar has
  ``x = scale.x(t_start)`` and ``width = scale.x(t_end) - x``, at least `MIN_RECT_PX`; a bar
  narrower than that in truth also gets a marker above it (``<path class="short">``). Its
  criterion and times are in ``data-criterion``, ``data-t-start``, ``data-t-end``, and the same
  spans are shaded lightly across the lanes (``rect.violation-shade``);
- one lane per signal: its name and unit inside the lane, its range at the left; each bucket
  drawn as a step over its time span from the signal's minimum to its maximum there (a value
  held between samples is a flat step). A lane's ``data-lo``/``data-hi`` are the values at
  ``data-y-lo``/``data-y-hi``; the thresholds of the rubric's conditions on that signal are
  dashed lines (``<line class="threshold" data-value=...>``) at their height, labelled at the
  right (``<text class="threshold-label">``; lines closer than `THRESHOLD_LABEL_GAP` share one
  label, "12 km/h (#3) · 8 km/h (#2)", so that labels never overlap);
- a row of discrete events: ticks, each labelled with its name where the name fits, else with
  its name's letter (`event_keys`; the page lists the letters), on up to `EVENT_KEY_ROWS` rows
  so that no two labels overlap;
- the time axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

import numpy as np
from numpy.typing import NDArray

WIDTH: Final = 960
NARROW_WIDTH: Final = 540   # the copy for a narrow or zoomed screen (drawn at about 1 px/unit)
LEFT: Final = 64            # the lanes' value labels
RIGHT: Final = 16
LANE_HEIGHT: Final = 72
LANE_GAP: Final = 10
MARKER_ROW: Final = 18      # one row of decision markers
MARKER_GAP: Final = 24      # markers closer than this (px) go to another row
VIOLATION_ROW: Final = 34   # one row per failed criterion: its title, then its bars
BAR_HEIGHT: Final = 12
MAX_MARKER_ROWS: Final = 4
EVENT_ROW: Final = 34
EVENT_KEY_ROWS: Final = 3   # rows of event letters below the ticks
EVENT_KEY_ROW: Final = 15
SMALL_TEXT: Final = 12      # the smallest font size in the charts (SVG units)
CHAR_PX: Final = 7.0        # the width of a character at SMALL_TEXT, generously
THRESHOLD_LABEL_GAP: Final = 13  # threshold labels closer than this (px) share one label
AXIS_HEIGHT: Final = 30
MIN_RECT_PX: Final = 6.0    # the narrowest bar drawn; narrower ones also get a marker
PALETTE: Final = ("#1f6fb2", "#b35c00", "#2e7d32", "#7b3fa0", "#00838f", "#6d4c41")
VERDICT_FILL: Final = {"fail": "#c62828", "pass": "#2e7d32"}
OTHER_FILL: Final = "#757575"
THRESHOLD_COLOUR: Final = "#6a1b9a"


# ====================================================================================== data


@dataclass(frozen=True, slots=True)
class Lane:
    """One signal, downsampled: bucket i covers ``[t_start[i], t_end[i])`` and holds the
    signal's minimum ``lo[i]`` and maximum ``hi[i]`` there (None: no value in the bucket).
    `thresholds`: values the rubric's conditions compare the signal with, and their labels."""

    name: str
    unit: str
    t_start: Sequence[float]
    t_end: Sequence[float]
    lo: Sequence[float | None]
    hi: Sequence[float | None]
    thresholds: Sequence[tuple[float, str]] = ()


@dataclass(frozen=True, slots=True)
class Interval:
    """A failed criterion's row: its evidence interval (seconds into the session), or the
    contributing `spans` (count and metric evidence; `total` of them in all, more than listed
    when the evidence's list was full). `number`: its place in the criteria table; `href`: where
    tapping the row goes (the page zoomed to it)."""

    criterion: str
    title: str
    t_start: float
    t_end: float
    spans: Sequence[tuple[float, float]] = ()
    total: int = 0
    number: int | None = None
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a criterion was decided (the deciding event's time) and how."""

    criterion: str
    title: str
    verdict: str
    t: float
    seq: int | None = None
    number: int | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """A discrete (non-sample) event."""

    name: str
    t: float
    seq: int


@dataclass(frozen=True, slots=True)
class TimeScale:
    """Seconds -> x pixels: ``t_from`` at ``x_left``, ``t_to`` at ``x_right``; times outside
    the range are clamped to its ends."""

    t_from: float
    t_to: float
    x_left: float
    x_right: float

    def x(self, t: float) -> float:
        span = self.t_to - self.t_from
        if span <= 0:
            return self.x_left
        share = min(max((t - self.t_from) / span, 0.0), 1.0)
        return self.x_left + share * (self.x_right - self.x_left)

    def xs(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """`x` of many times at once."""
        span = self.t_to - self.t_from
        if span <= 0:
            return np.full(t.shape, self.x_left)
        share = np.clip((t - self.t_from) / span, 0.0, 1.0)
        return self.x_left + share * (self.x_right - self.x_left)

    def shows(self, t_start: float, t_end: float) -> bool:
        """Whether [t_start, t_end] meets the plotted range."""
        return t_end >= self.t_from and t_start <= self.t_to


def time_scale(t_from: float, t_to: float, *, width: int = WIDTH) -> TimeScale:
    """The timeline's time axis for a chart `width` pixels wide."""
    return TimeScale(t_from, t_to, float(LEFT), float(width - RIGHT))


def plot_buckets(width: int = WIDTH) -> int:
    """How many downsampling buckets fill the plot: one per pixel of its width."""
    return width - LEFT - RIGHT


# ================================================================================= timeline


def timeline_svg(
    lanes: Sequence[Lane],
    *,
    t_from: float,
    t_to: float,
    intervals: Sequence[Interval] = (),
    decisions: Sequence[Decision] = (),
    events: Sequence[Mark] = (),
    width: int = WIDTH,
    label: str = "Session timeline",
) -> str:
    """The session timeline as one ``<svg>`` element (see the module docstring)."""
    scale = time_scale(t_from, t_to, width=width)
    decisions = [d for d in decisions if scale.shows(d.t, d.t)]
    # fails claim the first marker row and are drawn last (on top of passes at the same time)
    decisions = sorted(decisions, key=lambda d: d.verdict != "fail")
    rows = _marker_rows(scale, decisions)
    numbers = _marker_numbers(scale, decisions, rows)
    marks_top = 6
    violations_top = marks_top + MARKER_ROW * max(1, max(rows, default=0) + 1)
    lanes_top = violations_top + VIOLATION_ROW * len(intervals) + (6 if intervals else 0)
    lanes_bottom = lanes_top + len(lanes) * (LANE_HEIGHT + LANE_GAP)
    events = [e for e in events if scale.shows(e.t, e.t)]
    labels = _event_labels(scale, events, event_keys([e.name for e in events]), width)
    key_rows = max((row for _, _, row in filter(None, labels)), default=0)
    events_bottom = lanes_bottom + EVENT_ROW + EVENT_KEY_ROW * key_rows
    height = events_bottom + AXIS_HEIGHT
    variant = "timeline" if width >= WIDTH else "timeline-narrow"  # one `svg.timeline` a page
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{variant}" viewBox="0 0 '
        f'{width} {height}" width="100%" role="group" aria-label="{_a(label)}" '
        f'font-family="sans-serif" '
        f'font-size="14" data-t-from="{t_from!r}" data-t-to="{t_to!r}" '
        f'data-x-left="{scale.x_left!r}" data-x-right="{scale.x_right!r}">',
        f"<title>{_t(label)}</title>",
        _grid(scale, violations_top, events_bottom),
        *(_shade(scale, iv, lanes_top, events_bottom) for iv in intervals),
        *(
            _interval(scale, iv, violations_top + k * VIOLATION_ROW)
            for k, iv in enumerate(intervals)
        ),
        *(
            _lane(scale, lane, lanes_top + k * (LANE_HEIGHT + LANE_GAP), PALETTE[k % len(PALETTE)])
            for k, lane in enumerate(lanes)
        ),
        _events(scale, events, labels, lanes_bottom),
        *reversed([
            _decision(scale, d, row, number, violations_top, events_bottom)
            for d, row, number in zip(decisions, rows, numbers, strict=True)
        ]),
        _axis(scale, events_bottom),
        "</svg>",
    ]
    return "".join(p for p in parts if p)


def _spans(iv: Interval) -> tuple[str, list[tuple[float, float]]]:
    """The bars of a row: its contributing spans if it has some, else its evidence interval."""
    if iv.spans:
        return "contrib", list(iv.spans)
    return "violation", [(iv.t_start, iv.t_end)]


def _bar(scale: TimeScale, t0: float, t1: float) -> tuple[float, float, bool]:
    """x and width of a bar over [t0, t1], and whether it is narrower in truth than drawn."""
    x = scale.x(t0)
    w = scale.x(t1) - x
    return x, max(w, MIN_RECT_PX), w < MIN_RECT_PX


def _interval(scale: TimeScale, iv: Interval, top: float) -> str:
    """The failed criterion's own row: number and full title, then its bars."""
    kind, spans = _spans(iv)
    number = "" if iv.number is None else f"{iv.number}. "
    more = ""
    if kind == "contrib":
        listed = len(spans)
        more = f" ({iv.total} contributing" + (f", first {listed} shown)" if iv.total > listed
                                                  else ")")  # fmt: skip
    chars = int((scale.x_right - scale.x_left) / CHAR_PX)
    head = (f'<text class="row-title" x="{LEFT + 2}" y="{_n(top + 13)}" font-size="13" '
            f'fill="#b71c1c">{_t(_clip(number + iv.title + more, chars))}</text>')  # fmt: skip
    bars = []
    y = top + VIOLATION_ROW - BAR_HEIGHT - 3
    for t0, t1 in spans:
        if not scale.shows(t0, t1):
            continue
        x, w, short = _bar(scale, t0, t1)
        bars.append(
            f'<rect class="{kind}" data-criterion="{_a(iv.criterion)}" data-t-start="{t0!r}" '
            f'data-t-end="{t1!r}" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{BAR_HEIGHT}" '
            f'fill="#e53935" fill-opacity="0.85" stroke="#b71c1c"><title>{_t(iv.criterion)} '
            f"failed: {_t(iv.title)} ({_t(format_t(t0))} to {_t(format_t(t1))})</title></rect>"
        )
        if short:
            cx = x + MIN_RECT_PX / 2
            bars.append(f'<path class="short" data-criterion="{_a(iv.criterion)}" '
                        f'd="M{_n(cx - 5)},{_n(y - 8)} L{_n(cx + 5)},{_n(y - 8)} L{_n(cx)},'
                        f'{_n(y - 1)} Z" fill="#b71c1c"/>')  # fmt: skip
    body = head + "".join(bars)
    if iv.href:
        body = (f'<a href="{_a(iv.href)}" class="row-link"><rect class="hit" x="2" '
                f'y="{_n(top)}" width="{_n(scale.x_right - 2)}" height="{VIOLATION_ROW}" '
                f'fill="#ffffff" fill-opacity="0"/>{body}</a>')  # fmt: skip
    return f'<g class="violation-row" data-criterion="{_a(iv.criterion)}">{body}</g>'


def _shade(scale: TimeScale, iv: Interval, y0: float, y1: float) -> str:
    """The same spans, lightly shaded across the signal lanes."""
    out = []
    for t0, t1 in _spans(iv)[1]:
        if not scale.shows(t0, t1):
            continue
        x, w, _ = _bar(scale, t0, t1)
        out.append(
            f'<rect class="violation-shade" data-criterion="{_a(iv.criterion)}" x="{_n(x)}" '
            f'y="{_n(y0)}" width="{_n(w)}" height="{_n(y1 - y0)}" fill="#e53935" '
            f'fill-opacity="0.1"/>'
        )
    return "".join(out)


def _lane(scale: TimeScale, lane: Lane, top: float, colour: str) -> str:
    lows = [v for v in lane.lo if v is not None and math.isfinite(v)]
    highs = [v for v in lane.hi if v is not None and math.isfinite(v)]
    bottom = top + LANE_HEIGHT
    unit = f" ({lane.unit})" if lane.unit else ""
    frame = (f'<rect x="{LEFT}" y="{top}" width="{_n(scale.x_right - scale.x_left)}" '
             f'height="{LANE_HEIGHT}" fill="none" stroke="#bdbdbd"/>')  # fmt: skip
    name = (f'<text class="lane-name" x="{LEFT + 4}" y="{top + 14}" font-size="13" '
            f'font-weight="bold" fill="#212121">{_t(lane.name)}{_t(unit)}</text>')  # fmt: skip
    if not lows or not highs:
        return (f'<g class="lane" data-signal="{_a(lane.name)}">{frame}{name}<text '
                f'x="{_n((scale.x_left + scale.x_right) / 2)}" y="{top + 42}" '
                f'text-anchor="middle" fill="#757575">no samples</text></g>')  # fmt: skip
    marks = [v for v, _ in lane.thresholds if math.isfinite(v)]
    lo, hi = min(lows + marks), max(highs + marks)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    inset = 3 + 0.06 / 1.12 * (LANE_HEIGHT - 6)  # 6 % of the range as padding on each side
    y_lo, y_hi = bottom - inset, top + inset

    def y(v: float) -> float:
        return y_lo + (v - lo) / (hi - lo) * (y_hi - y_lo)

    paths = [_band(scale, lane, run, y) for run in _runs(lane)]
    limits = [(v, text, y(v)) for v, text in lane.thresholds if math.isfinite(v)]
    lines = "".join(_threshold(scale, lane, v, y_v) for v, _, y_v in limits) + \
        _threshold_labels(scale, lane, limits, top)
    return (
        f'<g class="lane" data-signal="{_a(lane.name)}" data-lo="{lo!r}" data-hi="{hi!r}" '
        f'data-y-lo="{y_lo!r}" data-y-hi="{y_hi!r}">{frame}'
        f'<text x="{LEFT - 6}" y="{_n(y_hi + 4)}" text-anchor="end" font-size="12" '
        f'fill="#616161">{_t(_num(hi))}</text>'
        f'<text x="{LEFT - 6}" y="{_n(y_lo + 4)}" text-anchor="end" font-size="12" '
        f'fill="#616161">{_t(_num(lo))}</text>'
        f'<path class="signal" d="{" ".join(paths)}" fill="{colour}" fill-opacity="0.35" '
        f'stroke="{colour}" stroke-width="1.2" stroke-linejoin="round" '
        f'stroke-linecap="round"/>{lines}{name}</g>'
    )


def _threshold(scale: TimeScale, lane: Lane, value: float, y: float) -> str:
    return (
        f'<line class="threshold" data-signal="{_a(lane.name)}" data-value="{value!r}" '
        f'x1="{_n(scale.x_left)}" y1="{_n(y)}" x2="{_n(scale.x_right)}" y2="{_n(y)}" '
        f'stroke="{THRESHOLD_COLOUR}" stroke-width="1.5" stroke-dasharray="6 4"/>'
    )


def _threshold_labels(
    scale: TimeScale, lane: Lane, limits: Sequence[tuple[float, str, float]], top: float
) -> str:
    """The labels of a lane's threshold lines (value, criteria numbers, y), right-aligned
    above their lines: lines closer than `THRESHOLD_LABEL_GAP` share one label (the upper
    line's value first), and each label's baseline is at least that far below the previous
    one and inside the lane, so that no two labels overlap."""
    groups: list[list[tuple[float, str, float]]] = []
    for limit in sorted(limits, key=lambda m: m[2]):  # top to bottom
        if groups and limit[2] - groups[-1][-1][2] < THRESHOLD_LABEL_GAP:
            groups[-1].append(limit)
        else:
            groups.append([limit])
    out = []
    baseline = top + SMALL_TEXT - THRESHOLD_LABEL_GAP
    for group in groups:
        baseline = max(group[0][2] - 3, baseline + THRESHOLD_LABEL_GAP)
        text = " \u00b7 ".join(
            f"{_num(v)} {lane.unit}".strip() + (f" ({by})" if by else "") for v, by, _ in group
        )
        values = " ".join(repr(v) for v, _, _ in group)
        out.append(
            f'<text class="threshold-label" data-values="{values}" '
            f'x="{_n(scale.x_right - 4)}" y="{_n(baseline)}" text-anchor="end" '
            f'font-size="{SMALL_TEXT}" fill="{THRESHOLD_COLOUR}">{_t(text)}</text>'
        )
    return "".join(out)


def _runs(lane: Lane) -> list[range]:
    """Maximal runs of buckets that have a value."""
    n = min(len(lane.lo), len(lane.hi), len(lane.t_start), len(lane.t_end))
    ok = ~(np.isnan(np.asarray(lane.lo[:n], dtype=np.float64))
           | np.isnan(np.asarray(lane.hi[:n], dtype=np.float64)))  # fmt: skip
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.view(np.int8), [0]))))
    return [range(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _band(scale: TimeScale, lane: Lane, run: range, y: Callable[[float], float]) -> str:
    """One closed path of steps: each bucket's maximum across its time span, left to right,
    then the minima back, right to left (a spike in a single bucket shows as a narrow column;
    a value held across buckets as one flat step). Vectorised: a 30-minute session draws
    thousands of points per lane."""
    i0, i1 = run.start, run.stop
    t0 = np.asarray(lane.t_start[i0:i1], dtype=np.float64)
    t1 = np.asarray(lane.t_end[i0:i1], dtype=np.float64)
    x0, x1 = scale.xs(t0), scale.xs(t1)
    at_zero, slope = y(0.0), y(1.0) - y(0.0)  # y is affine in the value
    hi = at_zero + np.asarray(lane.hi[i0:i1], dtype=np.float64) * slope
    lo = at_zero + np.asarray(lane.lo[i0:i1], dtype=np.float64) * slope
    upper_x, upper_y = np.column_stack((x0, x1)).ravel(), np.repeat(hi, 2)
    lower_x = np.column_stack((x1, x0))[::-1].ravel()
    lower_y = np.repeat(lo[::-1], 2)
    points = [*_points(upper_x, upper_y), *_points(lower_x, lower_y)]
    return "M" + " L".join(points) + " Z"


def _points(xs: NDArray[np.float64], ys: NDArray[np.float64]) -> list[str]:
    """``x,y`` texts (two decimals), without the middle points of horizontal runs."""
    xs, ys = np.round(xs, 2), np.round(ys, 2)
    keep = np.ones(xs.shape[0], np.bool_)
    if xs.shape[0] > 2:
        flat = (ys[1:-1] == ys[:-2]) & (ys[1:-1] == ys[2:])
        keep[1:-1] = ~flat
    return [f"{a:.2f},{b:.2f}" for a, b in zip(xs[keep].tolist(), ys[keep].tolist(), strict=True)]


def event_keys(names: Sequence[str]) -> dict[str, str]:
    """A short key for each distinct event name, in order of first appearance: A, B, ... Z,
    then A2, B2, ...: the timeline labels a tick with it where the name does not fit."""
    keys: dict[str, str] = {}
    for name in names:
        if name not in keys:
            k = len(keys)
            keys[name] = chr(ord("A") + k % 26) + (str(k // 26 + 1) if k >= 26 else "")
    return keys


def _event_labels(
    scale: TimeScale, events: Sequence[Mark], keys: dict[str, str], width: int
) -> list[tuple[str, float, int] | None]:
    """Each event's label (text, left x, row): its name on the first row where it fits, else
    its key on the first of `EVENT_KEY_ROWS` rows with room; None when neither fits anywhere
    (ticks closer than a letter on every row: zooming in separates them). Labels on a row
    never overlap."""
    free = [-math.inf] * EVENT_KEY_ROWS  # per row: where the next label may start
    out: list[tuple[str, float, int] | None] = []
    for e in events:
        x = scale.x(e.t)
        placed = None
        for text, rows in ((e.name, (0,)), (keys[e.name], range(EVENT_KEY_ROWS))):
            w = CHAR_PX * len(text) + 4
            left = min(x - 2 if len(text) <= 2 else x + 2, width - w)
            row = next((r for r in rows if left >= free[r]), None)
            if row is not None and (text == keys[e.name] or x + 2 + w <= width):
                free[row] = left + w
                placed = (text, left, row)
                break
        out.append(placed)
    return out


def _events(scale: TimeScale, events: Sequence[Mark],
            labels: Sequence[tuple[str, float, int] | None], top: float) -> str:  # fmt: skip
    if not events:
        return ""
    ticks = []
    for e, label in zip(events, labels, strict=True):
        x = scale.x(e.t)
        ticks.append(
            f'<line class="event" data-event="{_a(e.name)}" data-t="{e.t!r}" x1="{_n(x)}" '
            f'y1="{top + 4}" x2="{_n(x)}" y2="{top + 16}" stroke="#455a64" stroke-width="2">'
            f"<title>{_t(e.name)} at {_t(format_t(e.t))} (seq {e.seq})</title></line>"
        )
        if label is not None:
            text, left, row = label
            ticks.append(f'<text class="event-label" data-event="{_a(e.name)}" '
                         f'x="{_n(left)}" y="{top + 28 + EVENT_KEY_ROW * row}" '
                         f'font-size="{SMALL_TEXT}" fill="#37474f">{_t(text)}</text>')  # fmt: skip
    return (f'<g class="events"><text x="{LEFT - 6}" y="{top + 16}" text-anchor="end" '
            f'font-size="12" fill="#616161">events</text>{"".join(ticks)}</g>')  # fmt: skip


def _marker_rows(scale: TimeScale, decisions: Sequence[Decision]) -> list[int]:
    """A row for each decision marker so that markers (and their numbers) closer than
    `MARKER_GAP` px do not overlap (beyond `MAX_MARKER_ROWS` rows they stack on the last)."""
    seen: list[list[float]] = []  # per row: the x of every marker on it
    rows: list[int] = []
    for d in decisions:
        x = scale.x(d.t)
        row = next((r for r, xs in enumerate(seen) if all(abs(x - s) >= MARKER_GAP for s in xs)),
                   len(seen))  # fmt: skip
        row = min(row, MAX_MARKER_ROWS - 1)
        if row == len(seen):
            seen.append([])
        seen[row].append(x)
        rows.append(row)
    return rows


def _marker_numbers(
    scale: TimeScale, decisions: Sequence[Decision], rows: Sequence[int]
) -> list[tuple[str, float]]:
    """The number shown beside each marker: its criterion's, except on the last row, where
    markers stack: a marker closer than `MARKER_GAP` to an earlier one of the same verdict there
    adds its number to that one's ("6 7 9") and shows none, so that every number is drawn
    once and none over another. With each text, the leftmost x of the markers it numbers
    (where it ends when drawn to their left)."""
    numbers = ["" if d.number is None else str(d.number) for d in decisions]
    lefts = [scale.x(d.t) for d in decisions]
    heads: list[int] = []
    for k, (d, row) in enumerate(zip(decisions, rows, strict=True)):
        if row != MAX_MARKER_ROWS - 1 or not numbers[k]:
            continue
        x = scale.x(d.t)
        head = next((h for h in heads if decisions[h].verdict == d.verdict
                     and abs(scale.x(decisions[h].t) - x) < MARKER_GAP), None)  # fmt: skip
        if head is None:
            heads.append(k)
        else:
            numbers[head] += f" {numbers[k]}"
            numbers[k] = ""
            lefts[head] = min(lefts[head], x)
    return list(zip(numbers, lefts, strict=True))


def _decision(
    scale: TimeScale, d: Decision, row: int, label: tuple[str, float], y0: float, y1: float
) -> str:  # fmt: skip
    """A decision's marker, and its label (its number, or the numbers stacked on it, and the
    leftmost of their markers) beside it: to its right, or left of them all where the right
    has no room."""
    text, left = label
    x = scale.x(d.t)
    fill = VERDICT_FILL.get(d.verdict, OTHER_FILL)
    cy = 6 + MARKER_ROW * row + MARKER_ROW / 2
    seq = "" if d.seq is None else f", seq {d.seq}"
    guide = ""
    if d.verdict == "fail":
        guide = (f'<line x1="{_n(x)}" y1="{_n(y0)}" x2="{_n(x)}" y2="{_n(y1)}" stroke="{fill}" '
                 f'stroke-dasharray="4 3" stroke-width="1.2"/>')  # fmt: skip
    shape = (
        f'<path d="M{_n(x - 6)},{_n(cy - 5)} L{_n(x + 6)},{_n(cy - 5)} L{_n(x)},{_n(cy + 6)} Z" '
        f'fill="{fill}"/>'
        if d.verdict == "fail"
        else f'<circle cx="{_n(x)}" cy="{_n(cy)}" r="4.5" fill="{fill}"/>'
    )
    right = x + 8 + CHAR_PX * len(text) <= scale.x_right + RIGHT
    number = "" if not text else (
        f'<text class="marker-number" x="{_n(x + 8 if right else left - 8)}" y="{_n(cy + 4)}" '
        f'text-anchor="{"start" if right else "end"}" font-size="{SMALL_TEXT}" '
        f'font-weight="bold" fill="{fill}">{_t(text)}</text>'
    )  # fmt: skip
    return (
        f'<g class="decision" data-criterion="{_a(d.criterion)}" data-verdict="{_a(d.verdict)}" '
        f'data-t="{d.t!r}"><title>{_t(d.criterion)}: {_t(d.verdict)} at {_t(format_t(d.t))}'
        f"{seq} ({_t(d.title)})</title>{guide}{shape}{number}</g>"
    )


def _grid(scale: TimeScale, y0: float, y1: float) -> str:
    return "".join(
        f'<line x1="{_n(scale.x(t))}" y1="{_n(y0)}" x2="{_n(scale.x(t))}" y2="{_n(y1)}" '
        f'stroke="#eeeeee"/>'
        for t in time_ticks(scale.t_from, scale.t_to)
    )


def _axis(scale: TimeScale, top: float) -> str:
    span = scale.t_to - scale.t_from
    ticks = "".join(
        f'<g class="tick" data-t="{t!r}"><line x1="{_n(scale.x(t))}" y1="{top}" '
        f'x2="{_n(scale.x(t))}" y2="{top + 6}" stroke="#424242"/><text x="{_n(scale.x(t))}" '
        f'y="{top + 20}" text-anchor="middle">{_t(format_t(t, span))}</text></g>'
        for t in time_ticks(scale.t_from, scale.t_to)
    )
    return (f'<g class="axis"><line x1="{_n(scale.x_left)}" y1="{top}" x2="{_n(scale.x_right)}" '
            f'y2="{top}" stroke="#424242"/>{ticks}</g>')  # fmt: skip


# =================================================================================== ticks


_STEPS: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0,
                 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0)


def time_ticks(t_from: float, t_to: float, *, most: int = 10) -> list[float]:
    """Round times inside ``[t_from, t_to]`` (steps of 1, 2 or 5 x 10^k seconds, or of
    whole minutes and hours), at most `most` of them."""
    span = t_to - t_from
    if not (math.isfinite(span) and math.isfinite(t_from)):
        return []
    if span <= 0:
        return [t_from]
    step = next((s for s in _STEPS if span / s <= most - 1), 0.0)
    if not step:
        step = 21600.0 * math.ceil(span / (most - 1) / 21600.0)
    first = math.ceil(t_from / step - 1e-9)
    last = math.floor(t_to / step + 1e-9)
    return [round(k * step, 9) for k in range(first, last + 1)]


def format_t(t: float, span: float | None = None) -> str:
    """Seconds for people: ``m:ss.s`` (``h:mm:ss.s`` past an hour); on an axis (`span`
    given) whole seconds, or ``12.5 s`` when the whole axis spans less than a minute."""
    if not math.isfinite(t):
        return str(t)
    if span is not None and span < 60:
        return f"{t:.3g} s" if abs(t) < 10 else f"{t:.1f} s"
    sign = "-" if t < 0 else ""
    tenths = span is None
    total = round(abs(t), 1) if tenths else float(round(abs(t)))
    hours, rest = divmod(total, 3600.0)
    minutes, seconds = divmod(rest, 60.0)
    sec = f"{seconds:04.1f}" if tenths else f"{int(seconds):02d}"
    if hours:
        return f"{sign}{int(hours)}:{int(minutes):02d}:{sec}"
    return f"{sign}{int(minutes)}:{sec}"


# ================================================================================= attempts


@dataclass(frozen=True, slots=True)
class AttemptPoint:
    """One attempt on the learner chart: its score (None: not scored) and outcome, the text of
    its tooltip and the page it links to."""

    session: str
    label: str
    score: float | None
    outcome: str | None
    href: str


ATTEMPT_COLOURS: Final = {"pass": "#2e7d32", "fail": "#c62828", "incomplete": "#757575"}


def attempts_svg(
    points: Sequence[AttemptPoint], *, min_score: float | None = None, width: int = 720,
    label: str = "Score per attempt",
) -> str:  # fmt: skip
    """Score (0-100) per attempt, oldest left; pass = filled green disc, fail = red cross,
    incomplete = hollow grey circle; a dashed line at the pass mark `min_score`."""
    height, left, right, top, bottom = 240, 48, 16, 14, 40
    n = len(points)
    step = (width - left - right) / max(n, 1)

    def x(k: int) -> float:
        return left + step * (k + 0.5)

    def y(score: float) -> float:
        return top + (1 - min(max(score, 0.0), 100.0) / 100.0) * (height - top - bottom)

    grid = "".join(
        f'<line x1="{left}" y1="{_n(y(v))}" x2="{width - right}" y2="{_n(y(v))}" '
        f'stroke="#eeeeee"/><text x="{left - 6}" y="{_n(y(v) + 4)}" text-anchor="end" '
        f'fill="#616161">{v}</text>'
        for v in (0, 25, 50, 75, 100)
    )
    mark = "" if min_score is None else (
        f'<line class="pass-mark" x1="{left}" y1="{_n(y(min_score))}" x2="{width - right}" '
        f'y2="{_n(y(min_score))}" stroke="#2e7d32" stroke-dasharray="6 4"/>'
        f'<text x="{width - right}" y="{_n(y(min_score) - 5)}" text-anchor="end" '
        f'fill="#2e7d32">pass mark {_t(_num(min_score))}</text>'
    )  # fmt: skip
    scored = [(k, p) for k, p in enumerate(points) if p.score is not None]
    line = "" if len(scored) < 2 else (
        '<polyline fill="none" stroke="#90a4ae" stroke-width="2" points="'
        + " ".join(f"{_n(x(k))},{_n(y(_f(p.score)))}" for k, p in scored) + '"/>'
    )  # fmt: skip
    marks = "".join(_attempt(p, x(k), y(p.score) if p.score is not None else None,
                             height - bottom, k, n) for k, p in enumerate(points))  # fmt: skip
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="attempts" viewBox="0 0 {width} '
        f'{height}" width="100%" role="group" aria-label="{_a(label)}" font-family="sans-serif" '
        f'font-size="13"><title>{_t(label)}</title>{grid}{mark}{line}{marks}</svg>'
    )


def _attempt(p: AttemptPoint, x: float, y: float | None, base: float, k: int, n: int) -> str:
    colour = ATTEMPT_COLOURS.get(p.outcome or "", "#757575")
    if y is None:
        shape = (f'<text x="{_n(x)}" y="{_n(base - 8)}" text-anchor="middle" '
                 f'fill="{colour}">?</text>')  # fmt: skip
    elif p.outcome == "fail":
        shape = (f'<path d="M{_n(x - 7)},{_n(y - 7)} L{_n(x + 7)},{_n(y + 7)} M{_n(x + 7)},'
                 f'{_n(y - 7)} L{_n(x - 7)},{_n(y + 7)}" stroke="{colour}" stroke-width="3.5" '
                 f'stroke-linecap="round"/>')  # fmt: skip
    elif p.outcome == "pass":
        shape = f'<circle cx="{_n(x)}" cy="{_n(y)}" r="8" fill="{colour}"/>'
    else:
        shape = (f'<circle cx="{_n(x)}" cy="{_n(y)}" r="7" fill="#ffffff" stroke="{colour}" '
                 f'stroke-width="3"/>')  # fmt: skip
    # label every attempt when they fit, else about ten of them
    every = max(1, math.ceil(n / 10))
    tick = f'<text x="{_n(x)}" y="{_n(base + 22)}" text-anchor="middle" fill="#616161">' \
           f"#{k + 1}</text>" if k % every == 0 or k == n - 1 else ""  # fmt: skip
    # a 44 px hit area around each mark, for fingers
    hit = (f'<rect class="hit" x="{_n(x - 22)}" y="{_n((y if y is not None else base) - 22)}" '
           f'width="44" height="44" fill="#ffffff" fill-opacity="0"/>')  # fmt: skip
    return (
        f'<a class="attempt" href="{_a(p.href)}" data-session="{_a(p.session)}" '
        f'data-outcome="{_a(p.outcome or "")}"><title>{_t(p.label)}</title>{hit}{shape}{tick}</a>'
    )


# ================================================================================= helpers

def _f(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _n(v: float) -> str:
    """A coordinate: two decimals at most, no trailing zeros."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _clip(name: str, chars: int) -> str:
    """A row title that fits the plot (`chars` characters at most)."""
    return name if len(name) <= chars else name[: chars - 1] + "\u2026"


def _num(v: float) -> str:
    return f"{v:.4g}"


def _t(text: str) -> str:
    return escape(text, quote=False)


def _a(text: str) -> str:
    return escape(text, quote=True)
