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

4. compiles the module's ``step_rows`` for ONE signature (`signature`), and its
   ``close_rows`` for one (`close_signature`), and disables any other compile on them
   (`_ready`): a call of other array types converts to it or is refused before it runs,
   never compiled inside a batch. When numba's disk cache has the function,
   that is a load, done before the asking state is used; else a background thread has a
   child process compile it into the cache (`compile_in_child`: numba's compile holds the
   GIL, a child leaves this process's batches alone) and then loads it, while the
   table-driven kernel scores (`fused_step.PendingStep`).

The directory is the setting ``fused_cache``, else ``$XDG_CACHE_HOME/assessengine/fused``,
else ``~/.cache/assessengine/fused``. The command line's process (every command), `serve`'s
scoring process (as its parent) and `rescore`'s Dask workers (from the job) install it when
the setting ``fused_kernel`` is on (`configure`; the default). Loaded functions are kept per
key for the process's life.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from numba import typeof
from numba.core import config, types
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import CPUDispatcher

from .. import __version__
from ..core import fused_step
from ..core.compiler import CompiledRubric
from ..core.fused_source import GENERATOR_VERSION, FusedUnsupportedError, fused_source
from ..core.scorer import fused_probe_args

log = logging.getLogger(__name__)

PREFIX = "assessengine_fused_"

_lock = threading.Lock()
_modules: dict[str, ModuleType] = {}  # key -> imported module
_pending: dict[str, fused_step.PendingStep] = {}  # key -> its step, ready or on its way


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """Where generated modules go when no directory is set (see the module doc), by the
    ``XDG_CACHE_HOME`` of `environ` (the CLI passes the process's)."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assessengine" / "fused"


def module_key(source: str) -> str:
    """The file key of a generated module: its source, the generator's and engine's versions."""
    text = f"{__version__}\n{GENERATOR_VERSION}\n{source}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def signature(compiled: CompiledRubric) -> tuple[types.Type, ...]:
    """The one signature a rubric's fused step is compiled for: the state's and the output's
    array types as `scorer.step` makes them (`scorer.fused_probe_args`), the batch's columns
    (and the step's session rows) as read-only arrays of any layout, so that
    plain arrays, read-only record views and strided column slices all convert to it (numba
    converts a call's arrays only once compiling is disabled, `_ready`)."""
    probe = fused_probe_args(compiled)
    args: list[types.Type] = [typeof(a) for a in probe]  # type: ignore[no-untyped-call]
    for k in _BATCH_ARGS:
        a = args[k]
        assert isinstance(a, types.Array)
        args[k] = types.Array(a.dtype, a.ndim, "A", readonly=True)
    return tuple(args)


_BATCH_ARGS = range(5)  # sess, seq, t, event, signals (`fused_step`'s signature)
_STATE_ARGS = slice(13, 18)  # sess_i, sess_f, si, sf, verdict
_ND_ARG = 21


def close_signature(step_sig: tuple[types.Type, ...]) -> tuple[types.Type, ...]:
    """The one signature a rubric's ``close_rows`` (`core.fused_close`) is compiled for, from
    its step's (`signature`: the state's arrays and `nd` are the same): the rows as
    `scorer._close_order` gives them, the close times and names as read-only arrays of any
    layout (a caller's), the decision records C-contiguous (`scorer._close_outputs`)."""
    ints, floats = types.Array(types.int64, 2, "C"), types.Array(types.float64, 2, "C")
    return (
        types.Array(types.int64, 1, "C"),
        types.Array(types.float64, 1, "A", readonly=True),
        types.Array(types.int64, 1, "A", readonly=True),
        *step_sig[_STATE_ARGS], ints, floats, floats, step_sig[_ND_ARG],
    )  # fmt: skip


Compiler = Callable[[Path, str, tuple[types.Type, ...]], str | None]
"""Compiles a generated module's step for a signature into numba's disk cache, elsewhere
(`compile_in_child`): (module file, module name, signature) -> None, or why it failed."""


class FusedProvider:
    """Generated modules in `cache_dir`, loaded once per process (see the module doc).

    A rubric's step is ready at once when numba's disk cache has it (loaded here, before the
    state that asked is used: a starting engine is ready with it); else it is compiled in
    another process by `compiler` while the table-driven kernel scores (`background`), or
    here, before returning (not `background`: benchmarks, tests)."""

    def __init__(
        self, cache_dir: Path, *, background: bool = True, compiler: Compiler | None = None
    ) -> None:
        self.cache_dir = cache_dir
        self.background = background
        self.compiler: Compiler = compiler or compile_in_child

    def __call__(self, compiled: CompiledRubric) -> fused_step.PendingStep | None:
        try:
            source = fused_source(compiled)
        except FusedUnsupportedError:
            return None
        key = module_key(source)
        with _lock:
            pending = _pending.get(key)
            if pending is not None:
                return pending
            module = _modules.get(key)
            if module is None:
                module = _modules[key] = self._load(key, source)
            pending = _pending[key] = fused_step.PendingStep()
        sig = signature(compiled)
        if not self.background or _in_disk_cache(module, sig):
            _ready(pending, module, sig)
        else:
            path = Path(module.__file__ or "")
            threading.Thread(target=self._compile, args=(pending, module, path, sig),
                             name=f"fused-compile-{key[:8]}", daemon=True).start()  # fmt: skip
        return pending

    def _compile(self, pending: fused_step.PendingStep, module: ModuleType, path: Path,
                 sig: tuple[types.Type, ...]) -> None:  # fmt: skip
        """In the background: compile elsewhere into the disk cache, then load it here."""
        try:
            with compile_lock(path):  # another process compiling it: wait, then load
                if not _in_disk_cache(module, sig):
                    failed = self.compiler(path, module.__name__, sig)
                    if failed is not None:
                        raise RuntimeError(failed)
            _ready(pending, module, sig)
        except Exception as exc:  # the table-driven kernel keeps scoring this rubric
            log.warning("fused steps: %s: not compiled (%s); the table-driven kernel scores "
                        "its rubric", path.name, exc)  # fmt: skip
            with _lock:
                _pending.pop(module_key_of(path), None)  # a later state may try again
            pending.fail(str(exc))

    def _load(self, key: str, source: str) -> ModuleType:
        path = self.cache_dir / f"{PREFIX}{key}.py"
        if not path.exists() or path.read_text(encoding="utf-8") != source:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-", suffix=".py")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(source)
            os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
        return import_generated(path, PREFIX + key)


def module_key_of(path: Path) -> str:
    """The key of a generated module from its file's name."""
    return path.stem.removeprefix(PREFIX)


def import_generated(path: Path, name: str) -> ModuleType:
    """Import the generated module at `path` as `name`, registered in `sys.modules` before it
    runs (numba's cache imports the module by name: module doc)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@contextmanager
def compile_lock(path: Path) -> Iterator[None]:
    """Hold the generated module's compile lock (an advisory ``flock`` on ``<module>.lock``
    beside it): the processes that start together with the same rubric (`serve` and its
    scoring process, `rescore`'s workers) compile its step once, the others wait and load it."""
    fd = os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the flock


def _in_disk_cache(module: ModuleType, sig: tuple[types.Type, ...]) -> bool:
    """Whether numba's disk cache holds the module's step compiled for `sig` and its close
    for `close_signature(sig)` (a load, not a compile)."""
    return _cached(module.step_rows, sig) and _cached(module.close_rows, close_signature(sig))


def _cached(fn: CPUDispatcher, sig: tuple[types.Type, ...]) -> bool:
    """Whether numba's disk cache holds `fn` compiled for `sig`."""
    cache = getattr(fn, "_cache", None)
    try:
        return cache is not None and cache.load_overload(sig, fn.targetctx) is not None
    except Exception:  # an unreadable cache entry: as if absent (compiled again)
        return False


def _ready(pending: fused_step.PendingStep, module: ModuleType,
           sig: tuple[types.Type, ...]) -> None:  # fmt: skip
    """Compile (or load) the module's step for `sig` and its close in this process, forbid
    any other variant (a call of other types then converts to the signature, or is refused
    before it runs: never a compile inside a batch) and make them the pending step's."""
    compile_module(module, sig)
    step, close = module.step_rows, module.close_rows
    step.disable_compile()
    close.disable_compile()
    pending.resolve(step, close)


def compile_module(module: ModuleType, sig: tuple[types.Type, ...]) -> None:
    """Compile (or load) a generated module's step for `sig` (`compile_step`) and its close
    for `close_signature(sig)`."""
    compile_step(module.step_rows, sig)
    module.close_rows.compile(close_signature(sig))


def compile_step(step: CPUDispatcher, sig: tuple[types.Type, ...]) -> None:
    """Compile (or load) a generated `step` for `sig` with LLVM's SLP vectorizer on (numba
    leaves it off): the generated hold's runs of loads, selects and stores over a session's
    adjacent columns become vector operations (`fused_source._Gen.hold`; no fast-math, the
    same values). Numba reads the setting when it builds a module's passes; it is set for
    this compile only, under numba's compiler lock, so no other compile sees it."""
    with global_compiler_lock:
        saved = getattr(config, "SLP_VECTORIZE")  # noqa: B009 (set by numba at run time)
        setattr(config, "SLP_VECTORIZE", 1)  # noqa: B010
        try:
            step.compile(sig)
        finally:
            setattr(config, "SLP_VECTORIZE", saved)  # noqa: B010


_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from assessengine.runtime.fused_compile import run; run()")

COMPILE_TIMEOUT_S = 1800.0
"""Bound of a child's compile (minutes at most on a busy machine; only a hang reaches it)."""


def compile_in_child(path: Path, name: str, sig: tuple[types.Type, ...]) -> str | None:
    """`Compiler` in a child process (`runtime.fused_compile`): numba's compile holds the
    GIL for most of its seconds, which a thread here would take from the live batches; the
    child uses another core and leaves the compiled function in the disk cache. None, or the
    last line the child wrote to stderr when it failed."""
    package_root = Path(__file__).resolve().parents[2]  # this package, whatever sys.path says
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(package_root)],
        input=pickle.dumps((str(path), name, sig)), capture_output=True,
        timeout=COMPILE_TIMEOUT_S, check=False,
    )  # fmt: skip
    if done.returncode == 0:
        return None
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {done.returncode}"


def install(cache_dir: Path, *, background: bool = True) -> FusedProvider:
    """Score every rubric of this process's new `ScoringState`s with fused steps from
    `cache_dir` (compiled in the background when not in the disk cache: `FusedProvider`)."""
    provider = FusedProvider(cache_dir, background=background)
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


def pending_steps() -> list[fused_step.PendingStep]:
    """The steps this process has asked for, ready or on their way."""
    with _lock:
        return list(_pending.values())


def wait_pending() -> int:
    """Wait until every step this process asked for is ready (or failed): what a command that
    times its work does before it starts the clock (the demo). Returns how many were still on
    their way (compiled elsewhere meanwhile); each wait is bounded by the child's
    `COMPILE_TIMEOUT_S`."""
    waiting = [p for p in pending_steps() if not p.done()]
    for pending in waiting:
        pending.wait(COMPILE_TIMEOUT_S)
    return len(waiting)


def wait_for(
    rubrics: Iterable[CompiledRubric], *, meanwhile: Callable[[], object] | None = None
) -> int:
    """Ask for each rubric's fused step and wait until each is ready (or failed): the steps
    not in numba's disk cache compile all at once, each in a child process; `meanwhile` runs
    here after the asking, while they compile. What a command that scores its whole input
    right away does before it scores, so that a first run compiles the fused steps alone, not
    the table-driven kernel too, which would score while they compile and then be set aside.
    Returns how many of their steps were not ready when asked: 0 when all were loaded from
    the cache, or no provider is installed."""
    asked = [fused_step.fused_step_for(compiled) for compiled in rubrics]
    compiling = sum(1 for p in asked if p is not None and not p.done())
    if meanwhile is not None:
        meanwhile()
    wait_pending()
    return compiling


def compilations() -> int:
    """How many fused functions this process compiled (numba's cache missed), as
    `pipeline._kernel_compilations` counts the kernel's."""
    return sum(sum(f.stats.cache_misses.values()) for m in loaded_modules()
               for f in vars(m).values() if isinstance(f, CPUDispatcher))  # fmt: skip
