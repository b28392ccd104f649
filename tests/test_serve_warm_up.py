"""`serve` makes the scoring kernel ready (numba's cache, or a first run's compile) before it
starts the engine, so the scoring process's start clock (``scoring_start_timeout``) never
includes a compile: on a busy machine a first run's compile alone can take minutes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assessengine import compose
from assessengine.cli import main, serve_cmd
from assessengine.ingest.zmq import IngestConfigError
from assessengine.runtime.pipeline import RubricLibrary, warm_up_kernel


def test_serve_warms_the_kernel_before_it_builds_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def prepare(library: RubricLibrary, *, meanwhile: Callable[[], object]) -> bool:
        calls.append(f"warm {len(library)} rubrics")
        return False

    def build_engine(*args: Any, **kwargs: Any) -> None:
        calls.append("engine")
        raise IngestConfigError("stopped here by the test")

    monkeypatch.setattr(serve_cmd.pipeline, "prepare_kernel", prepare)
    monkeypatch.setattr(compose, "build_engine", build_engine)
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "engine.db")])
    assert result.exit_code == 2, result.output
    assert "stopped here by the test" in result.output
    assert calls[1:] == ["engine"], calls
    assert calls[0].startswith("warm ")
    assert not calls[0].startswith("warm 0 ")


def test_the_warm_up_says_whether_it_compiled() -> None:
    library, _ = RubricLibrary.load(compose.rubric_dirs())
    warm_up_kernel(library)  # whatever this process had: now loaded or compiled
    assert warm_up_kernel(library) is False  # a second time nothing is compiled
