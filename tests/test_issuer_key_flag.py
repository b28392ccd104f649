"""The issuer key is given the same way to every command that signs or verifies as the engine:
``--issuer-key FILE`` (``--key`` stays an alias of the credential commands), and every refusal
that asks for the key names a flag the command it comes from accepts."""

from __future__ import annotations

import re

import click
import pytest

from assessengine.api.service.credentials import default_issuer_key_path
from assessengine.cli import main
from assessengine.compose import check_store
from assessengine.core.credentials import CredentialError
from assessengine.settings import Settings, SettingsError

SERVER_DB = "postgresql://assess@db.example/assess"
KEYED = ("issue", "verify", "revoke", "status-list")
"""The credential commands that sign or verify with the engine's key."""


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts}


def _command(group: click.Group, name: str) -> click.Command:
    """`name` of `group`, its module imported (`cli._app.LazyGroup`)."""
    command = group.get_command(click.Context(group), name)
    assert command is not None, name
    return command


def _credential() -> click.Group:
    credential = _command(main, "credential")
    assert isinstance(credential, click.Group)
    return credential


def _commands() -> dict[str, click.Command]:
    return {"serve": _command(main, "serve")} | {c: _command(_credential(), c) for c in KEYED}


def _flags(message: str) -> set[str]:
    """The flag a refusal asks for (the first it names; later ones are of other commands)."""
    return set(re.findall(r"--[a-z][a-z-]*", message)[:1])


def test_every_command_that_needs_the_key_takes_issuer_key() -> None:
    assert {name: "--issuer-key" in _options(cmd) for name, cmd in _commands().items()} == \
        dict.fromkeys(["serve", *KEYED], True)  # fmt: skip


def test_the_credential_commands_keep_key_as_an_alias() -> None:
    for name in KEYED:
        (param,) = [p for p in _command(_credential(), name).params if "--issuer-key" in p.opts]
        assert "--key" in param.opts, name


def test_the_refusals_for_a_missing_key_name_a_flag_every_such_command_takes() -> None:
    with pytest.raises(CredentialError) as credential_refusal:
        default_issuer_key_path(SERVER_DB)
    with pytest.raises(SettingsError) as serve_refusal:
        check_store(Settings.load(flags={"db": SERVER_DB}, environ={}))
    for refusal in (credential_refusal.value, serve_refusal.value):
        named = _flags(str(refusal))
        assert named, refusal
        for name, command in _commands().items():
            assert named <= _options(command), (name, str(refusal))
