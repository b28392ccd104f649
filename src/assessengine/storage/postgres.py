"""The `Store` on a PostgreSQL server (psycopg 3, pooled): not built yet."""

from __future__ import annotations

from typing import Any

from ..adapters.store import Store, StoreOpenError
from .url import redact


def open_postgres(url: str, **options: Any) -> Store:
    """Refused with one line: the PostgreSQL store is being built."""
    raise StoreOpenError(f"{redact(url)}: the PostgreSQL store is not available yet")
