"""`--where` as the commands that select sessions take it: ``KEY=VALUE`` pairs, given as
repeated options, comma-separated, or both (``--where a=1,b=2 --where c=3``), and the time
window ``since``/``until`` that every such command reads the same way: sessions opened at or
after `since` and before `until` (ISO dates or date-times, UTC unless they say otherwise; a
date means its midnight)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

import click

WINDOW_KEYS = ("since", "until")


def parse_where(items: Iterable[str | None], keys: Sequence[str]) -> dict[str, str]:
    """The pairs of `items`; a UsageError names the first part that is not ``KEY=VALUE`` with
    a KEY of `keys`, or a KEY given twice."""
    found: dict[str, str] = {}
    for item in items:
        for part in (item or "").split(","):
            if not part.strip():
                continue
            key, sep, value = (s.strip() for s in part.partition("="))
            if not sep or key not in keys:
                raise click.UsageError(f"--where {part.strip()!r}: expected KEY=VALUE with KEY "
                                       f"one of {', '.join(keys)}")  # fmt: skip
            if key in found:
                raise click.UsageError(f"--where {key}: given twice ({found[key]!r}, {value!r})")
            found[key] = value
    return found


def moment(value: str, flag: str) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise); UsageError naming `flag`."""
    try:
        parsed = (datetime.fromisoformat(value) if "T" in value or " " in value
                  else datetime.combine(date.fromisoformat(value), datetime.min.time()))
    except ValueError:
        raise click.UsageError(f"{flag} {value!r}: expected an ISO date (2026-12-01) or "
                               "date-time (2026-12-01T08:00:00Z)") from None  # fmt: skip
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def window(found: dict[str, str]) -> tuple[datetime | None, datetime | None]:
    """`since` and `until` of parsed pairs (None where not given); UsageError when `until` is
    not after `since`."""
    since = moment(found["since"], "--where since") if "since" in found else None
    until = moment(found["until"], "--where until") if "until" in found else None
    if since is not None and until is not None and until <= since:
        raise click.UsageError(f"--where until={found['until']} is not after "
                               f"since={found['since']}")  # fmt: skip
    return since, until


def in_window(opened_at: datetime, since: datetime | None, until: datetime | None) -> bool:
    """Whether a session opened at `opened_at` (UTC if it does not say) is in [since, until)."""
    if opened_at.tzinfo is None:
        opened_at = opened_at.replace(tzinfo=UTC)
    return (since is None or opened_at >= since) and (until is None or opened_at < until)
