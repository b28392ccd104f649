"""The child process of `runtime.fused.compile_in_child`: compile one generated fused step
(and its close) into numba's disk cache.

`run` reads, pickled on stdin, (module file, module name, signature); imports the module as
the parent does (`fused.import_generated`) and compiles its ``step_rows`` for the signature
and its ``close_rows`` as the parent would (`fused.compile_module`; numba saves them beside
the module, in its ``__pycache__``); exits with status 0, or 1 with the error as the last
line on stderr."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from numba.core import types

from .fused import compile_module, import_generated


def compile_step(path: Path, name: str, sig: tuple[types.Type, ...]) -> None:
    """Compile the step of the generated module at `path` for `sig`, and its close (into
    numba's cache)."""
    compile_module(import_generated(path, name), sig)


def run() -> None:
    """The child's main: see the module doc."""
    try:
        path, name, sig = pickle.loads(sys.stdin.buffer.read())  # from our own parent
        compile_step(Path(path), name, sig)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
