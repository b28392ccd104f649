"""The Parquet archive: export (chain checked, incremental, idempotent, committed by its
manifest), the reader into kernel batches, verify, and faults (corrupt file, missing column,
altered events). In process: the Dask runs are in tests/test_rescore_dask.py."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from assessengine.adapters.library import load_rubric, load_scenario
from assessengine.archive import rescore
from assessengine.archive.compare import Summary
from assessengine.archive.export import export
from assessengine.archive.layout import MANIFEST, Manifest
from assessengine.archive.location import ArchiveError, ArchiveRoot
from assessengine.archive.reader import event_batches, read_sessions
from assessengine.archive.rescore import Job, plan, run_local
from assessengine.cli import main
from assessengine.core.compiler import compile_rubric
from assessengine.core.kernel_scorer import score_stream
from assessengine.storage import open_store

from .archive_data import RUBRICS, fill_store, old_layout
from .stored_payloads import edit_payload

LHD = "lhd-underground"
NET = "network-lab"


@pytest.fixture(scope="module")
def store_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 6 lhd and 5 network-lab sessions, closed and scored."""
    db = tmp_path_factory.mktemp("store") / "engine.db"
    store = open_store(db)
    try:
        fill_store(store, LHD, 6)
        fill_store(store, NET, 5)
    finally:
        store.close()
    return db


@pytest.fixture
def archive(tmp_path: Path, store_db: Path) -> Iterator[ArchiveRoot]:
    root = ArchiveRoot.open(str(tmp_path / "archive"))
    store = open_store(store_db)
    try:
        export(store, root, load_scenario=load_scenario)
    finally:
        store.close()
    return root


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------ export


def test_export_writes_one_events_table_per_scenario_and_a_sessions_table(
    tmp_path: Path, store_db: Path
) -> None:
    code, out, err = _run("archive", "export", "--db", str(store_db), "--out",
                          str(tmp_path / "a"), "--quiet")  # fmt: skip
    assert code == 0, err
    assert "archived 11 session(s)" in out
    manifest = Manifest.load(ArchiveRoot.open(str(tmp_path / "a")))
    assert manifest is not None
    events = manifest.of_kind("events")
    assert sorted({f.scenario for f in events}) == [LHD, NET]
    assert all(f.path.startswith(f"events/scenario={f.scenario}/date={f.date}/") for f in events)
    lhd = pq.ParquetFile(tmp_path / "a" / manifest.events_files(LHD)[0].path)
    assert lhd.schema_arrow.names == ["session", "seq", "t", "event", "signals"]
    _, scenario = load_rubric(RUBRICS[LHD])
    assert [f.name for f in lhd.schema_arrow.field("signals").type] == list(scenario.signal_names)
    assert lhd.metadata.row_group(0).column(1).compression == "ZSTD"
    sessions = read_sessions(ArchiveRoot.open(str(tmp_path / "a")), manifest)
    assert sessions.num_rows == 11
    row = sessions.to_pylist()[0]
    assert {"learner", "rubric_sha256", "chain_head", "report", "opened_at"} <= set(row)
    assert json.loads(row["report"])["session"] == row["session"]
    assert not (tmp_path / "a" / "_staging").exists()


def test_a_second_export_writes_nothing_new(tmp_path: Path, store_db: Path) -> None:
    out = tmp_path / "a"
    assert _run("archive", "export", "--db", str(store_db), "--out", str(out), "-q")[0] == 0
    before = _files(out)
    code, stdout, _ = _run("archive", "export", "--db", str(store_db), "--out", str(out), "-q")
    assert code == 0
    assert "archived 0 session(s)" in stdout
    assert "11 already archived" in stdout
    assert _files(out) == before


def test_export_is_incremental(tmp_path: Path) -> None:
    db, out = tmp_path / "e.db", ArchiveRoot.open(str(tmp_path / "a"))
    store = open_store(db)
    try:
        fill_store(store, NET, 3)
        first = export(store, out, load_scenario=load_scenario)
        fill_store(store, NET, 2, first=3)
        second = export(store, out, load_scenario=load_scenario)
    finally:
        store.close()
    assert (first.sessions, second.sessions, second.skipped) == (3, 2, 3)
    manifest = Manifest.load(out)
    assert manifest is not None
    assert len(manifest.exports) == 2
    assert read_sessions(out, manifest).num_rows == 5


