"""Sites and a hub on PostgreSQL logical replication (issue #19, item 1), on real servers the
tests start: two site clusters (``north``, ``south``) each with an engine of its own (ZeroMQ
on loopback, the real kernel), and a hub cluster serving the API (in process; the standby
test runs ``serve --no-ingest`` on the promoted hub).

Sessions streamed to either site reach the hub with their batches and reports; a review
made at the hub reaches the site that owns the session (and no other), one made at a site
reaches the hub, and none comes back to where it was written; a site cut off from the hub
keeps ingesting and the hub catches up; a hub standby (``pg_basebackup``) promoted after the
hub's primary is killed serves, through the API, everything acknowledged before.

Double marking assigned at the hub is marked at the site and counted at both; the outcomes
each place lists, queues and counts include the reviews made at the other (revision 0014);
``site refresh`` carries the tables a version starts to replicate to a running federation. An
override made at the hub after a site's override of the same criterion counts at both (the
later one, though its id, from the hub's range, is lower)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from assessengine.adapters.library import find_rubric, load_rubric
from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService, double_marking
from assessengine.api.service.access import Principal
from assessengine.api.service.models import ObservationIn, OverrideIn
from assessengine.api.service.service import SessionFilters
from assessengine.cli import main
from assessengine.client import EngineClient
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.offline import score_sessions
from assessengine.ingest.sites import at_site
from assessengine.ingest.zmq import zmq_transport
from assessengine.runtime.engine import Engine
from assessengine.runtime.scoring import ThreadScoring
from assessengine.sim.generate import SimBatch, simulate
from assessengine.storage import Store, open_store
from assessengine.storage.credentials import (
    CredentialStoreError,
    IssuedCredential,
    PublishedList,
    SqlCredentialStore,
)
from assessengine.storage.port import SessionInfo
from assessengine.storage.replication import range_of
from assessengine.streaming import stream_sessions

from .pg_server import PASSWORD, PgServer, bin_dir
from .test_engine_helpers import FAST, audit, library, serve, sessions
from .waits import WAIT_S

T = TypeVar("T")
LOGICAL: Final = {
    "wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10",
    "max_logical_replication_workers": "8", "max_worker_processes": "16",
    "wal_retrieve_retry_interval": "200ms",
}  # fmt: skip
"""What a site's and a hub's server need (and a quick retry after an outage, for the tests)."""
ITEM: Final = "looks_before_reversing"  # the forklift rubric's observed item


@dataclass
class Site:
    name: str
    server: PgServer
    url: str
    engine: Engine
    store: Store


@dataclass
class Federation:
    hub: PgServer
    hub_url: str
    api: TestClient             # the hub's API (``serve --no-ingest`` runs it in the standby test)
    token: str
    sites: dict[str, Site]


def _eventually(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    """`check()` once it is not None (polled); fails naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got is not None:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def _servers(n: int) -> list[PgServer]:
    programs = bin_dir()
    if programs is None:
        pytest.skip("PostgreSQL is not installed")
    servers = [PgServer(programs, config=LOGICAL) for _ in range(n)]
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(PgServer.start, servers))
    for server in servers:
        server.sql("CREATE DATABASE assess")
    return servers


@contextmanager
def _site_engine(url: str, name: str) -> Iterator[tuple[Engine, Store]]:
    """A site's engine: the real one, its ids qualified with the site's name."""
    with closing(open_store(url)) as store:
        transport = at_site(zmq_transport("tcp://127.0.0.1:*"), name)
        engine = Engine(store, library(), transport, scoring=ThreadScoring(store, library()))
        engine.start()
        try:
            yield engine, store
        finally:
            engine.stop()


def _add(hub_url: str, site_url: str, name: str) -> None:
    added = CliRunner().invoke(main, ["site", "add", "--hub", hub_url, "--site", site_url,
                                      "--name", name])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output


def _token(url: str) -> str:
    service = ReviewService.open(url)
    try:
        return service.create_token(name="hub assessor", role="assessor", learner=None,
                                    actor="t")[1]  # fmt: skip
    finally:
        service.close()


def _stream(site: Site, sim: SimBatch) -> list[str]:
    """Stream `sim` to `site` (every batch acknowledged); the sessions' ids there."""
    with EngineClient(site.engine.endpoint, client_id="sim", **FAST) as client:
        stream_sessions(client, sim)
    assert site.engine.wait_idle(60)
    return [f"{site.name}:{sid}" for sid in sim.session_ids]


