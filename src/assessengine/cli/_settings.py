"""The engine's settings on the command line: one flag per `Settings` field (``--queue-mb``),
``--config FILE``, and `load_settings`, the one call that reads the process's environment for
the engine's settings (`fused_from_environment` reads the two every command applies)."""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
from pydantic import FilePath
from pydantic.fields import FieldInfo

from ..runtime.fused import configure, default_cache_dir
from ..settings import (
    SECRET,
    Settings,
    SettingsError,
    env_name,
    flag_name,
    unknown_environment,
)

F = TypeVar("F", bound=Callable[..., Any])
METAVARS = {
    "db": "URL", "site_id": "NAME", "zmq": "ENDPOINT", "http": "HOST:PORT", "curve_keys": "DIR",
    "rcvhwm": "N",
    "round_messages": "N", "scoring_linger": "SECONDS", "scoring_start_timeout": "SECONDS",
    "stop_timeout": "SECONDS",
    "issuer_key": "FILE", "base_url": "URL", "issuer_name": "NAME", "issuer_url": "URL",
    "issuer_description": "TEXT", "issuer_email": "ADDRESS", "issuer_image": "URL",
    "lrs_url": "URL", "lrs_username": "NAME", "trusted_issuers": "DID",
    "issuer_did_web": "HOST", "issuer_retired_keys": "FILE", "trusted_did_documents": "FILE",
    "archive_url": "DIR|URL", "archive_scheduler": "tcp://HOST:PORT", "fused_cache": "DIR",
}  # fmt: skip

config_option = click.option(
    "--config", "config", metavar="FILE",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A TOML file of settings (same names as the flags, e.g. queue_mb = 128). Flags win "
    "over ASSESSENGINE_* environment variables, which win over the file.",
)  # fmt: skip


def settings_options(*, exclude: frozenset[str] = frozenset()) -> Callable[[F], F]:
    """A decorator adding one option per setting (not `exclude`, not the secret ones). Each
    defaults to None (not given), so that `load_settings` can let env and file fill it."""

    def decorate(command: F) -> F:
        for name, field in reversed(Settings.model_fields.items()):
            if name not in exclude and name not in SECRET:
                decls = [flag_name(name), name]
                if field.get_default() is True:  # a setting on by default: --no-X turns it off
                    decls[0] += f"/--no-{flag_name(name).removeprefix('--')}"
                command = click.option(*decls, **_option(name, field))(command)
        return command

    return decorate


def load_settings(flags: Mapping[str, Any], config: Path | None) -> Settings:
    """The settings: `flags` over the environment over `config` over the defaults. A bad
    setting is a usage error (one line, exit status 2)."""
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    for name in unknown_environment(os.environ):
        click.echo(f"warning: {name} is not a setting (ignored)", err=True)
    try:
        settings = Settings.load(flags=given, environ=os.environ, config=config)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    _apply_fused(settings)
    return settings


FUSED_SETTINGS = ("fused_kernel", "fused_cache")
"""The settings every command applies, from the environment alone (`fused_from_environment`);
commands that load all settings (`load_settings`) apply them from flags and files too."""


def fused_from_environment(environ: Mapping[str, str]) -> None:
    """Apply ``ASSESSENGINE_FUSED_KERNEL`` and ``ASSESSENGINE_FUSED_CACHE`` from `environ` to
    this process (`runtime.fused.configure`). A bad value is a usage error."""
    names = {env_name(name) for name in FUSED_SETTINGS}
    try:
        settings = Settings.load(environ={k: v for k, v in environ.items()
                                          if k.upper() in names})  # fmt: skip
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
    _apply_fused(settings)


def _apply_fused(settings: Settings) -> None:
    configure(settings.fused_kernel, settings.fused_cache or default_cache_dir(os.environ))


def _option(name: str, field: FieldInfo) -> dict[str, Any]:
    default = field.get_default(call_default_factory=True)
    shown = "" if default in (None, []) else f" [default: {_text(default)}]"
    options: dict[str, Any] = {
        "default": None,
        "help": f"{field.description or ''}{shown} Env {env_name(name)}.",
    }
    kind = _inner(field.annotation)
    if kind is bool:
        if default is True:
            return options | {"is_flag": True}
        return options | {"is_flag": True, "flag_value": True}
    if typing.get_origin(kind) is list:
        if typing.get_args(kind) == (Path,):
            return options | {"multiple": True, "metavar": "DIR",
                              "type": click.Path(file_okay=False, exists=True, path_type=Path)}
        if typing.get_args(kind) == (FilePath,):
            return options | {"multiple": True, "metavar": METAVARS.get(name, "FILE"),
                              "type": click.Path(dir_okay=False, exists=True, path_type=Path)}
        return options | {"multiple": True, "metavar": METAVARS.get(name, "TEXT")}
    if typing.get_origin(kind) is Literal:
        return options | {"type": click.Choice([str(c) for c in typing.get_args(kind)])}
    metavar = METAVARS.get(name, name.rsplit("_", 1)[-1].upper())
    if kind is Path:
        return options | {"metavar": metavar, "type": click.Path(exists=True, path_type=Path)}
    return options | {"metavar": metavar, "type": kind}


def _inner(annotation: Any) -> Any:
    """`X` of ``X | None`` and of ``Annotated[X, ...]``."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _inner(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 else str
    return annotation


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
