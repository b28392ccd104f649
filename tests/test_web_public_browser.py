"""The public page of a shared credential in a real browser (headless Chromium, as
`test_web_browser`), against a real uvicorn server over a real SQLite file: opened without
signing in, it shows the badge, the verification checked now, the evidence summary, the JSON
download and the LinkedIn link; the learner hides it from their credential page and the link
is dead.

With ``ASSESSENGINE_SCREENSHOTS=1`` the test writes ``docs/img/public-credential.png``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.api.service.credentials import CredentialSettings
from assessengine.api.service.models import ObservationIn
from assessengine.storage.sqlite import SqliteStore

from .browser_support import docs_screenshot, listening, serving, sync_playwright
from .test_api_credentials import MINE, OBSERVED, POLICY, record_template
from .test_api_support import LEARNER, make_tokens

if sync_playwright is not None:
    from playwright.sync_api import BrowserContext, expect



@dataclass
class Issued:
    url: str
    tokens: dict[str, str]
    document: dict[str, Any]


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    """A served store where LEARNER holds a forklift-operator credential, issued through the
    API (the observed criterion recorded by an assessor first)."""
    db = tmp_path_factory.mktemp("public-browser") / "engine.db"
    with SqliteStore(db) as store:
        record_template(store)
    service = ReviewService.open(db)
    try:
        tokens = make_tokens(service)
        who = service.authenticate(tokens["assessor"])
        for session in MINE:
            for criterion in OBSERVED:
                service.observe(who, session, ObservationIn(criterion=criterion,
                                                            verdict="pass", note="seen"))
    finally:
        service.close()
    sock = listening()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(db_path=db, credentials=CredentialSettings(base_url=base))
    with serving(app, sock) as url:
        answer = httpx.post(f"{url}/api/v1/credentials/issue",
                            json={"learner": LEARNER, "policy": POLICY},
                            headers={"Authorization": f"Bearer {tokens['assessor']}"})
        assert answer.status_code == 201, answer.text
        yield Issued(url, tokens, answer.json())


def _share_url(issued: Issued) -> str:
    answer = httpx.get(
        f"{issued.url}/api/v1/credentials/{quote(issued.document['id'], safe='')}/share",
        headers={"Authorization": f"Bearer {issued.tokens['learner']}"})
    assert answer.status_code == 200, answer.text
    url: str = answer.json()["url"]
    return url


def test_the_public_page_opens_without_signing_in_and_the_learner_can_hide_it(
    issued: Issued, browser: BrowserContext
) -> None:
    url = _share_url(issued)
    page = browser.new_page()
    page.goto(url)
    achievement = issued.document["credentialSubject"]["achievement"]
    expect(page.locator("h1")).to_have_text(achievement["name"])
    expect(page.locator("#verification")).to_have_attribute("data-valid", "true")
    for check in ("signature", "issuer", "validity", "status"):
        expect(page.locator(f'tr[data-check="{check}"]')).to_have_attribute("data-status", "ok")
    expect(page.locator("#evidence article.evidence")).to_have_count(len(MINE))
    expect(page.locator("li.competency")).to_have_count(len(achievement["alignment"]))
    assert LEARNER not in page.content()
    linkedin = page.locator("#add-to-linkedin").get_attribute("href") or ""
    query = parse_qs(urlsplit(linkedin).query)
    assert (query["startTask"], query["certUrl"], query["certId"]) == (
        ["CERTIFICATION_NAME"], [url], [issued.document["id"]])
    with page.expect_download() as downloading:
        page.locator("#download-json").click()
    saved = downloading.value.path()
    assert json.loads(Path(saved).read_text(encoding="utf-8")) == issued.document
    docs_screenshot(page, "public-credential")

    mine = browser.new_page()
    mine.goto(f"{issued.url}/signin?next=/learners/{LEARNER}/credentials/"
              f"{quote(issued.document['id'], safe='')}")
    mine.fill("#token", issued.tokens["learner"])
    mine.get_by_role("button", name="Sign in").click()
    expect(mine.locator("#share")).to_have_attribute("data-shared", "true")
    expect(mine.locator("a.public-link")).to_have_text(url)
    mine.get_by_role("button", name="Hide the public page").click()
    expect(mine.locator("#share")).to_have_attribute("data-shared", "false")

    gone = page.goto(url)
    assert gone is not None
    assert gone.status == 404
    expect(page.locator("h1")).to_have_text("Not found")

    mine.get_by_role("button", name="Share a public page").click()
    expect(mine.locator("#share")).to_have_attribute("data-shared", "true")
    fresh = mine.locator("a.public-link").inner_text()
    assert fresh != url
    again = page.goto(fresh)
    assert again is not None
    assert again.status == 200
