"""The engine without its optional extras, as the README's first command installs it (`pip
install .`): the demo and `score` run, every command is listed, and a command that needs an
extra says which one and how to install it, in one line and exit status 2, not a traceback.

The extras' modules (`assessengine.extras.EXTRA_OF_MODULE`) are made impossible to import in
the commands' processes and their children by a ``sitecustomize`` on ``PYTHONPATH``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from assessengine.extras import EXTRA_OF_MODULE

from .test_engine_helpers import ROOT

_BLOCKER = '''
import sys

BLOCKED = {blocked!r}


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
'''

INTEGRATIONS = {"assessengine.storage.postgres", "assessengine.storage.postgres_owners",
                "assessengine.storage.replication"}  # fmt: skip
"""The modules that are an extra's integration (psycopg's): imported only when asked for."""

RUBRIC = ROOT / "rubrics" / "forklift-load-handling.yaml"


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a process (and its children) that cannot import any extra."""
    where = tmp_path_factory.mktemp("no-extras")
    (where / "sitecustomize.py").write_text(
        _BLOCKER.format(blocked=sorted(EXTRA_OF_MODULE)), encoding="utf-8"
    )
    return os.environ | {"PYTHONPATH": str(where), "PYTHONUNBUFFERED": "1"}


def _run(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


def test_the_blocker_blocks(without_extras: dict[str, str]) -> None:
    """The harness itself: an extra's module cannot be imported under it."""
    done = _run(without_extras, "-c", "import dask")
    assert done.returncode == 1
    assert "No module named 'dask'" in done.stderr


def test_every_module_imports_but_the_extras_integrations(without_extras: dict[str, str]) -> None:
    """Every module of the package imports without the extras (so every command is listed,
    and `--help` works), except the integrations that are imported only when asked for."""
    script = (
        "import importlib, json, pkgutil, assessengine\n"
        "failed = {}\n"
        "for m in pkgutil.walk_packages(assessengine.__path__, 'assessengine.'):\n"
        "    if m.name.startswith('assessengine.storage.migrations.'):\n"
        "        continue  # alembic's, run by alembic\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        failed[m.name] = exc.name\n"
        "print(json.dumps(failed))\n"
    )
    done = _run(without_extras, "-c", script)
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout)
    assert set(failed) == INTEGRATIONS, failed
    assert set(failed.values()) == {"psycopg"}
    listed = _run(without_extras, "-m", "assessengine", "--help")
    assert listed.returncode == 0, listed.stderr
    assert {"site", "rescore"} <= {line.split()[0] for line in listed.stdout.splitlines()
                                   if line.startswith("  ")}


@pytest.fixture(scope="module")
def demo(without_extras: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
         ) -> tuple[subprocess.CompletedProcess[str], Path]:  # fmt: skip
    """The demo's run without the extras, and its store."""
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    done = _run(without_extras, "-m", "assessengine", "demo", "--sessions", "2", "--scenario",
                "forklift-warehouse", "--db", str(db))  # fmt: skip
    return done, db


def test_the_demo_runs_without_the_extras(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """The README's first command, on what `pip install .` installs."""
    done, _ = demo
    assert done.returncode == 0, done.stdout + done.stderr
    assert "events/s end to end" in done.stdout


@pytest.fixture(scope="module")
def archive(without_extras: dict[str, str], demo: tuple[subprocess.CompletedProcess[str], Path],
            tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    """The demo's store archived (Parquet on a local disk) without the extras."""
    out = tmp_path_factory.mktemp("archive")
    done = _run(without_extras, "-m", "assessengine", "archive", "export", "--db", str(demo[1]),
                "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_score_reads_an_archive_without_the_extras(
    without_extras: dict[str, str], archive: Path
) -> None:
    done = _run(without_extras, "-m", "assessengine", "score", "--rubric", str(RUBRIC),
                str(archive))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 session(s): " in done.stdout, done.stdout


def test_score_reads_json_lines_without_the_extras(
    without_extras: dict[str, str], tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    made = _run(without_extras, "-m", "assessengine", "simulate", "forklift-warehouse", "-p",
                "mixed", "-n", "3", "--seed", "4", "-o", str(events))  # fmt: skip
    assert made.returncode == 0, made.stderr
    done = _run(without_extras, "-m", "assessengine", "score", "--rubric", str(RUBRIC),
                str(events))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "extra"), [
    (["rescore", "--archive", "{archive}", "--rubric", str(RUBRIC)], "archive"),
    (["site", "list", "--hub", "postgresql://u@127.0.0.1:1/x"], "postgres"),
    (["serve", "--db", "postgresql://u@127.0.0.1:1/x", "--issuer-key", "{key}"], "postgres"),
    (["score", "--rubric", str(RUBRIC), "s3://bucket/prefix"], "archive"),
])  # fmt: skip
def test_a_command_that_needs_an_extra_names_it(
    without_extras: dict[str, str], archive: Path, tmp_path: Path, args: list[str], extra: str
) -> None:
    """One line naming the extra and its pip command, exit status 2, no traceback."""
    key = tmp_path / "issuer.pem"
    made = _run(without_extras, "-m", "assessengine", "keys", "issuer", "--out", str(key))
    assert made.returncode == 0, made.stderr
    argv = [a.format(archive=archive, key=key) for a in args]
    done = _run(without_extras, "-m", "assessengine", *argv)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"pip install 'assessengine[{extra}]'" in done.stderr, done.stderr


def test_the_extras_named_are_the_projects() -> None:
    """Each extra `extras` names is one of pyproject's, and installs the module it is named
    for (the distribution's name, as pip spells it, starts the requirement); and each
    distribution of the users' extras is named there, so that the tests above run without
    it (pyarrow was in the archive extra while `score` and the demo imported it)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    core = " ".join(project["dependencies"])
    distribution = {"psycopg_pool": "psycopg[", "distributed": "dask[distributed]"}
    for module, extra in EXTRA_OF_MODULE.items():
        assert extra in extras, extra
        wanted = distribution.get(module, module)
        assert any(r.replace("_", "-").startswith(wanted.replace("_", "-"))
                   for r in extras[extra]), (module, extra)  # fmt: skip
        assert wanted not in core, f"{module} is a core dependency, not an extra's"
    named = {module.replace("_", "-") for module in EXTRA_OF_MODULE}
    for extra in ("postgres", "archive"):
        for requirement in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement)
            assert name is not None
            assert name.group().replace("_", "-") in named, (extra, requirement)


def test_the_dask_runner_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP API's cohort re-scores on a Dask scheduler (setting ``archive_scheduler``) go
    through the same runner: without Dask it is a `SchedulerError` naming the extra, which
    the API logs and re-scores from the store instead (`api.service.rescore`)."""
    from assessengine.archive.rescore import DaskRunner, SchedulerError  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(SchedulerError, match=r"pip install 'assessengine\[archive\]'"):
        DaskRunner(scheduler="tcp://127.0.0.1:1").__enter__()
