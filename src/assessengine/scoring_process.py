"""Moved to `assessengine.runtime.scoring_process`; this name stays for existing imports."""

from .runtime.scoring_process import RemoteScorer, ScoringProcessError

__all__ = ["RemoteScorer", "ScoringProcessError"]
