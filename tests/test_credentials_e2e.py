"""Credentials end to end: simulated sessions in a real store -> decide -> issue -> verify ->
tamper -> revoke, through the service and through the CLI; and the shipped sample credential."""

from __future__ import annotations

import copy
import importlib.util
import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from assessengine.adapters.policies import load_policy, shipped_rubric
from assessengine.adapters.signer import IssuerKey, sign_credential
from assessengine.adapters.standards import schema_problems
from assessengine.cli import main
from assessengine.core.credentials import CHAIN_HEAD_LABEL
from assessengine.credential_service import (
    AlreadyIssuedError,
    CredentialService,
    EngineUrls,
    NotEligibleError,
    reviewed_report,
)
from assessengine.credential_verify import verify
from assessengine.storage.credentials import MemoryCredentialStore, SqliteCredentialStore
from assessengine.storage.memory import MemoryStore
from assessengine.storage.port import SessionRecord
from assessengine.storage.sqlite import SqliteStore

from .stored_payloads import copy_store

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "docs" / "sample-credential.json"
FORKLIFT = "forklift-load-handling"


def _sample_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_credential", REPO / "docs" /
                                                  "sample_credential.py")  # fmt: skip
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLER = _sample_module()
record_sessions = SAMPLER.record_sessions
SAMPLE_ISSUER = SAMPLER.ISSUER_KEY.did

# L-1: eligible (a failure, then two consecutive simulator passes, then an observed field pass)
# L-2: one simulator pass only; L-3: eligible but the field observation is not recorded yet
HISTORIES = {
    "L-1": [("S-1", "simulator", "speeder"), ("S-2", "simulator", "competent"),
            ("S-3", "simulator", "no-horn"), ("F-1", "field", "competent")],
    "L-2": [("S-4", "simulator", "competent")],
}  # fmt: skip


@pytest.fixture(scope="module")
def engine_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "engine.db"
    with SqliteStore(path, synchronous="OFF") as store:
        for learner, sessions in HISTORIES.items():
            record_sessions(store, FORKLIFT, learner, sessions)
        record_sessions(store, FORKLIFT, "L-3", [("S-5", "simulator", "competent"),
                                                 ("S-6", "simulator", "competent")])  # fmt: skip
        record_sessions(store, FORKLIFT, "L-3", [("F-2", "field", "competent")], observe=False)
    return path


@pytest.fixture
def db(engine_db: Path, tmp_path: Path) -> Path:
    copy_path = tmp_path / "engine.db"
    copy_store(engine_db, copy_path)
    return copy_path


@pytest.fixture(scope="module")
def key() -> IssuerKey:
    return IssuerKey.generate()


@pytest.fixture
def service(db: Path, key: IssuerKey) -> Iterator[CredentialService]:
    store = SqliteStore(db, synchronous="OFF")
    credentials = SqliteCredentialStore(db)
    try:
        yield CredentialService(
            store, credentials, key=key, issuer_name="Example Training Centre",
            urls=EngineUrls("https://engine.example.org"),
        )  # fmt: skip
    finally:
        credentials.close()
        store.close()


# ------------------------------------------------------------------------------ service


def test_issue_verify_tamper_revoke(service: CredentialService) -> None:
    policy = load_policy("forklift-operator")
    issued = service.issue("L-1", policy)
    document = dict(issued.document)

    result = service.verify(document)
    assert result.ok, result.to_data()
    assert [c.name for c in result.checks] == [
        "proof", "key", "expansion", "signature", "issuer", "schema", "validity", "status",
    ]  # fmt: skip
    assert all(c.status == "ok" for c in result.checks)
    assert schema_problems(document) == ()

    tampered = copy.deepcopy(document)
    tampered["credentialSubject"]["result"][0]["value"] = "42"
    assert not service.verify(tampered).ok
    assert service.verify(tampered).check("signature").status == "failed"

    service.revoke(issued.id, reason="assessment found to be compromised", by="admin")
    revoked = service.verify(document)
    assert not revoked.ok
    assert revoked.check("signature").ok
    assert revoked.check("status").status == "failed"
    assert revoked.check("status").detail.startswith("revoked (revocation list")
    assert service.credentials.revocation(issued.id) is not None


