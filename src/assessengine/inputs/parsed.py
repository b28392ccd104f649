"""A block of JSON Lines parsed into columns (by `jsonl_scan` or `jsonl_columns`' pyarrow
path), and how it joins the reader's ledger: `bind` checks every record against its session's
past, as the exact path (`jsonl_exact`) checks it, and commits the block or refuses it whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..core.events import EventBatch
from ..core.recorded import Chunk
from .ledger import Ledger


@dataclass(slots=True)
class ParsedBlock:
    """A parsed block: rows in line order (session as an index into the block's own `ids`,
    first appearance order), row kinds, and the event rows as columns."""

    ids: list[str]
    row_local: NDArray[np.int64]  # (rows,) index into ids
    kind: NDArray[np.int8]  # (rows,) 0 event, 1 open, 2 close
    ev_rows: NDArray[np.intp]
    seq: NDArray[np.int64]
    t: NDArray[np.float64]
    code: NDArray[np.int32]
    signals: NDArray[np.float64]
    opens: list[tuple[int, dict[str, Any]]]  # (row, metadata)
    close_rows: NDArray[np.intp]
    close_t: NDArray[np.float64]
    n_lines: int = 0

    def commit(self, ledger: Ledger, new_ids: list[str], row_sess: NDArray[np.int64]) -> Chunk:
        """Record the block in the ledger (`row_sess`: every row's ordinal); its chunk."""
        for session in new_ids:
            ledger.add(session)
        ev_sess = row_sess[self.ev_rows]
        last = _last_per_session(ev_sess)
        ledger.commit_events(ev_sess[last], self.seq[last], self.t[last])
        opens: dict[int, dict[str, Any]] = {}
        for row, meta in self.opens:
            k = int(row_sess[row])
            ledger.has_open[k] = bool(meta)
            opens[k] = meta
        closed = row_sess[self.close_rows]
        ledger.closed[closed] = True
        batch = EventBatch(ev_sess.astype(np.int32), self.seq, self.t, self.code, self.signals)
        return Chunk(tuple(new_ids), batch, opens, closed, self.close_t)


def bind(parsed: ParsedBlock, ledger: Ledger) -> Chunk | None:
    """The chunk of a parsed block, its records checked against their sessions' past and
    recorded in the ledger; None (ledger untouched) if a record does not fit."""
    ordinals = np.empty(len(parsed.ids), np.int64)
    new_ids: list[str] = []
    for j, sid in enumerate(parsed.ids):
        k = ledger.ordinal.get(sid)
        if k is None:
            k = len(ledger) + len(new_ids)
            new_ids.append(sid)
        ordinals[j] = k
    row_sess = ordinals[parsed.row_local]
    if not _in_order(parsed, row_sess, ledger):
        return None
    return parsed.commit(ledger, new_ids, row_sess)


def _in_order(p: ParsedBlock, row_sess: NDArray[np.int64], ledger: Ledger) -> bool:
    """Whether every record fits its session's past (as the exact path checks it): events
    in seq and t order, after the last committed event, not after a close; opens before the
    first event and not twice; one close, not before the last event."""
    n_old = len(ledger)
    ev_sess = row_sess[p.ev_rows]
    order = np.argsort(ev_sess, kind="stable")
    s, seq, t = ev_sess[order], p.seq[order], p.t[order]
    same = s[1:] == s[:-1]
    if np.any(same & (seq[1:] <= seq[:-1])) or np.any(same & (t[1:] < t[:-1])):
        return False
    first = np.concatenate(([True], ~same)) if s.shape[0] else np.zeros(0, np.bool_)
    fs = s[first]
    old = fs < n_old
    known = fs[old]
    seen = ledger.has_events[known]
    if np.any(ledger.closed[known]):
        return False
    if np.any(seq[first][old][seen] <= ledger.last_seq[known][seen]):
        return False
    if np.any(t[first][old][seen] < ledger.last_t[known][seen]):
        return False
    return _rare_rows_fit(p, row_sess, ledger, s, t, order, first)


def _rare_rows_fit(
    p: ParsedBlock,
    row_sess: NDArray[np.int64],
    ledger: Ledger,
    s: NDArray[np.int64],
    t: NDArray[np.float64],
    order: NDArray[np.intp],
    first: NDArray[np.bool_],
) -> bool:
    """The open and close rows, in line order, against the events around them."""
    if not p.opens and p.close_rows.shape[0] == 0:
        return True
    rows_sorted = p.ev_rows[order]
    last = np.concatenate((first[1:], [True])) if s.shape[0] else first
    first_row = dict(zip(s[first].tolist(), rows_sorted[first].tolist(), strict=True))
    last_row = dict(zip(s[last].tolist(), rows_sorted[last].tolist(), strict=True))
    last_t = dict(zip(s[last].tolist(), t[last].tolist(), strict=True))
    n_old = len(ledger)
    has_open: dict[int, bool] = {}
    closed: set[int] = set()
    rare: list[tuple[int, int, Any]] = [(row, 1, meta) for row, meta in p.opens]
    rare += [(int(r), 2, float(ct)) for r, ct in zip(p.close_rows, p.close_t, strict=True)]
    for row, kind, value in sorted(rare, key=lambda item: item[0]):
        k = int(row_sess[row])
        old = k < n_old
        events_before = (old and bool(ledger.has_events[k])) or first_row.get(k, row) < row
        if kind == 1:
            opened = has_open.get(k, old and bool(ledger.has_open[k]))
            if events_before or opened:
                return False
            has_open[k] = bool(value)
            continue
        if k in closed or (old and ledger.closed[k]) or last_row.get(k, -1) > row:
            return False
        before = last_t.get(k, float(ledger.last_t[k]) if old and ledger.has_events[k] else None)
        if before is not None and value < before:
            return False
        closed.add(k)
    return True


def _last_per_session(sessions: NDArray[np.int64]) -> NDArray[np.intp]:
    """The index of each session's last row in `sessions` (one per distinct session)."""
    reverse = sessions[::-1]
    _, at = np.unique(reverse, return_index=True)
    result: NDArray[np.intp] = sessions.shape[0] - 1 - at
    return result
