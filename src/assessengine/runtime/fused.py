"""Fused step functions on disk: the provider behind `core.fused_step` (the I/O half).

`install()` makes every `ScoringState` created afterwards in this process score its rubric
with a generated, fused numba function (`core.fused_source`) instead of the table-driven
kernel. For a compiled rubric the provider

1. generates the module's source (pure; `FusedUnsupportedError` -> None: the kernel scores it);
2. writes it once to ``<cache dir>/assessengine_fused_<key>.py``, key = sha256 of the source
   and the engine version (so any change of the rubric, the scenario, the generator or the
   engine gives another file; a file is never rewritten in place: written to a temporary
   name, then renamed);
3. imports it under that name, registered in `sys.modules` before it runs: numba's on-disk
   cache (``@njit(cache=True)``, in the directory's ``__pycache__``) rebuilds a cached
   function's environment by importing its module by name; registered, the next process loads
   the compiled function instead of compiling it again (a closure could not be cached at all).

The directory is the setting ``fused_cache``, else ``$XDG_CACHE_HOME/assessengine/fused``,
else ``~/.cache/assessengine/fused``. The command line's process (every command) and
`serve`'s scoring process (as its parent) install it (not yet `rescore`'s Dask workers) when
the setting ``fused_kernel`` is on (`configure`); off by default (docs/performance.md).
Loaded functions are kept per key for the process's life.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from numba.core.registry import CPUDispatcher

from .. import __version__
from ..core import fused_step
from ..core.compiler import CompiledRubric
from ..core.fused_source import GENERATOR_VERSION, FusedUnsupportedError, fused_source

PREFIX = "assessengine_fused_"

_lock = threading.Lock()
_modules: dict[str, ModuleType] = {}  # key -> imported module


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """Where generated modules go when no directory is set (see the module doc), by the
    ``XDG_CACHE_HOME`` of `environ` (the CLI passes the process's)."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assessengine" / "fused"


def module_key(source: str) -> str:
    """The file key of a generated module: its source, the generator's and engine's versions."""
    text = f"{__version__}\n{GENERATOR_VERSION}\n{source}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class FusedProvider:
    """Generated modules in `cache_dir`, loaded once per process (see the module doc)."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def __call__(self, compiled: CompiledRubric) -> fused_step.FusedStep | None:
        try:
            source = fused_source(compiled)
        except FusedUnsupportedError:
            return None
        key = module_key(source)
        with _lock:
            module = _modules.get(key)
            if module is None:
                module = _modules[key] = self._load(key, source)
        step: fused_step.FusedStep = module.step_rows
        return step

    def _load(self, key: str, source: str) -> ModuleType:
        name = PREFIX + key
        path = self.cache_dir / f"{name}.py"
        if not path.exists() or path.read_text(encoding="utf-8") != source:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-", suffix=".py")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(source)
            os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # numba's cache imports the module by name (module doc)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module


def install(cache_dir: Path) -> FusedProvider:
    """Score every rubric of this process's new `ScoringState`s with fused steps from
    `cache_dir`."""
    provider = FusedProvider(cache_dir)
    fused_step.set_provider(provider)
    return provider


def uninstall() -> None:
    """Back to the table-driven kernel for the `ScoringState`s created afterwards."""
    fused_step.set_provider(None)


def configure(enabled: bool, cache_dir: Path) -> FusedProvider | None:
    """The settings ``fused_kernel`` and ``fused_cache`` applied to this process: `install`
    when `enabled` (returns the provider), else `uninstall` (returns None)."""
    if enabled:
        return install(cache_dir)
    uninstall()
    return None


def installed_cache_dir() -> Path | None:
    """The cache directory of the provider installed in this process, None without one (what
    a child process passes to `configure` to score as its parent does)."""
    current = fused_step.provider()
    return current.cache_dir if isinstance(current, FusedProvider) else None


def loaded_modules() -> list[ModuleType]:
    """The generated modules this process has loaded."""
    with _lock:
        return list(_modules.values())


def compilations() -> int:
    """How many fused functions this process compiled (numba's cache missed), as
    `pipeline._kernel_compilations` counts the kernel's."""
    return sum(sum(f.stats.cache_misses.values()) for m in loaded_modules()
               for f in vars(m).values() if isinstance(f, CPUDispatcher))  # fmt: skip
