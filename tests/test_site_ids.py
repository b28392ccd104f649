"""Ids at a site (`ingest.sites`, `core.ids.qualify`, the ``site_id`` setting): a site's engine
stores what a simulator opens as SITE:ID, and answers with the simulator's own ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.events import Event
from assessengine.core.ids import MAX_ID_LENGTH, qualify, site_problem, unqualify
from assessengine.ingest.fake import FakeTransport
from assessengine.ingest.sites import at_site
from assessengine.settings import Settings, SettingsError
from assessengine.storage.memory import MemoryStore

from .ingest_engine import DEMO, running
from .test_api_uploads import field_log

LAYOUT = Layout.of(DEMO)


def _open(session: str = "S1", learner: str = "L1") -> dict[str, Any]:
    return {"type": "OPEN", "session": session, "learner": learner, "scenario": "demo",
            "rubric": "r"}  # fmt: skip


def _batch(session: str, first: int, n: int) -> tuple[dict[str, Any], bytes]:
    events = [Event(first + i, 0.1 * (first + i), "sample", {"speed": 1.0}) for i in range(n)]
    payload = encode_columns_v1(Columns.from_events(events, LAYOUT), LAYOUT)
    return {"type": "EVENTS", "session": session, "first_seq": first, "count": n,
            "encoding": "columns-v1", "dtype": LAYOUT.dtype_header()}, payload  # fmt: skip


def test_a_site_engine_stores_qualified_ids_and_answers_with_the_simulators_own() -> None:
    transport, store = FakeTransport(), MemoryStore()
    peer = transport.peer()
    with running(store, at_site(transport, "north")) as engine:
        opened = peer.request(_open(), timeout=60)
        acked = peer.request(*_batch("S1", 0, 5), timeout=60)
        closed = peer.request({"type": "CLOSE", "session": "S1", "t": 1.0, "next_seq": 5},
                              timeout=60)  # fmt: skip
        assert engine.wait_idle(60)
    assert (opened["type"], opened["session"]) == ("OPENED", "S1")
    assert (acked["type"], acked["session"], acked["seq"]) == ("ACK", "S1", 4)
    assert (closed["type"], closed["session"]) == ("CLOSED", "S1")
    record = store.session("north:S1")
    assert record is not None
    assert record.info.learner == "north:L1"
    assert record.info.metadata == {"site": "north"}
    assert store.session("S1") is None
    assert store.report("north:S1") is not None


def test_a_nack_at_a_site_names_the_simulators_session() -> None:
    transport = FakeTransport()
    peer = transport.peer()
    with running(MemoryStore(), at_site(transport, "north")):
        refused = peer.request(*_batch("S9", 0, 2), timeout=60)
    assert (refused["type"], refused["code"], refused["session"]) == (
        "NACK", "unknown_session", "S9")


def test_an_id_too_long_once_qualified_is_refused_as_a_bad_message() -> None:
    transport, store = FakeTransport(), MemoryStore()
    peer = transport.peer()
    longest = MAX_ID_LENGTH - len("north:")
    with running(store, at_site(transport, "north")):
        refused = peer.request(_open("S" * (longest + 1)), timeout=60)
        refused_learner = peer.request(_open("S2", "L" * (longest + 1)), timeout=60)
        fits = peer.request(_open("S" * longest), timeout=60)
    assert (refused["type"], refused["code"]) == ("NACK", "bad_message")
    assert f"at most {longest}" in refused["message"]
    assert refused_learner["code"] == "bad_message"
    assert "learner" in refused_learner["message"]
    assert fits["type"] == "OPENED"
    assert store.session("north:" + "S" * longest) is not None


@pytest.mark.parametrize("name", ["north", "s1", "a_b", "z" * 32])
def test_site_names_that_are_valid(name: str) -> None:
    assert site_problem(name) is None


@pytest.mark.parametrize("name", ["", "North", "1site", "a-b", "a:b", "z" * 33, "a b"])
def test_site_names_that_are_not(name: str) -> None:
    assert site_problem(name) is not None
    with pytest.raises(ValueError, match="not a valid site name"):
        at_site(FakeTransport(), name)


def test_qualify_and_unqualify_are_inverse_and_leave_other_ids_alone() -> None:
    assert qualify("north", "S1") == "north:S1"
    assert unqualify("north", "north:S1") == "S1"
    assert unqualify("north", "south:S1") == "south:S1"
    assert unqualify("north", "S1") == "S1"


def test_the_site_id_setting_comes_from_the_environment_and_is_checked() -> None:
    assert Settings.load(environ={}).site_id is None
    assert Settings.load(environ={"ASSESSENGINE_SITE_ID": "north"}).site_id == "north"
    with pytest.raises(SettingsError, match=r"ASSESSENGINE_SITE_ID: .*not a valid site name"):
        Settings.load(environ={"ASSESSENGINE_SITE_ID": "North Site"})


def test_a_field_log_uploaded_at_a_site_is_filed_under_site_qualified_ids(
    tmp_path: Path,
) -> None:
    session, text = field_log()
    db = tmp_path / "site.db"
    app = create_app(db_path=db, site="north", web=False)
    with TestClient(app) as client:
        service = ReviewService.open(db)
        try:
            token = service.create_token(name="a", role="assessor", learner=None, actor="t")[1]
        finally:
            service.close()
        headers = {"Authorization": f"Bearer {token}"}
        answer = client.post("/api/v1/field-sessions", headers=headers,
                             files={"file": ("shift.jsonl", text.encode())},
                             data={"session": "yard-0001"})  # fmt: skip
        generated = client.post("/api/v1/field-sessions", headers=headers,
                                files={"file": ("shift.jsonl", text.encode())})  # fmt: skip
    assert answer.status_code == 201, answer.text
    detail = answer.json()
    assert (detail["session"], detail["learner"]) == (
        "north:yard-0001", f"north:{session.open['learner']}")
    assert answer.headers["location"] == "/api/v1/sessions/north:yard-0001"
    assert generated.status_code == 201, generated.text
    assert generated.json()["session"].startswith("north:field-")
