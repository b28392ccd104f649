"""Bundled standards data, served offline: JSON-LD contexts and the Open Badges 3.0 schemas.

The files live in ``standards_data/`` inside the package (sources and licences in its
README.md). `offline_document_loader` is the only document loader the engine gives to pyld: it
serves the bundled contexts and refuses every other URL, so nothing is ever downloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, Literal

from jsonschema import Draft201909Validator, FormatChecker

from ..core.credentials import (
    OB_EXTENSIONS_CONTEXT,
    OB_V3_CONTEXT,
    VC_V2_CONTEXT,
    CredentialError,
)

DATA_INTEGRITY_V1_CONTEXT: Final = "https://w3id.org/security/data-integrity/v1"

#: Context URL -> bundled file (under standards_data/contexts/).
CONTEXT_FILES: Final[Mapping[str, str]] = MappingProxyType(
    {
        VC_V2_CONTEXT: "credentials-v2.jsonld",
        OB_V3_CONTEXT: "ob-context-3.0.3.json",
        DATA_INTEGRITY_V1_CONTEXT: "data-integrity-v1.jsonld",
        OB_EXTENSIONS_CONTEXT: "ob-extensions.json",
    }
)

SchemaName = Literal["achievementcredential", "profile", "endorsementcredential"]
SCHEMA_NAMES: Final[tuple[SchemaName, ...]] = (
    "achievementcredential",
    "profile",
    "endorsementcredential",
)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class UnknownContextError(CredentialError):
    """A JSON-LD document asked for a context that is not bundled. Nothing was fetched."""

    def __init__(self, url: str) -> None:
        self.url = url
        served = ", ".join(sorted(CONTEXT_FILES))
        super().__init__(
            f"JSON-LD context {url!r} is not bundled with assessengine and will not be"
            f" downloaded (the offline loader serves only: {served})"
        )


def bundled_file(*parts: str) -> bytes:
    """The raw bytes of a file under standards_data/ (e.g. ``("contexts", name)``)."""
    node = resources.files("assessengine.adapters").joinpath("standards_data")
    for part in parts:
        node = node.joinpath(part)
    return node.read_bytes()


@cache
def _context_text(url: str) -> str:
    return bundled_file("contexts", CONTEXT_FILES[url]).decode("utf-8")


def context_document(url: str) -> dict[str, Any]:
    """A fresh copy of the bundled context for `url`; `UnknownContextError` if none is."""
    if url not in CONTEXT_FILES:
        raise UnknownContextError(url)
    document: dict[str, Any] = json.loads(_context_text(url))
    return document


def offline_document_loader(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A pyld document loader that serves bundled contexts only (a JSON-LD RemoteDocument).

    Raises `UnknownContextError` for any other URL; never touches the network.
    """
    del options  # headers and profiles do not matter for bundled files
    return {
        "contentType": "application/ld+json",
        "contextUrl": None,
        "documentUrl": url,
        "document": context_document(url),
    }


def load_schema(name: SchemaName) -> dict[str, Any]:
    """A fresh copy of a bundled Open Badges 3.0 JSON Schema (draft 2019-09)."""
    if name not in SCHEMA_NAMES:
        raise CredentialError(f"no bundled schema named {name!r}")
    schema: dict[str, Any] = json.loads(bundled_file("schemas", f"{name}.json"))
    return schema


@cache
def _validator(name: SchemaName) -> Draft201909Validator:
    schema = load_schema(name)
    Draft201909Validator.check_schema(schema)
    return Draft201909Validator(schema, format_checker=_format_checker())


def schema_problems(
    document: Mapping[str, Any], schema: SchemaName = "achievementcredential"
) -> tuple[str, ...]:
    """Every way `document` breaks the bundled schema, as ``path: message``; empty if valid.

    ``date-time`` and ``date`` formats are asserted (RFC 3339), not just annotated.
    """
    errors = sorted(
        _validator(schema).iter_errors(document), key=lambda e: list(map(str, e.absolute_path))
    )
    return tuple(f"{e.json_path}: {e.message}" for e in errors)


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_is_date_time)
    checker.checks("date", raises=ValueError)(_is_date)
    return checker


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # format applies to strings only
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    datetime.strptime(value, "%Y-%m-%d")
    return True
