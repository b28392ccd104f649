"""The fused step's machine code on an AVX2 CPU: no masked stores.

LLVM turns ``a[i] = x if cond else a[i]`` (a select of a value loaded from the address it
stores to) into a masked store (``vmaskmovpd``) when the runs of such stores are vectorised
and the target has AVX but not AVX-512. On AMD Zen a masked store is microcoded and slow:
the hold's held values and extremes compiled that way made the whole step 1.5x slower on
this project's AMD EPYC machine (docs/performance.md, "A new host: AMD EPYC (Zen 3), and the
hold's masked stores"). The generator loads those values through
`_load` so the pattern never forms; this test compiles the forklift rubric's step for a Zen 3
CPU in a fresh process (fresh numba caches: machine code can only be inspected when compiled
in the process) and reads its assembly.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import sys
from pathlib import Path
from assessengine.adapters.library import load_rubric
from assessengine.core.compiler import compile_rubric
from assessengine.core.fused_source import fused_source
from assessengine.runtime import fused

rubric, scenario = load_rubric(Path(sys.argv[1]))
compiled = compile_rubric(rubric, scenario)
path = Path(sys.argv[2]) / "codegen_probe.py"
path.write_text(fused_source(compiled))
module = fused.import_generated(path, "codegen_probe")
sig = fused.signature(compiled)
fused.compile_step(module.step_rows, sig)
sys.stdout.write(module.step_rows.inspect_asm(sig))
"""


@pytest.mark.slow
def test_fused_step_has_no_masked_stores_on_avx2(tmp_path: Path) -> None:
    env = {**os.environ, "NUMBA_CPU_NAME": "znver3", "NUMBA_CACHE_DIR": str(tmp_path / "nc")}
    rubric = ROOT / "rubrics" / "forklift-load-handling.yaml"
    command = [sys.executable, "-c", _CHILD, str(rubric), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    asm = done.stdout
    assert "vblendvpd" in asm  # compiled for AVX2: the hold's selects are vector blends
    masked = re.findall(r"\bv(?:p)?maskmov\w*", asm)
    assert masked == [], f"{len(masked)} masked stores in the step: {sorted(set(masked))}"
