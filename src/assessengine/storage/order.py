"""The SQL of "newest" and "latest" for rows written at several places (`core.latest`).

At a hub and its sites each place numbers its rows in its own id range (the hub's below every
site's), so an id says where a row was written, not when: rows are ordered by the instant
stored with them, then by id (unique across places, the same tie-break everywhere). Every
stamp is fixed-width ISO 8601 UTC text (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), so text order is
time order on both dialects. Keyset pages continue after a row named by its id: the
``AFTER_*`` clauses take that id as their one parameter (a row value compared with the named
row's; an id of no row selects nothing).
"""

from __future__ import annotations

from typing import Final

RECORDED_ORDER: Final = "recorded_at, id"
"""Review rows (observations, overrides), oldest first."""

SESSIONS_NEWEST_FIRST: Final = "s.opened_at DESC, s.id DESC"
"""Sessions (alias ``s``), the one opened last first."""

AFTER_SESSION: Final = (
    "(s.opened_at, s.id) < (SELECT p.opened_at, p.id FROM sessions p WHERE p.id = ?)"
)
"""Sessions (alias ``s``) listed after the one with the given id, newest first."""

AUDIT_NEWEST_FIRST: Final = "at DESC, id DESC"
"""Audit entries, the one recorded last first."""

AFTER_AUDIT_ENTRY: Final = (
    "(at, id) < (SELECT a.at, a.id FROM review_audit a WHERE a.id = ?)"
)
"""Audit entries listed after the one with the given id, newest first."""
