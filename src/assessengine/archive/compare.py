"""What a re-score changed: per criterion, how many sessions' verdicts differ from the
archived reports, and how (``pass -> fail: 3``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Summary:
    """Counts over a re-score run: sessions, events, seconds, and verdict changes."""

    sessions: int = 0
    events: int = 0
    seconds: float = 0.0
    without_report: int = 0          # archived without a stored report: nothing to compare
    changed_sessions: int = 0
    changes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, new: Mapping[str, Any], stored_json: str | None) -> None:
        """Count one session: its new report (`SessionReport.to_data()`) against the archived
        report (JSON text, or None)."""
        self.sessions += 1
        self.outcomes[str(new.get("outcome"))] += 1
        if stored_json is None:
            self.without_report += 1
            return
        before = _verdicts(json.loads(stored_json))
        after = _verdicts(new)
        changed = False
        for cid in [*before, *(k for k in after if k not in before)]:
            b, a = before.get(cid, "absent"), after.get(cid, "absent")
            if a != b:
                self.changes[(cid, b, a)] += 1
                changed = True
        self.changed_sessions += changed

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def per_criterion(self) -> dict[str, dict[str, int]]:
        """criterion -> {"before -> after": sessions}, criteria by most changes first."""
        out: dict[str, dict[str, int]] = {}
        for (cid, b, a), n in sorted(self.changes.items(), key=lambda i: (-i[1], i[0])):
            out.setdefault(cid, {})[f"{b} -> {a}"] = n
        return out

    def to_data(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions, "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second),
            "outcomes": dict(sorted(self.outcomes.items())),
            "changed_sessions": self.changed_sessions,
            "without_archived_report": self.without_report,
            "changed_verdicts": self.per_criterion(),
        }  # fmt: skip

    def render(self) -> str:
        lines = [
            f"{self.sessions} session(s), {self.events} events in {self.seconds:.2f} s "
            f"({self.events_per_second:,.0f} events/s)",
            "outcomes: " + (", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
                            or "-"),
            f"sessions whose verdicts differ from the archived reports: {self.changed_sessions}"
            + (f" ({self.without_report} archived without a report)"
               if self.without_report else ""),
        ]  # fmt: skip
        for cid, moves in self.per_criterion().items():
            total = sum(moves.values())
            detail = ", ".join(f"{move}: {n}" for move, n in moves.items())
            lines.append(f"  {cid}: {total} session(s) ({detail})")
        return "\n".join(lines)


def _verdicts(report: Mapping[str, Any]) -> dict[str, str]:
    criteria = report.get("criteria")
    if not isinstance(criteria, list):
        return {}
    return {str(c.get("id")): str(c.get("verdict")) for c in criteria if isinstance(c, dict)}
