"""Ed25519 issuer keys, ``did:key`` and ``eddsa-rdfc-2022`` Data Integrity proofs.

Signing follows W3C *Data Integrity EdDSA Cryptosuites* (``eddsa-rdfc-2022``):

1. proof configuration = the proof options (no ``proofValue``) with the document's
   ``@context``; the unsecured document = the document without ``proof``;
2. both canonicalized with RDFC-1.0 (pyld URDNA2015, N-Quads) through the offline loader;
3. hash = sha256(proof configuration) || sha256(document);
4. ``proofValue`` = multibase base58btc (``z``) of the Ed25519 signature of that hash.

Before signing, the document is expanded and refused if any property, type or id would fall
out of (or be invented by) the JSON-LD processing, since such data would go unsigned.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pyld import jsonld

from ..core.credentials import VC_V2_CONTEXT, CredentialError
from .standards import UnknownContextError, offline_document_loader

PROOF_TYPE: Final = "DataIntegrityProof"
CRYPTOSUITE: Final = "eddsa-rdfc-2022"
PROOF_PURPOSE: Final = "assertionMethod"
ED25519_PUB_MULTICODEC: Final = b"\xed\x01"
ISSUER_DEPENDENT_VOCAB: Final = "https://www.w3.org/ns/credentials/issuer-dependent#"

DocumentLoader = Callable[[str, Any], dict[str, Any]]
KeyResolver = Callable[[str], bytes]
"""Verification method (``did:web:HOST#z6Mk...``) -> its raw Ed25519 public key; raises
CredentialError (saying why) for a method it does not know. did:key needs none."""

_ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_DID_KEY = re.compile(r"^did:key:(z6Mk[1-9A-HJ-NP-Za-km-z]+)$")


class SigningError(CredentialError):
    """A document cannot be signed or canonicalized as asked."""


class UnsafeDocumentError(SigningError):
    """JSON-LD processing would drop or invent data: signing it would leave it unsigned."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        self.problems = problems
        super().__init__(
            "refusing to sign: JSON-LD expansion would not cover the whole document:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


# ---------------------------------------------------------------------------------------------
# Multibase and did:key


def multibase_base58btc(data: bytes) -> str:
    """Multibase base58btc: ``z`` followed by the Bitcoin-alphabet base58 of `data`."""
    return "z" + base58.b58encode(data).decode("ascii")


def decode_multibase_base58btc(value: str) -> bytes:
    """The bytes of a ``z``-prefixed multibase string; `SigningError` if it is not one."""
    if not value.startswith("z") or len(value) < 2:
        raise SigningError(f"not a multibase base58btc value: {value[:16]!r}")
    try:
        return base58.b58decode(value[1:])
    except ValueError as error:
        raise SigningError(f"invalid base58btc in {value[:16]!r}...: {error}") from error


def did_key(public_key: bytes) -> str:
    """The ``did:key`` of a raw 32-byte Ed25519 public key (``did:key:z6Mk...``)."""
    if len(public_key) != 32:
        raise SigningError(f"an Ed25519 public key has 32 bytes, not {len(public_key)}")
    return "did:key:" + multibase_base58btc(ED25519_PUB_MULTICODEC + public_key)


def did_key_verification_method(did: str) -> str:
    """The verification method of a did:key: ``did:key:z6Mk...#z6Mk...``."""
    match = _DID_KEY.match(did)
    if match is None:
        raise SigningError(f"not an Ed25519 did:key: {did!r}")
    return f"{did}#{match.group(1)}"


def public_key_from_did_key(reference: str) -> bytes:
    """The raw Ed25519 public key named by a did:key or its verification method.

    A verification method's fragment must repeat the key (``did:key:X#X``).
    """
    did, _, fragment = reference.partition("#")
    match = _DID_KEY.match(did)
    if match is None or (fragment and fragment != match.group(1)):
        raise SigningError(f"not an Ed25519 did:key verification method: {reference!r}")
    decoded = decode_multibase_base58btc(match.group(1))
    if decoded[:2] != ED25519_PUB_MULTICODEC or len(decoded) != 34:
        raise SigningError(f"did:key does not hold an Ed25519 public key: {reference!r}")
    return decoded[2:]


@dataclass(frozen=True, slots=True)
class IssuerKey:
    """An Ed25519 signing key and the did:key it controls."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> IssuerKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> IssuerKey:
        """From the raw 32-byte private key (the RFC 8032 seed)."""
        if len(seed) != 32:
            raise SigningError(f"an Ed25519 private key has 32 bytes, not {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes) -> IssuerKey:
        """From an unencrypted PKCS#8 PEM (as `to_pem` writes)."""
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError("the PEM does not hold an Ed25519 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM: keep the file private (mode 0600)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def seed(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def did(self) -> str:
        return did_key(self.public_key)

    @property
    def verification_method(self) -> str:
        return did_key_verification_method(self.did)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


def public_key_from_pem(data: bytes) -> bytes:
    """The raw Ed25519 public key of a PEM file: a private key (as `IssuerKey.to_pem` writes)
    or its public key alone (``openssl pkey -pubout``). SigningError for anything else."""
    try:
        if b"PRIVATE KEY" in data:
            return IssuerKey.from_pem(data).public_key
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as error:
        raise SigningError(f"not a PEM key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError("the PEM does not hold an Ed25519 key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# ---------------------------------------------------------------------------------------------
# JSON-LD: expansion check and canonicalization


def expansion_problems(
    document: Mapping[str, Any], *, loader: DocumentLoader = offline_document_loader
) -> tuple[str, ...]:
    """Why JSON-LD processing would not carry all of `document`; empty when it would.

    Reported: properties no context defines (pyld drops them), properties or types that
    only the VC "issuer-dependent" vocabulary catches, relative (base-dependent) ids and
    types, and JSON nulls (dropped silently). Raises `UnknownContextError` for a context that
    is not bundled.
    """
    problems = [f"{path}: null value is dropped by JSON-LD" for path in _null_paths(document)]
    dropped: list[str] = []
    expanded = _run(
        jsonld.expand,
        copy.deepcopy(dict(document)),
        {"documentLoader": loader, "base": None},
        on_property_dropped=lambda name: dropped.append(str(name)),
    )
    problems += [f"property {name!r} is not defined by any @context" for name in dropped]
    problems += list(_expanded_problems(expanded))
    return tuple(dict.fromkeys(problems))


def canonicalize(
    document: Mapping[str, Any], *, loader: DocumentLoader = offline_document_loader
) -> str:
    """RDFC-1.0 (URDNA2015) canonical N-Quads of a JSON-LD document."""
    options = {
        "algorithm": "URDNA2015",
        "format": "application/n-quads",
        "documentLoader": loader,
    }
    result: str = _run(jsonld.normalize, copy.deepcopy(dict(document)), options)
    return result


def _run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call pyld, turning its errors into ours (an unknown context keeps its own error)."""
    try:
        return function(*args, **kwargs)
    except jsonld.JsonLdError as error:
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, UnknownContextError):
                raise UnknownContextError(cause.url) from error
            cause = cause.__cause__
        message = error.args[0] if error.args else type(error).__name__
        raise SigningError(f"JSON-LD processing failed: {message} ({error.code})") from error
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
        # pyld's answer to some malformed input is a plain Python error
        raise SigningError(f"JSON-LD processing failed: {error!r}") from error


def _null_paths(value: Any, path: str = "$") -> Iterator[str]:
    if value is None:
        yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _null_paths(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _null_paths(item, f"{path}[{index}]")


def _expanded_problems(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _expanded_problems(item)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if key == "@value":
            continue  # a literal (possibly @json): nothing inside is a property
        if key == "@id":
            if not (item.startswith("_:") or _ABSOLUTE_IRI.match(item)):
                yield f"id {item!r} is not an absolute IRI"
        elif key == "@type":
            for iri in item if isinstance(item, list) else [item]:
                yield from _iri_problems(iri, "type")
        elif not key.startswith("@"):
            yield from _iri_problems(key, "property")
        yield from _expanded_problems(item)


def _iri_problems(iri: str, what: str) -> Iterator[str]:
    if iri.startswith(ISSUER_DEPENDENT_VOCAB):
        yield f"{what} {iri.removeprefix(ISSUER_DEPENDENT_VOCAB)!r} is not defined by any @context"
    elif not (iri.startswith("_:") or _ABSOLUTE_IRI.match(iri)):
        yield f"{what} {iri!r} is not defined by any @context"


# ---------------------------------------------------------------------------------------------
# Proofs


@dataclass(frozen=True, slots=True)
class HashData:
    """The intermediate values of eddsa-rdfc-2022, kept for tests and diagnostics."""

    document_canon: str
    proof_canon: str
    document_hash: bytes
    proof_hash: bytes

    @property
    def to_sign(self) -> bytes:
        """proofHash || documentHash: the 64 bytes that Ed25519 signs."""
        return self.proof_hash + self.document_hash


def hash_data(
    unsecured_document: Mapping[str, Any],
    proof_options: Mapping[str, Any],
    *,
    loader: DocumentLoader = offline_document_loader,
) -> HashData:
    """Canonicalize and hash the document (without ``proof``) and the proof configuration
    (the options without ``proofValue``, given the document's ``@context``)."""
    if "proof" in unsecured_document:
        raise SigningError("the unsecured document must not contain a proof")
    if "@context" not in unsecured_document:
        raise SigningError("the document has no @context")
    config = {k: v for k, v in proof_options.items() if k != "proofValue"}
    config["@context"] = copy.deepcopy(unsecured_document["@context"])
    document_canon = canonicalize(unsecured_document, loader=loader)
    proof_canon = canonicalize(config, loader=loader)
    return HashData(
        document_canon=document_canon,
        proof_canon=proof_canon,
        document_hash=hashlib.sha256(document_canon.encode("utf-8")).digest(),
        proof_hash=hashlib.sha256(proof_canon.encode("utf-8")).digest(),
    )


def create_proof(
    unsecured_document: Mapping[str, Any],
    proof_options: Mapping[str, Any],
    key: IssuerKey,
    *,
    loader: DocumentLoader = offline_document_loader,
) -> dict[str, Any]:
    """The proof (options + ``proofValue``) over `unsecured_document`, signed with `key`.

    Low level: no checks beyond the suite's own; `sign_credential` is the safe entry point.
    """
    if proof_options.get("type") != PROOF_TYPE or proof_options.get("cryptosuite") != CRYPTOSUITE:
        raise SigningError(f"proof options must say type {PROOF_TYPE}, cryptosuite {CRYPTOSUITE}")
    hashes = hash_data(unsecured_document, proof_options, loader=loader)
    proof = {k: v for k, v in proof_options.items() if k != "proofValue"}
    proof["proofValue"] = multibase_base58btc(key.sign(hashes.to_sign))
    return proof


def sign_credential(
    document: Mapping[str, Any],
    key: IssuerKey,
    *,
    created: datetime,
    loader: DocumentLoader = offline_document_loader,
    controller: str | None = None,
) -> dict[str, Any]:
    """A copy of `document` with ``"proof": [DataIntegrityProof]`` by `key`'s did:key, or,
    with `controller` (a did:web whose DID document lists the key), by ``controller#z6Mk...``.

    Refuses (`SigningError`) a document that already has a proof, whose ``@context`` does
    not start with VC 2.0, or whose issuer is not `key`'s did:key; refuses
    (`UnsafeDocumentError`) one that JSON-LD would not carry whole (`expansion_problems`).
    """
    if "proof" in document:
        raise SigningError("the document already has a proof; sign the unsecured document")
    contexts = document.get("@context")
    if not isinstance(contexts, list) or not contexts or contexts[0] != VC_V2_CONTEXT:
        raise SigningError(f"@context must be a list that starts with {VC_V2_CONTEXT}")
    if issuer_id(document) != (controller or key.did):
        raise SigningError(
            f"issuer id {issuer_id(document)!r} is not the controller of the signing key"
            f" ({controller or key.did}); build the credential with it as issuer id"
        )
    problems = expansion_problems(document, loader=loader)
    if problems:
        raise UnsafeDocumentError(problems)
    if created.tzinfo is None:
        raise SigningError("created must be timezone-aware")
    options = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "verificationMethod": key.verification_method if controller is None
        else f"{controller}#{multibase_base58btc(ED25519_PUB_MULTICODEC + key.public_key)}",
        "proofPurpose": PROOF_PURPOSE,
    }
    unsecured = copy.deepcopy(dict(document))
    proof = create_proof(unsecured, options, key, loader=loader)
    return {**unsecured, "proof": [proof]}


def issuer_id(document: Mapping[str, Any]) -> str | None:
    """The credential's issuer id (``issuer`` may be an IRI or a Profile with an ``id``)."""
    issuer = document.get("issuer")
    if isinstance(issuer, str):
        return issuer
    if isinstance(issuer, Mapping) and isinstance(issuer.get("id"), str):
        return str(issuer["id"])
    return None


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True, slots=True)
class Check:
    """One verification check: its name, whether it passed, and why."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """Every check run on a credential; `ok` only when all of them passed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, name: str) -> Check:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)


def verify_credential(
    document: Mapping[str, Any],
    *,
    public_key: bytes | None = None,
    loader: DocumentLoader = offline_document_loader,
    resolve: KeyResolver | None = None,
) -> VerificationReport:
    """Check the proof of a secured credential; never raises for a bad document.

    Checks, in order: ``proof`` (exactly one DataIntegrityProof / eddsa-rdfc-2022 /
    assertionMethod with a proofValue), ``key`` (the verification method is controlled by the
    issuer and gives an Ed25519 key: from the did:key, else `public_key` when given, else what
    `resolve` answers for the method, e.g. the engine's own did:web keys),
    ``expansion`` (JSON-LD carries the whole document) and ``signature``. A check that could
    not run (no usable proof or key) is reported as failed, saying so.
    """
    if not isinstance(document, Mapping):
        return VerificationReport((Check("document", False, "not a JSON object"),))
    checks: list[Check] = []
    proof, detail = _single_proof(document)
    checks.append(Check("proof", proof is not None, detail))
    key, detail = _resolve_key(document, proof, public_key, resolve)
    checks.append(Check("key", key is not None, detail))
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    checks.append(_expansion_check(unsecured, proof, loader))
    checks.append(_signature_check(unsecured, proof, key, loader))
    return VerificationReport(tuple(checks))


def _expansion_check(
    unsecured: Mapping[str, Any], proof: Mapping[str, Any] | None, loader: DocumentLoader
) -> Check:
    try:
        problems = expansion_problems(unsecured, loader=loader)
        if proof is not None:
            config = {k: v for k, v in proof.items() if k != "proofValue"}
            config["@context"] = unsecured.get("@context")
            problems += tuple(f"proof: {p}" for p in expansion_problems(config, loader=loader))
    except CredentialError as error:
        return Check("expansion", False, str(error))
    return Check("expansion", not problems, "; ".join(problems) or "nothing dropped")


def _single_proof(document: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    proofs = document.get("proof")
    if isinstance(proofs, Mapping):
        proofs = [proofs]
    if not isinstance(proofs, list) or len(proofs) != 1 or not isinstance(proofs[0], Mapping):
        return None, "expected exactly one proof object"
    proof = dict(proofs[0])
    expected = {"type": PROOF_TYPE, "cryptosuite": CRYPTOSUITE, "proofPurpose": PROOF_PURPOSE}
    wrong = [
        f"{k} is {proof.get(k)!r}, not {v!r}" for k, v in expected.items() if proof.get(k) != v
    ]
    if not isinstance(proof.get("proofValue"), str):
        wrong.append("proofValue is missing")
    if wrong:
        return None, "; ".join(wrong)
    return proof, f"{PROOF_TYPE} {CRYPTOSUITE}, created {proof.get('created', '?')}"


def _resolve_key(
    document: Mapping[str, Any],
    proof: Mapping[str, Any] | None,
    public_key: bytes | None,
    resolve: KeyResolver | None,
) -> tuple[bytes | None, str]:
    if proof is None:
        return None, "not checked: no usable proof"
    method = proof.get("verificationMethod")
    if not isinstance(method, str):
        return None, "proof has no verificationMethod"
    controller = method.partition("#")[0]
    if controller != issuer_id(document):
        return None, f"verification method {method!r} is not controlled by the issuer"
    if method.startswith("did:key:"):
        try:
            resolved = public_key_from_did_key(method)
        except SigningError as error:
            return None, str(error)
        if public_key is not None and public_key != resolved:
            return None, "the given public key is not the did:key's key"
        return resolved, f"Ed25519 key from {controller}"
    if public_key is not None:
        return public_key, f"Ed25519 key given for {method}"
    if resolve is None:
        return None, f"cannot resolve {method!r} offline and no public key was given"
    try:
        return resolve(method), f"Ed25519 key {method.partition('#')[2]} of {controller}"
    except CredentialError as error:
        return None, str(error)


def _signature_check(
    unsecured: Mapping[str, Any],
    proof: Mapping[str, Any] | None,
    key: bytes | None,
    loader: DocumentLoader,
) -> Check:
    if proof is None or key is None:
        return Check("signature", False, "not checked: no usable proof or key")
    try:
        signature = decode_multibase_base58btc(str(proof["proofValue"]))
        hashes = hash_data(unsecured, proof, loader=loader)
        Ed25519PublicKey.from_public_bytes(key).verify(signature, hashes.to_sign)
    except InvalidSignature:
        return Check("signature", False, "signature does not match the document")
    except (CredentialError, ValueError) as error:
        return Check("signature", False, str(error))
    return Check("signature", True, "Ed25519 signature verified")
