"""Credentials over HTTP, end to end on a real SQLite file: simulated competent forklift
sessions (simulator and field) stored and scored as the engine does, the observed criterion
recorded through the API -> issue -> verify -> tamper -> revoke -> the published status list
-> verify reports it revoked; the role matrix; refusals with reasons; xAPI statements and their
forwarding to a stand-in LRS; the learner's credential page; the issuer key file."""

from __future__ import annotations

import copy
import json
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from assessengine.adapters.policies import shipped_rubric
from assessengine.adapters.signer import IssuerKey
from assessengine.adapters.standards import schema_problems
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.api.service.credentials import CredentialSettings, LrsSettings
from assessengine.compose import credential_settings
from assessengine.core.credentials import CHAIN_HEAD_LABEL, CredentialError
from assessengine.core.status_list import status_of
from assessengine.core.xapi import VERBS, VOIDED
from assessengine.credential_verify import verify
from assessengine.settings import Settings, SettingsError
from assessengine.storage import open_store
from assessengine.storage.port import Store
from assessengine.storage.sqlite import SqliteStore

from .stored_payloads import copy_store
from .test_api_support import LEARNER, OTHER_LEARNER, make_tokens
from .test_credentials_e2e import forged_copy, record_sessions
from .test_engine_helpers import serve
from .test_web_support import csrf_of
from .test_xapi import statement_problems
from .waits import WAIT_S

