"""W3C Bitstring Status List v1.0: the bitstring, its encoding, the list credential. Pure.

- The bitstring holds one bit per issued credential (``statusListIndex``); bit 0 is the most
  significant bit of the first byte. A set bit means the status (here: revoked) applies.
- ``encodedList`` = multibase base64url (``u`` prefix, no padding) of the GZIP-compressed
  bitstring. The uncompressed bitstring is at least 16 KiB (131,072 entries), so an index says
  little about who holds it (herd privacy).
- The list is published as a ``BitstringStatusListCredential`` whose subject is a
  ``BitstringStatusList``; the engine signs it like any credential (adapters.signer).

`status_of` reads one entry as a verifier does (spec section "Validate Algorithm"): purpose,
index range and minimum length are checked, and every problem is reported, not raised.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from .credentials import VC_V2_CONTEXT, CredentialError
from .instants import utc_text

MIN_ENTRIES: Final = 131_072  # 16 KiB of bits: the spec's minimum list length
LIST_CREDENTIAL_TYPE: Final = ("VerifiableCredential", "BitstringStatusListCredential")
ENTRY_TYPE: Final = "BitstringStatusListEntry"
MAX_DECODED_BYTES: Final = 16 * 2**20  # refuse a "zip bomb" list larger than 128 M entries

Purpose = Literal["revocation", "suspension"]
_INDEX = re.compile(r"^(0|[1-9][0-9]*)$")


class StatusListError(CredentialError):
    """A status list or status entry is malformed; the message says how."""


# ------------------------------------------------------------------------------ bitstring


def bitstring(revoked: Iterable[int], size: int = MIN_ENTRIES) -> bytes:
    """A bitstring of `size` entries (a multiple of 8, at least `MIN_ENTRIES`) with the bits at
    `revoked` set."""
    if size < MIN_ENTRIES or size % 8:
        raise StatusListError(
            f"a status list has a multiple of 8 entries, at least {MIN_ENTRIES}, not {size}"
        )
    bits = bytearray(size // 8)
    for index in revoked:
        if not 0 <= index < size:
            raise StatusListError(f"status index {index} is outside 0..{size - 1}")
        bits[index // 8] |= 0x80 >> (index % 8)
    return bytes(bits)


def bit_at(bits: bytes, index: int) -> bool:
    """Whether entry `index` is set (bit 0 = most significant bit of byte 0)."""
    if not 0 <= index < len(bits) * 8:
        raise StatusListError(f"status index {index} is outside 0..{len(bits) * 8 - 1}")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def encode_list(bits: bytes) -> str:
    """``encodedList``: ``u`` + base64url (no padding) of gzip(bits); deterministic (mtime 0)."""
    compressed = gzip.compress(bits, compresslevel=9, mtime=0)
    return "u" + base64.urlsafe_b64encode(compressed).decode("ascii").rstrip("=")


def decode_list(encoded: object) -> bytes:
    """The bitstring of an ``encodedList``; `StatusListError` when it is not valid multibase
    base64url of gzip data (padding is accepted), or decompresses past `MAX_DECODED_BYTES`."""
    if not isinstance(encoded, str) or not encoded.startswith("u"):
        raise StatusListError("encodedList is not multibase base64url (it must start with 'u')")
    body = encoded[1:]
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", body):
        raise StatusListError("encodedList has characters outside the base64url alphabet")
    try:
        compressed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        bits = inflater.decompress(compressed, MAX_DECODED_BYTES + 1)
    except (binascii.Error, ValueError, zlib.error) as error:
        raise StatusListError(f"encodedList is not base64url of gzip data ({error})") from error
    if len(bits) > MAX_DECODED_BYTES:
        raise StatusListError("encodedList decompresses to more than 16 MiB")
    if not inflater.eof:
        raise StatusListError("encodedList is truncated gzip data")
    return bits


# ------------------------------------------------------------------------------ documents


def status_list_credential(
    *,
    list_url: str,
    issuer: str,
    bits: bytes,
    valid_from: datetime,
    valid_until: datetime | None = None,
    purpose: Purpose = "revocation",
    ttl_ms: int | None = None,
) -> dict[str, Any]:
    """The unsigned ``BitstringStatusListCredential`` published at `list_url`; its subject's
    id is ``<list_url>#list``. `issuer` is the issuer's id (the signing key's did:key);
    `ttl_ms` the subject's ``ttl``: how long (milliseconds) a verifier may cache the list."""
    if len(bits) * 8 < MIN_ENTRIES:
        raise StatusListError(f"a status list has at least {MIN_ENTRIES} entries")
    if "#" in list_url:
        raise StatusListError("a status list URL has no fragment")
    document: dict[str, Any] = {
        "@context": [VC_V2_CONTEXT],
        "id": list_url,
        "type": list(LIST_CREDENTIAL_TYPE),
        "issuer": issuer,
        "validFrom": _timestamp(valid_from),
    }
    if valid_until is not None:
        document["validUntil"] = _timestamp(valid_until)
    document["credentialSubject"] = {
        "id": f"{list_url}#list",
        "type": "BitstringStatusList",
        "statusPurpose": purpose,
        "encodedList": encode_list(bits),
    }
    if ttl_ms is not None:
        document["credentialSubject"]["ttl"] = ttl_ms
    return document


