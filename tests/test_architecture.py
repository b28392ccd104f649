"""The pure core imports no I/O: no zmq, sqlite3, fastapi, uvicorn, yaml (nor socket, http).

Two checks: no core source file imports them, and the whole core imports and scores a session
in a fresh interpreter where importing any of them fails. (Third-party libraries such as numba
may *try* optional imports; they must cope, and so must we.)
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import assessengine.core

FORBIDDEN = ("zmq", "sqlite3", "fastapi", "uvicorn", "starlette", "yaml", "socket", "http")
# socket is left importable at run time: the standard library's own email/importlib.metadata
# (used by pydantic and numba) import it; no core source file does (first test).
BLOCKED = tuple(m for m in FORBIDDEN if m not in ("socket", "http"))
CORE = Path(assessengine.core.__file__).parent


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_core_source_file_imports_an_io_library() -> None:
    offenders = {
        path.name: sorted(_imported_roots(path) & set(FORBIDDEN)) for path in CORE.glob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_the_core_imports_and_scores_with_io_libraries_unavailable() -> None:
    modules = [f"assessengine.core.{m.name}" for m in pkgutil.iter_modules([str(CORE)])]
    assert "assessengine.core.kernel" in modules
    script = f"""
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
for name in {modules!r}:
    importlib.import_module(name)
from assessengine.core.events import Event, SessionEvents
from assessengine.core.offline import score_sessions
from assessengine.core.rubric import Rubric
from assessengine.core.scenario import Scenario
signals = {{"v": {{"unit": "m/s", "range": [0, 9]}}}}
scenario = Scenario.model_validate(
    {{"scenario": "s", "title": "S", "signals": signals, "events": {{}}}})
rubric = Rubric.model_validate({{"rubric": "r", "version": 1, "title": "R", "scenario": "s",
    "criteria": [{{"id": "slow", "title": "Slow", "never": "v > 5"}}]}})
session = SessionEvents("S1", [Event(0, 0.0, "sample", {{"v": 6.0}})])
print(score_sessions(rubric, scenario, [session])[0].criteria[0].verdict)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "fail"


# ------------------------------------------------------------------------------ ports and wiring

SRC = CORE.parent
PORT_USERS = ("runtime", "ingest/port.py")
"""The engine and the ports it depends on: they use I/O only through a port."""
IMPLEMENTATIONS = {
    "assessengine.adapters.sqlite_store", "assessengine.adapters.zmq_ingest",
    "assessengine.ingest.zmq", "assessengine.ingest.fake", "assessengine.runtime.scoring_process",
}  # fmt: skip
WIRING = ("compose.py", "cli")
"""Where implementations of the ports are chosen (besides the shims that keep old paths)."""
SHIMS = ("engine.py", "pipeline.py", "scoring_process.py")


def _imported_modules(path: Path) -> set[str]:
    """The assessengine modules `path` imports (relative imports resolved)."""
    package = ".".join(("assessengine", *path.relative_to(SRC).parent.parts))
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("assessengine")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.startswith("assessengine"):
                out.add(module)
                out |= {f"{module}.{a.name}" for a in node.names}
    return out


def _sources(*where: str) -> list[Path]:
    paths: list[Path] = []
    for name in where:
        target = SRC / name
        paths += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return paths


def test_the_engine_and_the_ports_import_no_io_library_nor_an_implementation() -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(
            (_imported_roots(path) & set(FORBIDDEN)) | (_imported_modules(path) & IMPLEMENTATIONS)
        )
        for path in _sources(*PORT_USERS)
        if path.name != "scoring_process.py"  # the scoring process is a backend, not a user
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_only_the_composition_module_and_the_cli_choose_implementations() -> None:
    wiring = set(_sources(*WIRING)) | {SRC / s for s in SHIMS}
    offenders = {
        str(path.relative_to(SRC)): sorted(
            _imported_modules(path) & (IMPLEMENTATIONS - {"assessengine.adapters.sqlite_store"})
        )
        for path in SRC.rglob("*.py")
        if path not in wiring and "ingest" not in path.relative_to(SRC).parts[:1]
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
