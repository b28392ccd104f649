"""`assessengine keys create`: CURVE key pairs that the ingest and the client load."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from assessengine.cli import main
from assessengine.client import ClientCurve
from assessengine.ingest.zmq import CurveConfig


def test_keys_create_writes_a_loadable_pair_with_a_private_secret(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    for name in ("engine", "sim-01"):
        result = CliRunner().invoke(main, ["keys", "create", "--out", str(out), "--name", name])
        assert result.exit_code == 0, result.output
        assert f"{name}.key_secret" in result.output
    secret = out / "engine.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "sim-01.key").write_bytes((out / "sim-01.key").read_bytes())
    curve = CurveConfig.from_files(secret, allowed)
    client = ClientCurve.from_files(out / "engine.key", out / "sim-01.key_secret")
    assert client.server_public_key == curve.public_key
    assert curve.allowed_clients == {client.public_key}


def test_keys_create_does_not_overwrite_without_force(tmp_path: Path) -> None:
    args = ["keys", "create", "--out", str(tmp_path)]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = (tmp_path / "engine.key").read_bytes()
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0
    assert "--force" in again.output
    assert (tmp_path / "engine.key").read_bytes() == before
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0
    assert (tmp_path / "engine.key").read_bytes() != before


def test_keys_create_refuses_a_name_with_a_path_in_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "create", "--out", str(tmp_path), "--name", "../x"])
    assert result.exit_code == 2
    assert not (tmp_path.parent / "x.key").exists()
