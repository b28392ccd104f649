"""`assessengine ...`: the command line. The only place that reads the environment."""

from __future__ import annotations

from . import (  # noqa: F401  (each module attaches its commands to `main`)
    archive_cmd,
    audit_cmd,
    backup_cmd,
    badge_cmd,
    copy_cmd,
    credential_cmd,
    demo_cmd,
    keys_cmd,
    rescore_cmd,
    rubric_cmd,
    rubric_diff_cmd,
    rubric_explain_cmd,
    rubric_test_cmd,
    schema_cmd,
    score_cmd,
    serve_cmd,
    share_cmd,
    simulate_cmd,
    site_cmd,
    token_cmd,
)
from ._app import main

__all__ = ["main"]
