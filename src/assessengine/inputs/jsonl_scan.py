"""A compiled parser of the events layout: one pass over a block's bytes builds the event
columns directly (no JSON tree, no object per line), the rare open and close lines left to
Python's json.

It reads exactly the records an event line is made of (``session``, ``seq``, ``t``,
``event``, ``signals`` in any order, strings without escapes, numbers in JSON's grammar) and
declines the block (returns None, the caller tries the next parser) on anything else: an escape
or a control character in a string, a duplicate key, an unknown field or signal, a value of the
wrong type, ``null`` where a number is required, a number it cannot convert exactly. So every
block it accepts is one the exact path (`jsonl_exact`) accepts with the same values:

- integers (``seq``) of at most 18 digits, read exactly;
- numbers with at most 2**53 as their digits and a power of ten up to 22 (``21.474``,
  ``0.1``, ``12``): converted in one correctly rounded operation (Clinger's fast path), as
  Python's ``float`` rounds them; every other number (``0.30000000000000004``, ``1e-300``)
  is converted afterwards, in bulk, by Arrow's cast (fast_float: correctly rounded too);
- an integer written ``-0`` is 0.0 (Python reads the integer 0), ``-0.0`` is -0.0.

Like the exact path, it takes ``\n`` and ``\r\n`` as line breaks; a carriage return anywhere
else (a line break to Python's text files) declines the block, as does invalid UTF-8 or a line
that is not a bare ``{...}`` (a blank line, a byte-order mark, ``null``).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit, types
from numba.typed import Dict
from numpy.typing import NDArray

from ..core.events import check_close, check_keys, check_open, load_record
from ..core.ids import is_id
from ..core.scenario import Scenario
from .parsed import ParsedBlock

_POW10: Final = np.array([10.0**k for k in range(23)], np.float64)
_EXACT: Final = 1 << 53
_HARD_CHARS: Final = 64
"""Longest number text converted by the bulk cast; a longer one declines the block."""

# top-level keys, as bits of a line's "seen" mask
_SESSION, _SEQ, _T, _EVENT, _SIGNALS, _OPEN, _CLOSE = 1, 2, 4, 8, 16, 32, 64
_EVENT_KEYS: Final = _SESSION | _SEQ | _T | _EVENT
# the words compared byte by byte, as arrays (numba freezes global arrays as constants; a str
# argument would compile its unicode machinery into the tokenizer: seconds of a first run)
_W_SEQ, _W_SESSION, _W_SIGNALS, _W_EVENT, _W_OPEN, _W_CLOSE, _W_NULL = (
    np.frombuffer(w, np.uint8) for w in (b"seq", b"session", b"signals", b"event", b"open",
                                         b"close", b"null")
)  # fmt: skip


def parse(block: bytes, scenario: Scenario) -> ParsedBlock | None:
    """The parsed block (`jsonl_columns.ParsedBlock`) of a plain `block`, every check that
    needs no session's past applied; None when the block holds anything this parser does
    not read exactly (see the module docstring)."""
    if not block or not _utf8(block):
        return None
    names, offsets = _signal_table(scenario)
    buf = np.frombuffer(block, np.uint8)
    out = _tokenize(buf, names, offsets, _POW10)
    status, n_rows, n_ev, kind, line_at, sess_at, ev_at, seq, t, signals, hard = out
    if status != 0:
        return None
    kind, line_at, sess_at = kind[:n_rows], line_at[:, :n_rows], sess_at[:, :n_rows]
    seq, t, signals = seq[:n_ev], t[:n_ev], signals[:, :n_ev]
    if hard.shape[1] and not _convert_hard(buf, hard, t, signals):
        return None
    if np.any(t < 0) or not np.all(np.isfinite(t)) or np.any(np.isinf(signals)):
        return None
    sessions = _interned(block, buf, sess_at)
    code = _codes(block, buf, ev_at[:, :n_ev], scenario)
    if sessions is None or code is None:
        return None
    ids, row_local = sessions
    rare = _rare(block, kind, line_at, row_local, ids)
    if rare is None:
        return None
    opens, close_rows, close_t = rare
    ev_rows = np.flatnonzero(kind == 0)
    return ParsedBlock(ids, row_local, kind, ev_rows, seq, t, code, signals, opens,
                       close_rows, close_t, n_rows)  # fmt: skip


def _utf8(block: bytes) -> bool:
    """Whether `block` is UTF-8 (bytes above 127 can only stand in strings here: elsewhere
    the tokenizer declines them)."""
    if block.isascii():
        return True
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _signal_table(scenario: Scenario) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The scenario's signal names as one byte array and their offsets (n_signals + 1)."""
    encoded = [name.encode() for name in scenario.signal_names]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    return np.frombuffer(b"".join(encoded) or b"\0", np.uint8), offsets


