"""Sites and a hub on PostgreSQL logical replication: what ``assessengine site add / list /
remove`` do, in SQL (docs/operations.md, "Several sites"; docs/architecture.md).

Each site runs its own engine on its own database; the hub's database receives every site's
rows. Which way each table goes, so that no row is ever written in two places:

    site -> hub   sessions, batches (raw payloads inline), decisions, reports,
                  credential_status_lists, credential_status_slots, credential_issued,
                  credential_revocations, credential_shares;
                  review_observations, review_overrides, review_audit,
                  review_double_assignments, review_double_marks: the rows written at
                  the site (publication ``assessengine_site``, subscription
                  ``assessengine_site_NAME`` on the hub)
    hub -> site   the same five review tables: the rows written at the hub about that site's
                  sessions (``SITE:...``) (publication ``assessengine_hub_NAME`` on the hub,
                  subscription ``assessengine_hub`` on the site)
    local         review_tokens (each place issues its own), review_outcomes and the cohort
                  index (each database's cache of outcomes: computed where they are read, from
                  the review rows it holds; review_outcomes_due names the sessions whose rows
                  arrived by replication since, `api.service.outcomes`), review_rubrics,
                  review_rescores, credential_status_published (each database signs the
                  status lists it serves from the slots and revocations it holds),
                  oauth_clients and oauth_grants (each place's Open Badges API authorizes its
                  own hosts), payload_files and head_changes (the SQLite store's
                  bookkeeping), the schema's version tables

The review tables are insert-only (no row is ever changed: a double-marking assignment is
completed by its marks, revision 0014) and have no unique key but their id: two places may
each write a twin (an assignment of the same assessor to the same session) before they hear
of each other, and the stores read twins as one (`storage.double_marks`).

Every table of `storage.schema` is in exactly one of these (`SITE_TABLES`, `REVIEW_TABLES`,
`LOCAL_TABLES`; a test checks it): a new table must say where it goes, and ``site refresh``
brings the publications of a running federation up to date after an upgrade.

A credential is revoked, shared and hidden where it was issued: `SqlCredentialStore.revoke`,
`.share` and `.hide_share` refuse one whose status list is in another database's range (the
revocation or share reaches the hub from the site).

Rows are told apart by where they were written through their row ids: every database gets a
range of 2**40 ids for its identity columns (the hub range 1, the sites 2, 3, ... in the order
they were added; the ids a database had before it joined stay below 2**40). A review table's
row goes to the hub when its id is not in the hub's range, and to a site when it is in the
hub's range and names one of the site's sessions: so a row never comes back to where it was
written (PostgreSQL 15 subscriptions have no ``origin = none``), and two places never write
the same key. Session and learner ids carry the site's name (`ingest.sites`), and credential
status lists are numbered in the database's range too (`id_range`).

Every statement that touches replication is here; the CLI only calls `add_site`,
`list_sites`, `remove_site`, `refresh_sites` and `fail_over`. Errors are `ReplicationError`:
one line, naming the server (without its password) and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg import sql

from ..core.ids import SITE_SEPARATOR, site_problem
from . import schema
from .appdb import RANGE_BITS
from .port import StoreError
from .url import one_line, open_store, parse_url, redact

HUB_NUMBER: Final = 1
FIRST_SITE: Final = 2
LAST_SITE: Final = (1 << (62 - RANGE_BITS)) - 1
"""Every id stays below 2**62 (what the API's integer parameters take)."""
SITE_PUBLICATION: Final = "assessengine_site"
HUB_SUBSCRIPTION: Final = "assessengine_hub"
COMMENT: Final = "assessengine site number "
CONNECT_TIMEOUT_S: Final = 10
_HERE: Final = "subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
"""pg_subscription is the cluster's: these are the current database's."""

SITE_TABLES: Final = (
    "sessions", "batches", "decisions", "reports",
    "credential_status_lists", "credential_status_slots", "credential_issued",
    "credential_revocations", "credential_shares",
)  # fmt: skip
"""Written at a site only: all of their rows go to the hub."""
REVIEW_TABLES: Final = (
    "review_observations", "review_overrides", "review_audit",
    "review_double_assignments", "review_double_marks",
)  # fmt: skip
"""Written at both, insert-only: each row goes from where it was written (told by its id's
range) to where the session is owned or read."""
LOCAL_TABLES: Final = (
    "review_tokens", "review_outcomes", "review_rubrics", "review_rescores",
    "credential_status_published", "cohort_sessions", "cohort_verdicts", "payload_files",
    "schema_version", "oauth_clients", "oauth_grants", "cohort_changes",
    "review_outcomes_due", "head_changes",
)  # fmt: skip
"""Each database's own: never replicated."""
IDENTITY_TABLES: Final = tuple(
    t.name for t in schema.metadata.sorted_tables
    if "id" in t.c and t.c.id.identity is not None
)  # fmt: skip
"""The tables whose ``id`` a sequence makes (each database's range)."""


class ReplicationError(StoreError):
    """A site cannot be added, listed or removed: one line saying which server and why."""


class OldIdsError(ReplicationError):
    """A site's rows from before it joined share ids with the hub's (`_check_old_ids`): no
    retry helps; the site must be copied into a new database."""


@dataclass(frozen=True, slots=True)
class Site:
    """A site as the hub sees it (`list_sites`)."""

    name: str
    number: int | None
    enabled: bool
    site: str                   # the site's URL, without its password
    receiving: bool             # the hub's apply worker is connected to the site
    last_message: str | None    # when the hub last heard from the site (ISO 8601)
    apply_errors: int           # replication errors at the hub since the subscription began
    sending: bool               # the site's subscription is connected to the hub
    unsent_bytes: int | None    # hub WAL the site has not confirmed yet (its reviews' lag)


@dataclass(frozen=True, slots=True)
class SiteStep:
    """What `refresh_sites` or `fail_over` did at one site (`done` False: the site could not
    be reached; `text` says why and what to run later)."""

    name: str
    done: bool
    text: str


def range_of(number: int) -> tuple[int, int]:
    """The first and last id of database `number`'s range."""
    return number << RANGE_BITS, ((number + 1) << RANGE_BITS) - 1


def site_subscription(name: str) -> str:
    """The hub's subscription to site `name` (also its slot's name, on the site)."""
    return f"assessengine_site_{name}"


def hub_publication(name: str) -> str:
    """The hub's publication for site `name` (also the name of the site's slot on the hub)."""
    return f"assessengine_hub_{name}"


# ==================================================================================== add


def add_site(hub: str, site: str, name: str) -> int:
    """Join the database `site` to the hub `hub` as site `name` (the engine there runs with
    ``site_id = name``): both are migrated to this version's schema, each database's ids get
    their range, the publications and subscriptions are made (the hub copies what the site
    holds already, then follows it). Returns the site's number. ReplicationError (nothing
    changed) when a server cannot be reached or refuses the credentials, runs without
    ``wal_level = logical``, the name is taken or invalid, hub and site are one database, or
    the site was a site of this hub before (its ids are at the hub already)."""
    problem = site_problem(name)
    if problem is not None:
        raise ReplicationError(problem)
    _postgres_only(hub, "--hub")
    _postgres_only(site, "--site")
    with _connect(hub) as h, _connect(site) as s:
        _same_database(h, s, hub)
        for conn, url in ((h, hub), (s, site)):
            _logical(conn, url)
        if name in _site_numbers(h):
            raise ReplicationError(f"{redact(hub)}: a site named {name!r} is added already "
                                   "(assessengine site list --hub URL)")  # fmt: skip
        if _exists(s, f"SELECT 1 FROM pg_subscription WHERE subname = %s AND {_HERE}",
                   HUB_SUBSCRIPTION):
            raise ReplicationError(f"{redact(site)}: this database is a site of a hub already "
                                   f"(it has the subscription {HUB_SUBSCRIPTION!r})")  # fmt: skip
    for url in (hub, site):  # creates or migrates the tables (its own connection)
        _migrate(url)
    with _connect(hub) as h, _connect(site) as s:
        number = _choose_number(h, s, site)
        _check_old_ids(h, s, site)
        _give_range(h, HUB_NUMBER)
        _give_range(s, number)
        _publish_site(s)
        _publish_hub(h, name)
        try:
            _subscribe(h, site_subscription(name), site, [SITE_PUBLICATION])
            h.execute(sql.SQL("COMMENT ON SUBSCRIPTION {} IS {}").format(
                sql.Identifier(site_subscription(name)), sql.Literal(f"{COMMENT}{number}")))
            _subscribe(s, HUB_SUBSCRIPTION, hub, [hub_publication(name)],
                       slot=hub_publication(name))  # fmt: skip
        except ReplicationError:
            _drop_subscription(h, site_subscription(name))
            h.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                sql.Identifier(hub_publication(name))))
            raise
    return number


