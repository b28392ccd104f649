"""The command line imports a command's module when the command runs (`cli._app.LazyGroup`):
every command is named in its group's registry, and a light command starts without the
heavy imports of the others."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


_OWNERS = """
import importlib, json, pkgutil, click
import assessengine.cli as cli
from assessengine.cli import main

for module in pkgutil.iter_modules(cli.__path__):
    importlib.import_module(f"assessengine.cli.{module.name}")

def strays(group, path):
    here = group.callback.__module__
    for name, command in group.commands.items():
        named = getattr(group, "lazy", {}).get(name)
        owner = command.callback.__module__
        if owner != here and owner != f"assessengine.cli.{named}":
            yield f"{path} {name}: defined in {owner}, registry names {named}"
        if isinstance(command, click.Group):
            yield from strays(command, f"{path} {name}")

print(json.dumps(list(strays(main, "assessengine"))))
"""


def test_every_command_is_defined_where_its_groups_registry_says() -> None:
    """A command attaches itself to its group from the group's own module or from the module
    the group's registry names for it: a fresh process looks up only that module, so a
    command defined anywhere else (`keys issuer` in the credential module was) is "No such
    command" unless another lookup happened to import its module first."""
    out = subprocess.run([sys.executable, "-c", _OWNERS], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120).stdout  # fmt: skip
    assert json.loads(out) == []


def test_keys_issuer_is_found_in_a_fresh_process() -> None:
    """`assessengine keys issuer`, as the credentials guide runs it, in a process of its own."""
    out = subprocess.run([sys.executable, "-m", "assessengine", "keys", "issuer", "--help"],
                         cwd=ROOT, capture_output=True, text=True, check=False,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--did-web" in out.stdout


_LIGHT_COMMAND = """
import json, sys
from assessengine.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = ["sqlalchemy", "fastapi", "pyarrow", "zmq", "assessengine.cli.serve_cmd",
         "assessengine.credential_service", "assessengine.cli.credential_options"]
print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules]}))
"""


@pytest.mark.parametrize("command", [
    ["rubric", "check", "rubrics/forklift-load-handling.yaml"],
    ["credential", "check", "credentials/forklift-operator.yaml"],
])  # fmt: skip
def test_a_file_check_starts_without_the_other_commands_imports(command: list[str]) -> None:
    """A trainer's `rubric check` and `credential check` import neither the store nor the HTTP
    API, Arrow, ZeroMQ or the credential stack (1.2-1.6 s a run when every command's module,
    or the credential commands' module, was imported; 0.4-0.6 s)."""
    out = subprocess.run([sys.executable, "-c", _LIGHT_COMMAND, *command], cwd=ROOT,
                         capture_output=True, text=True, check=True,
                         timeout=120).stdout  # fmt: skip
    assert json.loads(out.splitlines()[-1]) == {"code": 0, "imported": []}
