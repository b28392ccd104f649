"""eddsa-rdfc-2022 signing: the official Open Badges 3.0 test vector, round trips, tampering,
offline contexts and the refusal to sign what JSON-LD would drop."""

from __future__ import annotations

import copy
import hashlib
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from assessengine.adapters.signer import (
    CRYPTOSUITE,
    IssuerKey,
    SigningError,
    UnsafeDocumentError,
    create_proof,
    did_key,
    expansion_problems,
    hash_data,
    public_key_from_did_key,
    sign_credential,
    verify_credential,
)
from assessengine.adapters.standards import (
    CONTEXT_FILES,
    SCHEMA_NAMES,
    UnknownContextError,
    bundled_file,
    offline_document_loader,
)

STANDARDS = Path(__file__).resolve().parent / "data" / "standards"  # see its README
VECTOR_DIR = STANDARDS / "signing-test-vector"
CREATED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def _published_digests() -> dict[str, str]:
    """``contexts/<file>`` / ``schemas/<file>`` -> the sha256 of the published original."""
    lines = (STANDARDS / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


PUBLISHED = _published_digests()


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTOR_DIR / "vector.json").read_text())
    return data


@pytest.fixture(scope="module")
def vector_key(vector: dict[str, Any]) -> IssuerKey:
    return IssuerKey.from_seed(bytes.fromhex(vector["ed25519_private_key_hex"]))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _document(issuer: str) -> dict[str, Any]:
    """A small Open Badges credential with a score, names, dates and evidence."""
    return {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        ],
        "id": "urn:uuid:8d1f6c1e-2f59-4a43-9d57-3f1c2f0d9b10",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "Forklift load handling",
        "issuer": {"id": issuer, "type": ["Profile"], "name": "Training Centre"},
        "validFrom": "2025-03-01T00:00:00Z",
        "validUntil": "2028-03-01T00:00:00Z",
        "credentialSubject": {
            "id": "urn:example:learner:L-001",
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "https://example.org/achievements/forklift",
                "type": ["Achievement"],
                "name": "Forklift load handling",
                "description": "Handles loads safely.",
                "criteria": {"narrative": "Pass the rubric twice in the simulator."},
                "resultDescription": [
                    {
                        "id": "https://example.org/achievements/forklift#rubric/load",
                        "type": ["ResultDescription"],
                        "name": "Load handling score",
                        "resultType": "Percent",
                    }
                ],
            },
            "result": [
                {
                    "type": ["Result"],
                    "resultDescription": "https://example.org/achievements/forklift#rubric/load",
                    "value": "87.5",
                }
            ],
        },
        "evidence": [
            {
                "id": "https://engine.example.org/api/v1/sessions/S-1",
                "type": ["Evidence"],
                "narrative": "Simulator session S-1: pass.",
                "description": "sha256 head of the stored event chain: " + "ab" * 32,
            }
        ],
    }


def _at(document: Any, path: tuple[str | int, ...]) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


# --- the official test vector ----------------------------------------------------------------


def test_vector_document_canonical_nquads_match_byte_for_byte(vector: dict[str, Any]) -> None:
    hashes = hash_data(vector["credential"], vector["proof_options"])
    expected = (VECTOR_DIR / vector["document_canon_file"]).read_bytes()
    assert hashes.document_canon.encode("utf-8") == expected


def test_vector_proof_canonical_nquads_match_byte_for_byte(vector: dict[str, Any]) -> None:
    hashes = hash_data(vector["credential"], vector["proof_options"])
    expected = (VECTOR_DIR / vector["proof_canon_file"]).read_bytes()
    assert hashes.proof_canon.encode("utf-8") == expected


def test_vector_hashes_match(vector: dict[str, Any]) -> None:
    hashes = hash_data(vector["credential"], vector["proof_options"])
    assert hashes.document_hash.hex() == vector["document_sha256"]
    assert hashes.proof_hash.hex() == vector["proof_options_sha256"]
    assert hashes.to_sign == bytes.fromhex(
        vector["proof_options_sha256"] + vector["document_sha256"]
    )


def test_vector_proof_value_matches(vector: dict[str, Any], vector_key: IssuerKey) -> None:
    proof = create_proof(vector["credential"], vector["proof_options"], vector_key)
    assert proof["proofValue"] == vector["expected_proofValue"]
    assert {k: v for k, v in proof.items() if k != "proofValue"} == vector["proof_options"]


