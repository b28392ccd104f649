"""W3C Bitstring Status List: the bitstring, its encoding, reading an entry; and the credential
store that allocates slots and records revocations (memory fake and SQLite, one suite)."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assessengine.adapters.signer import IssuerKey, sign_credential
from assessengine.core.status_list import (
    MIN_ENTRIES,
    StatusListError,
    bit_at,
    bitstring,
    decode_list,
    encode_list,
    status_list_credential,
    status_of,
)
from assessengine.storage.credentials import (
    CredentialStore,
    CredentialStoreError,
    IssuedCredential,
    MemoryCredentialStore,
    PublishedList,
    SqliteCredentialStore,
    StatusSlot,
)
from assessengine.storage.sqlite import SqliteStore

LIST_URL = "https://engine.example.org/api/v1/credentials/status/1"
NOW = datetime(2025, 3, 1, 7, 0, tzinfo=UTC)
# The example encodedList of the W3C specification: an empty 16 KiB list.
SPEC_EMPTY_LIST = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"


# ------------------------------------------------------------------------------ bitstring


def test_the_specifications_example_list_decodes_to_16_kib_of_zeros() -> None:
    assert decode_list(SPEC_EMPTY_LIST) == bytes(16_384)


def test_index_zero_is_the_leftmost_bit_of_the_first_byte() -> None:
    bits = bitstring([0, 9, MIN_ENTRIES - 1])
    assert bits[:2] == bytes([0b1000_0000, 0b0100_0000])
    assert bits[-1] == 0b0000_0001
    assert [bit_at(bits, i) for i in (0, 1, 8, 9, MIN_ENTRIES - 1)] == [True, False, False, True,
                                                                          True]  # fmt: skip


def test_the_encoding_is_multibase_base64url_of_gzip_without_padding() -> None:
    encoded = encode_list(bitstring([3]))
    assert encoded.startswith("u")
    assert "=" not in encoded
    assert not set(encoded[1:]) - set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    raw = base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4))
    assert gzip.decompress(raw) == bitstring([3])


def test_the_encoding_is_deterministic() -> None:
    assert encode_list(bitstring([5, 77])) == encode_list(bitstring([77, 5]))


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, MIN_ENTRIES - 1), max_size=50))
def test_encoding_round_trips(revoked: set[int]) -> None:
    bits = decode_list(encode_list(bitstring(revoked)))
    assert len(bits) * 8 == MIN_ENTRIES
    assert {i for i in range(MIN_ENTRIES) if bits[i // 8] and bit_at(bits, i)} == revoked


@pytest.mark.parametrize("size", [MIN_ENTRIES - 8, MIN_ENTRIES + 1, 0])
def test_a_list_shorter_than_16_kib_or_not_whole_bytes_is_refused(size: int) -> None:
    with pytest.raises(StatusListError):
        bitstring([], size)


@pytest.mark.parametrize("index", [-1, MIN_ENTRIES])
def test_an_index_outside_the_list_is_refused(index: int) -> None:
    with pytest.raises(StatusListError, match="outside"):
        bitstring([index])


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("H4sIAAAA", "must start with 'u'"),
        ("u!!!!", "base64url alphabet"),
        ("u" + base64.urlsafe_b64encode(b"not gzip").decode().rstrip("="), "not base64url of gzip"),
        ("u" + base64.urlsafe_b64encode(gzip.compress(bytes(100), mtime=0)[:-9]).decode(),
         "truncated"),
        (None, "must start with 'u'"),
    ],
)
def test_a_malformed_encoded_list_is_reported(encoded: Any, message: str) -> None:
    with pytest.raises(StatusListError, match=message):
        decode_list(encoded)


def test_a_list_that_inflates_past_16_mib_is_refused() -> None:
    bomb = "u" + base64.urlsafe_b64encode(gzip.compress(bytes(17 * 2**20))).decode()
    with pytest.raises(StatusListError, match="more than 16 MiB"):
        decode_list(bomb)


# ------------------------------------------------------------------------------ documents


def _entry(index: int = 7, **changes: Any) -> dict[str, Any]:
    entry = {
        "id": f"{LIST_URL}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "revocation",
        "statusListIndex": str(index),
        "statusListCredential": LIST_URL,
    }
    return entry | changes


def _list(revoked: list[int], **changes: Any) -> dict[str, Any]:
    document = status_list_credential(
        list_url=LIST_URL, issuer="did:example:issuer", bits=bitstring(revoked), valid_from=NOW
    )
    return document | changes


def test_the_list_credential_has_the_specified_shape() -> None:
    document = _list([])
    assert document["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert document["@context"] == ["https://www.w3.org/ns/credentials/v2"]
    assert document["credentialSubject"]["id"] == f"{LIST_URL}#list"
    assert document["credentialSubject"]["type"] == "BitstringStatusList"
    assert document["credentialSubject"]["statusPurpose"] == "revocation"
    assert document["validFrom"] == "2025-03-01T07:00:00Z"


def test_the_list_credential_signs_and_expands_whole() -> None:
    key = IssuerKey.from_seed(bytes(range(32)))
    document = status_list_credential(
        list_url=LIST_URL, issuer=key.did, bits=bitstring([1]), valid_from=NOW
    )
    assert sign_credential(document, key, created=NOW)["proof"][0]["proofValue"].startswith("z")


def test_an_entry_reads_its_bit() -> None:
    assert status_of(_entry(7), _list([7])).set is True
    assert status_of(_entry(8), _list([7])).set is False


@pytest.mark.parametrize(
    ("entry", "listing", "message"),
    [
        (_entry(statusListIndex="07"), None, "not a non-negative integer"),
        (_entry(statusListIndex=7), None, "not a non-negative integer"),
        (_entry(type="StatusList2021Entry"), None, "not BitstringStatusListEntry"),
        (_entry(statusListCredential=LIST_URL + "0"), None, "points at"),
        (_entry(statusPurpose="suspension"), None, "statusPurpose is 'revocation'"),
        (_entry(index=MIN_ENTRIES), None, "outside the list"),
        (_entry(), {"type": ["VerifiableCredential"]}, "not a BitstringStatusListCredential"),
    ],
)
def test_problems_reading_an_entry_are_reported(
    entry: dict[str, Any], listing: dict[str, Any] | None, message: str
) -> None:
    found = status_of(entry, _list([7], **(listing or {})))
    assert found.set is None
    assert found.problem is not None
    assert message in found.problem


def test_a_list_shorter_than_the_minimum_is_reported() -> None:
    short = _list([])
    short["credentialSubject"] = {
        **short["credentialSubject"],
        "encodedList": encode_list(bytes(8)),
    }
    assert "fewer than 131072" in (status_of(_entry(1), short).problem or "")


# ------------------------------------------------------------------------------ credential store


@pytest.fixture(params=["memory", "sqlite"])
def credentials(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CredentialStore]:
    if request.param == "memory":
        yield MemoryCredentialStore()
        return
    path = tmp_path / "engine.db"
    SqliteStore(path).close()
    with SqliteCredentialStore(path) as store:
        yield store


def _issued(slot: StatusSlot, ident: str = "urn:uuid:1", learner: str = "L-1") -> IssuedCredential:
    return IssuedCredential(
        id=ident,
        learner=learner,
        policy="forklift-operator",
        issued_at=NOW,
        valid_until=None,
        status=slot,
        document={"id": ident},
    )


def test_slots_are_never_handed_out_twice(credentials: CredentialStore) -> None:
    slots = {credentials.allocate_status() for _ in range(50)}
    assert len(slots) == 50
    assert {s.list_id for s in slots} == {1}


def test_a_drawn_index_that_is_taken_is_drawn_again(credentials: CredentialStore) -> None:
    draws = iter([5, 5, 5, 9])
    first = credentials.allocate_status(choose=lambda size: next(draws))
    second = credentials.allocate_status(choose=lambda size: next(draws))
    assert (first.index, second.index) == (5, 9)


def test_an_issued_credential_is_filed_and_found(credentials: CredentialStore) -> None:
    issued = _issued(credentials.allocate_status())
    credentials.save_issued(issued)
    found = credentials.issued("urn:uuid:1")
    assert found is not None
    assert (found.id, found.learner, found.status, found.issued_at) == (
        issued.id, issued.learner, issued.status, issued.issued_at,
    )  # fmt: skip
    assert dict(found.document) == {"id": "urn:uuid:1"}
    assert [c.id for c in credentials.issued_to("L-1", policy="forklift-operator")] == [
        "urn:uuid:1"
    ]
    assert credentials.issued_to("L-1", policy="other") == []
    assert credentials.issued_to("L-2") == []


def test_a_learners_credentials_are_listed_in_the_order_they_were_issued(
    credentials: CredentialStore,
) -> None:
    """By issued_at, then id, in every store (the fake too): not in the order they were filed
    (replication files a site's credentials whenever the link allows; `core.latest`)."""
    later = replace(_issued(credentials.allocate_status(), "urn:uuid:b"),
                    issued_at=NOW + timedelta(days=1))  # fmt: skip
    credentials.save_issued(later)
    credentials.save_issued(_issued(credentials.allocate_status(), "urn:uuid:c"))
    credentials.save_issued(_issued(credentials.allocate_status(), "urn:uuid:a"))
    assert [c.id for c in credentials.issued_to("L-1")] == [
        "urn:uuid:a", "urn:uuid:c", "urn:uuid:b"]


def test_a_slot_must_be_allocated_and_unused(credentials: CredentialStore) -> None:
    slot = credentials.allocate_status()
    credentials.save_issued(_issued(slot))
    with pytest.raises(CredentialStoreError, match="already filed"):
        credentials.save_issued(_issued(slot))
    with pytest.raises(CredentialStoreError, match="already used"):
        credentials.save_issued(_issued(slot, "urn:uuid:2"))
    with pytest.raises(CredentialStoreError, match="not allocated"):
        credentials.save_issued(
            _issued(StatusSlot(1, (slot.index + 1) % MIN_ENTRIES), "urn:uuid:3")
        )


def test_a_revocation_is_recorded_once_with_its_reason(credentials: CredentialStore) -> None:
    slot = credentials.allocate_status()
    credentials.save_issued(_issued(slot))
    revocation = credentials.revoke("urn:uuid:1", reason="cheated", revoked_by="admin", at=NOW)
    assert credentials.revocation("urn:uuid:1") == revocation
    assert (revocation.reason, revocation.revoked_by, revocation.revoked_at) == (
        "cheated", "admin", NOW,
    )  # fmt: skip
    assert credentials.revoked_indices(1) == [slot.index]
    with pytest.raises(CredentialStoreError, match="already revoked"):
        credentials.revoke("urn:uuid:1", reason="again", revoked_by="admin", at=NOW)


@pytest.mark.parametrize(
    ("ident", "reason", "message"),
    [("urn:uuid:404", "x", "no issued credential"), ("urn:uuid:1", "  ", "needs a reason")],
)
def test_a_bad_revocation_is_refused(
    credentials: CredentialStore, ident: str, reason: str, message: str
) -> None:
    credentials.save_issued(_issued(credentials.allocate_status()))
    with pytest.raises(CredentialStoreError, match=message):
        credentials.revoke(ident, reason=reason, revoked_by="admin", at=NOW)
    assert credentials.revoked_indices(1) == []


def test_a_full_list_starts_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    SqliteStore(path).close()
    for store in (MemoryCredentialStore(list_size=16), SqliteCredentialStore(path, list_size=16)):
        slots = [store.allocate_status() for _ in range(20)]
        assert [s.list_id for s in slots] == [1] * 16 + [2] * 4
        assert sorted(s.index for s in slots[:16]) == list(range(16))
        assert store.status_lists() == [StatusSlot(1, 16, 16), StatusSlot(2, 4, 16)]
        store.close()


def test_the_sqlite_store_keeps_everything_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    SqliteStore(path).close()
    with SqliteCredentialStore(path) as store:
        slot = store.allocate_status()
        store.save_issued(_issued(slot))
        store.revoke("urn:uuid:1", reason="r", revoked_by="admin", at=NOW)
    with SqliteStore(path) as engine, SqliteCredentialStore(path) as store:
        assert engine.sessions() == []  # the engine's store still opens the file
        assert store.revoked_indices(1) == [slot.index]
        assert store.allocate_status() != slot


def test_the_sqlite_store_needs_an_engine_store_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialStoreError, match="no store at"):
        SqliteCredentialStore(tmp_path / "missing.db")
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"")
    with pytest.raises(CredentialStoreError, match="not an assessengine store"):
        SqliteCredentialStore(foreign)


def test_a_published_list_is_kept_until_it_is_replaced(credentials: CredentialStore) -> None:
    assert credentials.published(1) is None
    first = PublishedList(1, "r1", '{"id":"list-1"}', NOW)
    credentials.publish(first)
    assert credentials.published(1) == first
    assert credentials.published(2) is None
    second = PublishedList(1, "r2", '{"id":"list-1","v":2}', NOW)
    credentials.publish(second)
    assert credentials.published(1) == second
