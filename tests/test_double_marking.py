"""Double marking: the store contract (memory fake, SQLite, PostgreSQL); over the JSON API
and the pages (SQLite): who may assign, bad input, blindness (nothing of the first marks
reaches the second assessor until they have marked), the audit entries, and the inter-rater
agreement against hand-worked kappas.

The seeded marks (`seed`): `ann` observes the observed item of sessions 0-11 and 12; `bob`
double-marks 0-9, `carl` 10-11 (both submitted) and is still to mark 12 (blind there).

    session   0 1 2 3 4 5 6 7 8 9 | 10 11
    ann       P P P P P P F F F F |  P  F
    second    P P P P P F F F F P |  P  P      (bob | carl)

ann-bob: 10 pairs, 8 agree, po = 0.8, pe = (6*6 + 4*4)/100 = 0.52, kappa = 0.28/0.48 = 7/12.
ann-carl: 2 pairs, 1 agrees, po = 0.5, pe = (1*2 + 1*0)/4 = 0.5, kappa = 0 (a warning).
The item: 12 pairs, 9 agree, po = 0.75, pe = (7*8 + 5*4)/144 = 76/144, kappa = 8/17.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.api.service.models import ObservationIn, OverrideIn
from assessengine.storage.appdb import AppDb
from assessengine.storage.double_marks import (
    DoubleMarks,
    DuplicateAssignmentError,
    MarkIn,
    MemoryDoubleMarks,
    SqlDoubleMarks,
)
from assessengine.storage.port import StoreError
from assessengine.storage.reviews import AuditEntry, ReviewStore

from .test_cohorts import fill
from .test_web_support import csrf_of

ITEM = "looks_before_reversing"
FIRST = "PPPPPPFFFF" "PF"
SECOND = "PPPPPFFFFP" "PP"
SECRET = "ANN-SECRET-NOTE"
V = {"P": "pass", "F": "fail"}


# ==================================================================================== store


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def marks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DoubleMarks]:
    if request.param == "memory":
        yield MemoryDoubleMarks()
        return
    url: str | Path = tmp_path / "engine.db"
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
    from assessengine.storage import open_store  # noqa: PLC0415

    open_store(url).close()  # creates and migrates the tables
    db = AppDb(url)
    try:
        yield SqlDoubleMarks(db)
    finally:
        db.close()


def _audit(action: str) -> AuditEntry:
    return AuditEntry("trainer", "trainer", action, "S-1", session="S-1")


def test_store_contract_assign_submit_marks(marks: DoubleMarks) -> None:
    made = marks.assign("S-1", "bob", by="trainer", at="t1", audit=_audit("double_mark.assign"))
    assert (made.session, made.assessor, made.completed_at) == ("S-1", "bob", None)
    with pytest.raises(DuplicateAssignmentError, match="'bob' is assigned"):
        marks.assign("S-1", "bob", by="trainer", at="t2", audit=_audit("double_mark.assign"))
    other = marks.assign("S-2", "bob", by="trainer", at="t3", audit=_audit("double_mark.assign"))
    assert [a.id for a in marks.assignments(assessor="bob", open_only=True)] == [made.id,
                                                                                 other.id]
    done = marks.submit(made.id, [MarkIn(ITEM, "fail", "no look")], actor="bob", at="t4",
                        audit=_audit("double_mark.submit"))  # fmt: skip
    assert done.completed_at == "t4"
    assert [a.session for a in marks.assignments(assessor="bob", open_only=True)] == ["S-2"]
    assert [(m.session, m.criterion, m.verdict, m.actor) for m in marks.marks(["S-1", "S-2"])
            ] == [("S-1", ITEM, "fail", "bob")]  # fmt: skip
    with pytest.raises(StoreError, match="was completed"):
        marks.submit(made.id, [], actor="bob", at="t5", audit=_audit("double_mark.submit"))
    with pytest.raises(StoreError, match="no double-marking assignment"):
        marks.submit(9999, [], actor="bob", at="t5", audit=_audit("double_mark.submit"))
    with pytest.raises(StoreError, match="no marks given"):  # completion is the marks
        marks.submit(other.id, [], actor="bob", at="t5", audit=_audit("double_mark.submit"))
    assert [a.session for a in marks.assignments(assessor="bob", open_only=True)] == ["S-2"]
    assert marks.assignments(sessions=[]) == []


def test_store_contract_assignments_and_marks_come_in_the_order_they_were_made(
    marks: DoubleMarks,
) -> None:
    """By assigned_at / recorded_at (then id), in every store, the fake too: not in the order
    rows were written (replication writes another place's rows whenever the link allows)."""
    late = marks.assign("S-2", "bob", by="trainer", at="t5", audit=_audit("double_mark.assign"))
    early = marks.assign("S-1", "bob", by="trainer", at="t1", audit=_audit("double_mark.assign"))
    assert [a.id for a in marks.assignments()] == [early.id, late.id]
    marks.submit(late.id, [MarkIn(ITEM, "pass", "")], actor="bob", at="t6",
                 audit=_audit("double_mark.submit"))  # fmt: skip
    marks.submit(early.id, [MarkIn(ITEM, "fail", "")], actor="bob", at="t2",
                 audit=_audit("double_mark.submit"))  # fmt: skip
    assert [m.session for m in marks.marks(["S-1", "S-2"])] == ["S-1", "S-2"]


def test_store_writes_an_audit_entry_with_each_change(tmp_path: Path) -> None:
    from assessengine.storage import open_store  # noqa: PLC0415

    url = tmp_path / "engine.db"
    open_store(url).close()
    with ReviewStore(url) as reviews:
        marks = SqlDoubleMarks(reviews.appdb)
        made = marks.assign("S-1", "bob", by="trainer", at="t1",
                            audit=_audit("double_mark.assign"))  # fmt: skip
        marks.submit(made.id, [MarkIn(ITEM, "pass", "")], actor="bob", at="t2",
                     audit=_audit("double_mark.submit"))  # fmt: skip
        found = [(r.action, r.detail["assignment"]) for r in reviews.audit(session="S-1")]
    assert found == [("double_mark.submit", made.id), ("double_mark.assign", made.id)]


# ==================================================================================== API


def seed(service: ReviewService, ids: list[str], tokens: dict[str, str]) -> None:
    """The marks of the module's docstring (ann's first marks, bob's and carl's second), and
    an open assignment of carl on session 12, which ann observed and overrode."""
    ann = service.authenticate(tokens["ann"])
    for k, sid in enumerate(ids[:12]):
        service.observe(ann, sid, ObservationIn(criterion=ITEM, verdict=V[FIRST[k]],
                                                note="seen"))  # fmt: skip
    service.observe(ann, ids[12], ObservationIn(criterion=ITEM, verdict="fail", note=SECRET))
    service.override(ann, ids[12], OverrideIn(criterion="pre_use_checks", verdict="pass",
                                              reason=SECRET))  # fmt: skip
    trainer = TestClient_headers(tokens["trainer"])
    for k, sid in enumerate(ids[:12]):
        name = "bob" if k < 10 else "carl"
        assert _post(service, trainer, f"/sessions/{sid}/double-marking",
                     {"assessor": name}).status_code == 201
        who = TestClient_headers(tokens[name])
        answer = _post(service, who, f"/sessions/{sid}/double-marks",
                       {"marks": [{"criterion": ITEM, "verdict": V[SECOND[k]]}]})
        assert answer.status_code == 201, answer.text
    assert _post(service, trainer, f"/sessions/{ids[12]}/double-marking",
                 {"assessor": "carl"}).status_code == 201


_APP: dict[int, Any] = {}


def seed_client(service: ReviewService, client: TestClient) -> None:
    """The client `seed` posts through for `service`'s app."""
    _APP[id(service)] = client


def TestClient_headers(token: str) -> dict[str, str]:  # noqa: N802 (reads as what it gives)
    return {"Authorization": f"Bearer {token}"}


def _post(service: ReviewService, headers: dict[str, str], path: str, body: Any) -> Any:
    return _APP[id(service)].post(f"/api/v1{path}", json=body, headers=headers)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str],
                                                                   list[str]]]:
    folder = tmp_path_factory.mktemp("double-marking")
    url = folder / "engine.db"
    ids = fill(url)
    key = folder / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    key.chmod(0o600)
    app = create_app(db_path=url, issuer_key_path=key)
    service: ReviewService = app.state.service
    tokens = {}
    for name, role in (("admin", "admin"), ("trainer", "trainer"), ("ann", "assessor"),
                       ("bob", "assessor"), ("carl", "assessor"), ("dora", "assessor"),
                       ("learner", "learner")):
        _, tokens[name] = service.create_token(name=name, role=role,
                                               learner="L-1" if role == "learner" else None,
                                               actor="test")  # fmt: skip
    with TestClient(app) as client:
        seed_client(service, client)
        seed(service, ids, tokens)
        yield client, tokens, ids


