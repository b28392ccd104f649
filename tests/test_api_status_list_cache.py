"""The public status list is signed once per change, not on every anonymous GET: the same bytes
(and a strong ETag) until a revocation, 304 to a matching If-None-Match, Cache-Control as the
list's ttl, a validUntil (signed again, unchanged, once half its validity is gone)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assessengine.adapters import signer
from assessengine.credential_service import STATUS_LIST_TTL_S, STATUS_LIST_VALIDITY

from .test_api_credentials import API, Http, open_http, template  # noqa: F401  (the fixture)

LIST = f"{API}/credentials/status/1"


@pytest.fixture
def issued(template: Path, tmp_path: Path) -> Iterator[tuple[Http, str]]:  # noqa: F811
    for http in open_http(template, tmp_path):
        http.observe_all()
        answer = http.issue()
        assert answer.status_code == 201, answer.text
        yield http, answer.json()["id"]


def count_signatures(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    sign = signer.sign_credential

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return sign(*args, **kwargs)

    monkeypatch.setattr("assessengine.adapters.issuer.sign_credential", counted)
    return calls


def test_anonymous_gets_serve_the_same_signed_bytes(
    issued: tuple[Http, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, _ = issued
    first = http.get(LIST, role=None)
    assert first.status_code == 200, first.text
    signatures = count_signatures(monkeypatch)
    again = [http.get(LIST, role=None) for _ in range(3)]
    assert [a.content for a in again] == [first.content] * 3
    assert {a.headers["etag"] for a in again} == {first.headers["etag"]}
    assert signatures == []  # served as kept, never signed again
    assert first.headers["etag"].startswith('"')  # strong
    assert first.headers["cache-control"] == f"public, max-age={STATUS_LIST_TTL_S}"


def test_a_matching_if_none_match_is_304(issued: tuple[Http, str]) -> None:
    http, _ = issued
    etag = http.get(LIST, role=None).headers["etag"]
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        answer = http.client.get(LIST, headers={"If-None-Match": header})
        assert answer.status_code == 304, header
        assert answer.content == b""
        assert answer.headers["etag"] == etag
    assert http.client.get(LIST, headers={"If-None-Match": '"other"'}).status_code == 200


def test_the_list_has_a_validity_period_and_a_ttl(issued: tuple[Http, str]) -> None:
    http, _ = issued
    document = http.get(LIST, role=None).json()
    start = datetime.fromisoformat(document["validFrom"])
    end = datetime.fromisoformat(document["validUntil"])
    assert end - start == STATUS_LIST_VALIDITY
    assert document["credentialSubject"]["ttl"] == STATUS_LIST_TTL_S * 1000


def test_a_revocation_signs_a_new_list_once(
    issued: tuple[Http, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, credential = issued
    before = http.get(LIST, role=None)
    revoked = http.post(f"{API}/credentials/{credential}/revoke", {"reason": "cheated"})
    assert revoked.status_code == 200, revoked.text
    signatures = count_signatures(monkeypatch)
    after = [http.get(LIST, role=None) for _ in range(3)]
    assert signatures == [1]
    assert after[0].headers["etag"] != before.headers["etag"]
    assert after[0].content != before.content
    assert {a.content for a in after} == {after[0].content}
    stale = http.client.get(LIST, headers={"If-None-Match": before.headers["etag"]})
    assert stale.status_code == 200


def test_an_unchanged_list_is_signed_again_once_half_its_validity_is_gone(
    issued: tuple[Http, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    http, _ = issued
    before = http.get(LIST, role=None).json()
    later = datetime.now(UTC) + STATUS_LIST_VALIDITY / 2 + timedelta(hours=1)
    api = http.client.app.state.credentials  # type: ignore[attr-defined]
    monkeypatch.setattr(api, "_clock", lambda: later)
    renewed = http.get(LIST, role=None).json()
    assert renewed["validUntil"] > before["validUntil"]
    assert renewed["credentialSubject"]["encodedList"] == before["credentialSubject"][
        "encodedList"]
