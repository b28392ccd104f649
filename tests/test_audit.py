"""`assessengine audit`: a session stored as the engine stores it (codec-encoded batches, chain,
report from the offline scorer) audits clean; tampering with a batch or the report is found."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from assessengine.adapters.library import load_rubric
from assessengine.cli import main
from assessengine.core.codec import Columns, Layout, encode_columns_v1, encode_json_v1
from assessengine.core.offline import score_sessions
from assessengine.sim.generate import simulate
from assessengine.storage.port import SessionInfo, Store
from assessengine.storage.sqlite import SqliteStore

from .stored_payloads import copy_store, edit_payload

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "rubrics" / "forklift-load-handling.yaml"
SESSION = "S-0001"
EVENTS_PER_BATCH = 200


@pytest.fixture(scope="module")
def stored_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "engine.db"
    with SqliteStore(path) as store:
        write_scored_session(store)
    return path


def write_scored_session(store: Store) -> None:
    """A closed forklift session in `store`: batches alternately columns-v1 and json-v1, the
    report scored offline from the same events."""
    rubric, scenario = load_rubric(RUBRIC)
    layout = Layout.of(scenario)
    (session,) = simulate(scenario, "mixed", 1, seed=3).to_sessions()
    session.session = SESSION
    store.open_session(
        SessionInfo(SESSION, "L-7", scenario.scenario, rubric.rubric, rubric.version,
                    rubric.sha256(), metadata={"profile": "mixed"})
    )  # fmt: skip
    events = session.events
    for k, start in enumerate(range(0, len(events), EVENTS_PER_BATCH)):
        part = events[start : start + EVENTS_PER_BATCH]
        header: dict[str, Any] = {"session": SESSION, "first_seq": part[0].seq,
                                  "count": len(part)}  # fmt: skip
        if k % 2 == 0:
            header |= {"encoding": "columns-v1", "dtype": layout.dtype_header()}
            payload = encode_columns_v1(Columns.from_events(part, layout), layout)
        else:
            header["encoding"] = "json-v1"
            payload = encode_json_v1(part, layout)
        store.append_batches([(SESSION, part[0].seq, len(part), header["encoding"],
                               json.dumps(header).encode(), payload)])  # fmt: skip
    assert session.close_t is not None
    store.close_session(SESSION, session.close_t)
    (report,) = score_sessions(rubric, scenario, [session])
    store.save_report(SESSION, report.to_data())


@pytest.fixture
def db(stored_db: Path, tmp_path: Path) -> Path:
    """A private copy of the stored session, free to tamper with."""
    copy = tmp_path / "engine.db"
    copy_store(stored_db, copy)
    return copy


def audit(*args: str) -> Result:
    return CliRunner().invoke(main, ["audit", *args])


def sql(path: Path, statement: str, *params: Any) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(statement, params)
        db.commit()
    finally:
        db.close()


def test_an_untouched_session_audits_clean(db: Path) -> None:
    result = audit(SESSION, "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "chain:  ok" in result.output
    assert "report: matches the stored report exactly" in result.output
    assert result.output.rstrip().endswith("audit: ok")


def test_json_output_says_what_was_checked(db: Path) -> None:
    result = audit(SESSION, "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True
    assert data["chain"]["ok"] is True
    assert data["chain"]["batches"] > 2
    assert data["events"]["count"] > EVENTS_PER_BATCH * 2
    assert data["report"] == {"ok": True, "differences": []}


def test_the_reference_scorer_reproduces_the_report_too(db: Path) -> None:
    assert audit(SESSION, "--db", str(db), "--reference").exit_code == 0


def test_a_changed_payload_byte_breaks_the_chain_at_that_batch(db: Path) -> None:
    def rename_t(payload: bytearray) -> None:  # a json-v1 batch: its events lose their "t"
        payload[:] = payload.replace(b'"t":', b'"T":')

    edit_payload(db, "b.idx = 3", (), rename_t)
    result = audit(SESSION, "--db", str(db))
    assert result.exit_code == 1, result.output
    assert "chain:  BROKEN at batch 3 of" in result.output
    assert result.output.rstrip().endswith("audit: FAILED")


def test_a_flipped_byte_in_a_binary_payload_is_found(db: Path) -> None:
    edit_payload(db, "b.idx = 2", (), lambda p: p.__setitem__(12, p[12] ^ 0x01))  # a t
    result = audit(SESSION, "--db", str(db), "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.output)["chain"] == {"ok": False, "batches": 20, "first_bad": 2}


def test_a_store_copied_without_its_payload_folder_is_refused_clearly(
    stored_db: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "engine.db"
    copy.write_bytes(stored_db.read_bytes())
    result = audit(SESSION, "--db", str(copy))
    assert result.exit_code != 0
    assert "00000001.seg is missing" in result.output
    assert "must be copied with the database" in result.output


def test_a_changed_report_is_found_and_the_difference_named(db: Path) -> None:
    with SqliteStore(db) as store:
        report = store.report(SESSION)
        assert report is not None
        report["criteria"][1]["verdict"] = "pass" if report["criteria"][1]["verdict"] != "pass" \
            else "fail"  # fmt: skip
        store.save_report(SESSION, report)
    result = audit(SESSION, "--db", str(db))
    assert result.exit_code == 1, result.output
    assert "chain:  ok" in result.output
    assert "report: DIFFERS from the stored report:" in result.output
    assert "report.criteria[1].verdict: stored" in result.output


def test_a_missing_report_of_a_closed_session_is_a_mismatch(db: Path) -> None:
    sql(db, "DELETE FROM reports")
    result = audit(SESSION, "--db", str(db))
    assert result.exit_code == 1
    assert "closed but no report is stored" in result.output


def test_an_unknown_session_is_a_usage_error(db: Path) -> None:
    result = audit("nope", "--db", str(db))
    assert result.exit_code == 2
    assert "no session 'nope'" in result.output


def test_a_missing_database_is_a_usage_error(tmp_path: Path) -> None:
    assert audit(SESSION, "--db", str(tmp_path / "none.db")).exit_code == 2


def test_a_file_that_is_not_a_store_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite at all" * 100)
    result = audit(SESSION, "--db", str(bad))
    assert result.exit_code == 2
    assert "not an assessengine store" in result.output


def test_a_rubric_that_cannot_be_found_is_a_usage_error(db: Path, tmp_path: Path) -> None:
    empty = tmp_path / "rubrics"
    empty.mkdir()
    result = audit(SESSION, "--db", str(db), "--rubric-dir", str(empty))
    assert result.exit_code == 2, result.output
    assert "chain:  ok" in result.output
    assert "rubric 'forklift-load-handling' v1" in result.output
    assert "not found" in result.output


def test_an_edited_rubric_with_the_same_version_is_not_used(db: Path, tmp_path: Path) -> None:
    folder = tmp_path / "rubrics"
    folder.mkdir()
    text = RUBRIC.read_text().replace("title: Counterbalance forklift", "title: Forklift", 1)
    (folder / "forklift.yaml").write_text(text)
    result = audit(SESSION, "--db", str(db), "--rubric-dir", str(folder),
                   "--scenarios", str(ROOT / "scenarios"))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "forklift.yaml has sha256" in result.output