def _key_file(folder: Path) -> Path:
    key = folder / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    key.chmod(0o600)
    return key


@pytest.fixture(scope="module")
def pg_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    servers = _servers(3)
    hub, north, south = servers
    hub_url = hub.url("assess")
    try:
        with _site_engine(north.url("assess"), "north") as (n_engine, n_store), \
                _site_engine(south.url("assess"), "south") as (s_engine, s_store):  # fmt: skip
            for server, name in ((north, "north"), (south, "south")):
                _add(hub_url, server.url("assess"), name)
            key = _key_file(tmp_path_factory.mktemp("hub"))
            app = create_app(db_path=hub_url, issuer_key_path=key, web=False)
            with TestClient(app) as api:
                token = _token(hub_url)
                api.headers["Authorization"] = f"Bearer {token}"
                yield Federation(hub, hub_url, api, token, {
                    "north": Site("north", north, north.url("assess"), n_engine, n_store),
                    "south": Site("south", south, south.url("assess"), s_engine, s_store),
                })  # fmt: skip
    finally:
        for server in servers:
            server.stop()


def _report_at(url: str, sid: str) -> dict[str, Any] | None:
    """The session's report in the store at `url` (None: no report, or no such session)."""
    with closing(open_store(url)) as store:
        return None if store.session(sid) is None else store.report(sid)


def _rows(server: PgServer, query: str) -> list[str]:
    return [line for line in server.sql(query, "assess").splitlines() if line]


def _listed(hub_url: str) -> dict[str, dict[str, Any]]:
    listed = CliRunner().invoke(main, ["site", "list", "--hub", hub_url, "--json"])
    assert listed.exit_code == 0, listed.output
    return {s["name"]: s for s in json.loads(listed.output)}


# ================================================================================ tests