BASE = "https://engine.example.org"
API = "/api/v1"
FORKLIFT = "forklift-load-handling"
POLICY = "forklift-operator"
MINE = ("S-1", "S-2", "F-1")  # LEARNER: two simulator sessions, then one in the field
RUBRIC = shipped_rubric(FORKLIFT)
assert RUBRIC is not None
OBSERVED = [c.id for c in RUBRIC.criteria if c.observed is not None]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Competent operators, the observed criterion still pending in every session (the
    assessors record it through the API)."""
    path = tmp_path_factory.mktemp("credentials") / "engine.db"
    with SqliteStore(path, synchronous="OFF") as store:
        record_template(store)
    return path


def record_template(store: Store) -> None:
    record_sessions(store, FORKLIFT, LEARNER, [("S-1", "simulator", "competent"),
                                               ("S-2", "simulator", "competent"),
                                               ("F-1", "field", "competent")],
                    observe=False)  # fmt: skip
    record_sessions(store, FORKLIFT, OTHER_LEARNER, [("S-3", "simulator", "competent")],
                    observe=False)  # fmt: skip


@dataclass
class Http:
    client: TestClient
    tokens: dict[str, str]
    db: str | Path

    def headers(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, url: str, role: str | None = "admin") -> Any:
        return self.client.get(url, headers=self.headers(role))

    def post(self, url: str, body: Any, role: str | None = "admin") -> Any:
        return self.client.post(url, json=body, headers=self.headers(role))

    def observe_all(self, sessions: tuple[str, ...] = MINE) -> None:
        for session in sessions:
            for criterion in OBSERVED:
                answer = self.post(f"{API}/sessions/{session}/observations",
                                   {"criterion": criterion, "verdict": "pass",
                                    "note": "looked over the shoulder every time"},
                                   "assessor")  # fmt: skip
                assert answer.status_code == 201, answer.text

    def issue(self, learner: str = LEARNER, role: str = "assessor") -> Any:
        return self.post(f"{API}/credentials/issue", {"learner": learner, "policy": POLICY}, role)


def open_http(template: Path, folder: Path, **options: Any) -> Iterator[Http]:
    db = folder / "engine.db"
    copy_store(template, db)
    settings = options.pop("credentials", CredentialSettings(base_url=BASE))
    app = create_app(db_path=db, credentials=settings, **options)
    tokens = make_tokens(app.state.service)
    with TestClient(app) as client:
        yield Http(client, tokens, db)


@pytest.fixture
def http(template: Path, tmp_path: Path) -> Iterator[Http]:
    yield from open_http(template, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def http_on(request: pytest.FixtureRequest, template: Path, tmp_path: Path) -> Iterator[Http]:
    """`http` on each backend: the same sessions in a SQLite file, or in a PostgreSQL
    database (the issuer key given as a file: a server database keeps none beside it)."""
    if request.param == "sqlite":
        yield from open_http(template, tmp_path)
        return
    url: str = request.getfixturevalue("pg_store_url")
    with open_store(url) as store:
        record_template(store)
    key = tmp_path / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    app = create_app(db_path=url, credentials=CredentialSettings(base_url=BASE),
                     issuer_key_path=key)  # fmt: skip
    tokens = make_tokens(app.state.service)
    with TestClient(app) as client:
        yield Http(client, tokens, url)


def _problem(answer: Any, status: int, slug: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["type"] == f"urn:assessengine:problem:{slug}", body
    return body


def _checks(answer: Any) -> dict[str, str]:
    assert answer.status_code == 200, answer.text
    return {c["name"]: c["status"] for c in answer.json()["checks"]}


# ============================================================================ end to end


def test_observed_sessions_earn_a_credential_that_verifies_until_it_is_revoked(
    http_on: Http,
) -> None:
    http = http_on
    refused = _problem(http.issue(), 422, "not-eligible")
    assert "pending: looks_before_reversing" in refused["detail"]

    http.observe_all()
    answer = http.issue()
    assert answer.status_code == 201, answer.text
    document = answer.json()
    assert schema_problems(document) == ()
    assert answer.headers["location"] == (
        f"{API}/learners/{LEARNER}/credentials/{quote(document['id'], safe='')}"
    )
    assert http.get(answer.headers["location"], "learner").json()["document"] == document
    evidence = document["evidence"]
    uuid = document["id"].removeprefix("urn:uuid:")
    assert [e["id"] for e in evidence] == [f"{BASE}/public/evidence/{uuid}/{s}" for s in MINE]
    with open_store(http.db) as store:
        heads = [store.session(s).chain_head for s in MINE]  # type: ignore[union-attr]
    assert [e["description"] for e in evidence] == [CHAIN_HEAD_LABEL + h for h in heads]
    assert "Assessor: assessor-1." in evidence[2]["narrative"]  # who recorded the observation

    # anyone may verify, without a token: every check passes, revocation against our list
    checks = _checks(http.post(f"{API}/credentials/verify", document, None))
    assert checks == dict.fromkeys(["proof", "key", "expansion", "signature", "issuer",
                                    "schema", "validity", "status"], "ok")  # fmt: skip

    tampered = copy.deepcopy(document)
    tampered["credentialSubject"]["result"][0]["value"] = "42"
    verdict = http.post(f"{API}/credentials/verify", tampered, None)
    assert verdict.json()["valid"] is False
    assert _checks(verdict)["signature"] == "failed"

    _problem(http.post(f"{API}/credentials/{document['id']}/revoke", {"reason": "x"},
                       "assessor"), 403, "forbidden")  # fmt: skip
    revoked = http.post(f"{API}/credentials/{document['id']}/revoke",
                        {"reason": "the field assessment was not supervised"})  # fmt: skip
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked"]["by"] == "admin-1"
    _problem(http.post(f"{API}/credentials/{document['id']}/revoke", {"reason": "again"}), 409,
             "conflict")  # fmt: skip

    # the published list (its URL is inside the credential) now has the bit set
    list_url = document["credentialStatus"]["statusListCredential"]
    assert list_url == f"{BASE}{API}/credentials/status/1"
    published = http.get(urlsplit(list_url).path, None)
    assert published.status_code == 200, published.text
    status_list = published.json()
    ours = {document["issuer"]["id"]}
    assert verify(status_list, trusted=ours).ok
    assert status_of(document["credentialStatus"], status_list).set
    assert not verify(document, trusted=ours, status_list=status_list).ok

    after = http.post(f"{API}/credentials/verify", document, None)
    assert after.json()["valid"] is False
    status = next(c for c in after.json()["checks"] if c["name"] == "status")
    assert (status["status"], status["detail"][:7]) == ("failed", "revoked")

    listed = http.get(f"{API}/learners/{LEARNER}/credentials", "learner").json()
    assert [(c["id"], c["revoked"]["reason"]) for c in listed] == [
        (document["id"], "the field assessment was not supervised")
    ]
    actions = [e["action"] for e in http.get(f"{API}/audit?limit=500").json()["items"]]
    assert actions[:2] == ["credential.revoke", "credential.issue"]

    again = http.issue(role="admin")  # revoked: a new one may be issued
    assert again.status_code == 201, again.text
    assert again.json()["id"] != document["id"]


def test_an_active_credential_is_not_issued_twice(http_on: Http) -> None:
    http = http_on
    http.observe_all()
    assert http.issue().status_code == 201
    body = _problem(http.issue(), 409, "conflict")
    assert "already holds" in body["detail"]


def test_a_learner_who_is_not_eligible_gets_422_with_what_is_missing(http: Http) -> None:
    http.observe_all(("S-3",))
    body = _problem(http.issue(OTHER_LEARNER), 422, "not-eligible")
    errors = {e["name"]: e["reason"] for e in body["errors"]}
    assert set(errors) == {"requirements[0]", "requirements[1]"}
    assert "the longest run so far is 1 (needed: 2)" in errors["requirements[0]"]
    assert "0 so far (needed: 1); no attempt yet." in errors["requirements[1]"]
    assert http.get(f"{API}/learners/{OTHER_LEARNER}/credentials").json() == []

    unknown = _problem(http.post(f"{API}/credentials/issue",
                                 {"learner": LEARNER, "policy": "crane-operator"},
                                 "assessor"), 422, "validation")  # fmt: skip
    assert unknown["errors"][0]["name"] == "body.policy"
    # an id only, never a path on the server
    _problem(http.post(f"{API}/credentials/issue", {"learner": LEARNER,
                       "policy": str(Path("credentials/forklift-operator.yaml").resolve())},
                       "assessor"), 422, "validation")  # fmt: skip


def test_overrides_do_not_make_a_learner_eligible(http: Http) -> None:
    for session in MINE:
        for criterion in OBSERVED:
            answer = http.post(f"{API}/sessions/{session}/overrides", {
                "criterion": criterion, "verdict": "pass", "reason": "seen on the video"},
                "assessor")  # fmt: skip
            assert answer.status_code == 201, answer.text
    _problem(http.issue(), 422, "not-eligible")


# ============================================================================ roles


def test_each_role_is_refused_what_it_may_not_do(http: Http) -> None:
    http.observe_all()
    issue = {"learner": LEARNER, "policy": POLICY}
    for role in ("learner", "learner2"):
        _problem(http.post(f"{API}/credentials/issue", issue, role), 403, "forbidden")
    document = http.issue().json()
    revoke = f"{API}/credentials/{document['id']}/revoke"
    for role in ("assessor", "trainer", "learner"):
        _problem(http.post(revoke, {"reason": "no"}, role), 403, "forbidden")
    mine = f"{API}/learners/{LEARNER}/credentials"
    for role in ("admin", "trainer", "assessor", "learner"):
        assert http.get(mine, role).status_code == 200
    _problem(http.get(mine, "learner2"), 404, "not-found")  # as if it did not exist
    one = f"{mine}/{quote(document['id'], safe='')}"
    _problem(http.get(one, "learner2"), 404, "not-found")
    _problem(http.get(f"{API}/learners/{OTHER_LEARNER}/credentials/"
                      f"{quote(document['id'], safe='')}"), 404, "not-found")  # fmt: skip
    _problem(http.get(f"{API}/sessions/F-1/xapi", "learner2"), 404, "not-found")
    _problem(http.post(f"{API}/sessions/F-1/xapi/forward", None, "assessor"), 403, "forbidden")
    for call in (lambda: http.post(f"{API}/credentials/issue", issue, None),
                 lambda: http.post(revoke, {"reason": "no"}, None),
                 lambda: http.get(mine, None), lambda: http.get(f"{API}/sessions/F-1/xapi", None),
                 lambda: http.post(f"{API}/sessions/F-1/xapi/forward", None, None)):  # fmt: skip
        _problem(call(), 401, "unauthenticated")


def test_the_urls_inside_a_credential_are_served(http: Http) -> None:
    http.observe_all()
    document = http.issue().json()
    json_ = {"Accept": "application/json"}
    subject = urlsplit(document["credentialSubject"]["id"]).path
    assert http.client.get(subject, headers=json_).json()["id"] == f"{BASE}{subject}"
    achievement = http.client.get(urlsplit(document["credentialSubject"]["achievement"]["id"]
                                           ).path, headers=json_)  # fmt: skip
    assert achievement.status_code == 200, achievement.text
    assert achievement.json()["name"] == document["credentialSubject"]["achievement"]["name"]
    assert achievement.json()["alignment"] == document["credentialSubject"]["achievement"][
        "alignment"]  # fmt: skip
    evidence = urlsplit(document["evidence"][0]["id"]).path
    assert http.client.get(evidence, headers=json_).json()["name"] == "Simulator session S-1"
    learner = f"{API}/learners/{LEARNER}"  # where the learner's records are (a token needed)
    assert http.get(learner, "learner").json()["credentials"] == f"{BASE}{learner}/credentials"
    _problem(http.get(learner, "learner2"), 404, "not-found")
    _problem(http.get(f"{API}/credentials/status/2", None), 404, "not-found")
    _problem(http.get(f"{API}/achievements/crane-operator", None), 404, "not-found")


def test_a_credential_re_signed_under_another_did_key_is_not_valid(http: Http) -> None:
    http.observe_all()
    document = http.issue().json()
    forger = IssuerKey.generate()
    forged = forged_copy(document, forger)
    answer = http.post(f"{API}/credentials/verify", forged, None)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["valid"], body["signature"], body["trusted"]) == (False, "ok", False)
    assert body["issuer"] == forger.did
    assert "not trusted" in body["reason"]
    assert _checks(answer)["issuer"] == "failed"
    genuine = http.post(f"{API}/credentials/verify", document, None).json()
    assert (genuine["valid"], genuine["trusted"], genuine["reason"]) == (True, True, None)


def test_an_issuer_the_server_is_configured_to_trust_verifies(
    template: Path, tmp_path: Path
) -> None:
    partner = IssuerKey.generate()
    settings = _credentials({"ASSESSENGINE_BASE_URL": BASE,
                             "ASSESSENGINE_TRUSTED_ISSUERS": f"{partner.did},did:web:x.org"})
    assert settings.trusted_issuers == {partner.did, "did:web:x.org"}
    for http in open_http(template, tmp_path, credentials=settings):
        http.observe_all()
        document = forged_copy(http.issue().json(), partner)
        body = http.post(f"{API}/credentials/verify", document, None).json()
        assert (body["valid"], body["trusted"]) == (True, True), body
    with pytest.raises(CredentialError, match="a trusted issuer is a DID"):
        _credentials({"ASSESSENGINE_TRUSTED_ISSUERS": "https://x.org"})


def test_verify_refuses_what_is_not_a_json_object(http: Http) -> None:
    _problem(http.client.post(f"{API}/credentials/verify", content=b"{not json"), 400,
             "bad-request")  # fmt: skip
    _problem(http.post(f"{API}/credentials/verify", [1, 2], None), 422, "validation")
    _problem(http.client.post(f"{API}/credentials/verify", content=b" " * (2**20 + 1)), 413,
             "too-large")  # fmt: skip
    junk = http.post(f"{API}/credentials/verify", {"proof": 5, "credentialStatus": "x"}, None)
    assert junk.json()["valid"] is False


# ============================================================================ xAPI


def test_xapi_statements_of_a_reviewed_field_session(http: Http) -> None:
    _problem(http.get(f"{API}/sessions/nope/xapi"), 404, "not-found")
    before = http.get(f"{API}/sessions/F-1/xapi", "learner").json()
    assert [s["verb"]["id"] for s in before] == [VERBS["completed"]]  # incomplete: pending
    http.observe_all(("F-1",))
    statements = http.get(f"{API}/sessions/F-1/xapi", "learner").json()
    assert [s["verb"]["id"] for s in statements] == [VERBS["completed"], VERBS["passed"]]
    for statement in statements:
        assert statement_problems(statement) == [], statement
    passed = statements[1]
    assert passed["result"]["success"] is True
    assert passed["result"]["score"]["scaled"] == 1.0
    assert passed["actor"]["account"] == {"homePage": BASE, "name": LEARNER}
    assert passed["context"]["instructor"]["account"]["name"] == "assessor-1"
    _problem(http.post(f"{API}/sessions/F-1/xapi/forward", None), 409, "conflict")  # no LRS


class StandInLrs:
    """A Learning Record Store on 127.0.0.1 that fails the first request (503), then stores."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], list[Any]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status, payload = 503, b""
                if len(owner.received) > 1:
                    status, payload = 200, json.dumps([s["id"] for s in body]).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/xapi"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)  # fmt: skip

    def __enter__(self) -> StandInLrs:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=WAIT_S)


