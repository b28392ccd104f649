"""``did:web`` issuer identifiers (W3C did:web method): the DID of a host, its DID document
with the issuer's current and retired Ed25519 keys, and the key a verification method names.

``did:web:engine.example.org`` is resolved by fetching ``https://engine.example.org/.well-known/
did.json`` (a port is written ``%3A``: ``did:web:localhost%3A8443``). The document lists every
key the issuer ever signed with as a ``Multikey`` verification method whose fragment is the
key's multibase (``did:web:HOST#z6Mk...``), all under ``assertionMethod``: a retired key
signs nothing new, but the credentials it signed keep verifying after a rotation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote

from ..core.credentials import CredentialError
from .signer import ED25519_PUB_MULTICODEC, decode_multibase_base58btc, multibase_base58btc

DID_CONTEXT: Final = ("https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1")
_LABEL: Final = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST: Final = re.compile(rf"^{_LABEL}(\.{_LABEL})*(:(?P<port>[0-9]{{1,5}}))?$")


class DidWebError(CredentialError):
    """A host that cannot be a did:web, or a DID document that does not give the key."""


def did_web(host: str) -> str:
    """The did:web of `host` (a DNS name, lowercase, optionally ``:PORT``);
    DidWebError for anything else (a scheme, a path, a user, an IP address literal)."""
    text = host.strip().lower()
    found = _HOST.match(text)
    name = text.split(":")[0]
    if found is None or len(text) > 253 or ("." not in name and name != "localhost"):
        raise DidWebError(f"not a host name for did:web: {host!r} (e.g. engine.example.org or "
                          "engine.example.org:8443)")  # fmt: skip
    port = found.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise DidWebError(f"not a port: {port!r}")
    return "did:web:" + text.replace(":", "%3A")


def did_document_url(did: str, *, scheme: str = "https") -> str:
    """Where `did` (host form) is resolved: ``https://HOST/.well-known/did.json``."""
    host = _host_of(did)
    return f"{scheme}://{host}/.well-known/did.json"


def verification_method(did: str, public_key: bytes) -> str:
    """The verification method of an Ed25519 key under `did`: ``DID#z6Mk...``."""
    return f"{did}#{_multikey(public_key)}"


def did_document(did: str, keys: Sequence[bytes]) -> dict[str, Any]:
    """The DID document of `did` with `keys` (raw Ed25519 public keys; the current one first,
    then the retired ones), each a Multikey under ``assertionMethod``."""
    _host_of(did)
    if not keys:
        raise DidWebError("a DID document needs at least the current key")
    methods = [{"id": verification_method(did, key), "type": "Multikey", "controller": did,
                "publicKeyMultibase": _multikey(key)} for key in dict.fromkeys(keys)]  # fmt: skip
    return {"@context": list(DID_CONTEXT), "id": did, "verificationMethod": methods,
            "assertionMethod": [m["id"] for m in methods]}  # fmt: skip


def key_from_document(document: Mapping[str, Any], method: str) -> bytes:
    """The raw Ed25519 key that verification method `method` names in DID `document`:
    it must be listed, controlled by the document's DID, a Multikey with an Ed25519
    multibase key, and under ``assertionMethod``. DidWebError otherwise."""
    did = method.partition("#")[0]
    if document.get("id") != did:
        raise DidWebError(f"the DID document is {document.get('id')!r}, not {did!r}")
    if method not in [m if isinstance(m, str) else m.get("id")
                      for m in document.get("assertionMethod", [])]:  # fmt: skip
        raise DidWebError(f"{method} is not an assertion method of {did}")
    for entry in document.get("verificationMethod", []):
        if isinstance(entry, Mapping) and entry.get("id") == method:
            if entry.get("controller") != did or entry.get("type") != "Multikey":
                raise DidWebError(f"{method} is not a Multikey controlled by {did}")
            raw = decode_multibase_base58btc(str(entry.get("publicKeyMultibase", "")))
            if raw[:2] != ED25519_PUB_MULTICODEC or len(raw) != 34:
                raise DidWebError(f"{method} is not an Ed25519 key")
            return raw[2:]
    raise DidWebError(f"{method} is not in the DID document of {did}")


def _multikey(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise DidWebError("an Ed25519 public key is 32 bytes")
    return multibase_base58btc(ED25519_PUB_MULTICODEC + public_key)


def _host_of(did: str) -> str:
    if not did.startswith("did:web:") or ":" in did.removeprefix("did:web:"):
        raise DidWebError(f"not a host did:web: {did!r}")
    host = unquote(did.removeprefix("did:web:"))
    did_web(host)  # the same rules as when made
    return host
