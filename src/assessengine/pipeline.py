"""Moved to `assessengine.runtime.pipeline`; this name stays for existing imports."""

from .runtime.pipeline import Recovery, Refusal, RubricEntry, RubricLibrary, Scorer

__all__ = ["Recovery", "Refusal", "RubricEntry", "RubricLibrary", "Scorer"]