@dataclass(frozen=True, slots=True)
class EntryStatus:
    """The outcome of reading one ``credentialStatus`` entry from its list.

    set:      the status bit (True = revoked, for purpose revocation); None when unreadable
    problem:  why it could not be read (malformed entry or list, wrong list, out of range)
    """

    purpose: str
    index: int | None
    set: bool | None
    problem: str | None = None


def status_entries(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The credential's ``credentialStatus`` entries (an object or a list of them)."""
    value = document.get("credentialStatus")
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, Mapping) else {} for item in items]


def status_of(entry: Mapping[str, Any], list_credential: Mapping[str, Any]) -> EntryStatus:
    """Read `entry`'s bit from `list_credential` (whose proof the caller checks separately)."""
    purpose = str(entry.get("statusPurpose", ""))
    raw_index = entry.get("statusListIndex")
    index = int(raw_index) if isinstance(raw_index, str) and _INDEX.match(raw_index) else None

    def problem(text: str) -> EntryStatus:
        return EntryStatus(purpose, index, None, text)

    if entry.get("type") != ENTRY_TYPE:
        return problem(f"credentialStatus type is {entry.get('type')!r}, not {ENTRY_TYPE}")
    if index is None:
        return problem(f"statusListIndex {raw_index!r} is not a non-negative integer string")
    if list_credential.get("id") != entry.get("statusListCredential"):
        return problem(
            f"the status list given is {list_credential.get('id')!r}, but the credential"
            f" points at {entry.get('statusListCredential')!r}"
        )
    types = list_credential.get("type")
    if not isinstance(types, list) or LIST_CREDENTIAL_TYPE[1] not in types:
        return problem("the status list is not a BitstringStatusListCredential")
    subject = list_credential.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("type") != "BitstringStatusList":
        return problem("the status list's credentialSubject is not a BitstringStatusList")
    if subject.get("statusPurpose") != purpose:
        return problem(
            f"the list's statusPurpose is {subject.get('statusPurpose')!r}, the entry's {purpose!r}"
        )
    try:
        bits = decode_list(subject.get("encodedList"))
    except StatusListError as error:
        return problem(str(error))
    if len(bits) * 8 < MIN_ENTRIES:
        return problem(f"the status list has {len(bits) * 8} entries, fewer than {MIN_ENTRIES}")
    if index >= len(bits) * 8:
        return problem(f"statusListIndex {index} is outside the list (0..{len(bits) * 8 - 1})")
    return EntryStatus(purpose, index, bit_at(bits, index))


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise StatusListError("dates must be timezone-aware")
    return utc_text(moment)
