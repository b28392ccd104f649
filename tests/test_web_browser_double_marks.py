"""The calibration page's inter-rater part in Chromium, over the seeded double marks of
`test_double_marking` (hand-worked kappas 8/17 for the item, 7/12 for ann and bob): each
cell equals the API's number; the second assessor's page shows the blind form and none of
the first marks; axe-core finds no WCAG A/AA violation on either. With
``ASSESSENGINE_SCREENSHOTS=1`` the calibration page's screenshot goes to docs/img."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from assessengine.api.app import create_app
from assessengine.api.service import ReviewService

from .browser_support import Server, axe_violations, docs_screenshot, serving, sync_playwright
from .test_cohorts import fill
from .test_double_marking import ITEM, SECRET, seed, seed_client

if sync_playwright is not None:
    from playwright.sync_api import BrowserContext, Page


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("browser-double-marks") / "engine.db"
    ids = fill(db)
    app = create_app(db_path=db)
    service: ReviewService = app.state.service
    tokens = {}
    for name, role in (("trainer", "trainer"), ("ann", "assessor"), ("bob", "assessor"),
                       ("carl", "assessor")):  # fmt: skip
        _, tokens[name] = service.create_token(name=name, role=role, learner=None,
                                               actor="test")  # fmt: skip
    with TestClient(app) as client:
        seed_client(service, client)
        seed(service, ids, tokens)
    with serving(create_app(db_path=db)) as url:
        yield Server(url, tokens, ids)  # type: ignore[arg-type]


def _signin(page: Page, server: Server, name: str, start: str) -> None:
    page.goto(f"{server.url}/signin?next={start}")
    page.fill("#token", server.tokens[name])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_calibration_page_shows_the_inter_rater_kappas(
    server: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, server, "trainer", "/calibration")
    assert page.url.endswith("/calibration")
    api = page.request.get(f"{server.url}/api/v1/calibration/inter-rater",
                           headers={"Authorization": f"Bearer {server.tokens['trainer']}"}
                           ).json()  # fmt: skip
    row = page.locator(f"#inter-rater-items tr[data-criterion='{ITEM}']")
    assert row.locator(".kappa").inner_text() == "0.47" == f"{api['items'][0]['kappa']:.2f}"
    assert row.locator(".pairs").inner_text() == "12"
    assert row.locator(".agreed").inner_text() == "9"
    pair = page.locator("#inter-rater-pairs tr[data-assessors='ann bob']")
    assert pair.locator(".kappa").inner_text() == "0.58"
    few = page.locator("#inter-rater-pairs tr[data-assessors='ann carl']")
    assert "only 2 pairs" in few.inner_text()
    assert page.locator("#inter-rater-summary").get_attribute("data-sessions") == "12"
    assert axe_violations(page) == []
    docs_screenshot(page, "calibration")


def test_the_second_assessor_marks_blind_in_the_page(
    server: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    sid = server.s[12]  # type: ignore[index]
    _signin(page, server, "carl", "/review")
    page.get_by_role("link", name=f"Session {sid}").click()
    page.wait_for_load_state()
    text = page.content()
    assert SECRET not in text
    form = page.locator("form.double-marks")
    assert form.is_visible()
    assert page.locator("form[action$='/observations']").count() == 0
    assert axe_violations(page) == []
