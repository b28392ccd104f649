"""Durations as trainers write them: ``500ms``, ``2s``, ``1.5min``, ``1h``, or bare seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0}
DURATION_PATTERN = r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|min|h)?\s*$"
"""A duration written as text (the rubric files' JSON Schema uses it too)."""
_PATTERN = re.compile(DURATION_PATTERN)


def parse_duration(value: object) -> float:
    """Return the duration in seconds; raise ValueError with a trainer-readable message.

    Accepts non-negative ints and floats (seconds) and strings such as ``"500ms"``, ``"2s"``,
    ``"1.5min"``, ``"1h"``. Booleans, negative and non-finite values are refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 2s, 500ms or 1.5min, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as 2s, 500ms, 1.5min or 1h, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected a duration such as 2s, 500ms or 1.5min, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
    return seconds