def _postgres_only(url: str, flag: str) -> None:
    if parse_url(url).backend != "postgresql":
        raise ReplicationError(f"{flag} {redact(url)}: sites and hubs are PostgreSQL databases "
                               "(postgresql://USER@HOST:PORT/DBNAME); SQLite does not "
                               "replicate")  # fmt: skip


def _same_database(h: psycopg.Connection[Any], s: psycopg.Connection[Any], hub: str) -> None:
    query = "SELECT system_identifier FROM pg_control_system()"
    ids = [c.execute(query).fetchone() for c in (h, s)]
    names = [c.execute("SELECT current_database()").fetchone() for c in (h, s)]
    if ids[0] == ids[1] and names[0] == names[1]:
        raise ReplicationError(f"{redact(hub)}: --hub and --site are the same database")


def _logical(conn: psycopg.Connection[Any], url: str) -> None:
    level = _value(conn, "SHOW wal_level")
    if level != "logical":
        raise ReplicationError(
            f"{redact(url)}: wal_level is {level!r}; sites and hubs replicate logically: set "
            "wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server"
        )


def _migrate(url: str) -> None:
    try:
        open_store(url).close()
    except StoreError as exc:
        raise ReplicationError(str(exc)) from None


def _choose_number(h: psycopg.Connection[Any], s: psycopg.Connection[Any], site: str) -> int:
    """The site's number: the one it has already if the hub holds none of its rows (a
    failed add before), else the next one free at the hub."""
    had = _number(s)
    if had == HUB_NUMBER:
        raise ReplicationError(f"{redact(site)}: this database is a hub (its ids are in the "
                               "hub's range); a hub cannot be a site")  # fmt: skip
    if had is not None:
        if had in _site_numbers(h).values() or _holds_range(h, had):
            raise ReplicationError(
                f"{redact(site)}: this database was site number {had} of this hub before and "
                "the hub holds its rows; a database joins a hub once (copy it into a new "
                "database to join again: assessengine copy)"
            )
        return had
    taken = [FIRST_SITE - 1, *_site_numbers(h).values()]
    for table in IDENTITY_TABLES:
        top = _value(h, sql.SQL("SELECT max(id) FROM {}").format(sql.Identifier(table)))
        if top is not None:
            taken.append(int(top) >> RANGE_BITS)
    number = max(taken) + 1
    if number > LAST_SITE:
        raise ReplicationError(f"the hub has given out every site number ({LAST_SITE}); "
                               "no more sites can join it")  # fmt: skip
    return number