def test_the_credential_rests_on_the_qualifying_sessions_and_their_chain_heads(
    service: CredentialService,
) -> None:
    issued = service.issue("L-1", load_policy("forklift-operator"))
    evidence = issued.document["evidence"]
    assert [e["id"].rsplit("/", 1)[1] for e in evidence] == ["S-2", "S-3", "F-1"]
    for entry in evidence:
        record = service.store.session(entry["id"].rsplit("/", 1)[1])
        assert record is not None
        assert entry["description"] == f"{CHAIN_HEAD_LABEL}{record.chain_head}"
    assert "Assessor: A-7." in evidence[2]["narrative"]
    results = issued.document["credentialSubject"]["result"]
    assert results[0]["value"] == "100"  # the field session's score stands for the rubric
    assert issued.document["credentialStatus"]["statusListIndex"] == str(issued.status.index)
    valid_from = datetime.fromisoformat(issued.document["validFrom"].replace("Z", "+00:00"))
    assert issued.document["validUntil"] == valid_from.replace(year=valid_from.year + 3).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_issuing_is_refused_with_what_is_missing(service: CredentialService) -> None:
    with pytest.raises(NotEligibleError) as refused:
        service.issue("L-2", load_policy("forklift-operator"))
    assert refused.value.reasons == (
        "Pass rubric `forklift-load-handling` (version 1 or later) in 2 consecutive simulator"
        " attempts: the longest run so far is 1 (needed: 2).",
        "Pass rubric `forklift-load-handling` (version 1 or later) in 1 in-field attempt,"
        " every observed item recorded by a named assessor: 0 so far (needed: 1); no attempt"
        " yet.",
    )
    assert service.credentials.issued_to("L-2") == []


def test_a_learner_holding_an_active_credential_is_not_issued_another(
    service: CredentialService,
) -> None:
    policy = load_policy("forklift-operator")
    first = service.issue("L-1", policy)
    with pytest.raises(AlreadyIssuedError, match="revoke it to issue a new one"):
        service.issue("L-1", policy)
    service.revoke(first.id, reason="reissue with corrected name", by="admin")
    assert service.issue("L-1", policy).id != first.id


def test_a_pending_observation_keeps_the_learner_waiting_until_reviewed(
    service: CredentialService,
) -> None:
    policy = load_policy("forklift-operator")
    decision = service.decide("L-3", policy)
    assert not decision.eligible
    assert "F-2 (" in decision.reasons[0]
    assert "is incomplete (pending: looks_before_reversing)" in decision.reasons[0]

    rubric = shipped_rubric(FORKLIFT)
    assert rubric is not None

    def review(record: SessionRecord, report: dict[str, Any]) -> dict[str, Any]:
        if record.info.session != "F-2":
            return report
        return reviewed_report(report, rubric, {"looks_before_reversing": "pass"}, assessor="A-9")

    service.review = review
    issued = service.issue("L-3", policy)
    assert "Assessor: A-9." in issued.document["evidence"][-1]["narrative"]


def test_the_published_status_list_verifies_and_carries_the_revocation(
    service: CredentialService,
) -> None:
    issued = service.issue("L-1", load_policy("forklift-operator"))
    ours = service.trusted()
    before = service.status_list_credential(1)
    assert verify(before, trusted=ours).ok
    assert verify(issued.document, trusted=ours, status_list=before).check("status").status == "ok"
    service.revoke(issued.id, reason="r", by="admin")
    after = service.status_list_credential(1)
    assert verify(issued.document, trusted=ours, status_list=before).check("status").status == "ok"
    assert verify(issued.document, trusted=ours, status_list=after).check("status").status == (
        "failed"
    )


def test_a_status_list_from_another_issuer_is_not_believed(service: CredentialService) -> None:
    issued = service.issue("L-1", load_policy("forklift-operator"))
    impostor = CredentialService(service.store, service.credentials, key=IssuerKey.generate(),
                                 urls=service.urls)  # fmt: skip
    check = verify(issued.document, trusted=service.trusted(),
                   status_list=impostor.status_list_credential(1))  # fmt: skip
    assert check.check("status").status == "failed"
    assert "issued by" in check.check("status").detail


def test_validity_is_checked_against_the_clock(service: CredentialService) -> None:
    issued = service.issue("L-1", load_policy("forklift-operator"))
    assert issued.valid_until is not None
    later = verify(issued.document, trusted=service.trusted(),
                   now=issued.valid_until + timedelta(seconds=1))  # fmt: skip
    assert later.check("validity").status == "failed"
    assert later.check("validity").detail.startswith("expired")
    earlier = verify(issued.document, trusted=service.trusted(),
                     now=issued.issued_at - timedelta(days=1))  # fmt: skip
    assert earlier.check("validity").detail.startswith("not valid yet")


def test_xapi_statements_of_a_stored_field_session(service: CredentialService) -> None:
    completed, passed = service.session_statements("F-1")
    assert passed["verb"]["id"] == "http://adlnet.gov/expapi/verbs/passed"
    assert passed["context"]["instructor"]["account"]["name"] == "A-7"
    assert completed["actor"]["account"] == {"homePage": "https://engine.example.org",
                                             "name": "L-1"}  # fmt: skip