def test_vector_key_pair_and_multikey_encoding_match(
    vector: dict[str, Any], vector_key: IssuerKey
) -> None:
    assert vector_key.public_key.hex() == vector["ed25519_public_key_hex"]
    fragment = vector["proof_options"]["verificationMethod"].partition("#")[2]
    assert vector_key.did == f"did:key:{fragment}"
    assert vector_key.verification_method == f"did:key:{fragment}#{fragment}"


def test_vector_secured_credential_verifies_with_its_public_key(vector: dict[str, Any]) -> None:
    secured = {
        **vector["credential"],
        "proof": [{**vector["proof_options"], "proofValue": vector["expected_proofValue"]}],
    }
    report = verify_credential(secured, public_key=bytes.fromhex(vector["ed25519_public_key_hex"]))
    assert report.ok, report.checks


@pytest.mark.parametrize(
    "path",
    [f"contexts/{name}" for name in sorted(CONTEXT_FILES.values())]
    + [f"schemas/{name}.json" for name in SCHEMA_NAMES],
)
def test_bundled_standards_file_is_the_published_original(path: str) -> None:
    assert path in PUBLISHED, f"{path}: add the published original's sha256 to SHA256SUMS"
    assert hashlib.sha256(bundled_file(*path.split("/"))).hexdigest() == PUBLISHED[path]


def test_every_published_digest_names_a_bundled_file() -> None:
    bundled = {f"contexts/{name}" for name in CONTEXT_FILES.values()}
    bundled |= {f"schemas/{name}.json" for name in SCHEMA_NAMES}
    assert set(PUBLISHED) == bundled


# --- keys -----------------------------------------------------------------------------------


def test_did_key_round_trips_to_the_public_key() -> None:
    key = IssuerKey.generate()
    assert key.did.startswith("did:key:z6Mk")
    assert public_key_from_did_key(key.verification_method) == key.public_key
    assert did_key(key.public_key) == key.did


@pytest.mark.parametrize(
    "reference",
    [
        "did:web:example.org",
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",  # secp256k1, not Ed25519
        "did:key:z6MkjZRZv3aez3r18pB1RBFJR1kwUVJ5jHt92JmQwXbd5hwi#z6MkOther",
    ],
)
def test_malformed_or_foreign_did_key_is_refused(reference: str) -> None:
    with pytest.raises(SigningError):
        public_key_from_did_key(reference)


def test_pem_round_trip_keeps_the_key() -> None:
    key = IssuerKey.generate()
    assert IssuerKey.from_pem(key.to_pem()).seed == key.seed


# --- sign and verify ------------------------------------------------------------------------


def test_sign_then_verify_round_trip_with_a_fresh_key() -> None:
    key = IssuerKey.generate()
    secured = sign_credential(_document(key.did), key, created=CREATED)
    assert isinstance(secured["proof"], list)
    assert len(secured["proof"]) == 1
    proof = secured["proof"][0]
    assert proof["type"] == "DataIntegrityProof"
    assert proof["cryptosuite"] == CRYPTOSUITE
    assert proof["proofPurpose"] == "assertionMethod"
    assert proof["created"] == "2025-03-01T12:00:00Z"
    assert proof["verificationMethod"] == key.verification_method
    assert proof["proofValue"].startswith("z")
    report = verify_credential(secured)
    assert report.ok, report.checks
    assert [c.name for c in report.checks] == ["proof", "key", "expansion", "signature"]


def test_signing_leaves_the_input_document_unchanged() -> None:
    key = IssuerKey.generate()
    document = _document(key.did)
    before = copy.deepcopy(document)
    sign_credential(document, key, created=CREATED)
    assert document == before


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("credentialSubject", "result", 0, "value"), "97.5"),
        (("name",), "Forklift load handling (advanced)"),
        (("issuer", "name"), "Another Centre"),
        (("credentialSubject", "achievement", "name"), "Crane operation"),
        (("validFrom",), "2025-03-02T00:00:00Z"),
        (("validUntil",), "2038-03-01T00:00:00Z"),
        (("credentialSubject", "id"), "urn:example:learner:L-002"),
        (("evidence", 0, "description"), "sha256 head of the stored event chain: " + "cd" * 32),
        (("proof", 0, "created"), "2025-03-01T12:00:01Z"),
    ],
)
def test_tampering_with_a_field_fails_verification(path: tuple[str | int, ...], value: str) -> None:
    key = IssuerKey.generate()
    secured = sign_credential(_document(key.did), key, created=CREATED)
    tampered = copy.deepcopy(secured)
    _at(tampered, path)[path[-1]] = value
    report = verify_credential(tampered)
    assert not report.ok
    assert not report.check("signature").ok