def _holds_range(conn: psycopg.Connection[Any], number: int) -> bool:
    lo, hi = range_of(number)
    return any(
        _exists(conn, sql.SQL("SELECT 1 FROM {} WHERE id BETWEEN %s AND %s LIMIT 1").format(
            sql.Identifier(t)), lo, hi)
        for t in IDENTITY_TABLES
    )  # fmt: skip


def _check_old_ids(
    h: psycopg.Connection[Any], s: psycopg.Connection[Any], site: str,
    tables: Sequence[str] = SITE_TABLES + REVIEW_TABLES,
) -> None:  # fmt: skip
    """Refuse a site whose rows of `tables` from before it joined (ids below 2**40) share ids
    with rows the hub holds: the hub could not take them."""
    low = 1 << RANGE_BITS
    for table in IDENTITY_TABLES:
        if table not in tables:
            continue
        query = sql.SQL("SELECT min(id), max(id) FROM {} WHERE id < %s").format(
            sql.Identifier(table))
        first, last = s.execute(query, (low,)).fetchone() or (None, None)
        if first is None:
            continue
        clash = sql.SQL("SELECT count(*) FROM {} WHERE id BETWEEN %s AND %s").format(
            sql.Identifier(table))
        count = int(_value(h, clash, first, last) or 0)
        if count:
            raise OldIdsError(
                f"{_shown(site)}: {table} holds rows made before the site joined (ids "
                f"{first}..{last}) and the hub holds {count} row(s) with ids in that span; copy "
                "the site into a new database first (assessengine copy), then add that"
            )