def _as(tokens: dict[str, str], name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[name]}"}


def _browser(client: TestClient, tokens: dict[str, str], name: str) -> TestClient:
    """A client of the same app signed in to the pages as `name` (the token cookie)."""
    return TestClient(client.app, cookies={"ae_token": tokens[name]})


def test_inter_rater_agreement_equals_the_hand_worked_kappas(api: Any) -> None:
    client, tokens, _ = api
    out = client.get("/api/v1/calibration/inter-rater", headers=_as(tokens, "trainer")).json()
    assert out["sessions"] == 12
    (item,) = out["items"]
    assert (item["criterion"], item["pairs"], item["agreed"]) == (ITEM, 12, 9)
    assert item["percent_agreement"] == pytest.approx(0.75)
    assert item["kappa"] == pytest.approx(8 / 17)
    assert item["warning"] is None
    pairs = {tuple(p["assessors"]): p for p in out["assessor_pairs"]}
    assert set(pairs) == {("ann", "bob"), ("ann", "carl")}
    bob, carl = pairs["ann", "bob"], pairs["ann", "carl"]
    assert (bob["pairs"], bob["agreed"], bob["warning"]) == (10, 8, None)
    assert bob["kappa"] == pytest.approx(7 / 12)
    assert bob["percent_agreement"] == pytest.approx(0.8)
    assert (carl["pairs"], carl["agreed"]) == (2, 1)
    assert carl["kappa"] == pytest.approx(0.0)
    assert carl["warning"] == "only 2 pairs (fewer than 10): too few to rely on"


