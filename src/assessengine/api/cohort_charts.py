"""The cohort dashboard's charts as inline SVG (server-rendered, no JavaScript).

Each chart is a ``role="img"`` with an ``aria-label`` and nothing focusable inside; every mark
carries its numbers in ``data-*`` attributes and a ``<title>`` (the page's tables repeat the
same numbers as text). Every text is escaped here. Geometry: a value v in [0, 1] is drawn
``v * width`` wide (bars) or ``top + (1 - v) * height`` high (lines), so a test can read a
mark back to its number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

PALETTE: Final = ("#1f5fa8", "#b3591a", "#2a7d3b", "#7a3f9d", "#9a2a3a", "#40707a")
BAR_WIDTH: Final = 360.0  # px of a 100 % bar
BAR_ROW: Final = 30.0
LABEL_WIDTH: Final = 300.0
LINE_WIDTH: Final = 640.0
LINE_HEIGHT: Final = 200.0
PAD: Final = 40.0


@dataclass(frozen=True, slots=True)
class Point:
    period: str
    rate: float
    sessions: int


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a rubric version's pass rate per period."""

    label: str
    points: Sequence[Point]


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float | None  # a fraction in [0, 1]; None: nothing to show
    note: str             # the count it rests on, in words


def percent(value: float | None) -> str:
    """A fraction as the page prints it: ``25.0 %``, ``-`` for None."""
    return "-" if value is None else f"{value * 100:.1f} %"


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
            f'preserveAspectRatio="xMinYMin meet" class="cohort-chart">'
            + "".join(body) + "</svg>")  # fmt: skip


def bars_svg(bars: Sequence[Bar], *, label: str, kind: str) -> str:
    """Horizontal bars, one row per `Bar`, from 0 to 100 %; `kind` names the value in the
    marks' ``data-kind`` (``failure-rate``, ``pass-rate``, ``share``)."""
    height = PAD / 2 + BAR_ROW * max(len(bars), 1) + PAD / 2
    width = LABEL_WIDTH + BAR_WIDTH + 110
    body = []
    for k, bar in enumerate(bars):
        y = PAD / 2 + k * BAR_ROW
        value = 0.0 if bar.value is None else max(0.0, min(1.0, bar.value))
        text = f"{bar.label}: {percent(bar.value)} ({bar.note})"
        body.append(
            f'<text x="{LABEL_WIDTH - 8:.0f}" y="{y + BAR_ROW * 0.62:.1f}" text-anchor="end" '
            f'class="bar-label">{escape(_short(bar.label))}</text>'
            f'<rect x="{LABEL_WIDTH:.0f}" y="{y + 4:.1f}" width="{BAR_WIDTH:.0f}" '
            f'height="{BAR_ROW - 8:.0f}" class="bar-track"/>'
            f'<rect x="{LABEL_WIDTH:.0f}" y="{y + 4:.1f}" width="{value * BAR_WIDTH:.2f}" '
            f'height="{BAR_ROW - 8:.0f}" class="bar bar-{escape(kind)}" '
            f'data-kind="{escape(kind)}" data-label="{escape(bar.label)}" '
            f'data-value="{"" if bar.value is None else repr(bar.value)}">'
            f"<title>{escape(text)}</title></rect>"
            f'<text x="{LABEL_WIDTH + BAR_WIDTH + 8:.0f}" y="{y + BAR_ROW * 0.62:.1f}" '
            f'class="bar-value">{escape(percent(bar.value))}</text>'
        )  # fmt: skip
    if not bars:
        body.append(f'<text x="{PAD:.0f}" y="{PAD:.0f}">No sessions.</text>')
    return _svg(width, height, label, body)


def lines_svg(series: Sequence[Series], *, label: str) -> str:
    """Pass rate (0-100 %) over the periods (left to right, in order), one line per
    `Series`, a dot per point."""
    periods = sorted({p.period for s in series for p in s.points})
    width, height = LINE_WIDTH + 2 * PAD, LINE_HEIGHT + 2 * PAD + 18 * len(series)
    step = LINE_WIDTH / max(len(periods) - 1, 1)
    x_of = {p: PAD + (k * step if len(periods) > 1 else LINE_WIDTH / 2)
            for k, p in enumerate(periods)}  # fmt: skip
    body = []
    for tick in (0.0, 0.5, 1.0):
        y = PAD + (1 - tick) * LINE_HEIGHT
        body.append(f'<line x1="{PAD:.0f}" x2="{PAD + LINE_WIDTH:.0f}" y1="{y:.1f}" '
                    f'y2="{y:.1f}" class="grid"/><text x="{PAD - 4:.0f}" y="{y + 4:.1f}" '
                    f'text-anchor="end" class="axis">{tick * 100:.0f}%</text>')  # fmt: skip
    shown = periods if len(periods) <= 8 else periods[:: max(len(periods) // 6, 1)]
    body.extend(f'<text x="{x_of[day]:.1f}" y="{PAD + LINE_HEIGHT + 16:.1f}" '
                f'text-anchor="middle" class="axis">{escape(day)}</text>' for day in shown)
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        xy = [(x_of[p.period], PAD + (1 - p.rate) * LINE_HEIGHT) for p in s.points]
        if len(xy) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                        'stroke-width="2"/>')  # fmt: skip
        for point, (x, y) in zip(s.points, xy, strict=True):
            text = f"{s.label}, {point.period}: {percent(point.rate)} of {point.sessions} sessions"
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}" class="rate-point" '
                f'data-series="{escape(s.label)}" data-period="{escape(point.period)}" '
                f'data-value="{point.rate!r}" data-sessions="{point.sessions}">'
                f"<title>{escape(text)}</title></circle>"
            )  # fmt: skip
        y = PAD + LINE_HEIGHT + 36 + 18 * k
        body.append(f'<rect x="{PAD:.0f}" y="{y - 10:.1f}" width="12" height="12" '
                    f'fill="{colour}"/><text x="{PAD + 18:.0f}" y="{y:.1f}" class="legend">'
                    f"{escape(s.label)}</text>")  # fmt: skip
    if not series:
        body.append(f'<text x="{PAD:.0f}" y="{PAD + 20:.0f}">No sessions.</text>')
    return _svg(width, height, label, body)


def _short(text: str, limit: int = 36) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