def _give_range(conn: psycopg.Connection[Any], number: int) -> None:
    """Move every identity column of `conn`'s database into range `number` (the ids it has
    already are kept; the next ones come from the range). Nothing to do when it is there."""
    if _number(conn) == number:
        return
    lo, hi = range_of(number)
    with conn.transaction():
        for table in IDENTITY_TABLES:
            conn.execute(sql.SQL(
                "ALTER TABLE {} ALTER COLUMN id SET MINVALUE {lo} SET MAXVALUE {hi} "
                "SET START WITH {lo} RESTART WITH {lo}"
            ).format(sql.Identifier(table), lo=sql.Literal(lo), hi=sql.Literal(hi)))


def _number(conn: psycopg.Connection[Any]) -> int | None:
    """The database's range number (None: it has never joined a hub)."""
    low = _value(conn, "SELECT seqmin FROM pg_sequence WHERE seqrelid = "
                       "pg_get_serial_sequence('sessions', 'id')::regclass")  # fmt: skip
    number = int(low) >> RANGE_BITS if low is not None else 0
    return number or None


def _site_entries() -> dict[str, sql.Composable | None]:
    """The site publication's tables, each with its row filter (None: every row)."""
    lo, hi = range_of(HUB_NUMBER)
    not_hub = sql.SQL("WHERE (id < {} OR id > {})").format(sql.Literal(lo), sql.Literal(hi))
    return {**dict.fromkeys(SITE_TABLES), **dict.fromkeys(REVIEW_TABLES, not_hub)}


def _hub_entries(name: str) -> dict[str, sql.Composable | None]:
    """The tables of the hub's publication for site `name`: review rows written at the hub
    about the site's sessions."""
    lo, hi = range_of(HUB_NUMBER)
    prefix = name + SITE_SEPARATOR
    where = sql.SQL("WHERE (id BETWEEN {} AND {} AND left(session, {}) = {})").format(
        sql.Literal(lo), sql.Literal(hi), sql.Literal(len(prefix)), sql.Literal(prefix))
    return dict.fromkeys(REVIEW_TABLES, where)


def _entry(table: str, where: sql.Composable | None) -> sql.Composable:
    ident = sql.Identifier(table)
    return ident if where is None else sql.SQL("{} {}").format(ident, where)


def _publish_site(s: psycopg.Connection[Any]) -> None:
    """The site's publication: its own tables whole, the review tables' rows not written at
    the hub. Made anew on every add."""
    s.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(SITE_PUBLICATION)))
    s.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
        sql.Identifier(SITE_PUBLICATION),
        sql.SQL(", ").join(_entry(t, w) for t, w in _site_entries().items())))


def _publish_hub(h: psycopg.Connection[Any], name: str) -> None:
    """The hub's publication for site `name` (inserts: review rows are never changed)."""
    h.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
        sql.Identifier(hub_publication(name))))
    h.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert')").format(
        sql.Identifier(hub_publication(name)),
        sql.SQL(", ").join(_entry(t, w) for t, w in _hub_entries(name).items())))


