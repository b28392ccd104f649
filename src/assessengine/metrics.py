"""The engine's metrics and their Prometheus text exposition (format 0.0.4), without a client
library: a few counters, gauges and histograms are all `/metrics` needs.

    histogram = Histogram(LATENCY_BUCKETS)
    histogram.observe(0.004)
    text = render([Sample("assessengine_scoring_latency_seconds", "histogram", "...", histogram)])

Thread-safety: `Histogram.observe` and `snapshot` take a lock; plain counters are ints written
by one thread and read by another (a read may be one update behind, never torn).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency histograms' buckets; +Inf is implied."""

Kind = Literal["counter", "gauge", "histogram"]


class Histogram:
    """Counts of observations per bucket (cumulative on export), their sum and count."""

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bucket bounds must be increasing and not empty")
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float, times: int = 1) -> None:
        """Record `value` (seconds) `times` times."""
        k = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self._counts[k] += times
            self._sum += value * times

    def snapshot(self) -> tuple[list[int], float]:
        """Cumulative counts per bucket (the last one is +Inf, i.e. the count) and the sum."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        running, cumulative = 0, []
        for c in counts:
            running += c
            cumulative.append(running)
        return cumulative, total

    def quantile(self, q: float) -> float:
        """An upper bound of the `q` quantile: the smallest bucket bound holding it (inf when
        it lies beyond the last bound, NaN without observations)."""
        cumulative, _ = self.snapshot()
        if not cumulative[-1]:
            return math.nan
        rank = q * cumulative[-1]
        for bound, count in zip((*self.bounds, math.inf), cumulative, strict=True):
            if count >= rank:
                return bound
        return math.inf


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family: a value per label set (or a histogram)."""

    name: str
    kind: Kind
    help: str
    values: Mapping[tuple[tuple[str, str], ...], float] | Histogram


def counter(name: str, help_: str, value: float) -> Metric:
    return Metric(name, "counter", help_, {(): value})


def gauge(name: str, help_: str, value: float) -> Metric:
    return Metric(name, "gauge", help_, {(): value})


def labelled(
    name: str, kind: Kind, help_: str, label: str, values: Mapping[str, float]
) -> Metric:
    return Metric(name, kind, help_, {((label, key),): v for key, v in sorted(values.items())})


def render(metrics: Iterable[Metric]) -> str:
    """The Prometheus text exposition of `metrics`."""
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {_escape_help(m.help)}")
        lines.append(f"# TYPE {m.name} {m.kind}")
        if isinstance(m.values, Histogram):
            cumulative, total = m.values.snapshot()
            for bound, count in zip((*m.values.bounds, math.inf), cumulative, strict=True):
                lines.append(f'{m.name}_bucket{{le="{_number(bound)}"}} {count}')
            lines.append(f"{m.name}_sum {_number(total)}")
            lines.append(f"{m.name}_count {cumulative[-1]}")
            continue
        for labels, value in m.values.items():
            lines.append(f"{m.name}{_labels(labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
