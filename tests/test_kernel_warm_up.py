"""The warm-up reaches every compiled variant the live paths use: a starting engine (or `serve`
before its scoring process) compiles or loads all of them, and no batch waits for numba.

Before, the warm-up stepped a state of one slot with a batch of one record: arrays numba
types as contiguous both ways, while a live state (64 slots, field-major) and a batch of
several records (strided views) are not. The variants the live path needed were compiled
inside its first batches: on a fresh clone under load, minutes inside a test's bounded wait
(tests/test_engine_ports.py's `wait_idle(60)`, tests/test_credentials_serve.py's 180 s wait
for scoring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_engine_helpers import ROOT

PROBE_TIMEOUT_S = 900.0
"""The probe loads the kernel from numba's cache (the test session compiled it first); a
variant the warm-up missed is compiled there (minutes on a busy machine): only a hang, or
that, reaches the bound."""


@pytest.mark.parametrize("fused", ["0", "1"], ids=["table_kernel", "fused_steps"])
def test_the_live_paths_need_no_compiled_variant_the_warm_up_did_not_reach(
    fused: str, tmp_path: Path
) -> None:
    """With the fused steps (ASSESSENGINE_FUSED_KERNEL=1, a fresh cache directory) the
    warm-up compiles each rubric's function and every variant the live paths use."""
    env = {**os.environ, "ASSESSENGINE_FUSED_KERNEL": fused,
           "ASSESSENGINE_FUSED_CACHE": str(tmp_path)}  # fmt: skip
    probe = subprocess.run([sys.executable, "-m", "tests.warm_up_probe"], cwd=ROOT,
                           capture_output=True, text=True, env=env,
                           timeout=PROBE_TIMEOUT_S, check=False)  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    missed = json.loads(probe.stdout.strip().splitlines()[-1])
    assert missed == {}, missed
