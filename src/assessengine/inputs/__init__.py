"""Input formats for recorded sessions: a small registry (by name and file suffix) of readers
that turn a file into `core.recorded.Chunk` s. See `registry` for the contract."""

from .registry import InputFormat, Reader, format_for, formats, read_input, register

__all__ = ["InputFormat", "Reader", "format_for", "formats", "read_input", "register"]
