"""`assessengine score` on columnar input: a Parquet or Arrow IPC file of the archive's events
layout, or an archive directory. Reports equal scoring the same sessions from JSON Lines, on
all four scenarios; bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from assessengine.adapters.library import load_rubric, load_scenario
from assessengine.archive.export import export
from assessengine.archive.layout import Manifest, events_record_batch
from assessengine.archive.location import ArchiveRoot
from assessengine.cli import main
from assessengine.sim.generate import SimBatch, jsonl_lines, simulate
from assessengine.storage import open_store

from .archive_data import RUBRICS, fill_store, write_jsonl

SESSIONS = 3


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _score(events: Path | str, scenario: str, *more: str) -> list[dict[str, object]]:
    code, out, err = _run("score", str(events), "--rubric", str(RUBRICS[scenario]), "--json",
                          *more)  # fmt: skip
    assert code == 0, err
    sessions: list[dict[str, object]] = json.loads(out)["sessions"]
    return sessions


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, SimBatch]]:
    folder = tmp_path_factory.mktemp("score-archive")
    store = open_store(folder / "engine.db")
    try:
        runs = {sc: fill_store(store, sc, SESSIONS, seed=8) for sc in RUBRICS}
        export(store, ArchiveRoot.open(str(folder / "archive")), load_scenario=load_scenario,
               file_rows=2000)  # fmt: skip
    finally:
        store.close()
    return folder / "archive", runs


@pytest.mark.parametrize("scenario", sorted(RUBRICS))
def test_an_archive_scores_as_its_sessions_in_json_lines(
    scenario: str, archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path
) -> None:
    archive, runs = archived
    jsonl = write_jsonl([runs[scenario]], tmp_path / "events.jsonl")
    expected = _score(jsonl, scenario)
    assert len(expected) == SESSIONS
    assert _score(archive, scenario) == expected


def _write(sim: SimBatch, path: Path) -> Path:
    _, scenario = load_rubric(RUBRICS[sim.scenario])
    table = pa.Table.from_batches([events_record_batch(
        scenario, sim.session_ids, sim.session, sim.seq, sim.t, sim.event, sim.signals)])
    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=1000)
    elif path.suffix == ".arrow":
        with pa.ipc.new_file(path, table.schema) as out:
            out.write_table(table, max_chunksize=1000)
    else:
        with pa.ipc.new_stream(path, table.schema) as out:
            out.write_table(table, max_chunksize=1000)
    return path


def _jsonl_without_closes(sim: SimBatch, path: Path) -> Path:
    """The sessions as JSON Lines without close lines: each closes at its last event, as
    in a bare events file."""
    lines = [line for line in jsonl_lines(sim) if '"close"' not in line]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("scenario", sorted(RUBRICS))
@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".arrows"])
def test_a_parquet_or_arrow_file_scores_as_its_sessions_in_json_lines(
    scenario: str, suffix: str, tmp_path: Path
) -> None:
    rubric, sc = load_rubric(RUBRICS[scenario])
    sim = simulate(sc, "mixed", SESSIONS, seed=11, rubric=rubric.rubric)
    expected = _score(_jsonl_without_closes(sim, tmp_path / "events.jsonl"), scenario)
    assert _score(_write(sim, tmp_path / f"events{suffix}"), scenario) == expected


def test_format_names_parquet_whatever_the_files_name(tmp_path: Path) -> None:
    rubric, sc = load_rubric(RUBRICS["network-lab"])
    sim = simulate(sc, "mixed", SESSIONS, seed=12, rubric=rubric.rubric)
    path = _write(sim, tmp_path / "events.parquet").rename(tmp_path / "events.data")
    expected = _score(_jsonl_without_closes(sim, tmp_path / "events.jsonl"), "network-lab")
    assert _score(path, "network-lab", "--format", "parquet") == expected


def test_the_reference_scorer_reads_parquet_too(tmp_path: Path) -> None:
    rubric, sc = load_rubric(RUBRICS["forklift-warehouse"])
    sim = simulate(sc, "mixed", SESSIONS, seed=13, rubric=rubric.rubric)
    path = _write(sim, tmp_path / "events.parquet")
    assert _score(path, "forklift-warehouse", "--reference") == _score(path,
                                                                        "forklift-warehouse")


def test_rows_out_of_order_are_one_line_exit_2(tmp_path: Path) -> None:
    rubric, sc = load_rubric(RUBRICS["network-lab"])
    sim = simulate(sc, "mixed", 1, seed=14, rubric=rubric.rubric)
    seq = sim.seq.copy()
    seq[[10, 11]] = seq[[11, 10]]
    table = pa.Table.from_batches([events_record_batch(
        sc, sim.session_ids, sim.session, seq, sim.t, sim.event, sim.signals)])
    pq.write_table(table, tmp_path / "events.parquet")
    code, _, err = _run("score", str(tmp_path / "events.parquet"), "--rubric",
                        str(RUBRICS["network-lab"]))  # fmt: skip
    assert code == 2
    assert err.startswith(f"error: {tmp_path / 'events.parquet'}: row 11: session ")
    assert "seq 10 does not increase (previous seq 11)" in err
    assert err.count("\n") == 1


def test_a_file_without_a_signal_of_the_scenario_is_one_line_exit_2(tmp_path: Path) -> None:
    rubric, sc = load_rubric(RUBRICS["network-lab"])
    sim = simulate(sc, "mixed", 1, seed=15, rubric=rubric.rubric)
    _, other = load_rubric(RUBRICS["forklift-warehouse"])
    path = _write(sim, tmp_path / "events.parquet")
    code, _, err = _run("score", str(path), "--rubric", str(RUBRICS["forklift-warehouse"]))
    assert code == 2
    assert f"column 'signals.{other.signal_names[0]}' is missing" in err
    assert err.count("\n") == 1


def test_an_archive_file_changed_after_export_is_refused(
    archived: tuple[Path, dict[str, SimBatch]], tmp_path: Path
) -> None:
    import shutil  # noqa: PLC0415

    archive = tmp_path / "archive"
    shutil.copytree(archived[0], archive)
    manifest = Manifest.load(ArchiveRoot.open(str(archive)))
    assert manifest is not None
    path = archive / manifest.events_files("network-lab")[0].path
    table = pq.read_table(path)
    t = table.column("t").to_numpy().copy()
    t[4] += 0.125
    pq.write_table(table.set_column(2, "t", pa.array(t)), path)
    code, _, err = _run("score", str(archive), "--rubric", str(RUBRICS["network-lab"]))
    assert code == 2
    assert "its archived events do not match its events digest" in err
    assert err.count("\n") == 1


def test_a_directory_without_an_archive_is_one_line_exit_2(tmp_path: Path) -> None:
    code, _, err = _run("score", str(tmp_path), "--rubric", str(RUBRICS["network-lab"]))
    assert code == 2
    assert "no archive here" in err
    assert err.count("\n") == 1