def test_a_proof_from_another_credential_fails_verification() -> None:
    key = IssuerKey.generate()
    one = sign_credential(_document(key.did), key, created=CREATED)
    other_document = _document(key.did)
    other_document["name"] = "Other"
    other = sign_credential(other_document, key, created=CREATED)
    report = verify_credential({**one, "proof": other["proof"]})
    assert not report.check("signature").ok


def test_an_added_undefined_property_fails_verification() -> None:
    key = IssuerKey.generate()
    secured = sign_credential(_document(key.did), key, created=CREATED)
    secured["credentialSubject"]["grade"] = "A+"
    report = verify_credential(secured)
    assert not report.ok
    assert "grade" in report.check("expansion").detail


def test_verification_with_the_wrong_public_key_fails() -> None:
    key = IssuerKey.generate()
    secured = sign_credential(_document(key.did), key, created=CREATED)
    report = verify_credential(secured, public_key=IssuerKey.generate().public_key)
    assert not report.ok
    assert not report.check("key").ok


def test_a_credential_without_proof_reports_each_check() -> None:
    report = verify_credential(_document(IssuerKey.generate().did))
    assert not report.ok
    assert not report.check("proof").ok
    assert report.check("expansion").ok
    assert not report.check("signature").ok


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("@context"),
        lambda d: d.__setitem__("@context", [5]),
        lambda d: d.__setitem__("id", 5),
        lambda d: d.__setitem__("issuer", 3),
        lambda d: d.__setitem__("proof", []),
        lambda d: d["proof"][0].__setitem__("proofValue", "z0OIl"),
        lambda d: d["proof"][0].__setitem__("verificationMethod", 3),
        lambda d: d.__setitem__("credentialSubject", [1, None]),
    ],
)
def test_a_malformed_credential_is_reported_not_raised(damage: Any) -> None:
    key = IssuerKey.generate()
    secured = sign_credential(_document(key.did), key, created=CREATED)
    damage(secured)
    report = verify_credential(secured)
    assert not report.ok
    assert not report.check("signature").ok


def test_a_key_that_the_issuer_does_not_control_is_refused() -> None:
    key = IssuerKey.generate()
    with pytest.raises(SigningError, match="controller"):
        sign_credential(_document(IssuerKey.generate().did), key, created=CREATED)


def test_a_signed_document_is_not_signed_again() -> None:
    key = IssuerKey.generate()
    secured = sign_credential(_document(key.did), key, created=CREATED)
    with pytest.raises(SigningError, match="already has a proof"):
        sign_credential(secured, key, created=CREATED)


# --- offline contexts and dropped properties ------------------------------------------------


def test_the_offline_loader_refuses_an_unknown_url() -> None:
    with pytest.raises(UnknownContextError, match="not bundled"):
        offline_document_loader("https://example.org/contexts/unknown.jsonld", {})


def test_a_document_with_an_unknown_context_is_refused_offline() -> None:
    key = IssuerKey.generate()
    document = _document(key.did)
    document["@context"].append("https://example.org/contexts/unknown.jsonld")
    with pytest.raises(UnknownContextError) as caught:
        sign_credential(document, key, created=CREATED)
    assert caught.value.url == "https://example.org/contexts/unknown.jsonld"


def test_verifying_a_document_with_an_unknown_context_reports_it() -> None:
    key = IssuerKey.generate()
    secured = sign_credential(_document(key.did), key, created=CREATED)
    secured["@context"] = [*secured["@context"], "https://example.org/contexts/unknown.jsonld"]
    report = verify_credential(secured)
    assert not report.ok
    assert "not bundled" in report.check("expansion").detail


@pytest.mark.parametrize(
    ("path", "value", "reported"),
    [
        (("credentialSubject", "score"), "87.5", "score"),
        (("fooBar",), 1, "fooBar"),
        (("credentialSubject", "achievement", "level"), "gold", "level"),
        (("evidence", 0, "chainHead"), "ab" * 32, "chainHead"),
        (("credentialSubject", "type"), ["AchievementSubject", "Learner"], "Learner"),
        (("id",), "credentials/42", "credentials/42"),
        (("name",), None, "$.name"),
    ],
)
def test_a_document_that_expansion_would_not_carry_whole_is_refused_for_signing(
    path: tuple[str | int, ...], value: object, reported: str
) -> None:
    key = IssuerKey.generate()
    document = _document(key.did)
    _at(document, path)[path[-1]] = value
    with pytest.raises(UnsafeDocumentError) as caught:
        sign_credential(document, key, created=CREATED)
    assert any(reported in problem for problem in caught.value.problems), caught.value.problems


def test_the_sample_document_expands_without_problems() -> None:
    assert expansion_problems(_document(IssuerKey.generate().did)) == ()
