"""`assessengine ...`: the command line. The only place that reads the environment."""

from __future__ import annotations

from . import rubric_cmd  # noqa: F401  (registers `rubric check`)
from . import score_cmd  # noqa: F401  (registers `score`)
from . import simulate_cmd  # noqa: F401  (registers `simulate`)
from ._app import main

__all__ = ["main"]
