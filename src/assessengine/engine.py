"""Moved to `assessengine.runtime.engine`; this name stays for existing imports."""

from .runtime.engine import Engine, EngineStats, MiB, WorkQueue

__all__ = ["Engine", "EngineStats", "MiB", "WorkQueue"]
