"""Server-side SVG charts for the web pages: a session's timeline and a learner's attempts.

Pure functions, data in and SVG text out: no I/O, no web framework. Every piece of text put
into the SVG (names, titles, notes) is escaped here, so a page may inline the result as is.
Colours are SVG presentation attributes (no ``style``), so the charts render the same inline,
stand-alone, and under a strict Content-Security-Policy.

Timeline geometry: time runs left to right over ``[t_from, t_to]`` on a `TimeScale` from
``x = LEFT`` to ``x = width - RIGHT``; one plot-width pixel is one downsampling bucket
(`plot_buckets`). From the top: decision markers (a triangle for a fail, a disc otherwise, each
with a ``<title>``), one row per violation interval, one lane per signal (the min/max envelope of
each bucket), a row of discrete events, the time axis. A violation interval is a
``<rect class="violation">`` in its row with ``x = scale.x(t_start)`` and
``width = scale.x(t_end) - x`` (at least `MIN_RECT_PX`, so an instant still shows), its
criterion and times in ``data-criterion``, ``data-t-start``, ``data-t-end``; the same span is
shaded lightly across the lanes (``rect.violation-shade``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

WIDTH: Final = 960
LEFT: Final = 150           # lane labels
RIGHT: Final = 16
LANE_HEIGHT: Final = 64
LANE_GAP: Final = 10
MARKER_ROW: Final = 16      # one row of decision markers
VIOLATION_ROW: Final = 20   # one row per violation interval
LABEL_CHARS: Final = 19
MAX_MARKER_ROWS: Final = 4
EVENT_ROW: Final = 26
AXIS_HEIGHT: Final = 30
MIN_RECT_PX: Final = 2.0
PALETTE: Final = ("#1f6fb2", "#b35c00", "#2e7d32", "#7b3fa0", "#00838f", "#6d4c41")
VERDICT_FILL: Final = {"fail": "#c62828", "pass": "#2e7d32"}
OTHER_FILL: Final = "#757575"


# ====================================================================================== data


@dataclass(frozen=True, slots=True)
class Lane:
    """One signal, downsampled: bucket i covers ``[t_start[i], t_end[i])`` and holds the
    signal's minimum ``lo[i]`` and maximum ``hi[i]`` there (None: no sample in the bucket)."""

    name: str
    unit: str
    t_start: Sequence[float]
    t_end: Sequence[float]
    lo: Sequence[float | None]
    hi: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class Interval:
    """A failed criterion's evidence interval, seconds into the session."""

    criterion: str
    title: str
    t_start: float
    t_end: float


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a criterion was decided (the deciding event's time) and how."""

    criterion: str
    title: str
    verdict: str
    t: float
    seq: int | None = None


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
    # fails claim the first marker row and are drawn last (on top of passes at the same time)
    decisions = sorted(decisions, key=lambda d: d.verdict != "fail")
    rows = _marker_rows(scale, decisions)
    marks_top = 6
    violations_top = marks_top + MARKER_ROW * max(1, max(rows, default=0) + 1)
    lanes_top = violations_top + VIOLATION_ROW * len(intervals) + (6 if intervals else 0)
    lanes_bottom = lanes_top + len(lanes) * (LANE_HEIGHT + LANE_GAP)
    events_bottom = lanes_bottom + EVENT_ROW
    height = events_bottom + AXIS_HEIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {width} '
        f'{height}" width="100%" role="img" aria-label="{_a(label)}" font-family="sans-serif" '
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
        _events(scale, events, lanes_bottom),
        *reversed([
            _decision(scale, d, row, violations_top, events_bottom)
            for d, row in zip(decisions, rows, strict=True)
        ]),
        _axis(scale, events_bottom),
        "</svg>",
    ]
    return "".join(p for p in parts if p)


def _interval(scale: TimeScale, iv: Interval, top: float) -> str:
    """The violation's own row: its criterion at the left, the interval as a red bar."""
    x = scale.x(iv.t_start)
    w = max(scale.x(iv.t_end) - x, MIN_RECT_PX)
    return (
        f'<g class="violation-row"><text x="{LEFT - 8}" y="{_n(top + VIOLATION_ROW - 6)}" '
        f'text-anchor="end" font-size="12" fill="#b71c1c">{_t(_clip(iv.criterion))}</text>'
        f'<rect class="violation" data-criterion="{_a(iv.criterion)}" '
        f'data-t-start="{iv.t_start!r}" data-t-end="{iv.t_end!r}" x="{_n(x)}" '
        f'y="{_n(top + 3)}" width="{_n(w)}" height="{VIOLATION_ROW - 6}" fill="#e53935" '
        f'fill-opacity="0.8" stroke="#b71c1c"><title>{_t(iv.criterion)} failed: '
        f"{_t(iv.title)} ({_t(format_t(iv.t_start))} to {_t(format_t(iv.t_end))})</title>"
        "</rect></g>"
    )


def _shade(scale: TimeScale, iv: Interval, y0: float, y1: float) -> str:
    """The same interval, lightly shaded across the signal lanes."""
    x = scale.x(iv.t_start)
    w = max(scale.x(iv.t_end) - x, MIN_RECT_PX)
    return (
        f'<rect class="violation-shade" data-criterion="{_a(iv.criterion)}" x="{_n(x)}" '
        f'y="{_n(y0)}" width="{_n(w)}" height="{_n(y1 - y0)}" fill="#e53935" '
        f'fill-opacity="0.1"/>'
    )