def _convert_hard(
    buf: NDArray[np.uint8],
    hard: NDArray[np.int64],
    t: NDArray[np.float64],
    signals: NDArray[np.float64],
) -> bool:
    """Convert the numbers outside the fast path in bulk (Arrow's correctly rounded cast) and
    put them in place (`hard`: rows start, end, event index, field: 0 for t, 1 + k for
    signal k); False if one is too long to convert."""
    lengths = hard[1] - hard[0]
    if np.any(lengths > _HARD_CHARS):
        return False
    offsets = np.zeros(hard.shape[1] + 1, np.int32)
    offsets[1:] = np.cumsum(lengths)
    data = _gather(buf, hard[0], hard[1], int(offsets[-1]))
    text = pa.Array.from_buffers(pa.string(), hard.shape[1],
                                 [None, pa.py_buffer(offsets), pa.py_buffer(data)])  # fmt: skip
    values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
    field, row = hard[3], hard[2]
    in_t = field == 0
    t[row[in_t]] = values[in_t]
    signals[field[~in_t] - 1, row[~in_t]] = values[~in_t]
    return True


@njit(cache=True, nogil=True)
def _gather(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64], size: int
) -> NDArray[np.uint8]:
    """The byte ranges [starts[i], ends[i]) of `buf`, one after the other."""
    out = np.empty(size, np.uint8)
    at = 0
    for i in range(starts.shape[0]):
        for j in range(starts[i], ends[i]):
            out[at] = buf[j]
            at += 1
    return out


def _interned(
    block: bytes, buf: NDArray[np.uint8], spans: NDArray[np.int64]
) -> tuple[list[str], NDArray[np.int64]] | None:
    """The distinct session ids (first appearance order) and each row's index into them;
    None if an id is not a valid id (or two ids' hashes collide: rare, and then declined)."""
    local, first = _intern(buf, spans[0], spans[1])
    if local.shape[0] and local[0] < 0:
        return None
    ids = [block[spans[0][f] : spans[1][f]].decode("utf-8") for f in first.tolist()]
    if not all(is_id(s) for s in ids):
        return None
    return ids, local


def _codes(
    block: bytes, buf: NDArray[np.uint8], spans: NDArray[np.int64], scenario: Scenario
) -> NDArray[np.int32] | None:
    """Each event's code, or None for a name the scenario does not know."""
    local, first = _intern(buf, spans[0], spans[1])
    if local.shape[0] and local[0] < 0:
        return None
    table = scenario.event_code
    names = [block[spans[0][f] : spans[1][f]].decode("utf-8") for f in first.tolist()]
    if not all(name in table for name in names):
        return None
    lookup = np.array([table[name] for name in names], np.int32)
    codes: NDArray[np.int32] = lookup[local] if local.shape[0] else np.empty(0, np.int32)
    return codes


