"""Stores opened by URL: `open_store("sqlite:///engine.db")`, `open_store("engine.db")` or
`open_store("postgresql://engine@db.example:5432/assess")`.

The port (`Store`) and the SQLite and in-memory implementations live in `adapters/` today;
this package is their one entrance: callers name a store by URL and get a `Store`.
"""

from __future__ import annotations

from ..adapters.store import Store, StoreError, StoreOpenError
from .url import StoreUrl, local_file, open_existing, open_store, parse_url, redact

__all__ = [
    "Store",
    "StoreError",
    "StoreOpenError",
    "StoreUrl",
    "local_file",
    "open_existing",
    "open_store",
    "parse_url",
    "redact",
]
