"""The session simulator: scenario behaviour models, operator profiles, vectorised generation.

    batch = simulate(scenario, "speeder", 100, seed=7)     # columns (SimBatch)
    sessions = batch.to_sessions()                         # list[SessionEvents]
    lines = jsonl_lines(batch)                             # the events file, line by line

Pure: numpy only, no file or network I/O (the CLI writes the lines).
"""

from __future__ import annotations

from .generate import SimBatch, jsonl_lines, records, simulate
from .models import MODELS, model_for
from .profiles import COMPETENT, MIXED, Model, Profile, default_mix, parse_mix
from .render import SensorOptions

__all__ = [
    "COMPETENT",
    "MIXED",
    "MODELS",
    "Model",
    "Profile",
    "SensorOptions",
    "SimBatch",
    "default_mix",
    "jsonl_lines",
    "model_for",
    "parse_mix",
    "records",
    "simulate",
]
