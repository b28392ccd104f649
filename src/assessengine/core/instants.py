"""Instants as the engine writes them: UTC, ISO 8601 with ``Z``, the year always in four digits.

Python's datetimes hold the years 1 to 9999 only, and converting an instant near either end to
UTC can leave that range (``9999-12-31T23:00:00-05:00``): `to_utc` holds such an instant at the
end it passed, so that no conversion of a date someone sent raises. `utc_text` formats with
`datetime.isoformat` (``strftime("%Y")`` drops the leading zeros of years before 1000 on Linux,
and then stamps no longer compare as text).
"""

from __future__ import annotations

from datetime import MINYEAR, UTC, datetime
from typing import Literal

Precision = Literal["seconds", "milliseconds", "microseconds"]


def to_utc(moment: datetime) -> datetime:
    """`moment` in UTC (naive means UTC already); an instant that its offset puts before year 1
    or after year 9999 is held at that end."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        end = datetime.min if moment.year == MINYEAR else datetime.max
        return end.replace(tzinfo=UTC)


def utc_text(moment: datetime, timespec: Precision = "seconds") -> str:
    """``YYYY-MM-DDTHH:MM:SS[.fff[fff]]Z`` of `moment` (see `to_utc`)."""
    return to_utc(moment).isoformat(timespec=timespec).replace("+00:00", "Z")
