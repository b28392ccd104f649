"""The Open Badges API's consent page (`api/web_oauth.py`) in Debian's Chromium: a host
(authlib's OAuth2Client) sends the learner's browser to the authorization URL; the browser is
sent to sign in first, comes back to the consent page (axe-core: no WCAG violation; the host's
name, each scope in words and the origin the answer goes to), and the learner allows with the
keyboard (Tab to **Allow**, Enter); nothing on the card sticks out of it (the long scope
IRIs wrap): the browser lands on the host's redirect URI with a code
that the host exchanges for a token that reads the learner's credentials. Denying sends
``error=access_denied`` back instead, and no code."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.httpx_client import OAuth2Client
from playwright.sync_api import BrowserContext, Page

from assessengine.api.oauth import CREDENTIAL_READ, PROFILE_READ

from .browser_support import axe_violations, docs_screenshot
from .test_api_credentials import template  # noqa: F401 (fixture)
from .test_open_badges_api import Engine, engine, verifier  # noqa: F401 (fixture)

CALLBACK = "http://127.0.0.1:8631/callback"
"""The host's redirect URI: never listened on (Chromium refuses port 9, the API tests' one);
the test reads the browser's request to it."""


def _sent_to_host(page: Page, act: Callable[[], None]) -> str:
    """The URL of the host's redirect URI that `act` sends the browser to (the request is
    read as it leaves; the host is not running)."""
    with page.expect_request(lambda request: request.url.startswith(CALLBACK + "?")) as sent:
        act()
    return sent.value.url


def _host(engine: Engine) -> OAuth2Client:  # noqa: F811
    """A newly registered host whose redirect URI is `CALLBACK`."""
    host = engine.host(engine.register(redirect_uris=[CALLBACK]))
    host.redirect_uri = CALLBACK
    return host


def _consent_page(page: Page, engine: Engine, url: str) -> None:  # noqa: F811
    """Open the host's authorization URL, sign in as the learner where sent, and wait for the
    consent page."""
    page.goto(url)
    assert urlsplit(page.url).path == "/signin"
    page.fill("#token", engine.tokens["learner"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/oauth/authorize?**")


OVERFLOWING = """(card) => {
  const edge = card.getBoundingClientRect().right;
  return [...card.querySelectorAll('*')].filter(el => el.getBoundingClientRect().right > edge)
    .map(el => el.textContent.slice(0, 60));
}"""


def _overflowing(page: Page) -> list[str]:
    """The elements of the consent card that stick out of it on the right (a scope IRI)."""
    found: list[str] = page.locator("section.consent").evaluate(OVERFLOWING)
    return found


def _tab_to(page: Page, name: str, most: int = 60) -> None:
    target = page.get_by_role("button", name=name)
    for _ in range(most):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    pytest.fail(f"the {name} button never got the focus by Tab")


def test_the_learner_allows_a_host_by_keyboard_and_the_host_reads_the_credentials(
    engine: Engine, browser: BrowserContext  # noqa: F811
) -> None:
    host = _host(engine)
    code_verifier = verifier()
    url, state = host.create_authorization_url(engine.flows["authorizationUrl"],
                                               code_verifier=code_verifier)  # fmt: skip
    page = browser.new_page()
    _consent_page(page, engine, url)

    assert page.get_by_role("heading", level=1).inner_text() == (
        "Allow Wallet to read your record?")
    listed = page.locator("section.consent li code").all_inner_texts()
    assert sorted(listed) == sorted([CREDENTIAL_READ, PROFILE_READ])
    assert "You will be sent back to http://127.0.0.1:8631." in page.locator(
        "section.consent").inner_text()  # the host's origin
    assert axe_violations(page) == []
    assert _overflowing(page) == []
    docs_screenshot(page, "oauth-consent")

    _tab_to(page, "Allow")
    location = _sent_to_host(page, lambda: page.keyboard.press("Enter"))
    answer = parse_qs(urlsplit(location).query)
    assert answer["state"] == [state]
    token = host.fetch_token(engine.flows["tokenUrl"], authorization_response=location,
                             code_verifier=code_verifier)  # fmt: skip
    assert set(token["scope"].split()) == {CREDENTIAL_READ, PROFILE_READ}
    credentials = host.get(f"{engine.url}/ims/ob/v3p0/credentials")
    assert credentials.status_code == 200, credentials.text
    assert len(credentials.json()["credential"]) == 1


def test_the_learner_denies_and_the_host_gets_access_denied_and_no_code(
    engine: Engine, browser: BrowserContext  # noqa: F811
) -> None:
    host = _host(engine)
    url, _ = host.create_authorization_url(engine.flows["authorizationUrl"],
                                           code_verifier=verifier())  # fmt: skip
    page = browser.new_page()
    _consent_page(page, engine, url)
    location = _sent_to_host(page, page.get_by_role("button", name="Deny").click)
    answer = parse_qs(urlsplit(location).query)
    assert answer["error"] == ["access_denied"]
    assert "code" not in answer