def test_since_leaves_out_sessions_closed_before_it(tmp_path: Path, store_db: Path) -> None:
    code, stdout, err = _run("archive", "export", "--db", str(store_db), "--out",
                             str(tmp_path / "a"), "--since", "2999-01-01", "-q")  # fmt: skip
    assert code == 0, err
    assert "archived 0 session(s)" in stdout


def test_a_bad_since_is_a_usage_error(tmp_path: Path, store_db: Path) -> None:
    code, _, err = _run("archive", "export", "--db", str(store_db), "--out",
                        str(tmp_path / "a"), "--since", "yesterday")  # fmt: skip
    assert code == 2
    assert "--since 'yesterday': expected an ISO date" in err


def test_a_session_whose_chain_is_broken_is_refused_by_name(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    store = open_store(db)
    try:
        run = fill_store(store, NET, 3, json_every=100)
    finally:
        store.close()
    victim = run.session_ids[1]

    def flip(data: bytearray) -> None:
        data[30] ^= 0x01

    edit_payload(db, "s.session = ? AND b.idx = 0", (victim,), flip)
    code, stdout, err = _run("archive", "export", "--db", str(db), "--out",
                             str(tmp_path / "a"), "-q")  # fmt: skip
    assert code == 1
    assert f"session {victim!r}: batch 0: hash chain broken" in err
    assert "archived 2 session(s)" in stdout
    sessions = read_sessions(ArchiveRoot.open(str(tmp_path / "a")),
                             Manifest.load(ArchiveRoot.open(str(tmp_path / "a"))) or Manifest())
    assert victim not in sessions.column("session").to_pylist()


def test_a_run_cut_short_before_its_manifest_leaves_the_archive_as_it_was(
    tmp_path: Path, store_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = ArchiveRoot.open(str(tmp_path / "a"))

    def refuse(self: ArchiveRoot, relative: str, data: bytes) -> None:
        raise ArchiveError(f"{relative}: the disk is full")

    monkeypatch.setattr(ArchiveRoot, "write_bytes", refuse)
    store = open_store(store_db)
    try:
        with pytest.raises(ArchiveError, match="the disk is full"):
            export(store, root, load_scenario=load_scenario)
    finally:
        store.close()
    assert Manifest.load(root) is None
    monkeypatch.undo()
    code, _stdout, _ = _run("archive", "verify", str(tmp_path / "a"))
    assert code == 2  # no manifest: nothing is archived there
    assert not (tmp_path / "a" / MANIFEST).exists()


def test_export_to_an_unwritable_place_is_one_line_exit_2(tmp_path: Path, store_db: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = _run("archive", "export", "--db", str(store_db), "--out",
                        str(blocker / "a"), "-q")  # fmt: skip
    assert code == 2
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


# ------------------------------------------------------------------------------ reader


def test_reader_gives_the_stored_events_as_kernel_batches_in_bounded_pieces(
    archive: ArchiveRoot,
) -> None:
    manifest = Manifest.load(archive)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS[NET])
    parts, rows = plan(archive, manifest, NET)
    (part,) = parts
    pieces = list(event_batches(archive, part.path, scenario, session_ids=part.sessions,
                                rows=1000))  # fmt: skip
    assert pieces
    assert max(len(p) for p in pieces) <= 1000
    assert sum(len(p) for p in pieces) == sum(rows[s]["events"] for s in part.sessions)
    session = np.concatenate([p.session for p in pieces])
    assert session.dtype == np.int32
    assert set(session.tolist()) == set(range(len(part.sessions)))
    assert all(p.signals.shape == (len(scenario.signal_names), len(p)) for p in pieces)
    reports = score_stream(compile_rubric(rubric, scenario), iter(pieces), part.sessions,
                           np.array(part.close_t))  # fmt: skip
    for report in reports:
        assert report.to_data() == json.loads(rows[report.session]["report"])


def test_reader_skips_sessions_not_asked_for(archive: ArchiveRoot) -> None:
    manifest = Manifest.load(archive)
    assert manifest is not None
    _, scenario = load_rubric(RUBRICS[LHD])
    (part,) = plan(archive, manifest, LHD)[0]
    wanted = [part.sessions[2]]
    pieces = list(event_batches(archive, part.path, scenario, session_ids=wanted))
    assert {int(s) for p in pieces for s in p.session} == {0}


def test_in_process_rescore_reproduces_the_archived_reports(archive: ArchiveRoot) -> None:
    manifest = Manifest.load(archive)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS[LHD])
    parts, rows = plan(archive, manifest, LHD)
    results = list(run_local(Job.of(archive, rubric, scenario), parts))
    reports = [r for res in results for r in res.reports]
    assert len(reports) == 6
    for report in reports:
        assert report == json.loads(rows[report["session"]]["report"])


def test_export_writes_signals_as_nan_and_seq_delta_encoded(archive: ArchiveRoot) -> None:
    manifest = Manifest.load(archive)
    assert manifest is not None
    path = archive.full(manifest.events_files(LHD)[0].path)
    meta = pq.ParquetFile(path).metadata
    columns = {meta.row_group(0).column(k).path_in_schema: meta.row_group(0).column(k)
               for k in range(meta.num_columns)}  # fmt: skip
    assert "DELTA_BINARY_PACKED" in columns["seq"].encodings
    signals = [c for name, c in columns.items() if name.startswith("signals.")]
    assert signals
    assert all(c.statistics.null_count == 0 for c in signals)
    values = pq.read_table(path).column("signals").combine_chunks().flatten()
    assert any(np.isnan(v.to_numpy()).any() for v in values)  # not reported: NaN


def test_a_job_without_reports_gives_outlines_that_summarise_alike(archive: ArchiveRoot) -> None:
    manifest = Manifest.load(archive)
    assert manifest is not None
    rubric, scenario = load_rubric(RUBRICS[NET])
    parts, rows = plan(archive, manifest, NET)
    full = list(run_local(Job.of(archive, rubric, scenario), parts))
    outlined = list(run_local(Job.of(archive, rubric, scenario, reports=False), parts))
    assert all(r.reports == [] for r in outlined)
    assert [o for r in outlined for o in r.outlines] == [o for r in full for o in r.outlines]
    by_reports, by_outlines = Summary(), Summary()
    for report in (r for res in full for r in res.reports):
        by_reports.add(report, rows[report["session"]]["report"])
    for outline in (o for res in outlined for o in res.outlines):
        by_outlines.add(outline.to_data(), rows[outline.session]["report"])
    assert by_outlines.to_data() == by_reports.to_data()
    assert by_outlines.sessions == 5


def _as_old_archive(root: ArchiveRoot) -> None:
    """Rewrite every events file as export wrote it before 2026-12-06 (nullable signals, null
    where not reported, the writer's defaults) and its manifest entry with the new bytes'
    sha256 and size, as an archive exported then would have them."""
    manifest = Manifest.load(root)
    assert manifest is not None
    files = []
    for entry in manifest.files:
        if entry.kind != "events":
            files.append(entry)
            continue
        path = Path(root.full(entry.path))
        pq.write_table(old_layout(pq.read_table(path)), path, compression="zstd")
        files.append(dataclasses.replace(entry, bytes=path.stat().st_size,
                                         sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
    root.write_bytes(MANIFEST, Manifest(tuple(files), manifest.exports).to_json())


@pytest.mark.parametrize("scenario_id", [LHD, NET])
def test_an_archive_of_the_old_layout_rescores_to_the_archived_reports(
    archive: ArchiveRoot, scenario_id: str
) -> None:
    _as_old_archive(archive)
    manifest = Manifest.load(archive)
    assert manifest is not None
    path = archive.full(manifest.events_files(scenario_id)[0].path)
    assert pq.ParquetFile(path).metadata.row_group(0).column(4).statistics.null_count > 0
    rubric, scenario = load_rubric(RUBRICS[scenario_id])
    parts, rows = plan(archive, manifest, scenario_id)
    assert all(rescore.bytes_match(archive, p) for p in parts)
    reports = [r for res in run_local(Job.of(archive, rubric, scenario), parts)
               for r in res.reports]  # fmt: skip
    assert len(reports) == len(rows)
    for report in reports:
        assert report == json.loads(rows[report["session"]]["report"])


def test_a_pickled_job_loads_its_rubric_once_per_process(tmp_path: Path) -> None:
    rubric, scenario = load_rubric(RUBRICS[NET])
    job = Job.of(ArchiveRoot.open(str(tmp_path)), rubric, scenario, reports=False)
    raw = pickle.dumps(job)
    first, second = pickle.loads(raw), pickle.loads(raw)
    assert first == job
    assert first.rubric.sha256() == rubric.sha256()
    assert first.scenario == scenario
    assert second.rubric is first.rubric  # not rebuilt (about 1 ms a task on a worker)
    assert second.scenario is first.scenario

# ------------------------------------------------------------------------------ faults


def _events_file(root: ArchiveRoot, scenario: str) -> Path:
    manifest = Manifest.load(root)
    assert manifest is not None
    return Path(root.full(manifest.events_files(scenario)[0].path))


def _rescore_local(root: ArchiveRoot, scenario: str) -> None:
    manifest = Manifest.load(root)
    assert manifest is not None
    rubric, sc = load_rubric(RUBRICS[scenario])
    parts, _ = plan(root, manifest, scenario)
    list(run_local(Job.of(root, rubric, sc), parts))


def test_a_corrupt_events_file_is_named(archive: ArchiveRoot) -> None:
    path = _events_file(archive, LHD)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=rf"{path.name}: not a readable Parquet file"):
        _rescore_local(archive, LHD)


def test_a_truncated_events_file_is_named(archive: ArchiveRoot) -> None:
    path = _events_file(archive, LHD)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ArchiveError, match=rf"{path.name}: not a readable Parquet file"):
        _rescore_local(archive, LHD)


def test_a_missing_signal_column_is_named(archive: ArchiveRoot) -> None:
    path = _events_file(archive, NET)
    table = pq.read_table(path)
    signals = table.column("signals").combine_chunks()
    kept = [f.name for f in signals.type if f.name != "vlan"]
    narrower = pa.StructArray.from_arrays([signals.field(n) for n in kept], names=kept)
    pq.write_table(table.set_column(4, "signals", narrower), path)
    with pytest.raises(ArchiveError, match=r"column 'signals.vlan' is missing"):
        _rescore_local(archive, NET)


def test_a_missing_column_is_named(archive: ArchiveRoot) -> None:
    path = _events_file(archive, NET)
    pq.write_table(pq.read_table(path).drop_columns(["t"]), path)
    with pytest.raises(ArchiveError, match=r"column 't' is missing"):
        _rescore_local(archive, NET)


def test_events_changed_after_export_are_refused_naming_the_session(
    archive: ArchiveRoot,
) -> None:
    path = _events_file(archive, NET)
    table = pq.read_table(path)
    first = table.column("session").combine_chunks().dictionary[
        table.column("session").combine_chunks().indices[0].as_py()].as_py()
    t = table.column("t").to_numpy().copy()
    t[5] += 0.25
    pq.write_table(table.set_column(2, "t", pa.array(t)), path)
    with pytest.raises(ArchiveError, match=rf"session '{first}': its archived events do not "
                       "match its events digest"):  # fmt: skip
        _rescore_local(archive, NET)
    code, stdout, _ = _run("archive", "verify", archive.path)
    assert code == 1
    assert f"session '{first}': its rows" in stdout


def test_verify_checks_chain_heads_against_the_store(archive: ArchiveRoot, store_db: Path,
                                                     tmp_path: Path) -> None:  # fmt: skip
    code, stdout, err = _run("archive", "verify", archive.path, "--db", str(store_db))
    assert code == 0, err + stdout
    assert "11 session(s)" in stdout
    assert ": ok" in stdout
    other = tmp_path / "other.db"
    store = open_store(other)
    try:
        fill_store(store, LHD, 6, seed=7)  # other sessions under other ids
    finally:
        store.close()
    code, stdout, _ = _run("archive", "verify", archive.path, "--db", str(other))
    assert code == 1
    assert "not in the store" in stdout


def test_verify_names_a_missing_file(archive: ArchiveRoot) -> None:
    path = _events_file(archive, LHD)
    path.unlink()
    code, stdout, _ = _run("archive", "verify", archive.path)
    assert code == 1
    assert f"{path}: listed in the manifest but missing" in stdout


def test_verify_of_a_place_without_archive_is_exit_2(tmp_path: Path) -> None:
    code, _, err = _run("archive", "verify", str(tmp_path))
    assert code == 2
    assert "no archive here" in err


def test_rescore_of_a_scenario_with_nothing_archived_says_so_without_a_cluster(
    archive: ArchiveRoot,
) -> None:
    code, stdout, err = _run("rescore", "--rubric", str(RUBRICS["forklift-warehouse"]),
                             "--archive", archive.path, "--quiet")  # fmt: skip
    assert code == 0, err
    assert stdout.startswith("0 session(s), 0 events")


def test_rescore_where_with_a_bad_key_is_a_usage_error(archive: ArchiveRoot) -> None:
    code, _, err = _run("rescore", "--rubric", str(RUBRICS[NET]), "--archive", archive.path,
                        "--where", "learner=L1")  # fmt: skip
    assert code == 2
    assert "--where 'learner=L1': expected KEY=VALUE with KEY one of scenario, since, until" in err


def test_rescore_where_since_after_every_session_scores_none(archive: ArchiveRoot) -> None:
    code, stdout, err = _run("rescore", "--rubric", str(RUBRICS[NET]), "--archive", archive.path,
                             "--where", "scenario=network-lab,since=2999-01-01", "-q")  # fmt: skip
    assert code == 0, err
    assert stdout.startswith("0 session(s)")


# ------------------------------------------------------------------------------ file hashes


def test_export_records_each_files_sha256(archive: ArchiveRoot) -> None:
    manifest = Manifest.load(archive)
    assert manifest is not None
    assert manifest.files
    for entry in manifest.files:
        data = Path(archive.full(entry.path)).read_bytes()
        assert entry.sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_whose_bytes_match_the_manifest_skips_the_per_session_digests(
    archive: ArchiveRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_digests(*_: object) -> None:
        raise AssertionError("per-session digests computed for an unchanged file")

    monkeypatch.setattr(rescore, "Digests", no_digests)
    _rescore_local(archive, LHD)


def test_a_manifest_without_file_hashes_still_checks_each_session(archive: ArchiveRoot) -> None:
    manifest_file = Path(archive.full(MANIFEST))
    data = json.loads(manifest_file.read_text())
    for entry in data["files"]:
        del entry["sha256"]
    manifest_file.write_text(json.dumps(data))
    _rescore_local(archive, NET)  # unchanged: passes on the per-session digests
    path = _events_file(archive, NET)
    table = pq.read_table(path)
    t = table.column("t").to_numpy().copy()
    t[3] += 0.5
    pq.write_table(table.set_column(2, "t", pa.array(t)), path)
    with pytest.raises(ArchiveError, match=r"its archived events do not match its events digest"):
        _rescore_local(archive, NET)


def test_verify_names_a_file_whose_bytes_changed_even_with_the_same_rows(
    archive: ArchiveRoot,
) -> None:
    path = _events_file(archive, NET)
    data = path.read_bytes()
    assert data.count(b"parquet-cpp-arrow") == 1
    path.write_bytes(data.replace(b"parquet-cpp-arrow", b"PARQUET-cpp-arrow"))  # same size, rows
    code, stdout, _ = _run("archive", "verify", archive.path)
    assert code == 1
    assert (f"{path}: its bytes do not give the manifest's sha256 (the file was changed after "
            "export)") in stdout  # fmt: skip
    _rescore_local(archive, NET)  # the rows are those archived: re-scoring them is fine
