"""Store URLs: which backend a URL names, and opening it.

    engine.db, ./data/engine.db          a SQLite file (a bare path)
    sqlite:///engine.db                  the same, relative to the working directory
    sqlite:////var/lib/assess/engine.db  an absolute path (four slashes, as SQLAlchemy writes it)
    postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?sslmode=...]   a PostgreSQL database
    postgres://...                       the same (libpq accepts both)

Passwords never appear in messages: `redact` replaces them with ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

from .port import Store, StoreError, StoreOpenError

Backend = Literal["sqlite", "postgresql"]
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES_SCHEMES: Final = ("postgresql", "postgres", "postgresql+psycopg")
USAGE: Final = "use a file path, sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed store URL: the backend, and its file path (SQLite) or libpq URL (PostgreSQL)."""

    backend: Backend
    target: str

    def __str__(self) -> str:
        return redact(self.target)


def parse_url(url: str | Path) -> StoreUrl:
    """The backend and target `url` names; StoreOpenError for an unknown scheme or an empty
    path."""
    if isinstance(url, Path):
        return StoreUrl("sqlite", str(url))
    if not isinstance(url, str) or not url.strip():
        raise StoreOpenError(f"a store URL must be a non-empty string, got {url!r}: {USAGE}")
    match = _SCHEME.match(url)
    if match is None:
        return StoreUrl("sqlite", url)
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        path = url[match.end() :]
        if not path.startswith("/") or path == "/":
            raise StoreOpenError(f"{redact(url)}: a SQLite URL is sqlite:///PATH ({USAGE})")
        return StoreUrl("sqlite", path[1:])
    if scheme in _POSTGRES_SCHEMES:
        return StoreUrl("postgresql", "postgresql://" + url[match.end() :])
    raise StoreOpenError(f"{redact(url)}: unknown store URL scheme {scheme!r}; {USAGE}")


def open_store(url: str | Path, **options: Any) -> Store:
    """The store `url` names, opened (created and migrated to the current schema when new).

    `options` go to the backend; every backend takes ``synchronous``,
    ``recover`` (False: leave open sessions as they are), ``read_only`` (what an audit opens:
    nothing changes) and ``exclusive`` (the engine's own store: a second engine on a store
    that only one engine may write is refused, StoreOpenError "... is in use by another
    engine ..."; a server database is shared, its sessions owned one by one, `open_owners`).
    `SqliteStore` also takes ``checkpoint_bytes`` and ``segment_bytes``; `PostgresStore`
    ``pool_size`` and ``connect_timeout``. Raises StoreOpenError (one line, no password) when
    the store cannot be opened; ValueError for an option out of range.
    """
    parsed = parse_url(url)
    try:
        if parsed.backend == "postgresql":
            return _postgres()(parsed.target, **options)
        from .sqlite import SqliteStore  # noqa: PLC0415

        return SqliteStore(parsed.target, **options)
    except StoreOpenError:
        raise
    except StoreError as exc:
        raise StoreOpenError(one_line(str(exc))) from exc


def _postgres() -> Callable[..., Store]:
    """`postgres.open_postgres`, imported when asked for (psycopg is the ``postgres`` extra)."""
    try:
        from .postgres import open_postgres  # noqa: PLC0415
    except ImportError as exc:
        raise StoreOpenError(
            f"PostgreSQL stores need psycopg ({exc}): pip install 'assessengine[postgres]'"
        ) from None
    return open_postgres


def open_existing(url: str | Path, **options: Any) -> Store:
    """`open_store` for a store that must exist already (what an audit or a copy reads): a
    SQLite file that is not there is a StoreOpenError instead of a new, empty store. (A
    PostgreSQL database that does not exist is refused by the server.)"""
    parsed = parse_url(url)
    if parsed.backend == "sqlite" and not Path(parsed.target).exists():
        raise StoreOpenError(f"no store at {parsed.target}")
    return open_store(url, **options)


def verify_store(url: str | Path) -> None:
    """Refuse a damaged store before it is used (`serve` calls it first): StoreOpenError with
    one line naming what is damaged (a SQLite file: its ``quick_check``, each damaged table
    and index named). A store not created yet passes (opening it creates it); a server
    database keeps itself whole and passes here."""
    parsed = parse_url(url)
    if parsed.backend != "sqlite" or not Path(parsed.target).is_file():
        return
    from .sqlite_check import damage  # noqa: PLC0415  (reads the whole file: only when asked)

    try:
        problem = damage(Path(parsed.target))
    except StoreOpenError:
        raise
    except StoreError as exc:
        raise StoreOpenError(one_line(str(exc))) from exc
    if problem is not None:
        raise StoreOpenError(problem)


def local_file(url: str | Path) -> Path | None:
    """The file of a SQLite store (what lies beside it: its payload segments, a default
    issuer key); None for a database on a server. StoreOpenError for an unknown URL."""
    parsed = parse_url(url)
    return Path(parsed.target) if parsed.backend == "sqlite" else None


def redact(url: str) -> str:
    """`url` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def one_line(text: str) -> str:
    """`text` on one line (a driver's multi-line message joined with '; ')."""
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())
