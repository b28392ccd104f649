"""The events digest of an archived session: sha256 over its events packed as columns-v1
records (``seq <i8 | t <f8 | event <i4 | <f8 per signal``, `core.codec.records_v1`), every
not-reported signal as the one canonical NaN. The export computes it from the store's decoded
batches; `archive verify` and `rescore` recompute it from the Parquet rows and refuse a
session whose rows no longer give it.

`file_sha256` is the sha256 of an events file's bytes, which the export records in the manifest
(`FileEntry.sha256`): a file whose bytes still give it holds exactly the rows the export wrote
and digested, so `rescore` checks it (about 5 bytes an event) instead of re-packing and hashing
every row (68 bytes an event for the underground loader), and falls back to the per-session
digests, which name the session that changed, only when the bytes differ or the manifest
predates the field."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from ..core.codec import Columns, Layout, records_v1
from ..core.events import EventBatch

CHUNK: Final = 1 << 20


class Digests:
    """Running digests of sessions `0 .. n-1` (the `EventBatch.session` indexes), fed batch by
    batch; each session's rows must arrive in seq order (they may be split across batches)."""

    def __init__(self, layout: Layout, n_sessions: int) -> None:
        self._layout = layout
        self._hashes = [hashlib.sha256() for _ in range(n_sessions)]

    def update(self, batch: EventBatch) -> None:
        """Feed the rows of `batch` (rows of one session contiguous, as an archive holds
        them; interleaved rows are fed run by run, still correct)."""
        n = len(batch)
        if n == 0:
            return
        signals = np.where(np.isnan(batch.signals), np.nan, batch.signals)
        packed = records_v1(Columns(batch.seq, batch.t, batch.event, signals), self._layout)
        view = packed.data
        size = self._layout.itemsize
        cuts = np.flatnonzero(np.diff(batch.session)) + 1
        starts = [0, *cuts.tolist()]
        ends = [*cuts.tolist(), n]
        sessions = batch.session[starts].tolist()
        for k, lo, hi in zip(sessions, starts, ends, strict=True):
            self._hashes[k].update(view[lo * size : hi * size])

    def hexdigest(self, k: int) -> str:
        return self._hashes[k].hexdigest()

    def hexdigests(self) -> list[str]:
        return [h.hexdigest() for h in self._hashes]


def columns_digest(parts: Sequence[Columns], layout: Layout) -> str:
    """The digest of one session given as consecutive column parts (its decoded batches)."""
    digests = Digests(layout, 1)
    for cols in parts:
        digests.update(cols.to_batch(0))
    return digests.hexdigest(0)


def file_sha256(fs: Any, path: str) -> str:
    """The sha256 of the file at `path` on the fsspec file system `fs`, read in CHUNK pieces
    (constant memory). Raises what the file system raises (FileNotFoundError, OSError)."""
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
