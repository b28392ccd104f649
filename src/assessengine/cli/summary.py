"""What the CLI says about many sessions' reports, shared by `score` and `demo`: how many
sessions failed each criterion."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


def count_failed(sessions: Iterable[Iterable[tuple[str, str]]]) -> Counter[str]:
    """Criterion id -> the number of sessions that failed it; each session is given as its
    criteria's (id, verdict) pairs."""
    counts: Counter[str] = Counter()
    for criteria in sessions:
        counts.update({criterion for criterion, verdict in criteria if verdict == "fail"})
    return counts


def render_failed(counts: Mapping[str, int], *, most: int | None = None) -> str:
    """``id (n), id (n), ...``, the most failed first (ties by id), at most `most` of them;
    ``-`` when no session failed anything."""
    ranked = sorted((item for item in counts.items() if item[1] > 0),
                    key=lambda item: (-item[1], item[0]))  # fmt: skip
    return ", ".join(f"{criterion} ({n})" for criterion, n in ranked[:most]) or "-"
