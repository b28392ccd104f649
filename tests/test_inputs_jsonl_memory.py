"""The JSON Lines reader's memory is bounded by its block, not by the file: Python's traced
allocations (tracemalloc sees numpy's arrays and bytes alike) while a file of many blocks is
read, each chunk dropped as a scorer drops it."""

from __future__ import annotations

import io
import json
import tracemalloc

from assessengine.inputs.jsonl import read_jsonl
from tests.strategies import SCENARIO

BLOCK = 256 << 10


def _file(n_blocks: int) -> bytes:
    """Three interleaved sessions' events, `n_blocks` blocks' worth, with opens and closes."""
    lines = [json.dumps({"session": f"S{k}", "open": {"learner": f"L{k}"}}) for k in range(3)]
    size, seq = sum(map(len, lines)), 0
    while size < n_blocks * BLOCK:
        for k in range(3):
            line = json.dumps({"session": f"S{k}", "seq": seq, "t": seq / 10, "event": "sample",
                               "signals": {"x": seq % 7 * 0.25, "y": -1.5, "z": 3}})  # fmt: skip
            lines.append(line)
            size += len(line) + 1
        seq += 1
    lines += [json.dumps({"session": f"S{k}", "close": {"t": seq / 10}}) for k in range(3)]
    return ("\n".join(lines) + "\n").encode()


def _peak_while_reading(data: bytes) -> int:
    """The traced peak above the start while every chunk of `data` is read and dropped."""
    stream = io.BytesIO(data)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        events = 0
        for chunk in read_jsonl(stream, scenario=SCENARIO, source="f.jsonl", block_bytes=BLOCK):
            events += len(chunk.batch)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert events > 0
    return peak


def test_reading_holds_about_two_blocks_whatever_the_file_size() -> None:
    """Two blocks (the one read, the one built from it) and one block's columns at most; the
    same peak for a file of 10 blocks and one of 30."""
    _peak_while_reading(_file(1))  # one-time allocations (numba's dispatchers, ...) first
    small, large = _peak_while_reading(_file(10)), _peak_while_reading(_file(30))
    assert large <= 3 * BLOCK
    assert abs(large - small) <= BLOCK // 8