def test_sessions_streamed_to_both_sites_reach_the_hub_with_their_reports(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    lab = sessions("network-lab", 2, seed=31)  # the same simulator ids at both sites
    ids = {name: _stream(site, lab) for name, site in fed.sites.items()}
    assert ids["north"] != ids["south"]
    with closing(open_store(fed.hub_url)) as hub:
        for name, site in fed.sites.items():
            for sid in ids[name]:
                report = _eventually(lambda sid=sid: hub.report(sid) if hub.session(sid)
                                     else None, f"{sid} at the hub")  # fmt: skip
                assert report == site.store.report(sid)
                # the report was committed after the batches: they are there too, in order
                chains = [b.chain for b in site.store.batches(sid)]
                assert [b.chain for b in hub.batches(sid)] == chains
                record = hub.session(sid)
                assert record is not None
                assert record.info.learner.startswith(f"{name}:")
    assert audit(fed.hub_url, ids["south"][0])[0] == 0  # the hash chain verifies at the hub
    for sid in ids["north"] + ids["south"]:
        got = fed.api.get(f"/api/v1/sessions/{sid}")
        assert got.status_code == 200, got.text
        assert got.json()["machine"] is not None
    sites = _listed(fed.hub_url)
    assert sorted(sites) == ["north", "south"]
    assert {s["number"] for s in sites.values()} == {2, 3}
    assert all(s["errors"] == 0 and s["receiving"] for s in sites.values()), sites


def test_a_review_at_the_hub_reaches_the_owning_site_and_one_at_a_site_the_hub(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    north, south = fed.sites["north"], fed.sites["south"]
    lab = sessions("network-lab", 1, seed=32)
    sid = _stream(north, lab)[0]
    _stream(south, lab)
    _eventually(lambda: _report_at(fed.hub_url, sid), f"{sid} at the hub")
    overridden = _override(fed, sid, "correct_ports", "work order changed on the day")
    query = f"SELECT reason FROM review_overrides WHERE session = '{sid}' ORDER BY id"
    assert _eventually(lambda: _rows(north.server, query) or None, "the override at north") \
        == [overridden]  # fmt: skip
    audit_query = f"SELECT action FROM review_audit WHERE session = '{sid}'"
    assert _eventually(lambda: _rows(north.server, audit_query) or None,
                       "the audit entry at north") == ["override.create"]  # fmt: skip
    service = ReviewService.open(north.url)  # an assessor at the site observes
    try:
        token = service.create_token(name="north assessor", role="assessor", learner=None,
                                     actor="t")[1]  # fmt: skip
        who = service.authenticate(token)
        service.observe(who, sid, _observation())
    finally:
        service.close()
    seen = f"SELECT note FROM review_observations WHERE session = '{sid}'"
    assert _eventually(lambda: _rows(fed.hub, seen) or None, "the observation at the hub") \
        == ["cables dressed and labelled"]  # fmt: skip
    # Rows arrive in commit order: an echo of the hub's override from north (committed there
    # before the observation) would be at the hub by now; one of north's observation from the
    # hub would reach north before a later hub override does.
    later = _override(fed, sid, "config_order", "the lab sheet gave another order")
    _eventually(lambda: _rows(north.server, query)[1:] or None, "the second override at north")
    assert _rows(fed.hub, query) == [overridden, later]
    assert _rows(north.server, query) == [overridden, later]
    assert _rows(north.server, seen) == ["cables dressed and labelled"]
    assert _rows(south.server, "SELECT count(*) FROM review_overrides") == ["0"]
    assert _rows(north.server, "SELECT count(*) FROM review_tokens") == ["1"]  # tokens: local
    assert all(s["errors"] == 0 for s in _listed(fed.hub_url).values())


def _override(fed: Federation, sid: str, criterion: str, reason: str) -> str:
    """An override through the hub's API; its reason."""
    answer = fed.api.post(f"/api/v1/sessions/{sid}/overrides", json={
        "criterion": criterion, "verdict": "not_applicable", "reason": reason})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return reason


def test_a_name_taken_and_a_database_that_is_a_site_already_are_refused(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    for name, site, said in (("north", "south", "a site named 'north' is added already"),
                             ("west", "south", "is a site of a hub already")):  # fmt: skip
        refused = CliRunner().invoke(main, ["site", "add", "--hub", fed.hub_url, "--site",
                                            fed.sites[site].url, "--name", name])  # fmt: skip
        assert refused.exit_code == 2, refused.output
        assert said in refused.output
        assert len(refused.output.splitlines()) == 1
    assert sorted(_listed(fed.hub_url)) == ["north", "south"]


def test_a_removed_site_leaves_no_replication_behind_and_the_hub_keeps_its_rows(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    south = fed.sites["south"].server
    south.sql("CREATE DATABASE east")
    east = south.url("east")
    _add(fed.hub_url, east, "east")
    with _site_engine(east, "east") as (engine, store):
        ids = _stream(Site("east", south, east, engine, store), sessions("network-lab", 1,
                                                                         seed=36))  # fmt: skip
    _eventually(lambda: _report_at(fed.hub_url, ids[0]), "east's session at the hub")
    removed = CliRunner().invoke(main, ["site", "remove", "--hub", fed.hub_url, "--name", "east"])
    assert (removed.exit_code, removed.output) == (0, "site east removed\n")
    assert sorted(_listed(fed.hub_url)) == ["north", "south"]
    assert _rows(south, "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE "
                        "'%east'") == []  # fmt: skip
    assert _rows(fed.hub, "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE "
                          "'%east'") == []  # fmt: skip
    assert south.sql("SELECT count(*) FROM pg_publication", "east").strip() == "0"
    assert south.sql("SELECT count(*) FROM pg_subscription WHERE subname = 'assessengine_hub' "
                     "AND subdbid = (SELECT oid FROM pg_database WHERE datname = 'east')"
                     ).strip() == "0"  # fmt: skip
    assert _report_at(fed.hub_url, ids[0]) is not None


def test_status_lists_are_numbered_in_each_sites_range_and_reach_the_hub(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    slots = {}
    for name, site in fed.sites.items():
        with closing(SqlCredentialStore(site.url)) as credentials:
            slots[name] = credentials.allocate_status()
    numbers = {s["name"]: s["number"] for s in _listed(fed.hub_url).values()}
    for name, slot in slots.items():
        first, last = range_of(numbers[name])
        assert first <= slot.list_id <= last
    query = "SELECT list_id FROM credential_status_slots ORDER BY list_id"
    def both() -> list[str] | None:
        rows = _rows(fed.hub, query)
        return rows if len(rows) == len(slots) else None

    assert _eventually(both, "both sites' slots") == [
        str(slots["north"].list_id), str(slots["south"].list_id)]
    # the hub serves such a list (it took ids up to 1,000,000 only: 422)
    served = fed.api.get(f"/api/v1/credentials/status/{slots['south'].list_id}")
    assert served.status_code == 200, served.text
    assert served.json()["id"].endswith(f"/credentials/status/{slots['south'].list_id}")


def test_a_sites_credential_is_revoked_at_the_site_and_each_place_signs_its_own_lists(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    south = fed.sites["south"]
    now = datetime.now(UTC)
    with closing(SqlCredentialStore(south.url)) as at_site:
        slot = at_site.allocate_status()
        issued = IssuedCredential(id="urn:uuid:south-1", learner="south:L1",
                                  policy="network-technician", issued_at=now, valid_until=None,
                                  status=slot, document={"id": "urn:uuid:south-1"})  # fmt: skip
        at_site.save_issued(issued)
    with closing(SqlCredentialStore(fed.hub_url)) as at_hub:
        _eventually(lambda: at_hub.issued(issued.id), "the credential at the hub")
        with pytest.raises(CredentialStoreError, match="issued at another site of this hub"):
            at_hub.revoke(issued.id, reason="wrong learner", revoked_by="hub admin", at=now)
        # the hub signs the site's list first (someone checked a credential there), then
        # the site signs its own: each keeps its own, replication goes on
        signed = PublishedList(slot.list_id, "r1", '{"signed": "hub"}', now + timedelta(days=1))
        at_hub.publish(signed)
        with closing(SqlCredentialStore(south.url)) as at_site:
            at_site.publish(PublishedList(slot.list_id, "r1", '{"signed": "south"}',
                                          now + timedelta(days=1)))  # fmt: skip
            at_site.revoke(issued.id, reason="wrong learner", revoked_by="south admin", at=now)
        revoked = _eventually(lambda: at_hub.revocation(issued.id), "the revocation at the hub")
        assert revoked.revoked_by == "south admin"
        published = at_hub.published(slot.list_id)
        assert published is not None
        assert published.document == '{"signed": "hub"}'
    assert _listed(fed.hub_url)["south"]["errors"] == 0


def test_refresh_brings_a_sites_publication_to_this_versions_tables(
    pg_federation: Federation,
) -> None:
    """A publication made by an older version (a table missing, one now local) is set right
    by ``site refresh``, and the missing table's new rows reach the hub."""
    fed = pg_federation
    north = fed.sites["north"]
    north.server.sql("ALTER PUBLICATION assessengine_site DROP TABLE credential_revocations",
                     "assess")  # fmt: skip
    north.server.sql("ALTER PUBLICATION assessengine_site ADD TABLE credential_status_published",
                     "assess")  # fmt: skip
    refreshed = CliRunner().invoke(main, ["site", "refresh", "--hub", fed.hub_url])
    assert refreshed.exit_code == 0, refreshed.output
    assert refreshed.output.splitlines() == [
        "site north: assessengine_site: added credential_revocations; "
        "assessengine_site: dropped credential_status_published",
        "site south: up to date",
    ]
    tables = _rows(north.server, "SELECT tablename FROM pg_publication_tables WHERE pubname = "
                                 "'assessengine_site' ORDER BY tablename")  # fmt: skip
    assert "credential_revocations" in tables
    assert "credential_status_published" not in tables
    again = CliRunner().invoke(main, ["site", "refresh", "--hub", fed.hub_url])
    assert again.output.splitlines() == ["site north: up to date", "site south: up to date"]
    now = datetime.now(UTC)
    with closing(SqlCredentialStore(north.url)) as at_site:
        slot = at_site.allocate_status()
        at_site.save_issued(IssuedCredential(
            id="urn:uuid:north-1", learner="north:L1", policy="network-technician",
            issued_at=now, valid_until=None, status=slot, document={"id": "urn:uuid:north-1"}))
        at_site.revoke("urn:uuid:north-1", reason="expired card", revoked_by="north", at=now)
    with closing(SqlCredentialStore(fed.hub_url)) as at_hub:
        _eventually(lambda: at_hub.revocation("urn:uuid:north-1"), "north's revocation")
    assert _listed(fed.hub_url)["north"]["errors"] == 0


def _scored_at(site: Site, count: int, seed: int) -> list[str]:
    """`count` closed, scored forklift sessions written at `site` through its store (as its
    engine writes them, without streaming: ids and learners qualified with its name)."""
    rubric, scenario = load_rubric(find_rubric("forklift-load-handling"))
    layout = Layout.of(scenario)
    sims = simulate(scenario, "mixed", count, seed=seed).to_sessions()
    ids = []
    for k, (sim, report) in enumerate(zip(sims, score_sessions(rubric, scenario, sims),
                                          strict=True)):  # fmt: skip
        sid = f"{site.name}:F{seed}-{k}"
        site.store.open_session(SessionInfo(sid, f"{site.name}:L{seed}-{k}", scenario.scenario,
                                            rubric.rubric, rubric.version, rubric.sha256()))
        header = {"session": sid, "first_seq": 0, "count": len(sim.events),
                  "encoding": "columns-v1", "dtype": layout.dtype_header()}  # fmt: skip
        payload = encode_columns_v1(Columns.from_events(sim.events, layout), layout)
        site.store.append_batches([(sid, 0, len(sim.events), "columns-v1",
                                    json.dumps(header).encode(), payload)])  # fmt: skip
        site.store.close_session(sid, sim.end_t)
        site.store.save_report(sid, {**report.to_data(), "session": sid})
        ids.append(sid)
    return ids


def _at_site(site: Site, name: str, role: str = "assessor") -> tuple[ReviewService, Principal]:
    """A review service at `site` (close it), and a token of `name` there."""
    service = ReviewService.open(site.url)
    _, token = service.create_token(name=name, role=role, learner=None, actor="t")
    return service, service.authenticate(token)


def test_double_marking_assigned_at_the_hub_is_marked_at_the_site_and_counted_at_both(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    north, south = fed.sites["north"], fed.sites["south"]
    sid = _scored_at(north, 1, seed=41)[0]
    _eventually(lambda: _report_at(fed.hub_url, sid), f"{sid} at the hub")
    hub = ReviewService.open(fed.hub_url)  # the hub's trainer and its list of markers
    try:
        trainer = hub.authenticate(hub.create_token(name="hub trainer", role="trainer",
                                                    learner=None, actor="t")[1])  # fmt: skip
        hub.create_token(name="marker", role="assessor", learner=None, actor="t")
        made = double_marking.assign(hub, trainer, sid, double_marking.AssignIn(
            assessor="marker"))  # fmt: skip
    finally:
        hub.close()
    assigned = ("SELECT assessor, assigned_by FROM review_double_assignments WHERE session = "
                f"'{sid}'")
    assert _eventually(lambda: _rows(north.server, assigned) or None, "the assignment at north") \
        == ["marker|hub trainer"]  # fmt: skip
    assert _rows(south.server, "SELECT count(*) FROM review_double_assignments") == ["0"]
    service, marker = _at_site(north, "marker")  # the marker works at the site
    try:
        assert [a.id for a in double_marking.mine(service, marker)] == [made.id]
        assert service.blind(marker, [sid]) == {sid}
        done = double_marking.submit(service, marker, sid, double_marking.SecondMarksIn(
            marks=[double_marking.SecondMarkIn(criterion=ITEM, verdict="fail", note="no look")]))
        assert done.completed_at is not None
    finally:
        service.close()
    marked = f"SELECT criterion, verdict FROM review_double_marks WHERE session = '{sid}'"
    assert _eventually(lambda: _rows(fed.hub, marked) or None, "the marks at the hub") == [
        f"{ITEM}|fail"]
    hub = ReviewService.open(fed.hub_url)
    try:
        (completed,) = hub.double_marks.assignments(sessions=[sid])
        assert completed.completed_at == done.completed_at  # completed at the hub too
    finally:
        hub.close()
    assert _rows(north.server, marked) == [f"{ITEM}|fail"]  # not echoed back: one row
    assert all(s["errors"] == 0 for s in _listed(fed.hub_url).values())


def test_refresh_carries_double_marking_to_a_federation_of_the_version_before(
    pg_federation: Federation,
) -> None:
    """Before revision 0014 the double-marking tables were each database's own: ``site
    refresh`` publishes them both ways and copies what each place wrote meanwhile."""
    fed = pg_federation
    south = fed.sites["south"]
    tables = "review_double_assignments, review_double_marks"
    south.server.sql(f"ALTER PUBLICATION assessengine_site DROP TABLE {tables}", "assess")
    fed.hub.sql(f"ALTER PUBLICATION assessengine_hub_south DROP TABLE {tables}", "assess")
    fed.hub.sql("ALTER SUBSCRIPTION assessengine_site_south REFRESH PUBLICATION", "assess")
    south.server.sql("ALTER SUBSCRIPTION assessengine_hub REFRESH PUBLICATION", "assess")
    sid = _scored_at(south, 1, seed=43)[0]
    _eventually(lambda: _report_at(fed.hub_url, sid), f"{sid} at the hub")
    hub = ReviewService.open(fed.hub_url)
    try:
        trainer = hub.authenticate(hub.create_token(name="old trainer", role="trainer",
                                                    learner=None, actor="t")[1])  # fmt: skip
        hub.create_token(name="old marker", role="assessor", learner=None, actor="t")
        double_marking.assign(hub, trainer, sid, double_marking.AssignIn(assessor="old marker"))
    finally:
        hub.close()
    assigned = f"SELECT assigned_by FROM review_double_assignments WHERE session = '{sid}'"
    assert _rows(south.server, assigned) == []  # local, as the version before had it
    refreshed = CliRunner().invoke(main, ["site", "refresh", "--hub", fed.hub_url])
    assert refreshed.exit_code == 0, refreshed.output
    assert refreshed.output.splitlines()[-1] == (
        "site south: assessengine_site: added review_double_assignments; assessengine_site: "
        "added review_double_marks; assessengine_hub_south: added review_double_assignments; "
        "assessengine_hub_south: added review_double_marks"
    )
    assert _eventually(lambda: _rows(south.server, assigned) or None,
                       "the assignment made before, at south") == ["old trainer"]  # fmt: skip
    assert all(s["errors"] == 0 for s in _listed(fed.hub_url).values())


def test_the_hubs_counts_include_the_reviews_made_at_the_sites(
    pg_federation: Federation,
) -> None:
    """An observation made at a site settles the session's pending item at the hub: its
    list, its review queue and its dashboard count the outcome the site computed."""
    fed = pg_federation
    north = fed.sites["north"]
    ids = _scored_at(north, 2, seed=42)
    for sid in ids:
        _eventually(lambda sid=sid: _report_at(fed.hub_url, sid), f"{sid} at the hub")
    learner = "north:L42-0"
    queue = fed.api.get("/api/v1/review-queue", params={"learner": learner})
    assert queue.status_code == 200, queue.text
    assert queue.json()["counts"]["pending"] == 1  # the hub's index has the session pending
    before = fed.api.get("/api/v1/sessions", params={"learner": learner}).json()["items"]
    service, assessor = _at_site(north, "north observer")
    try:
        service.observe(assessor, ids[0], ObservationIn(criterion=ITEM, verdict="fail",
                                                        note="did not look"))  # fmt: skip
        at_site = next(s for s in service.list_sessions(assessor, SessionFilters(
            learner=learner)).items)  # fmt: skip
    finally:
        service.close()
    seen = f"SELECT note FROM review_observations WHERE session = '{ids[0]}'"
    _eventually(lambda: _rows(fed.hub, seen) or None, "the observation at the hub")
    listed = fed.api.get("/api/v1/sessions", params={"learner": learner})
    assert listed.status_code == 200, listed.text
    (at_hub,) = listed.json()["items"]
    assert at_hub["machine"] == at_site.machine.model_dump(mode="json")
    assert at_hub["machine"] != before[0]["machine"]  # the report's, until the observation
    queue = fed.api.get("/api/v1/review-queue", params={"learner": learner}).json()
    assert queue["counts"]["pending"] == 0
    assert _rows(fed.hub, "SELECT count(*) FROM review_outcomes_due") == ["0"]


def test_a_sites_counts_include_the_hubs_reviews_of_its_sessions(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    north = fed.sites["north"]
    (sid,) = _scored_at(north, 1, seed=44)
    _eventually(lambda: _report_at(fed.hub_url, sid), f"{sid} at the hub")
    answer = fed.api.post(f"/api/v1/sessions/{sid}/overrides", json={
        "criterion": "pre_use_checks", "verdict": "fail", "reason": "seen on the camera"})
    assert answer.status_code == 201, answer.text
    at_hub = answer.json()["with_overrides"]
    query = f"SELECT reason FROM review_overrides WHERE session = '{sid}'"
    _eventually(lambda: _rows(north.server, query) or None, "the override at north")
    service, assessor = _at_site(north, "north lister")
    try:
        (row,) = service.list_sessions(assessor, SessionFilters(learner="north:L44-0")).items
    finally:
        service.close()
    assert row.overridden
    assert row.with_overrides is not None
    assert row.with_overrides.model_dump(mode="json") == at_hub
    assert _rows(north.server, "SELECT count(*) FROM review_outcomes_due") == ["0"]


def test_a_hub_override_made_after_a_sites_override_of_the_same_criterion_wins_at_both(
    pg_federation: Federation,
) -> None:
    """Each place numbers its rows in its own range (the hub's below the sites'): the override
    recorded last counts at every place, whatever its id (`core.latest`)."""
    fed = pg_federation
    north = fed.sites["north"]
    (sid,) = _scored_at(north, 1, seed=46)
    _eventually(lambda: _report_at(fed.hub_url, sid), f"{sid} at the hub")
    criterion = "pre_use_checks"
    query = f"SELECT id FROM review_overrides WHERE session = '{sid}' ORDER BY recorded_at"
    service, assessor = _at_site(north, "north overrider")
    try:
        service.override(assessor, sid, OverrideIn(criterion=criterion, verdict="pass",
                                                   reason="site: seen done"))  # fmt: skip
        _eventually(lambda: _rows(fed.hub, query) or None, "the site's override at the hub")
        answer = fed.api.post(f"/api/v1/sessions/{sid}/overrides", json={
            "criterion": criterion, "verdict": "fail", "reason": "hub: the camera says no"})
        assert answer.status_code == 201, answer.text
        site_id, hub_id = (int(k) for k in _eventually(
            lambda: _rows(north.server, query)[1:] and _rows(north.server, query),
            "the hub's override at north"))  # fmt: skip
        assert hub_id < site_id  # the later override has the lower id
        at_site = service.session(assessor, sid).model_dump(mode="json")
        (listed_at_site,) = service.list_sessions(assessor, SessionFilters(
            learner="north:L46-0")).items  # fmt: skip
    finally:
        service.close()
    at_hub = fed.api.get(f"/api/v1/sessions/{sid}").json()
    for shown in (at_hub, at_site):
        override = next(c["override"] for c in shown["criteria"] if c["id"] == criterion)
        assert (override["id"], override["reason"]) == (hub_id, "hub: the camera says no")
    assert at_site["with_overrides"] == at_hub["with_overrides"]
    (listed_at_hub,) = fed.api.get("/api/v1/sessions", params={
        "learner": "north:L46-0"}).json()["items"]  # fmt: skip
    assert listed_at_hub["with_overrides"] == at_hub["with_overrides"]
    assert listed_at_site.with_overrides is not None
    assert listed_at_site.with_overrides.model_dump(mode="json") == at_hub["with_overrides"]


def _observation() -> ObservationIn:
    return ObservationIn(criterion="cabling_dressed", verdict="pass",
                         note="cables dressed and labelled", t=3.0)  # fmt: skip


def test_a_site_cut_off_from_the_hub_keeps_ingesting_and_the_hub_catches_up(
    pg_federation: Federation,
) -> None:
    fed = pg_federation
    south = fed.sites["south"]
    subscription = "assessengine_site_south"
    fed.hub.sql(f"ALTER SUBSCRIPTION {subscription} DISABLE", "assess")
    try:
        first = _stream(south, sessions("network-lab", 2, seed=33))
        assert all(south.store.report(sid) is not None for sid in first)
        assert not _listed(fed.hub_url)["south"]["enabled"]
        assert all(_report_at(fed.hub_url, sid) is None for sid in first)
    finally:
        fed.hub.sql(f"ALTER SUBSCRIPTION {subscription} ENABLE", "assess")
    fed.hub.halt()  # then the hub's server is down altogether
    try:
        second = _stream(south, sessions("network-lab", 2, seed=34))
    finally:
        fed.hub.resume()
    for sid in first + second:
        assert _eventually(lambda sid=sid: _report_at(fed.hub_url, sid), f"{sid} caught up") \
            == south.store.report(sid)  # fmt: skip


def test_a_promoted_hub_standby_serves_everything_acknowledged_before(
    pg_federation: Federation, tmp_path: Path
) -> None:
    """A hub of its own (with a synchronous standby), a site database ``west`` beside
    north's on the north cluster."""
    north = pg_federation.sites["north"]
    (primary,) = _servers(1)
    standby = primary.standby()
    try:
        primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        primary.sql("SELECT pg_reload_conf()")
        north.server.sql("CREATE DATABASE west")
        west_url = north.server.url("west")
        _add(primary.url("assess"), west_url, "west")
        with _site_engine(west_url, "west") as (engine, _):
            site = Site("west", north.server, west_url, engine, north.store)
            ids = _stream(site, sessions("network-lab", 2, seed=35))
        for sid in ids:
            _eventually(lambda sid=sid: _report_at(primary.url("assess"), sid), sid)
        token = _token(primary.url("assess"))
        service = ReviewService.open(primary.url("assess"))
        try:
            who = service.authenticate(token)
            service.observe(who, ids[0], _observation())  # acknowledged: returned
        finally:
            service.close()
        primary.halt()  # killed (immediate: no shutdown checkpoint)
        standby.promote()
        key = _key_file(tmp_path)
        api = serve(standby.url("assess"), "--no-ingest", "--issuer-key", str(key))
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=api.http, headers=headers, timeout=WAIT_S) as http:
                for sid in ids:
                    got = http.get(f"/api/v1/sessions/{sid}")
                    assert got.status_code == 200, got.text
                    assert got.json()["machine"] is not None
                first = http.get(f"/api/v1/sessions/{ids[0]}").json()
                assert [o["note"] for o in first["observations"]] == [
                    "cables dressed and labelled"]
        finally:
            assert api.terminate() == 0, api.log()
        # replication goes on with the promoted hub once the sites follow it
        moved = CliRunner().invoke(main, ["site", "failover", "--hub", standby.url("assess")])
        assert moved.exit_code == 0, moved.output
        assert moved.output.startswith("site west: now follows postgresql://")
        assert PASSWORD not in moved.output
        with _site_engine(west_url, "west") as (engine, _):
            site = Site("west", north.server, west_url, engine, north.store)
            later = _stream(site, sessions("network-lab", 1, seed=37))
        _eventually(lambda: _report_at(standby.url("assess"), later[0]), "a new session")
        service = ReviewService.open(standby.url("assess"))
        try:
            service.observe(service.authenticate(token), later[0], _observation())
        finally:
            service.close()
        seen = f"SELECT note FROM review_observations WHERE session = '{later[0]}'"
        assert _eventually(lambda: [r for r in north.server.sql(seen, "west").splitlines() if r]
                           or None, "the new hub's observation at west") == [
            "cables dressed and labelled"]  # fmt: skip
    finally:
        standby.stop()
        primary.stop()


def test_refresh_refuses_a_site_whose_old_rows_of_a_table_it_starts_to_replicate_clash(
    pg_federation: Federation,
) -> None:
    """A table replicated from this version on, whose rows from before the site joined share
    ids with the hub's own: the hub could not take them, so that site is not refreshed (and
    is told to be copied into a new database), the others are."""
    fed = pg_federation
    south = fed.sites["south"].server
    south.sql("CREATE DATABASE clash")
    url = south.url("clash")
    open_store(url).close()
    old = ("INSERT INTO review_double_assignments (id, session, assessor, assigned_by, "
           "assigned_at) VALUES (5, '{}', 'bob', 'trainer', 't1')")  # fmt: skip
    south.sql(old.format("clash:S1"), "clash")  # made before it joined
    _add(fed.hub_url, url, "clash")
    try:  # as a federation of the version before had it: the table local at both ends
        south.sql("ALTER PUBLICATION assessengine_site DROP TABLE review_double_assignments",
                  "clash")  # fmt: skip
        fed.hub.sql("ALTER SUBSCRIPTION assessengine_site_clash REFRESH PUBLICATION", "assess")
        fed.hub.sql("DELETE FROM review_double_assignments WHERE id = 5", "assess")
        fed.hub.sql(old.format("north:S0"), "assess")  # the hub's own row 5, before it joined
        refreshed = CliRunner().invoke(main, ["site", "refresh", "--hub", fed.hub_url])
        assert refreshed.exit_code == 1, refreshed.output
        lines = refreshed.output.splitlines()
        assert [line.split(":")[0] for line in lines] == [
            "warning", "site north", "site south"], lines
        assert lines[0].startswith("warning: site clash: not refreshed (postgresql://")
        assert "review_double_assignments holds rows made before the site joined (ids 5..5)" \
            in lines[0]  # fmt: skip
        assert lines[0].endswith("copy the site into a new database first (assessengine "
                                 "copy), then add that)")  # fmt: skip
        assert PASSWORD not in refreshed.output
    finally:
        removed = CliRunner().invoke(main, ["site", "remove", "--hub", fed.hub_url, "--name",
                                            "clash"])  # fmt: skip
        assert removed.exit_code == 0, removed.output