def test_inter_rater_filters_select_sessions(api: Any) -> None:
    client, tokens, _ = api
    none = client.get("/api/v1/calibration/inter-rater?rubric=haul-truck-surface",
                      headers=_as(tokens, "trainer")).json()  # fmt: skip
    assert (none["sessions"], none["items"], none["assessor_pairs"]) == (0, [], [])


@pytest.mark.parametrize("name", ["ann", "learner"])
def test_only_trainers_and_admins_assign_or_read_inter_rater(api: Any, name: str) -> None:
    client, tokens, ids = api
    answer = client.post(f"/api/v1/sessions/{ids[15]}/double-marking", json={"assessor": "dora"},
                         headers=_as(tokens, name))  # fmt: skip
    assert answer.status_code == 403
    assert "trainers and admins" in answer.json()["detail"]
    assert client.get("/api/v1/calibration/inter-rater",
                      headers=_as(tokens, name)).status_code == 403


@pytest.mark.parametrize(("session", "assessor", "status", "says"), [
    (0, "bob", 409, "'bob' is assigned to double-mark session"),
    (None, "dora", 404, "no session"),
    (15, "nobody", 422, "no live assessor or admin token named 'nobody'"),
    (15, "trainer", 422, "no live assessor or admin token named 'trainer'"),
    (0, "ann", 422, "has recorded marks on this session already"),
])  # fmt: skip
def test_bad_assignments_are_refused(
    api: Any, session: int | None, assessor: str, status: int, says: str
) -> None:
    client, tokens, ids = api
    sid = "S-none" if session is None else ids[session]
    answer = client.post(f"/api/v1/sessions/{sid}/double-marking", json={"assessor": assessor},
                         headers=_as(tokens, "trainer"))  # fmt: skip
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]


@pytest.mark.parametrize(("who", "marks", "status", "says"), [
    ("dora", [{"criterion": ITEM, "verdict": "pass"}], 404, "not assigned"),
    ("bob", [{"criterion": ITEM, "verdict": "pass"}], 409, "already"),
])  # fmt: skip
def test_bad_submissions_are_refused(
    api: Any, who: str, marks: list[dict[str, str]], status: int, says: str
) -> None:
    client, tokens, ids = api
    answer = client.post(f"/api/v1/sessions/{ids[0]}/double-marks", json={"marks": marks},
                         headers=_as(tokens, who))  # fmt: skip
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]


@pytest.mark.parametrize("marks", [
    [],
    [{"criterion": "pre_use_checks", "verdict": "pass"}],
    [{"criterion": ITEM, "verdict": "pass"}, {"criterion": ITEM, "verdict": "fail"}],
])  # fmt: skip
def test_a_submission_must_mark_every_observed_item_once(
    api: Any, marks: list[dict[str, str]]
) -> None:
    client, tokens, ids = api
    answer = client.post(f"/api/v1/sessions/{ids[12]}/double-marks", json={"marks": marks},
                         headers=_as(tokens, "carl"))  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert "mark every observed item once" in answer.json()["detail"]


