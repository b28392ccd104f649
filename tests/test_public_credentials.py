"""The public page of a shared credential and the public IRIs inside newly issued credentials
(`api.web_public`, `api.service.public_credentials`): content negotiation, no private data,
hiding and sharing again, the LinkedIn link, and the refusals that must not tell whether a
credential exists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from assessengine.adapters.baking import extract
from assessengine.core.sharing import linkedin_add_to_profile_url, negotiate

from . import test_api_credentials
from .test_api_credentials import API, BASE, LEARNER, Http, _problem, open_http
from .test_web_support import csrf_of

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
LD = {"Accept": "application/ld+json"}
template = test_api_credentials.template  # the stored sessions (a module-scoped fixture)


@pytest.fixture
def issued(template: Path, tmp_path: Path) -> Iterator[tuple[Http, dict[str, Any]]]:
    for http in open_http(template, tmp_path):
        http.observe_all()
        answer = http.issue()
        assert answer.status_code == 201, answer.text
        yield http, answer.json()


def _path(url: str) -> str:
    assert url.startswith(BASE), url
    return url.removeprefix(BASE)


def _share(http: Http, document: dict[str, Any], role: str = "learner") -> dict[str, Any]:
    answer = http.get(f"{API}/credentials/{quote(document['id'], safe='')}/share", role)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _get(http: Http, path: str, accept: dict[str, str] | None = None) -> Any:
    return http.client.get(path, headers=accept or {})


# ============================================================================ the IRIs


def test_subject_and_evidence_iris_of_a_new_credential_are_public_and_negotiated(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, document = issued
    subject = document["credentialSubject"]["id"]
    uuid = document["id"].removeprefix("urn:uuid:")
    assert subject == f"{BASE}/public/subjects/{uuid}"
    assert [e["id"] for e in document["evidence"]] == [
        f"{BASE}/public/evidence/{uuid}/{s}" for s in ("S-1", "S-2", "F-1")]
    as_json = _get(http, _path(subject), JSON)
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["vary"] == "Accept"
    body = as_json.json()
    assert body["id"] == subject
    assert body["achievement"] == document["credentialSubject"]["achievement"]
    assert _get(http, _path(subject), LD).headers["content-type"] == "application/ld+json"
    page = _get(http, _path(subject), HTML)
    assert page.headers["content-type"].startswith("text/html")
    assert "Counterbalance forklift operator" in page.text
    for entry in document["evidence"]:
        found = _get(http, _path(entry["id"]), LD)
        assert found.status_code == 200
        assert found.json() == {"@context": document["@context"], **entry}
        shown = _get(http, _path(entry["id"]), HTML)
        assert entry["name"] in shown.text
        assert "Chain head" in shown.text
    for answer in (as_json, page, found, shown):
        assert LEARNER not in answer.text  # no learner id, anywhere


def test_the_achievement_iri_is_negotiated_and_describes_every_result(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, document = issued
    achievement = document["credentialSubject"]["achievement"]
    path = _path(achievement["id"])
    as_json = _get(http, path, JSON).json()
    described = {d["id"] for d in as_json["resultDescription"]}
    pointed = {r["resultDescription"] for r in document["credentialSubject"]["result"]}
    assert pointed <= described
    assert as_json["resultDescription"] == achievement["resultDescription"]
    assert _get(http, path, LD).headers["content-type"] == "application/ld+json"
    page = _get(http, path, HTML)
    assert page.headers["content-type"].startswith("text/html")
    assert achievement["name"] in page.text
    assert "What its results record" in page.text
    assert _get(http, path).headers["content-type"].startswith("text/html")  # no Accept


# ============================================================================ the page


def test_the_public_page_shows_the_badge_verification_downloads_and_linkedin(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, document = issued
    share = _share(http, document)
    assert share["shared"] is True
    url = share["url"]
    assert url == f"{BASE}/public/credentials/{share['public_id']}"
    page = _get(http, _path(url), HTML)
    assert page.status_code == 200
    text = page.text
    assert document["credentialSubject"]["achievement"]["name"] in text
    assert 'data-valid="true"' in text
    for check in ("proof", "signature", "issuer", "schema", "validity", "status"):
        assert f'data-check="{check}" data-status="ok"' in text
    assert "Pre-use inspection" in text  # a competency
    assert "Field assessment F-1" in text  # the evidence summary
    assert LEARNER not in text
    assert 'href="/sessions/' not in text  # no links into the private pages
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-cache"

    download = _get(http, _path(url) + "/credential.json")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.json() == document
    assert _get(http, _path(url), JSON).json() == document
    assert _get(http, _path(url), LD).json() == document

    for kind in ("png", "svg"):  # the badge, the credential baked in (Open Badges baking)
        assert f'href="{_path(url)}/badge.{kind}"' in text
        baked = _get(http, f"{_path(url)}/badge.{kind}")
        assert baked.status_code == 200
        assert baked.headers["content-disposition"].startswith("attachment;")
        assert extract(baked.content) == (kind, document)
    assert '<img class="badge-image" src="/api/v1/achievements/forklift-operator/image.png"' in text
    assert _get(http, f"{_path(url)}/badge.gif").status_code == 404

    linkedin = text.split('id="add-to-linkedin" href="', 1)[1].split('"', 1)[0]
    query = parse_qs(urlsplit(linkedin.replace("&amp;", "&")).query)
    issued_at = datetime.fromisoformat(document["validFrom"].replace("Z", "+00:00"))
    until = datetime.fromisoformat(document["validUntil"].replace("Z", "+00:00"))
    assert query == {
        "startTask": ["CERTIFICATION_NAME"],
        "name": [document["credentialSubject"]["achievement"]["name"]],
        "organizationName": ["assessengine"],
        "issueYear": [str(issued_at.year)], "issueMonth": [str(issued_at.month)],
        "expirationYear": [str(until.year)], "expirationMonth": [str(until.month)],
        "certUrl": [url], "certId": [document["id"]],
    }


@pytest.mark.parametrize("accept", ["image/png", "garbage", "text/html;q=abc", "*/*",
                                    "application/json;q=0", "", "text/*"])
def test_an_unusual_accept_gets_the_page(
    issued: tuple[Http, dict[str, Any]], accept: str,
) -> None:
    http, document = issued
    answer = _get(http, _path(_share(http, document)["url"]), {"Accept": accept})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")


def test_a_revoked_credential_shows_revoked_without_the_reason(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, document = issued
    url = _share(http, document)["url"]
    revoked = http.post(f"{API}/credentials/{document['id']}/revoke",
                        {"reason": "a private matter of the learner"})  # fmt: skip
    assert revoked.status_code == 200
    text = _get(http, _path(url), HTML).text
    assert 'data-valid="false"' in text
    assert 'data-check="status" data-status="failed"' in text
    assert "Revoked by its issuer on" in text
    assert "/badge.svg" not in text
    assert _get(http, _path(url) + "/badge.svg").status_code == 404
    assert "private matter" not in text
    assert "admin-1" not in text


# ============================================================================ hiding


def test_a_hidden_credential_answers_nothing_and_sharing_again_makes_a_new_link(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, document = issued
    first = _share(http, document)
    paths = [_path(first["url"]), _path(first["url"]) + "/credential.json",
             _path(first["url"]) + "/badge.svg",
             _path(document["credentialSubject"]["id"]),
             *(_path(e["id"]) for e in document["evidence"])]  # fmt: skip
    assert all(_get(http, p, JSON).status_code == 200 for p in paths)
    target = f"{API}/credentials/{quote(document['id'], safe='')}/share"

    hidden = http.client.delete(target, headers=http.headers("learner"))
    assert hidden.status_code == 200, hidden.text
    assert hidden.json()["shared"] is False
    never = _get(http, "/public/credentials/AAAAAAAAAAAAAAAAAAAAAA", JSON)
    for path in paths:
        gone = _get(http, path, JSON)
        assert gone.status_code == 404
        assert gone.json()["detail"] == never.json()["detail"]
        assert _get(http, path, HTML).status_code == 404
    assert http.client.delete(target, headers=http.headers("learner")).status_code == 200

    again = http.client.put(target, headers=http.headers("learner")).json()
    assert again["shared"] is True
    assert again["public_id"] != first["public_id"]
    assert _get(http, _path(again["url"]), JSON).json() == document
    assert _get(http, paths[0], JSON).status_code == 404  # the old link stays dead
    assert _get(http, paths[3], JSON).status_code == 200  # the IRIs follow the share
    kept = http.client.put(target, headers=http.headers("admin")).json()
    assert kept["public_id"] == again["public_id"]  # sharing a shared one changes nothing
    actions = [e["action"] for e in http.get(f"{API}/audit?limit=50").json()["items"]]
    assert actions.count("credential.hide") == 1
    assert actions.count("credential.share") == 1


def test_sharing_is_the_learners_and_an_admins(issued: tuple[Http, dict[str, Any]]) -> None:
    http, document = issued
    target = f"{API}/credentials/{quote(document['id'], safe='')}/share"
    for role, status in (("assessor", 403), ("trainer", 403), ("learner2", 404), (None, 401)):
        answer = http.client.put(target, headers=http.headers(role))
        assert answer.status_code == status, (role, answer.text)
        answer = http.client.delete(target, headers=http.headers(role))
        assert answer.status_code == status, (role, answer.text)
    assert http.get(target, "learner2").status_code == 404
    assert http.get(target, "assessor").json()["shared"] is True
    _problem(http.client.put(f"{API}/credentials/urn:uuid:nope/share",
                             headers=http.headers("admin")), 404, "not-found")  # fmt: skip


@pytest.mark.parametrize("public_id", [
    "AAAAAAAAAAAAAAAAAAAAAA", "short", "x" * 65, "%00", "a b c d e f g h i j k",
])
def test_an_unknown_or_malformed_public_id_is_one_404(
    issued: tuple[Http, dict[str, Any]], public_id: str,
) -> None:
    http, _ = issued
    path = f"/public/credentials/{quote(public_id, safe='')}"
    answer = _get(http, path, JSON)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"].startswith("nothing is shared here")
    assert _get(http, path, HTML).status_code == 404
    assert _get(http, f"/public/subjects/{quote(public_id, safe='')}", JSON).status_code == 404


def test_a_public_id_with_slashes_reaches_no_page(issued: tuple[Http, dict[str, Any]]) -> None:
    http, _ = issued
    for path in ("/public/credentials/..%2F..%2Fetc%2Fpasswd", "/public/credentials/a/b/c",
                 "/public/credentials/.."):
        assert _get(http, path, JSON).status_code == 404


def test_the_learner_page_shares_and_hides_through_its_form(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, document = issued
    page_path = f"/learners/{LEARNER}/credentials/{quote(document['id'], safe='')}"
    http.client.cookies.set("ae_token", http.tokens["learner"])
    page = http.client.get(page_path)
    assert 'data-shared="true"' in page.text
    url = _share(http, document)["url"]
    assert url in page.text
    hide = http.client.post(f"{page_path}/share", data={"csrf": csrf_of(page.text), "hide": "1"},
                            follow_redirects=False)  # fmt: skip
    assert hide.status_code == 303
    page = http.client.get(page_path)
    assert 'data-shared="false"' in page.text
    assert _get(http, _path(url)).status_code == 404
    again = http.client.post(f"{page_path}/share", data={"csrf": csrf_of(page.text)},
                             follow_redirects=False)  # fmt: skip
    assert again.status_code == 303
    assert _share(http, document)["url"] != url


# ============================================================================ pure parts


@pytest.mark.parametrize(("accept", "kind"), [
    (None, "html"), ("", "html"), ("*/*", "html"), ("text/html", "html"),
    ("application/json", "json"), ("application/ld+json", "ld+json"),
    ("application/vc+ld+json", "ld+json"),
    ("application/json, */*;q=0.1", "json"), ("text/html;q=0.5, application/json", "json"),
    ("application/json;q=0.5, text/html;q=0.5", "html"), ("text/html;q=0, */*", "ld+json"),
    ("image/png", "html"), ("nonsense", "html"), ("application/json;q=2", "html"),
    ("application/*", "ld+json"), (", ,;q=,", "html"),
])
def test_negotiate_picks_the_preferred_representation(accept: str | None, kind: str) -> None:
    assert negotiate(accept) == kind


def test_the_linkedin_link_leaves_out_an_expiry_it_does_not_have() -> None:
    link = linkedin_add_to_profile_url(
        name="Forklift & more", organization_name="ACME", organization_id="12345",
        issued=datetime(2026, 3, 1, tzinfo=UTC), expires=None,
        cert_url="https://e.example/public/credentials/X", cert_id="urn:uuid:1",
    )  # fmt: skip
    assert link.startswith("https://www.linkedin.com/profile/add?")
    query = parse_qs(urlsplit(link).query)
    assert query["name"] == ["Forklift & more"]
    assert query["organizationId"] == ["12345"]
    assert "organizationName" not in query
    assert "expirationYear" not in query
    assert (query["issueYear"], query["issueMonth"]) == (["2026"], ["3"])


def test_a_new_credential_is_found_by_its_json_document(
    issued: tuple[Http, dict[str, Any]],
) -> None:
    http, document = issued
    text = _get(http, _path(_share(http, document)["url"]) + "/credential.json").text
    assert json.loads(text) == document
