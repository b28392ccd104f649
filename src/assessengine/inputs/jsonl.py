"""JSON Lines input (the format of `core.events`): read in blocks of whole lines, each block
parsed into columns when it is provably clean (`jsonl_columns`), else line by line with the
exact messages (`jsonl_exact`). Registered as format ``jsonl`` (``.jsonl``, ``.ndjson``,
``.json``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Final

from ..core.recorded import Chunk
from ..core.scenario import Scenario
from . import jsonl_columns, jsonl_exact
from .ledger import Ledger
from .registry import InputFormat, register

BLOCK_BYTES: Final = 8 << 20
"""Bytes read per block (a block ends at a line break; a longer line makes a longer block)."""


def read_jsonl(
    stream: BinaryIO,
    *,
    scenario: Scenario,
    source: str,
    skip_invalid: bool = False,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Chunk]:
    """The events file in `stream` as chunks (`core.recorded`), one per block of lines.
    Raises EventsError naming ``SOURCE:LINE`` at the first bad line, unless `skip_invalid`
    (then bad lines are skipped and listed in `Chunk.problems`): the lines, messages and
    values of `core.events.parse_events_lines`."""
    ledger = Ledger()
    line = 0
    for block in blocks(stream, block_bytes):
        done = jsonl_columns.read_block(block, ledger, scenario)
        if done is None:
            done = jsonl_exact.read_block(block, line, ledger, scenario=scenario,
                                          source=source, skip_invalid=skip_invalid)  # fmt: skip
        chunk, n_lines = done
        line += n_lines
        yield chunk


def blocks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """`stream` in pieces of about `size` bytes, each ending just after a ``\\n`` (the last
    one: wherever the stream ends)."""
    rest = b""
    while True:
        data = stream.read(size)
        if not data:
            break
        data = rest + data if rest else data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        yield data[:cut]
    if rest:
        yield rest


register(
    InputFormat(
        name="jsonl",
        suffixes=(".jsonl", ".ndjson", ".json"),
        read=read_jsonl,
        description="JSON Lines: open, event and close records (docs/protocol.md)",
    )
)
