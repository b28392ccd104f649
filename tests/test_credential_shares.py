"""Share links of credentials (`storage.shares`): the same contract on the in-memory fake,
SQLite and PostgreSQL; the public page's URL (`credential_service.public_credential_url`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from assessengine.credential_service import EngineUrls, public_credential_url
from assessengine.storage.credentials import (
    CredentialStore,
    CredentialStoreError,
    IssuedCredential,
    MemoryCredentialStore,
    SqlCredentialStore,
)
from assessengine.storage.shares import is_public_id, new_public_id
from assessengine.storage.sqlite import SqliteStore
from assessengine.storage.url import open_store

NOW = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
ID_A = "AAAAAAAAAAAAAAAAAAAAAA"
ID_B = "BBBBBBBBBBBBBBBBBBBBBB"


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def credentials(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CredentialStore]:
    if request.param == "memory":
        yield MemoryCredentialStore()
        return
    if request.param == "sqlite":
        url: str = str(tmp_path / "engine.db")
        SqliteStore(url).close()
    else:
        url = request.getfixturevalue("pg_store_url")
        open_store(url).close()
    with SqlCredentialStore(url) as store:
        yield store


def _file(store: CredentialStore, ident: str = "urn:uuid:1") -> IssuedCredential:
    issued = IssuedCredential(id=ident, learner="L-1", policy="forklift-operator",
                              issued_at=NOW, valid_until=None, status=store.allocate_status(),
                              document={"id": ident})  # fmt: skip
    store.save_issued(issued)
    return issued


def test_a_shared_credential_is_found_by_its_public_id(credentials: CredentialStore) -> None:
    _file(credentials)
    share = credentials.share("urn:uuid:1", public_id=ID_A, by="L-1", at=NOW)
    assert (share.public_id, share.credential_id, share.created_by, share.active) == (
        ID_A, "urn:uuid:1", "L-1", True)
    assert credentials.share_of("urn:uuid:1") == share
    found = credentials.shared(ID_A)
    assert found is not None
    assert found.id == "urn:uuid:1"
    assert found.document == {"id": "urn:uuid:1"}


def test_sharing_a_shared_credential_keeps_its_public_id(credentials: CredentialStore) -> None:
    _file(credentials)
    first = credentials.share("urn:uuid:1", public_id=ID_A, by="L-1", at=NOW)
    again = credentials.share("urn:uuid:1", public_id=ID_B, by="admin", at=NOW)
    assert again == first
    assert credentials.shared(ID_B) is None


def test_a_hidden_share_is_gone_and_a_new_share_gets_a_new_id(
    credentials: CredentialStore,
) -> None:
    _file(credentials)
    credentials.share("urn:uuid:1", public_id=ID_A, by="L-1", at=NOW)
    hidden = credentials.hide_share("urn:uuid:1", by="L-1", at=NOW + timedelta(hours=1))
    assert hidden is not None
    assert not hidden.active
    assert hidden.hidden_by == "L-1"
    assert hidden.hidden_at == NOW + timedelta(hours=1)
    assert credentials.shared(ID_A) is None
    assert credentials.share_of("urn:uuid:1") is None
    assert credentials.hide_share("urn:uuid:1", by="L-1", at=NOW) is None  # nothing to hide
    with pytest.raises(CredentialStoreError, match="already used"):
        credentials.share("urn:uuid:1", public_id=ID_A, by="L-1", at=NOW)  # never reused
    again = credentials.share("urn:uuid:1", public_id=ID_B, by="L-1", at=NOW)
    assert credentials.shared(ID_B) is not None
    assert again.public_id == ID_B
    assert credentials.shared(ID_A) is None


def test_an_unknown_public_id_finds_nothing(credentials: CredentialStore) -> None:
    _file(credentials)
    credentials.share("urn:uuid:1", public_id=ID_A, by="L-1", at=NOW)
    assert credentials.shared(ID_B) is None
    assert credentials.shared("") is None


@pytest.mark.parametrize(
    ("credential_id", "public_id", "by", "at", "message"),
    [
        ("urn:uuid:2", ID_A, "L-1", NOW, "no issued credential"),
        ("urn:uuid:1", "short", "L-1", NOW, "not a public id"),
        ("urn:uuid:1", "x" * 21 + "/", "L-1", NOW, "not a public id"),
        ("urn:uuid:1", ID_A, " ", NOW, "name of who"),
        ("urn:uuid:1", ID_A, "L-1", NOW.replace(tzinfo=None), "timezone-aware"),
    ],
)
def test_a_bad_share_is_refused(
    credentials: CredentialStore, credential_id: str, public_id: str, by: str, at: datetime,
    message: str,
) -> None:
    _file(credentials)
    with pytest.raises(CredentialStoreError, match=message):
        credentials.share(credential_id, public_id=public_id, by=by, at=at)
    assert credentials.share_of("urn:uuid:1") is None


def test_hiding_an_unknown_credential_is_refused(credentials: CredentialStore) -> None:
    with pytest.raises(CredentialStoreError, match="no issued credential"):
        credentials.hide_share("urn:uuid:9", by="admin", at=NOW)


def test_shares_survive_reopening_the_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    SqliteStore(path).close()
    with SqlCredentialStore(path) as store:
        _file(store)
        store.share("urn:uuid:1", public_id=ID_A, by="L-1", at=NOW)
    with SqlCredentialStore(path) as store:
        found = store.shared(ID_A)
        assert found is not None
        assert found.id == "urn:uuid:1"


def test_two_shares_at_once_leave_one_active_share(pg_store_url: str) -> None:
    open_store(pg_store_url).close()
    with SqlCredentialStore(pg_store_url) as store:
        _file(store)
        made: list[str] = []
        ids = [new_public_id() for _ in range(8)]

        def share(public_id: str) -> None:
            made.append(store.share("urn:uuid:1", public_id=public_id, by="L", at=NOW).public_id)

        threads = [threading.Thread(target=share, args=(i,)) for i in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(made)) == 1
        assert sum(store.shared(i) is not None for i in ids) == 1


def test_new_public_ids_are_fresh_and_well_formed() -> None:
    ids = {new_public_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_public_id(i) and len(i) == 22 for i in ids)


def test_the_public_page_url_is_under_the_base_url() -> None:
    assert public_credential_url("https://engine.example.org", ID_A) == (
        f"https://engine.example.org/public/credentials/{ID_A}")
    assert public_credential_url("https://engine.example.org/", ID_A) == (
        f"https://engine.example.org/public/credentials/{ID_A}")
    assert EngineUrls("http://127.0.0.1:8080").public_credential(ID_A) == (
        f"http://127.0.0.1:8080/public/credentials/{ID_A}")
