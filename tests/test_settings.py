"""The settings: defaults, then a TOML file, then ASSESSENGINE_* variables, then flags (each
later source wins); one-line errors that name the setting and its source; only the CLI reads
the process's environment; every setting is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from assessengine.cli import main
from assessengine.cli._settings import fused_from_environment, load_settings
from assessengine.compose import check_store, open_store
from assessengine.runtime import fused
from assessengine.settings import Settings, SettingsError, env_name, flag_name, unknown_environment
from assessengine.storage.port import StoreOpenError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "assessengine"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text('db = "sqlite:///from-file.db"\nqueue_mb = 32\nrcvhwm = 8\n'
                    'scoring = "thread"\n')
    return path


def test_defaults_hold_without_any_source() -> None:
    s = Settings.load()
    assert (s.db, s.zmq, s.queue_mb, s.scoring, s.synchronous) == (
        None, "tcp://127.0.0.1:5555", 64, "process", "normal")  # fmt: skip
    assert s.queue_bytes == 64 * 2**20


def test_flags_win_over_the_environment_which_wins_over_the_file(config: Path) -> None:
    environ = {"ASSESSENGINE_QUEUE_MB": "48", "ASSESSENGINE_RCVHWM": "16", "HOME": "/x"}
    s = Settings.load(flags={"queue_mb": 128, "zmq": None}, environ=environ, config=config)
    assert s.queue_mb == 128            # flag over environment and file
    assert s.rcvhwm == 16               # environment over file
    assert s.db == "sqlite:///from-file.db"
    assert s.scoring == "thread"
    assert s.zmq == "tcp://127.0.0.1:5555"  # a flag given as None is not given


def test_the_model_never_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSESSENGINE_QUEUE_MB", "5")
    assert Settings().queue_mb == 64
    assert Settings.load(environ={}).queue_mb == 64


def test_lists_come_from_the_environment_as_json() -> None:
    s = Settings.load(environ={"ASSESSENGINE_RUBRICS": '["a", "b"]'})
    assert s.rubrics == [Path("a"), Path("b")]


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"queue_mb": 0}, {}, "command line: --queue-mb: Input should be greater than"),
        ({}, {"ASSESSENGINE_QUEUE_MB": "lots"}, "environment: ASSESSENGINE_QUEUE_MB: Input"),
        ({}, {"ASSESSENGINE_SCORING": "fork"}, "environment: ASSESSENGINE_SCORING: Input"),
        ({}, {"ASSESSENGINE_BASE_URL": "ftp://x"}, "must be an http(s) URL"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting_and_its_source(
    flags: dict[str, object], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(flags=flags, environ=environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_config_file_with_an_unknown_name_or_bad_toml_is_refused(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text("queu_mb = 3\n")
    with pytest.raises(SettingsError, match=r"typo\.toml: unknown setting 'queu_mb'"):
        Settings.load(config=typo)
    broken = tmp_path / "broken.toml"
    broken.write_text("queue_mb = \n")
    with pytest.raises(SettingsError, match=r"broken\.toml: "):
        Settings.load(config=broken)
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.load(config=tmp_path / "missing.toml")


def test_unknown_assessengine_variables_are_reported_not_used() -> None:
    environ = {"ASSESSENGINE_QUEU_MB": "3", "ASSESSENGINE_QUEUE_MB": "4", "PATH": "/bin"}
    assert unknown_environment(environ) == ["ASSESSENGINE_QUEU_MB"]
    assert Settings.load(environ=environ).queue_mb == 4


def test_the_lrs_password_is_never_shown_and_has_no_flag() -> None:
    s = Settings.load(environ={"ASSESSENGINE_LRS_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s)
    assert s.lrs_password is not None
    assert s.lrs_password.get_secret_value() == "hunter2"
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--lrs-password" not in result.output
    assert "--queue-mb" in result.output
    assert "ASSESSENGINE_QUEUE_MB" in result.output


def test_db_takes_a_sqlite_url_a_bare_path_or_a_postgres_url(tmp_path: Path) -> None:
    def checked(db: str, **more: Any) -> Path | None:
        return check_store(Settings.load(flags={"db": db, **more}, environ={}))

    assert checked(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db"
    assert checked("relative/b.db") == Path("relative/b.db")
    with pytest.raises(StoreOpenError, match="unknown store URL scheme"):
        checked("mysql://h/db")
    with pytest.raises(SettingsError, match="give --issuer-key FILE"):
        checked("postgresql://engine@db.example/assess")
    key = tmp_path / "issuer.pem"
    assert checked("postgresql://engine@db.example/assess", issuer_key=key) is None
    store = open_store(f"sqlite:///{tmp_path}/c.db")
    store.close()
    assert (tmp_path / "c.db").is_file()


def test_serve_refuses_bad_settings_with_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('queue_mb = "x"\n')
    runner = CliRunner()
    result = runner.invoke(main, ["serve", "--config", str(bad), "--db", str(tmp_path / "e.db")])
    assert result.exit_code == 2
    assert "bad.toml: queue_mb: Input should be a valid integer" in result.output
    result = runner.invoke(main, ["serve"], env={"ASSESSENGINE_DB": ""})
    assert result.exit_code == 2
    assert "no store given" in result.output
    result = runner.invoke(main, ["serve", "--db", "x.db", "--scoring-linger", "99"])
    assert result.exit_code == 2
    assert "--scoring-linger" in result.output
    assert "Traceback" not in result.output


def test_only_the_cli_reads_the_process_environment() -> None:
    readers = [
        f"{path.relative_to(SRC)}:{node.lineno}"
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] != "cli"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
    ]
    assert readers == []


def test_every_setting_is_in_the_operations_table_with_its_env_name_and_flag() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", text, re.M)}
    for name in Settings.model_fields:
        assert name in rows, f"{name} is not in docs/operations.md's settings table"
        assert f"`{env_name(name)}`" in rows[name]
        if name != "lrs_password":
            assert f"`{flag_name(name)}" in rows[name]


def test_the_documented_config_file_loads(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S)
    assert example is not None
    path = tmp_path / "engine.toml"
    path.write_text(example.group(1))
    s = Settings.load(config=path)
    assert s.db == "sqlite:///var/lib/assessengine/engine.db"
    assert s.queue_mb == 128


# ------------------------------------------------------------------ the fused kernel's settings


def test_the_fused_kernels_environment_names_are_settings_not_unknown_names() -> None:
    """`serve` warned "ASSESSENGINE_FUSED_KERNEL is not a setting (ignored)" and then used it."""
    environ = {"ASSESSENGINE_FUSED_KERNEL": "1", "ASSESSENGINE_FUSED_CACHE": "/tmp/x"}
    assert unknown_environment(environ) == []
    s = Settings.load(environ=environ)
    assert (s.fused_kernel, s.fused_cache) == (True, Path("/tmp/x"))


def test_the_fused_kernel_is_on_by_default() -> None:
    assert Settings.load(environ={}).fused_kernel is True
    assert Settings.load(environ={"ASSESSENGINE_FUSED_KERNEL": "0"}).fused_kernel is False


def test_every_command_applies_the_fused_settings_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    try:
        fused_from_environment({"ASSESSENGINE_FUSED_KERNEL": "true",
                                "ASSESSENGINE_FUSED_CACHE": str(tmp_path),
                                "ASSESSENGINE_QUEUE_MB": "not read here"})  # fmt: skip
        assert fused.installed_cache_dir() == tmp_path
        fused_from_environment({"ASSESSENGINE_FUSED_KERNEL": "0"})
        assert fused.installed_cache_dir() is None
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        fused_from_environment({})  # on by default, in the default directory
        assert fused.installed_cache_dir() == tmp_path / "xdg" / "assessengine" / "fused"
        with pytest.raises(click.UsageError, match="ASSESSENGINE_FUSED_KERNEL"):
            fused_from_environment({"ASSESSENGINE_FUSED_KERNEL": "maybe"})
    finally:
        fused.uninstall()


def test_serve_takes_the_fused_kernel_as_a_flag(tmp_path: Path) -> None:
    """`load_settings` (serve, demo) applies fused_kernel from flags and files as well."""

    try:
        load_settings({"fused_kernel": True, "fused_cache": tmp_path}, None)
        assert fused.installed_cache_dir() == tmp_path
        load_settings({"fused_kernel": False}, None)  # --no-fused-kernel
        assert fused.installed_cache_dir() is None
    finally:
        fused.uninstall()