def test_forwarding_to_the_lrs_retries_and_is_audited(template: Path, tmp_path: Path) -> None:
    with StandInLrs() as lrs:
        settings = CredentialSettings(base_url=BASE, lrs=LrsSettings(
            lrs.url, username="engine", password="s3cret", attempts=3))  # fmt: skip
        for http in open_http(template, tmp_path, credentials=settings):
            http.observe_all(("F-1",))
            answer = http.post(f"{API}/sessions/F-1/xapi/forward", None)
            assert answer.status_code == 200, answer.text
            statements = http.get(f"{API}/sessions/F-1/xapi").json()
            assert answer.json() == {"session": "F-1", "lrs": f"{lrs.url}/statements",
                                     "statements": [s["id"] for s in statements],
                                     "voided": []}  # fmt: skip
            assert len(lrs.received) == 2  # a 503, then stored
            headers, body = lrs.received[-1]
            assert body == statements
            assert headers["x-experience-api-version"] == "1.0.3"
            assert headers["authorization"].startswith("Basic ")
            audit = http.get(f"{API}/audit?action=xapi.forward").json()["items"]
            assert [a["session"] for a in audit] == ["F-1"]


class StrictLrs:
    """An LRS on 127.0.0.1 that keeps statements immutable, as xAPI 1.0.3 says: a statement
    under a known id that differs is a 409 Conflict (nothing of the request stored); a request
    whose statements it holds already, identical, is a 204; otherwise it stores them (200, the
    ids)."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.answers: list[int] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = owner.take(body)
                owner.answers.append(status)
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/xapi"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)  # fmt: skip

    def take(self, statements: list[dict[str, Any]]) -> tuple[int, bytes]:
        known = [s for s in statements if s["id"] in self.stored]
        if any(self.stored[s["id"]] != s for s in known):
            return 409, b'{"message": "a different statement with this id exists"}'
        if len(known) == len(statements):
            return 204, b""
        self.stored.update((s["id"], s) for s in statements)
        return 200, json.dumps([s["id"] for s in statements]).encode()

    def __enter__(self) -> StrictLrs:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=WAIT_S)


def test_a_statement_that_changed_reaches_an_lrs_that_keeps_statements_immutable(
    template: Path, tmp_path: Path
) -> None:
    with StrictLrs() as lrs:
        settings = CredentialSettings(base_url=BASE, lrs=LrsSettings(lrs.url, attempts=1))
        for http in open_http(template, tmp_path, credentials=settings):
            forward = f"{API}/sessions/F-1/xapi/forward"
            pending = http.post(forward, None)  # the observed item is still pending
            assert pending.status_code == 200, pending.text
            (completed,) = http.get(f"{API}/sessions/F-1/xapi").json()

            http.observe_all(("F-1",))  # the observation decides the session: passed
            decided = http.post(forward, None)
            assert decided.status_code == 200, decided.text
            statements = http.get(f"{API}/sessions/F-1/xapi").json()
            assert [s["verb"]["id"] for s in statements] == [VERBS["completed"], VERBS["passed"]]
            assert statements[0]["id"] != completed["id"]  # it changed: a new id
            assert decided.json()["statements"] == [s["id"] for s in statements]
            assert {s["id"]: s for s in statements}.items() <= lrs.stored.items()
            assert decided.json()["voided"] == [completed["id"]]  # it no longer stands
            (voiding,) = [s for s in lrs.stored.values() if s["verb"]["id"] == VOIDED]
            assert voiding["object"] == {"objectType": "StatementRef", "id": completed["id"]}
            assert voiding["actor"]["account"] == {"homePage": BASE, "name": "assessengine"}

            again = http.post(forward, None)  # nothing changed: the same ids, a 204
            assert again.status_code == 200, again.text
            assert again.json() == decided.json() | {"voided": []}
            assert lrs.answers == [200, 200, 204]
            assert len(lrs.stored) == 4  # completed (pending), completed, passed, voided


# ============================================================================ web page


def test_the_learner_sees_the_badge_its_evidence_and_its_verification(http_on: Http) -> None:
    http = http_on
    http.observe_all()
    document = http.issue().json()
    form = http.client.get("/signin")
    signed_in = http.client.post("/signin", data={"token": http.tokens["learner"],
                                                  "csrf": csrf_of(form.text), "next": ""},
                                 follow_redirects=False)  # fmt: skip
    assert signed_in.status_code == 303
    learner_page = http.client.get(f"/learners/{LEARNER}").text
    listing_url = f"/learners/{LEARNER}/credentials"
    assert f'href="{listing_url}"' in learner_page
    listing = http.client.get(listing_url)
    page_url = f"{listing_url}/{quote(document['id'], safe='')}"
    assert f'href="{page_url}"' in listing.text

    page = http.client.get(page_url)
    assert page.status_code == 200, page.text
    html = page.text
    achievement = document["credentialSubject"]["achievement"]
    assert achievement["name"] in html
    for alignment in achievement["alignment"]:
        assert f'data-code="{alignment["targetCode"]}"' in html
    for entry in document["evidence"]:
        assert entry["description"].removeprefix(CHAIN_HEAD_LABEL) in html
    assert 'data-session="F-1"' in html
    assert "<strong>pass</strong>" in html  # the narrative's Markdown, rendered
    assert 'id="verification" class="outcome-box" data-valid="true"' in html
    assert 'data-check="signature" data-status="ok"' in html
    assert 'data-check="status" data-status="ok"' in html

    download = http.client.get(f"{page_url}/credential.json")
    assert download.json() == document
    assert "attachment" in download.headers["content-disposition"]

    http.post(f"{API}/credentials/{document['id']}/revoke", {"reason": "mistake"})
    revoked = http.client.get(page_url).text
    assert 'data-valid="false"' in revoked
    assert 'data-check="status" data-status="failed"' in revoked
    assert "mistake" in revoked

    http.client.cookies.clear()
    form = http.client.get("/signin")
    http.client.post("/signin", data={"token": http.tokens["learner2"],
                                      "csrf": csrf_of(form.text), "next": ""})  # fmt: skip
    assert http.client.get(page_url).status_code == 404


# ============================================================================ issuer key


def test_the_issuer_key_is_made_on_first_issue_beside_the_store(http: Http) -> None:
    key_file = http.db.with_name("engine.db.issuer.pem")
    assert not key_file.exists()
    _problem(http.get(f"{API}/credentials/status/1", None), 404, "not-found")
    http.observe_all()
    document = http.issue().json()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert document["issuer"]["id"] == IssuerKey.from_pem(key_file.read_bytes()).did
    assert http.get(f"{API}/credentials/status/1", None).status_code == 200


def test_a_configured_issuer_key_is_used_and_must_exist(template: Path, tmp_path: Path) -> None:
    key = IssuerKey.generate()
    key_file = tmp_path / "keys" / "issuer.pem"
    with pytest.raises(CredentialError, match="not found"):
        create_app(db_path=tmp_path / "x.db", issuer_key_path=key_file, web=False)
    key_file.parent.mkdir()
    key_file.write_bytes(key.to_pem())
    for http in open_http(template, tmp_path, issuer_key_path=key_file):
        http.observe_all()
        assert http.issue().json()["issuer"]["id"] == key.did
        assert not http.db.with_name("engine.db.issuer.pem").exists()


# ============================================================================ serve


def test_serve_takes_the_issuer_key_and_base_url(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "engine.db"
    copy_store(template, db)
    service = ReviewService.open(db)
    try:
        tokens = make_tokens(service)
    finally:
        service.close()
    key = IssuerKey.generate()
    (tmp_path / "issuer.pem").write_bytes(key.to_pem())
    monkeypatch.setenv("ASSESSENGINE_ISSUER_KEY", str(tmp_path / "issuer.pem"))
    monkeypatch.setenv("ASSESSENGINE_BASE_URL", "https://assess.example.org")
    monkeypatch.setenv("ASSESSENGINE_ISSUER_NAME", "Example Training Centre")
    served = serve(db)
    try:
        assessor = {"Authorization": f"Bearer {tokens['assessor']}"}
        with httpx.Client(base_url=served.http, timeout=WAIT_S) as client:
            for session in MINE:
                client.post(f"{API}/sessions/{session}/observations", headers=assessor, json={
                    "criterion": OBSERVED[0], "verdict": "pass", "note": "ok"})  # fmt: skip
            issued = client.post(f"{API}/credentials/issue", headers=assessor,
                                 json={"learner": LEARNER, "policy": POLICY})  # fmt: skip
            assert issued.status_code == 201, issued.text
            document = issued.json()
            assert document["issuer"] == {"id": key.did, "type": ["Profile"],
                                          "name": "Example Training Centre",
                                          "url": "https://assess.example.org"}  # fmt: skip
            status_url = document["credentialStatus"]["statusListCredential"]
            assert status_url == f"https://assess.example.org{API}/credentials/status/1"
            assert verify(client.get(urlsplit(status_url).path).json(), trusted={key.did}).ok
            checked = client.post(f"{API}/credentials/verify", json=document).json()
            assert checked["valid"] is True, checked
        assert served.terminate() == 0, served.log()
    finally:
        if served.process.poll() is None:
            served.kill()


def _credentials(environ: dict[str, str], host: str = "127.0.0.1") -> CredentialSettings:
    return credential_settings(Settings.load(environ=environ), host=host, port=8080)


def test_serve_settings_default_to_the_http_address() -> None:
    assert _credentials({}).base_url == "http://127.0.0.1:8080"
    assert _credentials({}, host="::1").base_url == "http://[::1]:8080"
    environ = {"ASSESSENGINE_BASE_URL": "https://a.example/",
               "ASSESSENGINE_LRS_URL": "https://lrs.example/xapi",
               "ASSESSENGINE_LRS_USERNAME": "u", "ASSESSENGINE_LRS_PASSWORD": "hunter2"}
    settings = _credentials(environ)
    assert settings.base_url == "https://a.example"
    assert settings.lrs == LrsSettings("https://lrs.example/xapi", username="u",
                                       password="hunter2")  # fmt: skip
    assert "hunter2" not in repr(settings)  # the password is never shown
    assert "hunter2" not in repr(Settings.load(environ=environ))
    with pytest.raises(SettingsError, match="ASSESSENGINE_BASE_URL"):
        _credentials({"ASSESSENGINE_BASE_URL": "ftp://a.example"})


def test_the_session_list_observations_overrides_and_audit_on_each_backend(
    http_on: Http,
) -> None:
    http = http_on
    listed = http.get(f"{API}/sessions?learner={LEARNER}&limit=10", "assessor").json()["items"]
    assert sorted(s["session"] for s in listed) == sorted(MINE)
    http.observe_all(("S-1",))
    detail = http.get(f"{API}/sessions/S-1", "assessor").json()
    assert [o["criterion"] for o in detail["observations"]] == OBSERVED
    criterion = next(c["id"] for c in detail["criteria"] if c["verdict"] == "pass")
    answer = http.post(f"{API}/sessions/S-1/overrides",
                       {"criterion": criterion, "verdict": "fail", "reason": "seen in the yard"},
                       "assessor")  # fmt: skip
    assert answer.status_code == 201, answer.text
    assert answer.json()["overridden"] is True
    found = http.get(f"{API}/sessions?outcome=pass&learner={LEARNER}", "assessor").json()
    assert [s["session"] for s in found["items"]] == ["S-1"]  # observed: the others pending
    audit = http.get(f"{API}/audit?session=S-1").json()["items"]
    assert audit[0]["action"] == "override.create"
    service: ReviewService = http.client.app.state.service  # type: ignore[attr-defined]
    assert [t.name for t in service.revoke_token("assessor-1", actor="test")] == ["assessor-1"]
    assert http.get(f"{API}/sessions", "assessor").status_code == 401
