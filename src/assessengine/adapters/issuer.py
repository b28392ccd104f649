"""Who signs the engine's credentials and status lists (`Issuer`): its Ed25519 key and the DID
it signs as, ``did:key`` of the key by default or ``did:web:HOST`` when configured.

Under a did:web the engine is its own DID's resolver: the keys it lists in its DID document
(the current one, then the retired ones a rotation kept; `did_document`) are the keys it
accepts for verification methods ``did:web:HOST#z6Mk...``, read from its configuration, never
fetched. Another did:web is resolved only from a DID document configured as a file
(`read_did_document`, setting ``trusted_did_documents``): the engine verifies offline, so the
credentials of any other did:web fail the ``key`` check, whatever the trust.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ..core.credentials import CredentialError
from ..errors import LocatedProblem, Location
from .did_web import DidWebError, did_document, did_document_url, did_web, key_from_document
from .signer import IssuerKey, KeyResolver, public_key_from_pem, sign_credential

RETIRED_NEED_DID_WEB: Final = ("retired issuer keys go with a did:web issuer (a did:key names "
                               "one key): set the did:web host too")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Issuer:
    """The signing `key`, the `did_web` it signs under (None: its did:key) and the `retired`
    public keys (raw Ed25519, 32 bytes each) that signed before a rotation. Retired keys need
    a did:web (a did:key names one key only). DidWebError for a DID that is no host did:web
    or a retired key that is not 32 bytes."""

    key: IssuerKey
    did_web: str | None = None
    retired: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.did_web is None:
            if self.retired:
                raise DidWebError(RETIRED_NEED_DID_WEB)
            return
        did_document(self.did_web, self.public_keys)  # checks the DID and every key

    @classmethod
    def of(cls, key: IssuerKey, did_web: str | None = None,
           retired: Sequence[bytes] = ()) -> Issuer:  # fmt: skip
        return cls(key, did_web, tuple(retired))

    @property
    def did(self) -> str:
        """The issuer id written into credentials and status lists."""
        return self.did_web or self.key.did

    @property
    def public_keys(self) -> tuple[bytes, ...]:
        """The current key first, then the retired ones (each once)."""
        return tuple(dict.fromkeys((self.key.public_key, *self.retired)))

    def did_document(self) -> dict[str, Any] | None:
        """The DID document to serve at ``/.well-known/did.json`` (None under a did:key)."""
        return None if self.did_web is None else did_document(self.did_web, self.public_keys)

    def sign(self, document: Mapping[str, Any], *, created: datetime) -> dict[str, Any]:
        """`document` signed by the key, under the issuer's DID (`adapters.signer`)."""
        return sign_credential(document, self.key, created=created, controller=self.did_web)

    def resolve(self, method: str) -> bytes:
        """The key of verification method `method` when it is one of this issuer's own
        (`adapters.signer.KeyResolver`): under its did:web, a key its DID document lists.
        DidWebError saying why otherwise (another DID is never fetched)."""
        return key_resolver(self.did, self.did_web, self.public_keys)(method)


def key_resolver(own: str, did_web: str | None, keys: Sequence[bytes],
                 partners: Mapping[str, Mapping[str, Any]] | None = None,
                 ) -> KeyResolver:  # fmt: skip
    """The resolver of an engine whose issuer id is `own`: under its did:web, the `keys` (raw
    public keys: current, then retired) its DID document lists; under a partner's did:web, a
    key the partner's DID document in `partners` (DID -> document, `read_did_document`)
    lists. Any other verification method is refused with a DidWebError saying that no DID
    document is fetched."""
    known = dict(partners or {})

    def resolve(method: str) -> bytes:
        did = method.partition("#")[0]
        if did_web is not None and did == did_web and keys:
            return key_from_document(did_document(did_web, keys), method)
        if did in known:
            return key_from_document(known[did], method)
        raise DidWebError(f"cannot resolve {method!r}: {did} is neither this engine's DID "
                          f"({own}) nor one whose DID document is configured, and the engine "
                          "fetches no DID documents (it verifies offline)")  # fmt: skip

    return resolve


def did_web_settings(host: str | None, retired: Iterable[Path] = (),
                     ) -> tuple[str | None, tuple[bytes, ...]]:  # fmt: skip
    """The did:web of `host` (None: issue as did:key) and the public keys of the `retired` PEM
    files (private or public keys), as the settings give them. DidWebError for a host that
    cannot be a did:web or retired keys without one; CredentialError naming a file that is
    not a readable Ed25519 key."""
    did = None if host is None else did_web(host)
    keys = tuple(read_public_key(path) for path in retired)
    if keys and did is None:
        raise DidWebError(RETIRED_NEED_DID_WEB)
    return did, keys


def read_public_key(path: Path) -> bytes:
    """The raw Ed25519 public key of PEM file `path` (a private key or its public key alone).
    CredentialError naming the file otherwise."""
    try:
        return public_key_from_pem(path.read_bytes())
    except OSError as error:
        raise CredentialError(f"{path}: cannot read the key ({error.strerror})") from None
    except CredentialError as error:
        raise CredentialError(f"{path}: {error}") from None


MAX_DID_DOCUMENT_BYTES: Final = 256 * 1024
"""The largest partner DID document file read (`read_did_document`)."""


def read_did_document(path: Path) -> tuple[str, dict[str, Any]]:
    """(its DID, the document) of a partner's DID document file (the ``did.json`` it
    publishes at ``https://HOST/.well-known/did.json``): a JSON object of at most
    `MAX_DID_DOCUMENT_BYTES` whose ``id`` is a host did:web. CredentialError naming the file
    (``FILE:LINE:COL: not JSON (...)`` for a file that is not JSON) otherwise."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_DID_DOCUMENT_BYTES + 1)
    except OSError as error:
        raise CredentialError(f"{path}: cannot read the DID document ({error.strerror})") from None
    if len(data) > MAX_DID_DOCUMENT_BYTES:
        raise CredentialError(f"{path}: a DID document is at most {MAX_DID_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(data)
    except json.JSONDecodeError as error:
        where = Location(str(path), error.lineno, error.colno)
        raise CredentialError(str(LocatedProblem(where, f"not JSON ({error.msg})"))) from None
    except UnicodeDecodeError as error:
        raise CredentialError(f"{path}: not a JSON file ({error})") from None
    did = document.get("id") if isinstance(document, dict) else None
    try:
        did_document_url(str(did))
    except DidWebError:
        raise CredentialError(f"{path}: not a DID document of a did:web (its id is {did!r})"
                              ) from None  # fmt: skip
    return str(did), document