def _sync_publication(
    conn: psycopg.Connection[Any], name: str, entries: dict[str, sql.Composable | None]
) -> list[str]:
    """Add the tables of `entries` that publication `name` lacks and drop those it has
    beyond them (a running subscription sees the change after REFRESH PUBLICATION); the
    changes, in words."""
    held = _published(conn, name)
    done = []
    for table, where in entries.items():
        if table not in held:
            conn.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                sql.Identifier(name), _entry(table, where)))
            done.append(f"{name}: added {table}")
    for table in sorted(held - set(entries)):
        conn.execute(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(
            sql.Identifier(name), sql.Identifier(table)))
        done.append(f"{name}: dropped {table}")
    return done


def _subscribe(
    conn: psycopg.Connection[Any], name: str, source: str, publications: Sequence[str],
    *, slot: str | None = None,
) -> None:  # fmt: skip
    """A subscription on `conn`'s database to `publications` at `source`: copies what is
    there, then follows it; commits wait as the server's own do (``synchronous_commit =
    on``: with a synchronous standby, what the hub confirmed to a site is on the standby)."""
    options: sql.Composable = sql.SQL("copy_data = true, synchronous_commit = 'on'")
    if slot is not None:
        options = sql.SQL("{}, slot_name = {}").format(options, sql.Literal(slot))
    statement = sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH ({})").format(
        sql.Identifier(name), sql.Literal(parse_url(source).target),
        sql.SQL(", ").join(sql.Identifier(p) for p in publications), options)
    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        where = _where(conn)
        raise ReplicationError(f"{where}: cannot subscribe to {redact(source)} "
                               f"({_reason(exc)})") from None  # fmt: skip


# ==================================================================================== list


def list_sites(hub: str) -> list[Site]:
    """The sites of `hub`, by name, with how their replication stands."""
    _postgres_only(hub, "--hub")
    with _connect(hub) as h:
        rows = h.execute(
            """
            SELECT s.subname, obj_description(s.oid, 'pg_subscription'), s.subenabled,
                   s.subconninfo, st.pid IS NOT NULL, st.last_msg_receipt_time,
                   coalesce(e.apply_error_count, 0) + coalesce(e.sync_error_count, 0),
                   r.active, pg_wal_lsn_diff(pg_current_wal_lsn(), r.confirmed_flush_lsn)
            FROM pg_subscription s
            LEFT JOIN pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
            LEFT JOIN pg_stat_subscription_stats e ON e.subid = s.oid
            LEFT JOIN pg_replication_slots r
                   ON r.slot_name = 'assessengine_hub_' || substr(s.subname, 19)
            WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND s.subname LIKE 'assessengine\\_site\\_%%'
            ORDER BY s.subname
            """
        ).fetchall()
    return [
        Site(name=sub[len(site_subscription("")):], number=_comment_number(comment),
             enabled=bool(enabled), site=_conninfo_shown(conninfo), receiving=bool(receiving),
             last_message=None if last is None else last.isoformat(),
             apply_errors=int(errors), sending=bool(sending),
             unsent_bytes=None if unsent is None else int(unsent))
        for sub, comment, enabled, conninfo, receiving, last, errors, sending, unsent in rows
    ]  # fmt: skip


def _site_numbers(h: psycopg.Connection[Any]) -> dict[str, int]:
    rows = h.execute(
        "SELECT subname, obj_description(oid, 'pg_subscription') FROM pg_subscription "
        f"WHERE subname LIKE 'assessengine\\_site\\_%%' AND {_HERE}"
    ).fetchall()
    prefix = len(site_subscription(""))
    return {name[prefix:]: _comment_number(comment) or 0 for name, comment in rows}


def _comment_number(comment: str | None) -> int | None:
    if comment is None or not comment.startswith(COMMENT):
        return None
    digits = comment[len(COMMENT):]
    return int(digits) if digits.isdigit() else None


def _conninfo_shown(conninfo: str) -> str:
    return redact(conninfo) if "://" in conninfo else " ".join(
        w for w in conninfo.split() if not w.startswith("password="))


# ==================================================================================== refresh