@pytest.mark.parametrize(
    "policy_id", ["forklift-operator", "haul-truck-operator", "lhd-operator", "network-technician"]
)
def test_every_shipped_policy_issues_from_simulated_sessions(policy_id: str) -> None:
    policy = load_policy(policy_id)
    store = MemoryStore()
    plan = [
        (f"{requirement.source}-{k}", requirement.source, "competent")
        for requirement in policy.requirements
        for k in range(requirement.passes)
    ]
    record_sessions(store, policy.requirements[0].rubric, "L-9", plan)
    service = CredentialService(store, MemoryCredentialStore(), key=IssuerKey.generate())
    issued = service.issue("L-9", policy)
    assert service.verify(issued.document).ok
    assert len(issued.document["evidence"]) == len(plan)
    assert issued.document["credentialSubject"]["achievement"]["alignment"]


# ------------------------------------------------------------------------------ CLI


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_command_line_issues_verifies_and_revokes(db: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "issuer.pem"
    made = run("keys", "issuer", "--out", str(key_file))
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    did = IssuerKey.from_pem(key_file.read_bytes()).did
    assert did in made.output

    out = tmp_path / "L-1.json"
    issued = run("credential", "issue", "--db", str(db), "--learner", "L-1", "--policy",
                 "forklift-operator", "--key", str(key_file), "--out", str(out))  # fmt: skip
    assert issued.exit_code == 0, issued.output
    document = json.loads(out.read_text())
    assert document["issuer"]["id"] == did

    checked = run("credential", "verify", str(out), "--key", str(key_file))
    assert checked.exit_code == 0, checked.output
    for name in ("proof", "key", "expansion", "signature", "issuer", "schema", "validity"):
        assert f"ok       {name}" in checked.output
    assert "skipped  status" in checked.output
    as_the_engine = run("credential", "verify", str(out), "--db", str(db), "--key", str(key_file))
    assert as_the_engine.exit_code == 0, as_the_engine.output
    assert "ok       status     not revoked" in as_the_engine.output

    listing = tmp_path / "status-1.json"
    made_list = run("credential", "status-list", "--db", str(db), "--key", str(key_file),
                    "--out", str(listing))  # fmt: skip
    assert made_list.exit_code == 0, made_list.output
    assert run("credential", "verify", str(out), "--status-list", str(listing),
               "--trusted-issuer", did).exit_code == 0  # fmt: skip

    revoked = run("credential", "revoke", "--db", str(db), "--id", document["id"], "--reason",
                  "cheating in the simulator")  # fmt: skip
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked {document['id']}" in revoked.output
    again = run("credential", "revoke", "--db", str(db), "--id", document["id"], "--reason", "x")
    assert again.exit_code == 1
    assert "already revoked" in again.output
    run("credential", "status-list", "--db", str(db), "--key", str(key_file), "--out",
        str(listing))  # fmt: skip
    after = run("credential", "verify", str(out), "--status-list", str(listing), "--key",
                str(key_file))  # fmt: skip
    assert after.exit_code == 1
    assert "FAILED   status     revoked" in after.output
    assert after.output.rstrip().splitlines()[-1].startswith("INVALID: status: revoked")


def test_the_command_line_refuses_an_ineligible_learner_with_the_reasons(
    db: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "issuer.pem"
    key_file.write_bytes(IssuerKey.generate().to_pem())
    refused = CliRunner().invoke(main, ["credential", "issue", "--db", str(db), "--learner",
                                        "L-2", "--policy", "forklift-operator"],
                                 env={"ASSESSENGINE_ISSUER_KEY": str(key_file)})  # fmt: skip
    assert refused.exit_code == 1
    assert "not eligible: L-2 for forklift-operator" in refused.output
    assert "the longest run so far is 1 (needed: 2)" in refused.output


def test_the_command_line_reports_a_tampered_credential(tmp_path: Path) -> None:
    document = json.loads(SAMPLE.read_text())
    document["credentialSubject"]["result"][0]["value"] = "99"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    result = run("credential", "verify", "--json", str(tampered), "--trusted-issuer",
                 SAMPLE_ISSUER)  # fmt: skip
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["valid"] is False
    assert data["signature"] == "failed"
    assert {c["name"]: c["status"] for c in data["checks"]}["signature"] == "failed"


def forged_copy(document: dict[str, Any], forger: IssuerKey) -> dict[str, Any]:
    """`document` re-signed under the forger's did:key: issuer id changed, status removed."""
    forged = copy.deepcopy(document)
    forged["issuer"]["id"] = forger.did
    del forged["credentialStatus"], forged["proof"]
    return sign_credential(forged, forger, created=datetime.now(UTC).replace(microsecond=0))


def test_a_forged_credential_signed_by_another_key_is_not_valid(
    service: CredentialService,
) -> None:
    issued = service.issue("L-1", load_policy("forklift-operator"))
    forged = forged_copy(dict(issued.document), IssuerKey.generate())
    result = service.verify(forged)
    assert result.signature == "ok"
    assert not result.trusted
    assert not result.ok
    assert result.check("issuer").status == "failed"
    assert result.reason is not None
    assert "not trusted" in result.reason
    assert service.verify(issued.document).trusted


def test_a_configured_trusted_issuer_verifies_and_nobody_else(service: CredentialService) -> None:
    partner = IssuerKey.generate()
    document = forged_copy(dict(service.issue("L-1", load_policy("forklift-operator")).document),
                           partner)  # fmt: skip
    assert not verify(document, trusted=()).ok
    assert verify(document, trusted={partner.did}).ok
    service.trusted_issuers = frozenset({partner.did})
    assert service.verify(document).ok


def test_the_command_line_refuses_a_forged_credential(db: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "issuer.pem"
    key_file.write_bytes(IssuerKey.generate().to_pem())
    env = {"ASSESSENGINE_ISSUER_KEY": str(key_file)}
    out = tmp_path / "L-1.json"
    issued = CliRunner().invoke(main, ["credential", "issue", "--db", str(db), "--learner", "L-1",
                                       "--policy", "forklift-operator", "--out", str(out)],
                                env=env)  # fmt: skip
    assert issued.exit_code == 0, issued.output
    forger = IssuerKey.generate()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(forged_copy(json.loads(out.read_text()), forger)))

    for extra in ([], ["--db", str(db)]):
        result = CliRunner().invoke(main, ["credential", "verify", "--json", str(forged), *extra],
                                    env=env)  # fmt: skip
        assert result.exit_code == 1, result.output
        data = json.loads(result.output)
        assert (data["valid"], data["signature"], data["trusted"]) == (False, "ok", False)
        assert data["issuer"] == forger.did
        assert "not trusted" in data["reason"]
    genuine = CliRunner().invoke(main, ["credential", "verify", str(out)], env=env)
    assert genuine.exit_code == 0, genuine.output
    trusting = CliRunner().invoke(main, ["credential", "verify", str(forged), "--trusted-issuer",
                                         forger.did])  # fmt: skip
    assert trusting.exit_code == 0, trusting.output
    bad = CliRunner().invoke(main, ["credential", "verify", str(forged), "--trusted-issuer", "x"])
    assert bad.exit_code == 2
    assert "a trusted issuer is a DID" in bad.output


def test_issuing_without_a_key_uses_the_one_serve_makes_beside_the_store(db: Path) -> None:
    result = CliRunner().invoke(main, ["credential", "issue", "--db", str(db), "--learner",
                                       "L-1", "--policy", "forklift-operator"], env={})  # fmt: skip
    assert result.exit_code == 0, result.output
    key_file = db.with_name(db.name + ".issuer.pem")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    document = json.loads(result.stdout)
    assert document["issuer"]["id"] == IssuerKey.from_pem(key_file.read_bytes()).did


def test_an_existing_key_file_is_not_overwritten(tmp_path: Path) -> None:
    key_file = tmp_path / "issuer.pem"
    key_file.write_text("keep me")
    result = run("keys", "issuer", "--out", str(key_file))
    assert result.exit_code == 1
    assert key_file.read_text() == "keep me"


def test_the_shipped_policies_pass_the_check() -> None:
    files = sorted(str(p) for p in (REPO / "credentials").glob("*.yaml"))
    result = run("credential", "check", *files)
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------ sample


def test_the_sample_credential_is_what_the_script_makes() -> None:
    assert SAMPLER.render(SAMPLER.build_sample()) == SAMPLE.read_text(encoding="utf-8")


def test_the_sample_credential_verifies_and_fails_when_changed() -> None:
    document = json.loads(SAMPLE.read_text())
    moment = datetime(2025, 6, 3, tzinfo=UTC)
    result = verify(document, trusted={SAMPLE_ISSUER}, now=moment)
    assert result.ok, result.to_data()
    assert result.check("schema").status == "ok"
    for path, value in [
        (("credentialSubject", "result", 0, "value"), "100"),
        (("credentialSubject", "achievement", "name"), "Crane operator"),
        (("validUntil",), "2030-06-02T09:00:00Z"),
        (("evidence", 2, "description"), CHAIN_HEAD_LABEL + "0" * 64),
    ]:
        changed = copy.deepcopy(document)
        target = changed
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        assert verify(changed, trusted={SAMPLE_ISSUER}, now=moment).check("signature").status == (
            "failed"
        ), path
