"""The registry of input formats for recorded sessions (`assessengine score`, ...).

A format is a name, the file suffixes it claims and a reader::

    def read(stream: BinaryIO, *, scenario: Scenario, source: str, skip_invalid: bool,
             workers: int) -> Iterator[Chunk]

`stream` is the open file (binary; standard input for ``-``, so it may not be seekable: a
format that needs to seek raises `EventsError` saying so); `source` names the file in
messages. The reader yields `core.recorded.Chunk` s in file order (their contract is in that
module: ordinals by first appearance, events in seq order per session, closes, open metadata)
and holds at most about one chunk in memory. It raises `EventsError` naming ``SOURCE:LINE``
(or whatever locates the fault in its format) at the first invalid record, unless
`skip_invalid`, in which case it skips the record and reports it in `Chunk.problems` (a format
without records that can be skipped one by one may ignore the flag). `workers` is how many
processes it may use (1: this one only; a format may ignore it); the chunks must not depend
on it.

A module adds a format with `register(InputFormat(...))` at import; the registry imports the
modules listed in `PLUGINS` the first time a format is looked up, so a new module is one
`register` call plus one line there.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from ..core.recorded import Chunk
from ..core.scenario import Scenario
from ..errors import EventsError

DEFAULT: Final = "jsonl"
PLUGINS: Final = ("assessengine.inputs.jsonl", "assessengine.inputs.arrow")
"""Modules that register formats (imported on first lookup)."""


class Reader(Protocol):
    """Reads one input into chunks (see the module docstring)."""

    def __call__(
        self, stream: BinaryIO, *, scenario: Scenario, source: str, skip_invalid: bool,
        workers: int = 1,
    ) -> Iterator[Chunk]: ...


@dataclass(frozen=True, slots=True)
class InputFormat:
    """A registered format: `name` for ``--format``, the `suffixes` it claims (lower case,
    with the dot, e.g. ``".jsonl"``), its reader and one line for help texts."""

    name: str
    suffixes: tuple[str, ...]
    read: Reader
    description: str = ""


_FORMATS: dict[str, InputFormat] = {}
_loaded = False


def register(fmt: InputFormat) -> None:
    """Add a format (a format of the same name is replaced: modules may be reloaded)."""
    _FORMATS[fmt.name] = fmt


def formats() -> tuple[InputFormat, ...]:
    """Every registered format, by name."""
    _load_plugins()
    return tuple(_FORMATS[name] for name in sorted(_FORMATS))


def format_for(path: str, declared: str | None = None) -> InputFormat:
    """The format named `declared` (EventsError naming the known ones if there is none),
    else the one whose suffix `path` ends with, else JSON Lines (the historical default:
    standard input, ``events.txt``, ...)."""
    _load_plugins()
    if declared is not None:
        if declared in _FORMATS:
            return _FORMATS[declared]
        raise EventsError(f"unknown input format {declared!r} (known: {_names()})")
    name = path.lower()
    for fmt in formats():
        if name.endswith(fmt.suffixes):
            return fmt
    return _FORMATS[DEFAULT]


def read_input(
    path: Path | str,
    *,
    scenario: Scenario,
    declared: str | None = None,
    skip_invalid: bool = False,
    workers: int = 1,
) -> Iterator[Chunk]:
    """Open `path` (``-``: standard input) and read it with its format (`format_for`).
    Raises EventsError (bad records, unknown format) or OSError (cannot open or read)."""
    text = str(path)
    fmt = format_for(text, declared)
    if text == "-":
        yield from fmt.read(sys.stdin.buffer, scenario=scenario, source="<stdin>",
                            skip_invalid=skip_invalid, workers=workers)  # fmt: skip
        return
    with Path(text).open("rb") as stream:
        yield from fmt.read(stream, scenario=scenario, source=text, skip_invalid=skip_invalid,
                            workers=workers)  # fmt: skip


def _load_plugins() -> None:
    global _loaded  # noqa: PLW0603 - a one-time import of the format modules
    if not _loaded:
        _loaded = True
        for module in PLUGINS:
            importlib.import_module(module)


def _names() -> str:
    return ", ".join(sorted(_FORMATS))
