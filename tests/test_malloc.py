"""`runtime.malloc.keep_freed_memory`: arrays freed and allocated again stop faulting in fresh
pages, even under the malloc setting Dask gives its workers (``MALLOC_TRIM_THRESHOLD_=65536``).
Page faults are counted (getrusage), not timed; the blocks are bytearrays, whose pages are
4 KiB whatever the kernel's transparent huge pages (numpy asks for huge pages, and then the
count depends on how many the kernel has free)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")

ARRAY_PAGES = (8 << 20) // 4096  # an 8 MiB block
ROUNDS = 20

SCRIPT = f"""
import json, resource
from assessengine.runtime.malloc import keep_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range({ROUNDS}):
        block = bytearray({ARRAY_PAGES * 4096})  # 8 MiB, every page written (no huge pages,
        del block                                # which numpy would ask for)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

before = faults()
applied = keep_freed_memory()
print(json.dumps({{"before": before, "applied": applied, "again": keep_freed_memory(),
                  "after": faults()}}))
"""


def _run(env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", SCRIPT], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    found: dict[str, int] = json.loads(done.stdout)
    return found


def test_arrays_allocated_again_stop_faulting_under_dasks_malloc_setting() -> None:
    found = _run({"MALLOC_TRIM_THRESHOLD_": "65536"})
    assert found["applied"]
    assert found["again"]
    # before: fresh pages every round; after: the first round's at most, then the same pages
    assert found["before"] >= ROUNDS * ARRAY_PAGES * 0.9
    assert found["after"] <= ARRAY_PAGES * 1.1
