"""Parquet and Arrow IPC input: files of the archive's events layout (`archive.layout`:
session, seq, t, event, signals{NAME: float64}), registered as formats ``parquet``
(``.parquet``, ``.pq``) and ``arrow`` (``.arrow``, ``.arrows``, ``.feather``, ``.ipc``; the
IPC file or stream format, told apart by the first bytes).

Each record batch of the file (at most `archive.reader.BATCH_ROWS` rows) becomes one chunk,
converted per column (`archive.batches.BatchConverter`); sessions are numbered by first
appearance and close at their last event (a file has no close records); the order rules of
JSON Lines apply across the whole file. Errors are EventsError naming the file and the row.

The chunks are read and converted on a background thread one chunk ahead of the caller
(`inputs.readahead`): pyarrow's decoding and the compiled conversions release the GIL, and so
does the kernel, so on two cores reading chunk k + 1 overlaps scoring chunk k. Memory holds
two chunks (the one scored and the one read), not one; the chunks and errors are the same.
A file on disk is memory-mapped; standard input is refused (Parquet is read from its end).
``skip_invalid`` has no effect: a column file has no lines to skip one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fsspec.implementations.local import LocalFileSystem

from ..archive.location import ArchiveError
from ..archive.reader import EventsReader
from ..core.recorded import Chunk
from ..core.scenario import Scenario
from ..errors import EventsError
from .readahead import read_ahead
from .registry import InputFormat, register


def read_columnar(
    stream: BinaryIO,
    *,
    scenario: Scenario,
    source: str,
    skip_invalid: bool = False,
    workers: int = 1,
    ahead: bool = True,
) -> Iterator[Chunk]:
    """The chunks of a Parquet or Arrow IPC file (see the module docstring); `ahead` False
    reads them in the caller's thread instead (the same chunks: the benchmark's baseline)."""
    del skip_invalid, workers  # nothing to skip one by one; one process reads
    name = getattr(stream, "name", None)
    on_disk = isinstance(name, str) and Path(name).is_file()
    reader = EventsReader(LocalFileSystem(), str(name) if on_disk else source, scenario,
                          session_ids=None, check_order=True,
                          handle=None if on_disk else stream)  # fmt: skip
    reader.where = source
    reader.convert.where = source
    try:
        yield from read_ahead(_chunks(reader), name="read-columnar") if ahead else _chunks(reader)
    except ArchiveError as exc:
        raise EventsError(str(exc)) from None


def _chunks(reader: EventsReader) -> Iterator[Chunk]:
    """The reader's batches as chunks, each announcing the sessions its batch names first
    (made on the read-ahead thread: the reader numbers sessions as it converts)."""
    announced = 0
    for batch in reader:
        seen = reader.sessions_seen
        yield Chunk(tuple(seen[announced:]), batch)
        announced = len(seen)


register(InputFormat(
    name="parquet", suffixes=(".parquet", ".pq"), read=read_columnar,
    description="Parquet in the archive's events layout (docs/operations.md, Archive)",
))  # fmt: skip
register(InputFormat(
    name="arrow", suffixes=(".arrow", ".arrows", ".feather", ".ipc"), read=read_columnar,
    description="Arrow IPC (file or stream format) in the archive's events layout",
))  # fmt: skip
