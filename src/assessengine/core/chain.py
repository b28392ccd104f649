"""The hash chain over a session's stored batches: pure functions, hashlib and json only.

    genesis = sha256(canonical JSON of the session's info)
    chain_0 = sha256(genesis || sha256(header_0) || sha256(payload_0))
    chain_i = sha256(chain_{i-1} || sha256(header_i) || sha256(payload_i))

`||` joins the raw 32-byte digests (not their hex). Values are kept and compared as 64
lowercase hex characters. Canonical JSON: keys sorted, no whitespace, UTF-8 (not ASCII-escaped),
NaN and infinities refused. The info fields hashed are `GENESIS_FIELDS`, so an OPEN's learner,
scenario, rubric and metadata are bound into every chain value of the session too.

Changing, dropping or reordering any batch (or the session's info) changes every later chain
value; `verify_chain` names the first batch whose stored value no longer follows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

GENESIS_FIELDS: Final = (
    "session",
    "learner",
    "scenario",
    "rubric",
    "rubric_version",
    "rubric_sha256",
    "source",
    "metadata",
)
"""The session info fields the genesis hash covers (all of `storage.port.SessionInfo`)."""


class SessionFields(Protocol):
    """What the genesis needs of a session's info (`storage.port.SessionInfo` fits)."""

    @property
    def session(self) -> str: ...
    @property
    def learner(self) -> str: ...
    @property
    def scenario(self) -> str: ...
    @property
    def rubric(self) -> str: ...
    @property
    def rubric_version(self) -> int: ...
    @property
    def rubric_sha256(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def metadata(self) -> Mapping[str, Any]: ...


class ChainedBatch(Protocol):
    """A stored batch as the chain sees it (`storage.port.StoredBatch` fits)."""

    @property
    def header(self) -> bytes: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def chain(self) -> str: ...


def info_data(info: SessionFields) -> dict[str, Any]:
    """The genesis fields of `info` as a plain dict (metadata copied as a dict)."""
    data = {name: getattr(info, name) for name in GENESIS_FIELDS}
    data["metadata"] = dict(info.metadata)
    return data


def canonical_json(data: Any) -> bytes:
    """Keys sorted, no whitespace, UTF-8. Raises ValueError for values JSON cannot carry
    exactly (NaN, infinities, non-string keys, objects that are not JSON)."""
    try:
        text = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not canonical JSON: {exc}") from None
    return text.encode("utf-8")


def genesis(info: SessionFields) -> str:
    """The session's genesis hash (hex): sha256 of the canonical JSON of its info fields.
    Raises ValueError when the metadata is not plain JSON."""
    return genesis_of_data(info_data(info))


def genesis_of_data(data: Mapping[str, Any]) -> str:
    """`genesis` for info already given as a mapping of the `GENESIS_FIELDS`."""
    missing = [name for name in GENESIS_FIELDS if name not in data]
    extra = sorted(set(data) - set(GENESIS_FIELDS))
    if missing or extra:
        raise ValueError(f"session info fields: missing {missing}, unexpected {extra}")
    return hashlib.sha256(canonical_json(dict(data))).hexdigest()


def digests(header: bytes, payload: bytes | memoryview) -> tuple[bytes, bytes]:
    """sha256 of header and of payload (raw digests). Split out so a store can hash large
    payloads before it takes its write lock; `link` then finishes the chain value cheaply."""
    return hashlib.sha256(header).digest(), hashlib.sha256(payload).digest()


def link(prev_hex: str, header_digest: bytes, payload_digest: bytes) -> str:
    """The chain value following `prev_hex`, given the batch's two digests."""
    return hashlib.sha256(bytes.fromhex(prev_hex) + header_digest + payload_digest).hexdigest()


def next_chain(prev_hex: str, header: bytes, payload: bytes | memoryview) -> str:
    """The chain value of a batch whose predecessor's chain value (or the genesis) is
    `prev_hex`."""
    return link(prev_hex, *digests(header, payload))


def verify_chain(genesis_hex: str, batches: Iterable[ChainedBatch]) -> int | None:
    """The position (0-based, in iteration order) of the first batch whose stored `chain`
    is not the value recomputed from `genesis_hex` and the batches before it and its own
    header and payload; None when every batch follows."""
    prev = genesis_hex
    for position, batch in enumerate(batches):
        expected = next_chain(prev, batch.header, batch.payload)
        if batch.chain != expected:
            return position
        prev = expected
    return None