def refresh_sites(hub: str) -> list[SiteStep]:
    """Bring a running federation up to this version: migrate the hub and every site it can
    reach, add to (or drop from) each publication the tables this version replicates, and
    have each subscription pick them up (``REFRESH PUBLICATION``; a table added is copied
    whole first). Run it after upgrading the hub and then the sites. Returns one step per
    site (one out of reach is not done: run it again later). ReplicationError when the hub
    cannot be reached."""
    _postgres_only(hub, "--hub")
    _migrate(hub)
    report: list[SiteStep] = []
    with _connect(hub) as h:
        for name, conninfo in _site_conninfos(h):
            try:
                _migrate(conninfo)
                with _connect(conninfo) as s:
                    # a table replicated from now on: the site's rows of it from before it
                    # joined must not clash with the hub's (as `add_site` checks)
                    _check_old_ids(h, s, conninfo, _unpublished(s, SITE_PUBLICATION))
                    changes = _sync_publication(s, SITE_PUBLICATION, _site_entries())
                    changes += _sync_publication(h, hub_publication(name), _hub_entries(name))
                    _refresh(h, site_subscription(name))
                    _refresh(s, HUB_SUBSCRIPTION)
            except OldIdsError as exc:
                report.append(SiteStep(name, False, f"not refreshed ({exc})"))
                continue
            except ReplicationError as exc:
                report.append(SiteStep(name, False, f"not refreshed ({exc}); run site refresh "
                                       "again once it can be reached"))  # fmt: skip
                continue
            report.append(SiteStep(name, True, "; ".join(changes) or "up to date"))
    return report


def _published(conn: psycopg.Connection[Any], publication: str) -> set[str]:
    """The tables `publication` holds in `conn`'s database."""
    rows = conn.execute("SELECT tablename FROM pg_publication_tables WHERE pubname = %s",
                        (publication,)).fetchall()  # fmt: skip
    return {row[0] for row in rows}


def _unpublished(conn: psycopg.Connection[Any], publication: str) -> list[str]:
    """The tables of the site publication's entries that `publication` lacks."""
    held = _published(conn, publication)
    return [t for t in _site_entries() if t not in held]


def _site_conninfos(h: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Each site's name and the connection string the hub subscribes to it with."""
    rows = h.execute(
        "SELECT subname, subconninfo FROM pg_subscription "
        f"WHERE subname LIKE 'assessengine\\_site\\_%%' AND {_HERE} ORDER BY subname"
    ).fetchall()
    prefix = len(site_subscription(""))
    return [(name[prefix:], conninfo) for name, conninfo in rows]


def _refresh(conn: psycopg.Connection[Any], subscription: str) -> None:
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} REFRESH PUBLICATION WITH (copy_data = true)")
                 .format(sql.Identifier(subscription)))  # fmt: skip


# ==================================================================================== failover