def test_the_second_assessor_sees_nothing_of_the_first_marks(api: Any) -> None:
    client, tokens, ids = api
    carl = _as(tokens, "carl")
    sid = ids[12]
    detail = client.get(f"/api/v1/sessions/{sid}", headers=carl)
    assert detail.status_code == 200
    text = detail.text
    assert SECRET not in text
    assert "ann" not in text
    body = detail.json()
    assert body["observations"] == []
    assert body["overrides"] == []
    assert next(c for c in body["criteria"] if c["id"] == ITEM)["final_verdict"] == "pending"
    listed = client.get(f"/api/v1/sessions?learner={body['learner']}&limit=500",
                        headers=carl).json()["items"]  # fmt: skip
    mine = next(s for s in listed if s["session"] == sid)
    assert mine["overridden"] is False
    own = client.get(f"/api/v1/sessions/{sid}/double-marking", headers=carl).json()
    assert [a["assessor"] for a in own["assignments"]] == ["carl"]
    assert (own["revealed"], own["marks"]) == (False, [])
    history = client.get(f"/api/v1/learners/{body['learner']}", headers=carl).text
    assert SECRET not in history
    page = _browser(client, tokens, "carl").get(f"/sessions/{sid}")
    assert page.status_code == 200
    assert SECRET not in page.text
    assert ">ann<" not in page.text
    assert "· ann" not in page.text
    assert "Submit my second marks" in page.text
    statements = client.get(f"/api/v1/sessions/{sid}/xapi", headers=carl)  # they carry the
    assert statements.status_code == 409, statements.text  # observations' verdicts
    assert SECRET not in statements.text
    assert "double-mark" in statements.json()["detail"]


def test_the_queue_lists_the_second_assessors_work_apart(api: Any) -> None:
    client, tokens, ids = api
    queue = client.get("/api/v1/review-queue?limit=500", headers=_as(tokens, "carl")).json()
    assert [a["session"] for a in queue["double_marking"]] == [ids[12]]
    assert ids[12] not in [i["session"] for i in queue["items"]]
    page = _browser(client, tokens, "carl").get("/review").text
    assert "Your double marking" in page
    assert f'data-session="{ids[12]}"' in page
    others = client.get("/api/v1/review-queue?limit=500", headers=_as(tokens, "bob")).json()
    assert others["double_marking"] == []


def test_a_blind_assessor_may_not_record_a_first_mark(api: Any) -> None:
    client, tokens, ids = api
    answer = client.post(f"/api/v1/sessions/{ids[12]}/observations", headers=_as(tokens, "carl"),
                         json={"criterion": ITEM, "verdict": "pass", "note": "x"})  # fmt: skip
    assert answer.status_code == 409
    assert "double-mark" in answer.json()["detail"]


def test_the_marks_are_revealed_once_both_are_in(api: Any) -> None:
    client, tokens, ids = api
    trainer = client.get(f"/api/v1/sessions/{ids[0]}/double-marking",
                         headers=_as(tokens, "trainer")).json()  # fmt: skip
    assert trainer["revealed"] is True
    assert [(m["assessor"], m["criterion"], m["verdict"]) for m in trainer["marks"]] == [
        ("bob", ITEM, "pass")]
    bob = client.get(f"/api/v1/sessions/{ids[0]}", headers=_as(tokens, "bob")).json()
    assert [o["by"] for o in bob["observations"]] == ["ann"]  # no longer blind


def test_assignments_and_marks_are_audited(api: Any) -> None:
    client, tokens, ids = api
    rows = client.get(f"/api/v1/audit?session={ids[0]}", headers=_as(tokens, "admin")).json()
    found = {(r["action"], r["actor"]) for r in rows["items"]}
    assert {("double_mark.assign", "trainer"), ("double_mark.submit", "bob")} <= found


def test_the_calibration_page_shows_the_apis_kappas(api: Any) -> None:
    client, tokens, _ = api
    page = _browser(client, tokens, "trainer").get("/calibration").text
    assert f'<tr data-criterion="{ITEM}"' in page
    assert '<td data-label="Kappa" class="kappa">0.47</td>' in page
    assert '<td data-label="Kappa" class="kappa">0.58</td>' in page
    assert "Warning: only 2 pairs" in page


def test_a_trainer_assigns_and_an_assessor_submits_through_the_pages(api: Any) -> None:
    client, tokens, ids = api
    sid = ids[13]
    trainer = _browser(client, tokens, "trainer")
    page = trainer.get(f"/sessions/{sid}")
    assert '<option value="dora">dora</option>' in page.text
    csrf = csrf_of(page.text)
    done = trainer.post(f"/sessions/{sid}/double-marking", data={"csrf": csrf,
                        "assessor": "dora"}, follow_redirects=False)  # fmt: skip
    assert done.status_code == 303, done.text
    again = trainer.post(f"/sessions/{sid}/double-marking",
                         data={"csrf": csrf, "assessor": "dora"})  # fmt: skip
    assert again.status_code == 409
    assert "is assigned to double-mark" in again.text
    dora = _browser(client, tokens, "dora")
    form = dora.get(f"/sessions/{sid}")
    assert "Submit my second marks" in form.text
    submitted = dora.post(f"/sessions/{sid}/double-marks",
                            data={"csrf": csrf_of(form.text), "criterion": ITEM,
                                  f"verdict-{ITEM}": "fail", f"note-{ITEM}": "no look"},
                            follow_redirects=False)  # fmt: skip
    assert submitted.status_code == 303, submitted.text
    assert "done=double-marks" in submitted.headers["location"]