def _lane(scale: TimeScale, lane: Lane, top: float, colour: str) -> str:
    lows = [v for v in lane.lo if v is not None and math.isfinite(v)]
    highs = [v for v in lane.hi if v is not None and math.isfinite(v)]
    bottom = top + LANE_HEIGHT
    head = (
        f'<g class="lane" data-signal="{_a(lane.name)}">'
        f'<rect x="{LEFT}" y="{top}" width="{_n(scale.x_right - scale.x_left)}" '
        f'height="{LANE_HEIGHT}" fill="none" stroke="#bdbdbd"/>'
        f'<text x="{LEFT - 8}" y="{top + 18}" text-anchor="end" font-weight="bold">'
        f"<title>{_t(lane.name)}</title>{_t(_clip(lane.name))}</text>"
        f'<text x="{LEFT - 8}" y="{top + 34}" text-anchor="end" fill="#616161">'
        f"{_t(lane.unit)}</text>"
    )
    if not lows or not highs:
        return (f'{head}<text x="{_n((scale.x_left + scale.x_right) / 2)}" y="{top + 38}" '
                f'text-anchor="middle" fill="#757575">no samples</text></g>')  # fmt: skip
    lo, hi = min(lows), max(highs)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.06

    def y(v: float) -> float:
        return bottom - 3 - (v - (lo - pad)) / (hi - lo + 2 * pad) * (LANE_HEIGHT - 6)

    paths = [_band(scale, lane, run, y) for run in _runs(lane)]
    return (
        f"{head}"
        f'<text x="{LEFT - 8}" y="{top + 12 + 38}" text-anchor="end" font-size="11" '
        f'fill="#757575">{_t(_num(lo))}..{_t(_num(hi))}</text>'
        f'<path class="signal" d="{" ".join(paths)}" fill="{colour}" fill-opacity="0.35" '
        f'stroke="{colour}" stroke-width="1.2" stroke-linejoin="round" '
        f'stroke-linecap="round"/></g>'
    )


def _runs(lane: Lane) -> list[range]:
    """Maximal runs of buckets that have a sample."""
    runs: list[range] = []
    start: int | None = None
    n = min(len(lane.lo), len(lane.hi), len(lane.t_start), len(lane.t_end))
    for i in range(n + 1):
        ok = i < n and lane.lo[i] is not None and lane.hi[i] is not None
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            runs.append(range(start, i))
            start = None
    return runs


def _band(scale: TimeScale, lane: Lane, run: range, y: Callable[[float], float]) -> str:
    """One closed path: the maxima left to right, then the minima back (a spike in a single
    bucket shows as a vertical stroke)."""
    xs = {i: scale.x((lane.t_start[i] + lane.t_end[i]) / 2) for i in run}
    upper = [f"{_n(xs[i])},{_n(y(_f(lane.hi[i])))}" for i in run]
    lower = [f"{_n(xs[i])},{_n(y(_f(lane.lo[i])))}" for i in reversed(run)]
    return "M" + " L".join(upper + lower) + " Z"


def _events(scale: TimeScale, events: Sequence[Mark], top: float) -> str:
    if not events:
        return ""
    ticks = "".join(
        f'<line class="event" data-event="{_a(e.name)}" data-t="{e.t!r}" x1="{_n(scale.x(e.t))}" '
        f'y1="{top + 4}" x2="{_n(scale.x(e.t))}" y2="{top + EVENT_ROW - 6}" stroke="#455a64" '
        f'stroke-width="2"><title>{_t(e.name)} at {_t(format_t(e.t))} (seq {e.seq})</title>'
        "</line>"
        for e in events
    )
    return (f'<g class="events"><text x="{LEFT - 8}" y="{top + EVENT_ROW - 9}" '
            f'text-anchor="end" fill="#616161">events</text>{ticks}</g>')  # fmt: skip


def _marker_rows(scale: TimeScale, decisions: Sequence[Decision]) -> list[int]:
    """A row for each decision marker so that markers closer than 12 px do not overlap
    (beyond `MAX_MARKER_ROWS` rows they stack on the last one)."""
    last: list[float] = []
    rows: list[int] = []
    for d in decisions:
        x = scale.x(d.t)
        row = next((r for r, seen in enumerate(last) if abs(x - seen) >= 12), len(last))
        row = min(row, MAX_MARKER_ROWS - 1)
        if row == len(last):
            last.append(x)
        else:
            last[row] = x
        rows.append(row)
    return rows


def _decision(scale: TimeScale, d: Decision, row: int, y0: float, y1: float) -> str:
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
    return (
        f'<g class="decision" data-criterion="{_a(d.criterion)}" data-verdict="{_a(d.verdict)}" '
        f'data-t="{d.t!r}"><title>{_t(d.criterion)}: {_t(d.verdict)} at {_t(format_t(d.t))}'
        f"{seq} ({_t(d.title)})</title>{guide}{shape}</g>"
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
        f'{height}" width="100%" role="img" aria-label="{_a(label)}" font-family="sans-serif" '
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
    hit = (f'<rect x="{_n(x - 22)}" y="{_n((y if y is not None else base) - 22)}" width="44" '
           f'height="44" fill="#ffffff" fill-opacity="0"/>')  # fmt: skip
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


def _clip(name: str) -> str:
    """A label that fits the left margin."""
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "\u2026"


def _num(v: float) -> str:
    return f"{v:.4g}"


def _t(text: str) -> str:
    return escape(text, quote=False)


def _a(text: str) -> str:
    return escape(text, quote=True)
