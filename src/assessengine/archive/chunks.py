"""A whole archive as recorded-session chunks (`core.recorded`), for `assessengine score`
(``score DIR|s3://BUCKET/PREFIX``).

    if is_archive_location(text):
        chunks = archive_chunks(text, scenario, s3_options(os.environ))  # the CLI's environment

The sessions are those of `scenario` in the sessions table, in export order (each events
file's sessions in turn); each file's sessions are announced before its rows and closed after
them at their archived close times. Every file is checked as `rescore` checks it (its bytes
against the manifest, else each session's events digest: `rescore.checked_batches`). Object
storage takes `storage_options` (the CLI makes them from the standard AWS environment
variables: `location.s3_options`). Raises
ArchiveError (one line naming the file or URL) while iterating.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.events import EventBatch, empty_batch
from ..core.recorded import Chunk
from ..core.scenario import Scenario
from .layout import require_manifest
from .location import ArchiveRoot
from .rescore import checked_batches, plan


def is_archive_location(text: str) -> bool:
    """Whether `text` names an archive rather than a file: a URL or a directory."""
    return "://" in text or Path(text).is_dir()


def archive_chunks(
    location: str, scenario: Scenario, storage_options: Mapping[str, Any] | None = None
) -> Iterator[Chunk]:
    """See the module docstring."""
    root = ArchiveRoot.open(location, storage_options=dict(storage_options or {}))
    parts, _ = plan(root, require_manifest(root), scenario.scenario)
    n_signals = len(scenario.signal_names)
    base = 0
    for part in parts:
        yield Chunk(tuple(part.sessions), empty_batch(n_signals))
        for batch in checked_batches(root, part, scenario):
            yield Chunk((), EventBatch((batch.session + base).astype(np.int32), batch.seq,
                                       batch.t, batch.event, batch.signals))  # fmt: skip
        closed = np.arange(base, base + len(part.sessions), dtype=np.int64)
        yield Chunk((), empty_batch(n_signals), closed=closed,
                    close_t=np.array(part.close_t, np.float64))  # fmt: skip
        base += len(part.sessions)
