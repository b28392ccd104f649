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
