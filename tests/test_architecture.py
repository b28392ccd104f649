"""The pure core imports no I/O: no zmq, sqlite3, fastapi, uvicorn, yaml (nor socket, http).

Two checks: no core source file imports them, and the whole core imports and scores a session
in a fresh interpreter where importing any of them fails. (Third-party libraries such as numba
may *try* optional imports; they must cope, and so must we.)
"""

from __future__ import annotations

import ast
import pkgutil
import re
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
    "assessengine.storage.sqlite", "assessengine.storage.postgres", "assessengine.storage.memory",
    "assessengine.storage.postgres_owners", "assessengine.ingest.zmq", "assessengine.ingest.fake",
    "assessengine.runtime.scoring_process",
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
        str(path.relative_to(SRC)): sorted(_imported_modules(path) & IMPLEMENTATIONS)
        for path in SRC.rglob("*.py")
        if path not in wiring and path.relative_to(SRC).parts[0] not in ("ingest", "storage")
    }  # a transport package and the storage package choose among their own (by URL)
    assert {name: mods for name, mods in offenders.items() if mods} == {}


# ------------------------------------------------------------------------------ storage owns SQL

DATABASE_LIBRARIES = frozenset({"sqlite3", "psycopg", "psycopg_pool", "sqlalchemy", "alembic"})
BACKEND_NAMES = frozenset({"sqlite", "sqlite3", "postgresql", "postgres", "psycopg"})
SQL = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bINSERT\s+(?:OR\s+\w+\s+)?INTO\b|\bUPDATE\s+\w+\s+SET\b"
    r"|\bDELETE\s+FROM\b|\b(?:CREATE|DROP|ALTER)\s+(?:UNIQUE\s+)?(?:TABLE|INDEX|VIEW)\b"
    r"|\bPRAGMA\s+\w+|\bBEGIN\s+(?:IMMEDIATE|EXCLUSIVE)\b|\bON\s+CONFLICT\b",
    re.DOTALL,
)
"""An SQL statement in a string (keywords in capitals, as every query here writes them)."""


def _outside_storage() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if p.relative_to(SRC).parts[0] != "storage"]


def _strings(tree: ast.AST) -> list[str]:
    """Every string literal of `tree`; an f-string with ``?`` for each placeholder."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            out.append("".join(v.value if isinstance(v, ast.Constant) else "?"
                               for v in node.values))  # fmt: skip
    return out


def _identifiers(tree: ast.AST) -> set[str]:
    """The names `tree` binds, reads or imports (modules included)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.alias):
            out |= {node.name, node.asname or ""}
        elif isinstance(node, ast.ImportFrom):
            out.add(node.module or "")
    return out


def test_nothing_outside_storage_imports_a_database_library() -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(_imported_roots(path) & DATABASE_LIBRARIES)
        for path in _outside_storage()
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_nothing_outside_storage_writes_sql() -> None:
    offenders = {
        str(path.relative_to(SRC)): [s[:60] for s in _strings(ast.parse(path.read_text()))
                                     if SQL.search(s)]
        for path in _outside_storage()
    }  # fmt: skip
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_sql_pattern_finds_statements_and_spares_prose() -> None:
    assert SQL.search("SELECT report FROM reports WHERE session_id = ?")
    assert SQL.search("INSERT INTO decisions (session_id) VALUES (?)")
    assert SQL.search("CREATE TABLE IF NOT EXISTS review_tokens (id INTEGER)")
    assert SQL.search("PRAGMA quick_check")
    assert not SQL.search("select the sessions from the list; update the page")


def test_nothing_outside_storage_names_a_backend() -> None:
    """Code outside `storage` never branches on the backend: no identifier names one (an
    import of `storage.sqlite`, `SqliteStore`, `PostgresOwners`) and no string is one's name
    (``backend == "sqlite"``). Help text may show the URL forms (``sqlite:///PATH``).
    `extras` names the ``postgres`` extra and psycopg's modules (what to tell a user who has
    not installed them), not a backend to branch on."""
    offenders = {}
    for path in _outside_storage():
        if path == SRC / "extras.py":
            continue
        tree = ast.parse(path.read_text())
        names = {n for n in _identifiers(tree) if re.search("sqlite|postgres|psycopg", n, re.I)}
        strings = {s for s in _strings(tree) if s.strip().lower() in BACKEND_NAMES}
        if names | strings:
            offenders[str(path.relative_to(SRC))] = sorted(names | strings)
    assert offenders == {}


PORT_CLASS = re.compile(
    r"(Store|Scorer|Scoring|Transport|Ingest|Owners?|Backend|Source)$"
    r"|^(Sqlite|Postgres|Memory|Remote|Fake|Testing|Zmq)"
)
"""The names of the ports and their implementations (``StoreError`` and the like are not)."""


def _isinstance_classes(tree: ast.AST) -> set[str]:
    """The class names the ``isinstance`` calls of `tree` test against."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance" and len(node.args) == 2):  # fmt: skip
            out |= {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node.args[1])
                    if isinstance(n, ast.Name | ast.Attribute)}  # fmt: skip
    return out


def test_the_engine_has_no_isinstance_on_stores_scorers_or_transports() -> None:
    tested = _isinstance_classes(ast.parse((SRC / "runtime" / "engine.py").read_text()))
    assert tested, "the engine tests messages by type: the check must see them"
    assert {name for name in tested if PORT_CLASS.search(name)} == set()


def test_the_isinstance_check_sees_a_switch_on_a_store() -> None:
    code = "def f(store, x):\n    if isinstance(store, (SqliteStore, mod.RemoteScorer)): pass"
    tested = _isinstance_classes(ast.parse(code))
    assert {name for name in tested if PORT_CLASS.search(name)} == {"SqliteStore", "RemoteScorer"}
