"""`assessengine ...`: the command line. The only place that reads the environment.

Each command's module is imported when the command runs (`_app.LazyGroup`)."""

from __future__ import annotations

from ._app import main

__all__ = ["main"]
