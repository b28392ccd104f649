"""The command line imports a command's module when the command runs (`cli._app.LazyGroup`):
every command is named in its group's registry, and a light command starts without the
heavy imports of the others."""

from __future__ import annotations

import json
import subprocess
import sys

from .test_engine_helpers import ROOT

_ALL_COMMANDS = """
import importlib, json, pkgutil, click
import assessengine.cli as cli
from assessengine.cli import main

def tree(group):
    ctx = click.Context(group)
    return {name: tree(c) if isinstance(c, click.Group) else None
            for name in group.list_commands(ctx) for c in [group.get_command(ctx, name)]}

listed = tree(main)  # from the registries: each command's module imported as it is looked up
for module in pkgutil.iter_modules(cli.__path__):
    importlib.import_module(f"assessengine.cli.{module.name}")
print(json.dumps({"listed": listed, "defined": tree(main)}))
"""


def test_every_command_is_in_its_groups_registry() -> None:
    """Looking every command up through the registries finds each command that the command
    line's modules define (all imported afterwards), and none is missing (None)."""
    out = subprocess.run([sys.executable, "-c", _ALL_COMMANDS], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120).stdout  # fmt: skip
    found = json.loads(out)
    assert found["listed"] == found["defined"]
    assert {"rubric", "credential", "serve", "score"} <= set(found["listed"])
    assert {"check", "diff", "explain", "test"} == set(found["listed"]["rubric"])


_RUBRIC_CHECK = """
import json, sys
from assessengine.cli import main
try:
    main(["rubric", "check", "rubrics/forklift-load-handling.yaml"])
except SystemExit as exc:
    code = exc.code
heavy = ["sqlalchemy", "fastapi", "pyarrow", "zmq", "assessengine.cli.serve_cmd",
         "assessengine.credential_service"]
print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules]}))
"""


def test_rubric_check_starts_without_the_other_commands_imports() -> None:
    """A trainer's `rubric check` imports neither the store nor the HTTP API, Arrow, ZeroMQ
    or the credential stack (1.6 s a run when every command's module was imported, 0.5 s)."""
    out = subprocess.run([sys.executable, "-c", _RUBRIC_CHECK], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120).stdout  # fmt: skip
    assert json.loads(out.splitlines()[-1]) == {"code": 0, "imported": []}