@njit(cache=True, nogil=True)
def _intern(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Number the distinct byte strings [starts[i], ends[i]) by first appearance: each one's
    number and the index of each number's first occurrence. local[0] = -1 if two distinct
    strings share a hash (the caller declines)."""
    n = starts.shape[0]
    local = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    table = Dict.empty(key_type=types.int64, value_type=types.int64)
    k = 0
    prev = -1
    for i in range(n):
        s, e = starts[i], ends[i]
        if prev >= 0 and _same(buf, s, e, starts[prev], ends[prev]):
            local[i] = local[prev]
            continue
        h = np.int64(-3750763034362895579)  # FNV-1a
        for j in range(s, e):
            h = (h ^ np.int64(buf[j])) * np.int64(1099511628211)
        found = table[h] if h in table else -1
        if found < 0:
            table[h] = k
            first[k] = i
            local[i] = k
            k += 1
        elif _same(buf, s, e, starts[first[found]], ends[first[found]]):
            local[i] = found
        else:
            local[0] = -1
            return local, first[:0]
        prev = i
    return local, first[:k]


@njit(cache=True, nogil=True, inline="always")
def _same(buf: NDArray[np.uint8], s: int, e: int, s2: int, e2: int) -> bool:
    return e - s == e2 - s2 and _same_as(buf, s, buf, s2, e - s)


def _rare(
    block: bytes,
    kind: NDArray[np.int8],
    line_at: NDArray[np.int64],
    row_local: NDArray[np.int64],
    ids: list[str],
) -> tuple[list[tuple[int, dict[str, Any]]], NDArray[np.intp], NDArray[np.float64]] | None:
    """The open and close lines (kind 3), read by Python's json with the exact path's checks:
    their metadata and close times, `kind` set to 1 (open) or 2 (close); None if one of them
    is not valid as it stands."""
    opens: list[tuple[int, dict[str, Any]]] = []
    closes: list[tuple[int, float]] = []
    for row in np.flatnonzero(kind == 3).tolist():
        try:
            record = load_record(block[line_at[0, row] : line_at[1, row]].decode("utf-8"))
            if not isinstance(record, dict) or record.get("session") != ids[row_local[row]]:
                return None
            if "open" in record:
                check_keys(record, {"session", "open"})
                opens.append((row, dict(check_open(record))))
                kind[row] = 1
            else:
                closes.append((row, check_close(record)))
                kind[row] = 2
        except ValueError:
            return None
    close_rows = np.array([r for r, _ in closes], np.intp)
    close_t = np.array([t for _, t in closes], np.float64)
    if not np.all(np.isfinite(close_t)):
        return None
    return opens, close_rows, close_t


@njit(cache=True, nogil=True)
def _tokenize(
    buf: NDArray[np.uint8],
    names: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    pow10: NDArray[np.float64],
) -> tuple[
    int, int, int, NDArray[np.int8], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64],
    NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64],
]:  # fmt: skip
    """Every line of a plain block: (status, rows, events, kind (0 event, 3 open or close),
    line spans (2, rows), session spans (2, rows), event-name spans (2, events), seq, t,
    signals (n_signals, events; NaN where absent), numbers to convert in bulk (4, h: start,
    end, event, field)). status 0: read; else the block is declined."""
    n = buf.shape[0]
    n_sig = offsets.shape[0] - 1
    rows = 1
    for i in range(n - 1):
        if buf[i] == 10:
            rows += 1
    kind = np.zeros(rows, np.int8)
    line_at = np.empty((2, rows), np.int64)
    sess_at = np.empty((2, rows), np.int64)
    ev_at = np.empty((2, rows), np.int64)
    seq = np.empty(rows, np.int64)
    t = np.empty(rows, np.float64)
    signals = np.full((n_sig, rows), np.nan, np.float64)
    hard = np.empty((4, 64), np.int64)
    n_hard = 0
    sig_seen = np.full(max(n_sig, 1), -1, np.int64)
    row = 0
    ev = 0
    i = 0
    empty = (kind, line_at, sess_at, ev_at, seq, t, signals, hard[:, :0])
    while i < n:
        line_at[0, row] = i
        if buf[i] != 123:  # every line a bare {...}
            return (21, 0, 0, *empty)
        i += 1
        seen = 0
        while True:
            i = _skip_ws(buf, i, n)
            if i >= n or buf[i] != 34:  # a key's opening quote
                return (1, 0, 0, *empty)
            ks = i + 1
            i = _string_end(buf, ks, n)
            if i < 0:
                return (2, 0, 0, *empty)
            key = _key(buf, ks, i)
            i = _skip_ws(buf, i + 1, n)
            if i >= n or buf[i] != 58:  # :
                return (3, 0, 0, *empty)
            i = _skip_ws(buf, i + 1, n)
            if key == 0 or seen & key:
                return (4, 0, 0, *empty)
            seen |= key
            if i >= n:
                return (5, 0, 0, *empty)
            if key == _SESSION or key == _EVENT:
                if buf[i] != 34:
                    return (6, 0, 0, *empty)
                end = _string_end(buf, i + 1, n)
                if end < 0:
                    return (6, 0, 0, *empty)
                if key == _SESSION:
                    sess_at[0, row] = i + 1
                    sess_at[1, row] = end
                else:
                    ev_at[0, ev] = i + 1
                    ev_at[1, ev] = end
                i = end + 1
            elif key == _SEQ:
                i, w = _count(buf, i, n)
                if i < 0:
                    return (7, 0, 0, *empty)
                seq[ev] = w
            elif key == _T:
                start = i
                i, _, _, fast, _, value = _number(buf, i, n, pow10)
                if i < 0:
                    return (8, 0, 0, *empty)
                if fast:
                    t[ev] = value
                else:
                    if n_hard == hard.shape[1]:
                        hard = _grow(hard)
                    hard[0, n_hard], hard[1, n_hard] = start, i
                    hard[2, n_hard], hard[3, n_hard] = ev, 0
                    n_hard += 1
            elif key == _SIGNALS:
                if buf[i] != 123:  # {
                    return (9, 0, 0, *empty)
                i = _skip_ws(buf, i + 1, n)
                if i < n and buf[i] == 125:  # {}
                    i += 1
                else:
                    guess = 0
                    while True:
                        if i >= n or buf[i] != 34:
                            return (10, 0, 0, *empty)
                        end = _string_end(buf, i + 1, n)
                        if end < 0:
                            return (10, 0, 0, *empty)
                        k = _signal(buf, i + 1, end, names, offsets, guess)
                        if k < 0 or sig_seen[k] == row:
                            return (11, 0, 0, *empty)
                        sig_seen[k] = row
                        guess = k + 1
                        i = _skip_ws(buf, end + 1, n)
                        if i >= n or buf[i] != 58:
                            return (12, 0, 0, *empty)
                        i = _skip_ws(buf, i + 1, n)
                        if _is_null(buf, i, n):
                            i += 4
                        else:
                            start = i
                            i, _, _, fast, _, value = _number(buf, i, n, pow10)
                            if i < 0:
                                return (13, 0, 0, *empty)
                            if fast:
                                signals[k, ev] = value
                            else:
                                if n_hard == hard.shape[1]:
                                    hard = _grow(hard)
                                hard[0, n_hard], hard[1, n_hard] = start, i
                                hard[2, n_hard], hard[3, n_hard] = ev, k + 1
                                n_hard += 1
                        i = _skip_ws(buf, i, n)
                        if i < n and buf[i] == 44:  # ,
                            i = _skip_ws(buf, i + 1, n)
                            continue
                        if i < n and buf[i] == 125:
                            i += 1
                            break
                        return (14, 0, 0, *empty)
            else:  # open or close: Python reads the line
                i = _skip_value(buf, i, n)
                if i < 0:
                    return (15, 0, 0, *empty)
            i = _skip_ws(buf, i, n)
            if i < n and buf[i] == 44:
                i += 1
                continue
            if i < n and buf[i] == 125:
                i += 1
                break
            return (16, 0, 0, *empty)
        # the object ends the line
        line_at[1, row] = i
        if i < n and buf[i] == 13:
            i += 1
        if i < n:
            if buf[i] != 10:
                return (17, 0, 0, *empty)
            i += 1
        if not seen & _SESSION:
            return (18, 0, 0, *empty)
        if seen & (_OPEN | _CLOSE):
            kind[row] = 3
        elif seen & _EVENT_KEYS != _EVENT_KEYS:
            return (19, 0, 0, *empty)
        else:
            ev += 1
        if seen & (_OPEN | _CLOSE) and seen & ~(_SESSION | _OPEN | _CLOSE):
            return (20, 0, 0, *empty)
        row += 1
    return (0, row, ev, kind, line_at, sess_at, ev_at, seq, t, signals, hard[:, :n_hard])


@njit(cache=True, nogil=True)
def _grow(hard: NDArray[np.int64]) -> NDArray[np.int64]:
    """`hard` with room for twice its numbers (copied element by element: a slice assignment
    compiles numba's general setitem, seconds of a first run)."""
    bigger = np.empty((4, 2 * hard.shape[1]), np.int64)
    for r in range(4):
        for j in range(hard.shape[1]):
            bigger[r, j] = hard[r, j]
    return bigger


@njit(cache=True, nogil=True, inline="always")
def _skip_ws(buf: NDArray[np.uint8], i: int, n: int) -> int:
    while i < n and (buf[i] == 32 or buf[i] == 9):
        i += 1
    return i


@njit(cache=True, nogil=True, inline="always")
def _string_end(buf: NDArray[np.uint8], i: int, n: int) -> int:
    """The index of the quote closing a string whose text starts at `i`; -1 if it holds an
    escape or a control character, or does not close on the line."""
    while i < n:
        c = buf[i]
        if c == 34:
            return i
        if c == 92 or c < 32:
            return -1
        i += 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _key(buf: NDArray[np.uint8], s: int, e: int) -> int:
    """The bit of a top-level key, 0 for any other."""
    size = e - s
    c = int(buf[s]) if size else 0
    if size == 1 and c == 116:  # t
        return _T
    if size == 3 and c == 115 and _is(buf, s, _W_SEQ):
        return _SEQ
    if size == 7 and c == 115 and _is(buf, s, _W_SESSION):
        return _SESSION
    if size == 7 and c == 115 and _is(buf, s, _W_SIGNALS):
        return _SIGNALS
    if size == 5 and c == 101 and _is(buf, s, _W_EVENT):
        return _EVENT
    if size == 4 and c == 111 and _is(buf, s, _W_OPEN):
        return _OPEN
    if size == 5 and c == 99 and _is(buf, s, _W_CLOSE):
        return _CLOSE
    return 0


@njit(cache=True, nogil=True, inline="always")
def _is_null(buf: NDArray[np.uint8], i: int, n: int) -> bool:
    return i + 3 < n and _is(buf, i, _W_NULL)


@njit(cache=True, nogil=True, inline="always")
def _is(buf: NDArray[np.uint8], s: int, word: NDArray[np.uint8]) -> bool:
    for j in range(word.shape[0]):
        if buf[s + j] != word[j]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _signal(
    buf: NDArray[np.uint8],
    s: int,
    e: int,
    names: NDArray[np.uint8],
    offsets: NDArray[np.int64],
    guess: int,
) -> int:
    """The index of the signal named buf[s:e] (tried first at `guess`: lines repeat their
    order), -1 if the scenario has none of that name."""
    n_sig: int = offsets.shape[0] - 1
    for step in range(n_sig):
        k = guess + step
        if k >= n_sig:
            k -= n_sig
        a, b = offsets[k], offsets[k + 1]
        if b - a == e - s and _same_as(buf, s, names, a, e - s):
            return k
    return -1


@njit(cache=True, nogil=True, inline="always")
def _same_as(buf: NDArray[np.uint8], s: int, other: NDArray[np.uint8], a: int, size: int) -> bool:
    for j in range(size):
        if buf[s + j] != other[a + j]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _number(
    buf: NDArray[np.uint8], i: int, n: int, pow10: NDArray[np.float64]
) -> tuple[int, int, bool, bool, bool, float]:
    """A JSON number from `i`: (end, digits as an integer, is an integer literal, converted
    exactly here (`fast`), negative, value when fast). end = -1 when the text is not a JSON
    number ending at a delimiter."""
    neg = False
    if i < n and buf[i] == 45:  # -
        neg = True
        i += 1
    if i >= n or not 48 <= buf[i] <= 57:
        return -1, 0, False, False, False, 0.0
    w = 0
    big = False
    if buf[i] == 48:
        i += 1
        if i < n and 48 <= buf[i] <= 57:  # a leading zero
            return -1, 0, False, False, False, 0.0
    else:
        while i < n and 48 <= buf[i] <= 57:
            if w >= 100_000_000_000_000_000:
                big = True
            else:
                w = w * 10 + (buf[i] - 48)
            i += 1
    is_int = True
    exp10 = 0
    if i < n and buf[i] == 46:  # .
        is_int = False
        i += 1
        if i >= n or not 48 <= buf[i] <= 57:
            return -1, 0, False, False, False, 0.0
        while i < n and 48 <= buf[i] <= 57:
            if w >= 100_000_000_000_000_000:
                big = True
            else:
                w = w * 10 + (buf[i] - 48)
                exp10 -= 1
            i += 1
    if i < n and (buf[i] == 101 or buf[i] == 69):  # e E
        is_int = False
        i += 1
        eneg = False
        if i < n and (buf[i] == 43 or buf[i] == 45):
            eneg = buf[i] == 45
            i += 1
        if i >= n or not 48 <= buf[i] <= 57:
            return -1, 0, False, False, False, 0.0
        e = 0
        while i < n and 48 <= buf[i] <= 57:
            if e < 100_000:
                e = e * 10 + (buf[i] - 48)
            i += 1
        exp10 += -e if eneg else e
    if not _ends_number(buf, i, n):
        return -1, 0, False, False, False, 0.0
    if big or w > _EXACT or exp10 > 22 or exp10 < -22:
        return i, w, is_int, False, neg, 0.0
    value = float(w) * pow10[exp10] if exp10 >= 0 else float(w) / pow10[-exp10]
    if neg and not (is_int and w == 0):  # the integer -0 is 0 to Python
        value = -value
    return i, w, is_int, True, neg, value


@njit(cache=True, nogil=True, inline="always")
def _ends_number(buf: NDArray[np.uint8], i: int, n: int) -> bool:
    """Whether a number's text may end before `i`: the line's end or a delimiter there."""
    return i >= n or (buf[i] == 44 or buf[i] == 125 or buf[i] == 32 or buf[i] == 9 or
                      buf[i] == 93 or buf[i] == 13 or buf[i] == 10)  # fmt: skip


@njit(cache=True, nogil=True, inline="always")
def _count(buf: NDArray[np.uint8], i: int, n: int) -> tuple[int, int]:
    """A JSON integer literal from `i` that is not negative and at most 2^53 (what `_number`
    reads exactly as an integer): (end, value); end = -1 for any other text, or one that does
    not end at a delimiter."""
    if i >= n or not 48 <= buf[i] <= 57 or (buf[i] == 48 and i + 1 < n and 48 <= buf[i + 1] <= 57):
        return -1, 0
    w = 0
    while i < n and 48 <= buf[i] <= 57:
        w = w * 10 + (buf[i] - 48)
        if w > _EXACT:
            return -1, 0
        i += 1
    if not _ends_number(buf, i, n):
        return -1, 0
    return i, w


@njit(cache=True, nogil=True)
def _skip_value(buf: NDArray[np.uint8], i: int, n: int) -> int:
    """The end of the JSON value (object, array, string or scalar) starting at `i`, to the
    extent needed to find the next key (Python's json validates the line afterwards); -1 if
    it runs past the line."""
    depth = 0
    while i < n:
        c = buf[i]
        if c == 10 or c == 13:  # a carriage return breaks the line for Python's text files
            return -1
        if c == 34:
            i += 1
            while i < n and buf[i] != 34:
                if buf[i] == 92:
                    i += 1
                if i < n and (buf[i] == 10 or buf[i] == 13):
                    return -1
                i += 1
            if i >= n:
                return -1
        elif c == 123 or c == 91:
            depth += 1
        elif c == 125 or c == 93:
            if depth == 0:
                return i
            depth -= 1
        elif c == 44 and depth == 0:
            return i
        i += 1
        if depth == 0 and (c == 34 or c == 125 or c == 93):
            return i
    return -1
