"""Open Badges 3.0 credential documents: shape, official schema, JSON-LD coverage, signing."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from assessengine.adapters.signer import (
    IssuerKey,
    expansion_problems,
    sign_credential,
    verify_credential,
)
from assessengine.adapters.standards import schema_problems
from assessengine.core.credentials import (
    CHAIN_HEAD_LABEL,
    AchievementInfo,
    CompetencyAlignment,
    CredentialError,
    CriterionOutcome,
    IssuerProfile,
    RubricOutcome,
    SessionEvidence,
    StatusEntry,
    build_credential,
    criterion_result_id,
    rubric_result_id,
)

ACHIEVEMENT = AchievementInfo(
    id="https://engine.example.org/achievements/forklift-operator",
    name="Forklift operator: load handling",
    description="Moves, lifts and sets down loads safely with a counterbalance forklift.",
    criteria_narrative=(
        "Pass rubric `forklift-load-handling` (version 3 or later) in 2 consecutive simulator"
        " attempts and once in the field, all within 90 days."
    ),
    competencies=(
        CompetencyAlignment(
            code="FLT-03",
            name="Handle loads with a forklift",
            url="https://frameworks.example.org/logistics/FLT-03",
            framework="Example logistics competency framework",
        ),
        CompetencyAlignment(
            code="FLT-05",
            name="Travel safely with a raised load",
            url="https://frameworks.example.org/logistics/FLT-05",
        ),
    ),
)
CRITERIA = (
    CriterionOutcome("load_secured", "Load secured before travel", "pass", critical=True),
    CriterionOutcome("mast_tilt", "Mast tilted back while travelling", "pass", points=2.0),
    CriterionOutcome("horn_at_corners", "Horn at blind corners", "fail", points=1.0),
    CriterionOutcome("pedestrian_stop", "Stopped for pedestrians", "not_applicable", points=1.0),
)
RESULT = RubricOutcome(
    rubric="forklift-load-handling",
    version=3,
    title="Forklift load handling",
    outcome="pass",
    score=66.66666666666667,
    min_score=60.0,
    criteria=CRITERIA,
)
ENDED = datetime(2025, 2, 20, 9, 30, tzinfo=UTC)


def _evidence(session: str, kind: str, head: str) -> SessionEvidence:
    return SessionEvidence(
        id=f"https://engine.example.org/api/v1/sessions/{session}",
        session=session,
        kind="field" if kind == "field" else "simulator",
        rubric="forklift-load-handling",
        rubric_version=3,
        outcome="pass",
        score=66.66666666666667,
        ended_at=ENDED,
        chain_head_sha256=head * 32,
        criteria=CRITERIA,
        assessor="A-7" if kind == "field" else None,
    )


def _credential(issuer_id: str) -> dict[str, Any]:
    return build_credential(
        credential_id="urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
        issuer=IssuerProfile(
            id=issuer_id, name="Example Training Centre", url="https://training.example.org"
        ),
        subject_id="urn:example:learner:L-001",
        achievement=ACHIEVEMENT,
        results=[RESULT],
        evidence=[_evidence("S-1", "simulator", "a1"), _evidence("F-1", "field", "b2")],
        valid_from=datetime(2025, 3, 1, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1))),
        valid_until=datetime(2028, 3, 1, 7, 0, tzinfo=UTC),
        status=StatusEntry("https://engine.example.org/api/v1/status/revocation/1", 42),
    )


@pytest.fixture(scope="module")
def key() -> IssuerKey:
    return IssuerKey.generate()


@pytest.fixture(scope="module")
def signed(key: IssuerKey) -> dict[str, Any]:
    return sign_credential(
        _credential(key.did), key, created=datetime(2025, 3, 1, 7, 0, 5, tzinfo=UTC)
    )


def test_signed_credential_validates_against_the_official_schema(signed: dict[str, Any]) -> None:
    assert schema_problems(signed) == ()


def test_issuer_profile_validates_against_the_official_profile_schema(
    signed: dict[str, Any],
) -> None:
    assert schema_problems(signed["issuer"], "profile") == ()


def test_signed_credential_verifies(signed: dict[str, Any]) -> None:
    report = verify_credential(signed)
    assert report.ok, report.checks


def test_json_ld_expansion_drops_nothing_from_the_credential(signed: dict[str, Any]) -> None:
    assert expansion_problems(signed) == ()


def test_tampering_with_the_rubric_score_fails_verification(signed: dict[str, Any]) -> None:
    tampered = copy.deepcopy(signed)
    tampered["credentialSubject"]["result"][0]["value"] = "100"
    assert not verify_credential(tampered).check("signature").ok


def test_tampering_with_a_criterion_verdict_fails_verification(signed: dict[str, Any]) -> None:
    tampered = copy.deepcopy(signed)
    result = tampered["credentialSubject"]["result"][3]
    result["value"] = "pass"
    result["achievedLevel"] = result["achievedLevel"].replace("/level/fail", "/level/pass")
    assert not verify_credential(tampered).check("signature").ok


def test_context_and_type_are_the_ones_open_badges_requires(signed: dict[str, Any]) -> None:
    assert signed["@context"] == [
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json",  # credentialSchema's type
    ]
    assert signed["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert len(signed["proof"]) == 1


def test_dates_are_utc_to_the_second(signed: dict[str, Any]) -> None:
    assert signed["validFrom"] == "2025-03-01T07:00:00Z"
    assert signed["validUntil"] == "2028-03-01T07:00:00Z"


def test_achievement_is_a_microcredential_aligned_to_its_competencies(
    signed: dict[str, Any],
) -> None:
    achievement = signed["credentialSubject"]["achievement"]
    assert achievement["achievementType"] == "MicroCredential"
    assert achievement["criteria"]["narrative"] == ACHIEVEMENT.criteria_narrative
    assert [a["targetCode"] for a in achievement["alignment"]] == ["FLT-03", "FLT-05"]
    assert achievement["alignment"][0]["targetFramework"] == (
        "Example logistics competency framework"
    )


def test_there_is_one_result_per_rubric_and_per_criterion(signed: dict[str, Any]) -> None:
    results = signed["credentialSubject"]["result"]
    assert [r["resultDescription"] for r in results] == [
        rubric_result_id(ACHIEVEMENT.id, "forklift-load-handling"),
        *(criterion_result_id(ACHIEVEMENT.id, "forklift-load-handling", c.id) for c in CRITERIA),
    ]
    assert results[0]["value"] == "66.66666666666667"
    assert results[0]["status"] == "Completed"
    assert [r["value"] for r in results[1:]] == ["pass", "pass", "fail", "not_applicable"]


def test_every_result_points_at_a_description_and_level_of_the_achievement(
    signed: dict[str, Any],
) -> None:
    descriptions = {
        d["id"]: d for d in signed["credentialSubject"]["achievement"]["resultDescription"]
    }
    for result in signed["credentialSubject"]["result"]:
        description = descriptions[result["resultDescription"]]
        if "achievedLevel" in result:
            levels = {level["id"] for level in description["rubricCriterionLevel"]}
            assert result["achievedLevel"] in levels


def test_critical_criteria_require_the_pass_level(signed: dict[str, Any]) -> None:
    descriptions = signed["credentialSubject"]["achievement"]["resultDescription"]
    required = {d["id"]: d.get("requiredLevel") for d in descriptions}
    critical = criterion_result_id(ACHIEVEMENT.id, "forklift-load-handling", "load_secured")
    optional = criterion_result_id(ACHIEVEMENT.id, "forklift-load-handling", "mast_tilt")
    assert required[critical] == f"{critical}/level/pass"
    assert required[optional] is None
    assert descriptions[0]["requiredValue"] == "60"


def test_each_session_is_evidence_with_its_verdicts_and_chain_head(
    signed: dict[str, Any],
) -> None:
    simulator, field = signed["evidence"]
    assert simulator["id"] == "https://engine.example.org/api/v1/sessions/S-1"
    assert simulator["description"] == CHAIN_HEAD_LABEL + "a1" * 32
    assert field["description"] == CHAIN_HEAD_LABEL + "b2" * 32
    assert "- fail: Horn at blind corners (`horn_at_corners`)" in simulator["narrative"]
    assert "**pass**, score 66.67 / 100." in simulator["narrative"]
    assert "Assessor: A-7." in field["narrative"]
    assert field["genre"] == "Field assessment"


def test_credential_status_is_a_bitstring_status_list_entry(signed: dict[str, Any]) -> None:
    assert signed["credentialStatus"] == {
        "id": "https://engine.example.org/api/v1/status/revocation/1#42",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": "42",
        "statusListCredential": "https://engine.example.org/api/v1/status/revocation/1",
    }


def test_the_unsigned_credential_is_also_schema_valid() -> None:
    assert schema_problems(_credential("did:example:issuer")) == ()


def test_minimal_credential_without_results_evidence_or_status_is_valid_and_expands() -> None:
    document = build_credential(
        credential_id="urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        issuer=IssuerProfile(id="did:example:issuer", name="Centre"),
        subject_id="urn:example:learner:L-9",
        achievement=replace(ACHIEVEMENT, competencies=()),
        results=[],
        evidence=[],
        valid_from=ENDED,
    )
    assert schema_problems(document) == ()
    assert expansion_problems(document) == ()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("validFrom", "2025-03-01", "date-time"),
        ("validFrom", None, "None is not of type 'string'"),
        ("type", ["VerifiableCredential"], "type"),
        ("proof", {"type": "DataIntegrityProof"}, "is not of type 'array'"),
    ],
)
def test_the_schema_check_reports_broken_documents(
    signed: dict[str, Any], field: str, value: object, expected: str
) -> None:
    broken = copy.deepcopy(signed)
    broken[field] = value
    problems = schema_problems(broken)
    assert problems
    assert any(expected in p for p in problems), problems


def test_the_schema_check_reports_a_missing_required_property(signed: dict[str, Any]) -> None:
    broken = {k: v for k, v in signed.items() if k != "credentialSubject"}
    assert any("credentialSubject" in p for p in schema_problems(broken))


@pytest.mark.parametrize(
    "build",
    [
        lambda: IssuerProfile(id="issuers/1", name="Centre"),
        lambda: replace(ACHIEVEMENT, id="https://example.org/a#frag"),
        lambda: CriterionOutcome("x", "X", "pending"),  # type: ignore[arg-type]
        lambda: replace(RESULT, score=120.0),
        lambda: replace(RESULT, criteria=(CRITERIA[0], CRITERIA[0])),
        lambda: replace(_evidence("S-1", "simulator", "a1"), chain_head_sha256="AB" * 32),
        lambda: replace(_evidence("S-1", "simulator", "a1"), ended_at=datetime(2025, 1, 1)),
        lambda: StatusEntry("https://example.org/status/1", -1),
    ],
)
def test_invalid_inputs_are_refused(build: Any) -> None:
    with pytest.raises(CredentialError):
        build()


def test_validity_must_end_after_it_starts() -> None:
    with pytest.raises(CredentialError, match="validUntil"):
        build_credential(
            credential_id="urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            issuer=IssuerProfile(id="did:example:issuer", name="Centre"),
            subject_id="urn:example:learner:L-9",
            achievement=ACHIEVEMENT,
            results=[],
            evidence=[],
            valid_from=ENDED,
            valid_until=ENDED,
        )


def test_a_rubric_reported_twice_is_refused() -> None:
    with pytest.raises(CredentialError, match="twice"):
        build_credential(
            credential_id="urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            issuer=IssuerProfile(id="did:example:issuer", name="Centre"),
            subject_id="urn:example:learner:L-9",
            achievement=ACHIEVEMENT,
            results=[RESULT, RESULT],
            evidence=[],
            valid_from=ENDED,
        )