def fail_over(hub: str) -> list[SiteStep]:
    """After a hub standby was promoted (the old hub is gone), point every site at `hub`:
    make each site's logical slot there (PostgreSQL 15 keeps none on a standby) and move
    the site's subscription to it. The hub's own subscriptions to the sites came with the
    standby and go on by themselves. Reviews the old hub took that had not reached a site
    when it died do not reach it (they are at the new hub). Returns one step per site (one
    out of reach is not done: run it again later). ReplicationError when `hub` cannot be
    reached or is still a standby."""
    _postgres_only(hub, "--hub")
    report: list[SiteStep] = []
    with _connect(hub) as h:
        if _value(h, "SELECT pg_is_in_recovery()"):
            raise ReplicationError(f"{redact(hub)}: this server is still a standby; promote it "
                                   "first (pg_ctl promote)")  # fmt: skip
        target = parse_url(hub).target
        for name, conninfo in _site_conninfos(h):
            slot = hub_publication(name)
            if not _exists(h, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", slot):
                h.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            try:
                with _connect(conninfo) as s:
                    s.execute(sql.SQL("ALTER SUBSCRIPTION {} CONNECTION {}").format(
                        sql.Identifier(HUB_SUBSCRIPTION), sql.Literal(target)))
            except ReplicationError as exc:
                report.append(SiteStep(name, False, f"not moved ({exc}); run site failover "
                                       "again once it can be reached"))  # fmt: skip
                continue
            report.append(SiteStep(name, True, f"now follows {redact(hub)}"))
    return report


# ==================================================================================== remove


def remove_site(hub: str, name: str) -> list[str]:
    """Stop replicating site `name`: the hub's subscription and publication for it, and the
    site's own subscription and publication (reached through the URL the hub kept). The
    hub keeps every row it received. Returns what was left to do by hand (the site could not
    be reached: its subscription and publication, and its slot for the hub). ReplicationError
    when the hub cannot be reached or has no such site."""
    problem = site_problem(name)
    if problem is not None:
        raise ReplicationError(problem)
    _postgres_only(hub, "--hub")
    left: list[str] = []
    with _connect(hub) as h:
        found = h.execute(f"SELECT subconninfo FROM pg_subscription WHERE subname = %s AND "
                          f"{_HERE}", (site_subscription(name),)).fetchone()  # fmt: skip
        if found is None:
            raise ReplicationError(f"{redact(hub)}: no site named {name!r} (assessengine site "
                                   "list --hub URL)")  # fmt: skip
        try:
            with _connect(found[0]) as s:
                _drop_subscription(s, HUB_SUBSCRIPTION)
                s.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
                    sql.Identifier(SITE_PUBLICATION)))
        except ReplicationError as exc:
            left.append(f"the site could not be reached ({exc}); there, run DROP SUBSCRIPTION "
                        f"{HUB_SUBSCRIPTION}; DROP PUBLICATION {SITE_PUBLICATION}")  # fmt: skip
        if not _drop_subscription(h, site_subscription(name)):
            left.append(f"at the site, drop the slot: SELECT pg_drop_replication_slot("
                        f"'{site_subscription(name)}')")  # fmt: skip
        h.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(
            sql.Identifier(hub_publication(name))))
        if left and _exists(h, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s "
                               "AND NOT active", hub_publication(name)):  # fmt: skip
            h.execute("SELECT pg_drop_replication_slot(%s)", (hub_publication(name),))
    return left


def _drop_subscription(conn: psycopg.Connection[Any], name: str) -> bool:
    """Drop subscription `name` if it exists, with its slot at the publisher; when the
    publisher cannot be reached, without it (returns False: the slot is left there)."""
    if not _exists(conn, f"SELECT 1 FROM pg_subscription WHERE subname = %s AND {_HERE}", name):
        return True
    ident = sql.Identifier(name)
    try:
        conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
        return True
    except psycopg.OperationalError:
        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
        conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
        conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
        return False


# ==================================================================================== helpers


@contextmanager
def _connect(url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to `url` (a store URL or a libpq connection string)."""
    target = parse_url(url).target if "://" in url else url
    try:
        conn = psycopg.connect(target, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True,
                               application_name="assessengine-site")  # fmt: skip
    except psycopg.Error as exc:
        raise ReplicationError(f"{_shown(url)}: cannot connect ({_reason(exc)})") from None
    try:
        yield conn
    except psycopg.Error as exc:
        where = _shown(url) if exc.pgconn is None else _pgconn_shown(exc.pgconn)
        raise ReplicationError(f"{where}: {_reason(exc)}") from None
    finally:
        conn.close()


def _pgconn_shown(pgconn: Any) -> str:
    """The server a failed statement ran on (a libpq connection), as a URL without password."""
    parts = [getattr(pgconn, n, b"") or b"" for n in ("user", "host", "port", "db")]
    user, host, port, db = (p.decode(errors="replace") for p in parts)
    return f"postgresql://{user}@{host}:{port}/{db}"


def _shown(url: str) -> str:
    return redact(url) if "://" in url else _conninfo_shown(url)


def _where(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"


def _reason(exc: psycopg.Error) -> str:
    return one_line(str(exc)) or type(exc).__name__


def _value(conn: psycopg.Connection[Any], query: str | sql.Composable, *params: Any) -> Any:
    row = conn.execute(query, params or None).fetchone()  # type: ignore[arg-type]
    return None if row is None else row[0]


def _exists(conn: psycopg.Connection[Any], query: str | sql.Composable, *params: Any) -> bool:
    return _value(conn, query, *params) is not None
