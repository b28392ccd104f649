"""The store: the port (`port.Store`) and its backends (`sqlite`, `postgres`, `memory`), the
app's tables (`appdb`, `reviews`, `credentials`), session owners, migrations and copies.

Nothing outside this package names a backend or writes SQL (tests/test_architecture.py holds
it to that): callers name a store by URL and get a `Store`, e.g.
`open_store("sqlite:///engine.db")`, `open_store("engine.db")` or
`open_store("postgresql://engine@db.example:5432/assess")`.
"""

from __future__ import annotations

from .owners import Owners, open_owners
from .port import Store, StoreError, StoreOpenError
from .url import (
    StoreUrl,
    local_file,
    open_existing,
    open_store,
    parse_url,
    redact,
    verify_store,
)

__all__ = [
    "Owners",
    "Store",
    "StoreError",
    "StoreOpenError",
    "StoreUrl",
    "local_file",
    "open_existing",
    "open_owners",
    "open_store",
    "parse_url",
    "redact",
    "verify_store",
]
