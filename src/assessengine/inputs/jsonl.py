"""JSON Lines input (the format of `core.events`): read in blocks of whole lines, each block
parsed into columns when it is provably clean (`jsonl_columns`), else line by line with the
exact messages (`jsonl_exact`). Registered as format ``jsonl`` (``.jsonl``, ``.ndjson``,
``.json``, and any file no other format claims).

With ``workers > 1`` and an input larger than `SERIAL_BLOCKS` blocks, the blocks after those
are parsed in that many processes (the parse is nearly all of the time), at most
``2 * workers`` blocks ahead, while this process checks each parsed block against its
sessions' past, in file order, and yields it: the chunks are the same as with one process,
and memory stays bounded by the blocks in flight. Sessions are not split between processes:
they interleave freely in a file, and each record's checks need its session's past, which
this one process keeps (the scoring, a small share of the time, stays here too).
"""

from __future__ import annotations

import io
import json
import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import chain, islice
from typing import BinaryIO, Final

from ..core.recorded import Chunk
from ..core.scenario import SAMPLE, Scenario
from . import jsonl_columns, jsonl_exact
from .ledger import Ledger
from .parsed import ParsedBlock, bind
from .registry import InputFormat, register

BLOCK_BYTES: Final = 8 << 20
"""Bytes read per block (a block ends at a line break; a longer line makes a longer block)."""
SERIAL_BLOCKS: Final = 4
"""Blocks parsed in this process before worker processes start (starting them costs about a
second: smaller inputs never pay it)."""


def warm_up_reader(scenario: Scenario) -> None:
    """Read a small events file of `scenario` (an open line, samples with its first signal if
    it has any, its last event, a close): what this process then needs of the compiled
    scanner (`jsonl_scan`) is compiled, on a fresh install (about 10 s), or loaded from
    numba's cache, before the first real file, such as a field upload `serve` parses inside
    its request."""
    event = scenario.event_names[-1]  # `sample` when the scenario lists no other event
    first = scenario.signal_names[:1]
    lines = [json.dumps({"session": "warm-up", "open": {"learner": "warm-up"}})]
    lines += [json.dumps({"session": "warm-up", "seq": k, "t": k / 10, "event": SAMPLE,
                          "signals": dict.fromkeys(first, 1.5 * k)})
              for k in range(3)]  # fmt: skip
    lines.append(json.dumps({"session": "warm-up", "seq": 3, "t": 0.3, "event": event}))
    lines.append(json.dumps({"session": "warm-up", "close": {"t": 0.4}}))
    data = io.BytesIO("\n".join(lines).encode() + b"\n")
    for _ in read_jsonl(data, scenario=scenario, source="<warm-up>"):
        pass


def read_jsonl(
    stream: BinaryIO,
    *,
    scenario: Scenario,
    source: str,
    skip_invalid: bool = False,
    workers: int = 1,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Chunk]:
    """The events file in `stream` as chunks (`core.recorded`), one per block of lines.
    Raises EventsError naming ``SOURCE:LINE`` at the first bad line, unless `skip_invalid`
    (then bad lines are skipped and listed in `Chunk.problems`): the lines, messages and
    values of `core.events.parse_events_lines`."""
    ledger = Ledger()
    line = 0
    for block, parsed in _parsed_blocks(blocks(stream, block_bytes), scenario, workers):
        bound = None if parsed is None else bind(parsed, ledger)
        if bound is None or parsed is None:
            exact = jsonl_exact.read_block
            chunk, n_lines = exact(block, line, ledger, scenario=scenario, source=source,
                                   skip_invalid=skip_invalid)  # fmt: skip
        else:
            chunk, n_lines = bound, parsed.n_lines
        line += n_lines
        yield chunk
        del block, parsed, bound, chunk  # before the next block is read: memory stays bounded


def _parsed_blocks(
    pieces: Iterator[bytes], scenario: Scenario, workers: int
) -> Iterator[tuple[bytes, ParsedBlock | None]]:
    """Each block with its parse, in order; after the first `SERIAL_BLOCKS`, parsed in
    `workers` processes when above 1."""
    for block in pieces if workers <= 1 else islice(pieces, SERIAL_BLOCKS):
        yield block, jsonl_columns.parse_block(block, scenario)
        del block  # (not enumerate(): its reused result tuple would keep the block alive)
    following = None if workers <= 1 else next(pieces, None)
    if following is None:
        return  # small inputs never start the processes
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context)
    try:
        ahead: deque[tuple[bytes, Future[ParsedBlock | None]]] = deque()
        for block in chain((following,), pieces):
            following = None
            ahead.append((block, pool.submit(jsonl_columns.parse_block, block, scenario)))
            if len(ahead) >= 2 * workers:
                done, future = ahead.popleft()
                yield done, future.result()
        while ahead:
            done, future = ahead.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def blocks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """`stream` in pieces of about `size` bytes, each ending just after a ``\\n`` (the last
    one: wherever the stream ends). Memory: the piece being built and the one read, each
    about `size` (a piece is copied once, only when it joins a line cut by the previous read;
    the caller should drop a piece before asking for the next)."""
    pending: list[bytes] = []  # the start of a line cut by a read
    while data := stream.read(size):
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            pending.append(data)
            continue
        if pending or cut < len(data):
            with memoryview(data) as view:
                block = b"".join((*pending, view[:cut]))
                pending = [bytes(view[cut:])] if cut < len(data) else []
        else:
            block = data
        del data
        yield block
        del block
    if pending:
        yield b"".join(pending)


register(
    InputFormat(
        name="jsonl",
        suffixes=(".jsonl", ".ndjson", ".json"),
        read=read_jsonl,
        description="JSON Lines: open, event and close records (docs/protocol.md)",
    )
)
