"""The web pages in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright) against a real uvicorn server on 127.0.0.1 over a real SQLite file of scored,
simulated sessions.

An assessor signs in with a token, opens a failed session from the review queue, finds each
violation interval drawn where the report's evidence says (in the SVG's attributes and on the
laid-out page), records an in-field observation, and sees the outcome change.

Screenshots go to pytest's tmp dir, or to ``$ASSESSENGINE_WEB_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assessengine.api import timeline as tl
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService

from .browser_support import TABLET_PORTRAIT, Server, serving, sync_playwright
from .test_web_support import fill_store, make_tokens

if sync_playwright is not None:
    from playwright.sync_api import BrowserContext, Page, expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("browser") / "store.db"
    sessions = fill_store(db)
    service = ReviewService.open(db)
    try:
        tokens = make_tokens(service)
    finally:
        service.close()
    with serving(create_app(db_path=db)) as url:
        yield Server(url, tokens, sessions)


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ASSESSENGINE_WEB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _session_json(page: Page, server: Server, sid: str) -> dict[str, Any]:
    """The session's review from the JSON API (the same evidence as the stored report)."""
    answer = page.request.get(f"{server.url}/api/v1/sessions/{sid}",
                              headers={"Authorization": f"Bearer {server.tokens['assessor']}"})
    assert answer.ok, answer.text()
    data: dict[str, Any] = answer.json()
    return data


def _check_violations(page: Page, detail: dict[str, Any]) -> list[str]:
    """Every failed criterion's evidence interval is a rect at the right place, both in SVG
    coordinates and on the laid-out page. Returns the criteria checked."""
    svg = page.locator("svg.timeline")
    t_from = float(svg.get_attribute("data-t-from") or "nan")
    t_to = float(svg.get_attribute("data-t-to") or "nan")
    x_left = float(svg.get_attribute("data-x-left") or "nan")
    x_right = float(svg.get_attribute("data-x-right") or "nan")
    assert t_from == 0.0
    assert t_to == detail["close_t"]

    def x(t: float) -> float:
        return x_left + (t - t_from) / (t_to - t_from) * (x_right - x_left)

    box = svg.bounding_box()
    assert box is not None
    view_width = float((svg.get_attribute("viewBox") or "").split()[2])
    px = box["width"] / view_width  # CSS pixels per SVG unit
    checked = []
    for criterion in detail["criteria"]:
        if criterion["verdict"] != "fail" or criterion["evidence"]["t_start"] is None:
            continue
        if criterion["evidence"].get("contributing"):  # drawn as its contributing intervals
            continue  # (tests/test_web_session_browser.py)
        ev = criterion["evidence"]
        rect = page.locator(f'svg.timeline rect.violation[data-criterion="{criterion["id"]}"]')
        expect(rect).to_have_count(1)
        assert float(rect.get_attribute("data-t-start") or "nan") == ev["t_start"]
        assert float(rect.get_attribute("data-t-end") or "nan") == ev["t_end"]
        assert float(rect.get_attribute("x") or "nan") == pytest.approx(x(ev["t_start"]), abs=0.01)
        right = float(rect.get_attribute("x") or "nan") + float(rect.get_attribute("width") or "0")
        assert right == pytest.approx(max(x(ev["t_end"]), x(ev["t_start"]) + tl.MIN_RECT_PX),
                                      abs=0.02)  # fmt: skip
        drawn = rect.bounding_box()
        assert drawn is not None
        assert drawn["x"] == pytest.approx(box["x"] + x(ev["t_start"]) * px, abs=1.0)
        checked.append(criterion["id"])
    return checked


def test_assessor_reviews_a_failed_session_in_the_browser(
    server: Server, browser: BrowserContext, tmp_path: Path
) -> None:
    shots = _shots(tmp_path)
    page = browser.new_page()
    page.goto(f"{server.url}/review")

    # not signed in: the sign-in form; the token goes into an HttpOnly cookie
    expect(page.locator("h1")).to_have_text("Sign in")
    page.fill("#token", server.tokens["assessor"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/review")
    cookie = next(c for c in browser.cookies() if c["name"] == "ae_token")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("ae_token") == -1

    # the queue: the failed speeder session is there; open it
    queue = page.locator("a.queue-item")
    expect(queue).to_have_count(5)
    page.screenshot(path=shots / "review-queue.png", full_page=True)
    page.locator(f'a.queue-item[data-session="{server.s.speeder}"]').click()
    page.wait_for_url(f"{server.url}/sessions/{server.s.speeder}")
    expect(page.locator("#outcome")).to_have_attribute("data-outcome", "fail")

    # each violation is drawn where the evidence says (compared with the API's JSON)
    detail = _session_json(page, server, server.s.speeder)
    assert sorted(_check_violations(page, detail)) == ["loaded_speed"]
    loaded = next(c for c in detail["criteria"] if c["id"] == "loaded_speed")
    title = page.locator('svg.timeline rect.violation[data-criterion="loaded_speed"] > title')
    expect(title).to_contain_text("loaded_speed failed")
    assert loaded["evidence"]["t_start"] < loaded["evidence"]["t_end"]
    page.screenshot(path=shots / "session-failed.png", full_page=True)

    # a session with a failed criterion that waits for an in-field observation
    page.goto(f"{server.url}/review")
    page.locator(f'a.queue-item[data-session="{server.s.no_tilt}"]').click()
    page.wait_for_url(f"{server.url}/sessions/{server.s.no_tilt}")
    outcome = page.locator("#outcome")
    expect(outcome).to_have_attribute("data-outcome", "incomplete")
    before = _session_json(page, server, server.s.no_tilt)
    assert _check_violations(page, before) == ["mast_tilted_back"]

    row = page.locator('tr[data-criterion="looks_before_reversing"]')
    expect(row).to_have_attribute("data-verdict", "pending")
    form = row.locator("details.observe form")
    expect(form).to_be_visible()  # open: the observation is pending
    form.locator("label.choice-pass").click()
    note = "Turned to look before and while reversing, both times."
    form.locator("textarea[name=note]").fill(note)
    form.get_by_role("button", name="Save observation").click()

    # back on the session page: the outcome changed at once
    page.wait_for_url(f"{server.url}/sessions/{server.s.no_tilt}?*")
    expect(outcome).to_have_attribute("data-outcome", "pass")
    expect(outcome.locator(".outcome").first).to_have_text("pass")
    expect(page.locator(".notice.ok")).to_contain_text("Observation recorded")
    expect(row).to_have_attribute("data-verdict", "pass")
    expect(row).to_contain_text(note)
    after = _session_json(page, server, server.s.no_tilt)
    assert after["machine"]["outcome"] == "pass"
    assert after["machine"]["score"] > before["machine"]["score"]
    page.screenshot(path=shots / "session-observed.png", full_page=True)


def test_session_page_fits_a_tablet_in_portrait_with_large_touch_targets(
    server: Server, browser: BrowserContext, tmp_path: Path
) -> None:
    page = browser.new_page()
    page.set_viewport_size(TABLET_PORTRAIT)
    page.goto(f"{server.url}/signin")
    page.fill("#token", server.tokens["admin"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/review")
    page.goto(f"{server.url}/sessions/{server.s.speeder}")
    # nothing wider than the screen: no sideways scrolling, no zoom needed
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET_PORTRAIT["width"]
    font = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert font >= 16
    page.locator('tr[data-criterion="loaded_speed"] details.override summary').click()
    targets = page.locator("button:visible, label.choice:visible, details > summary:visible")
    assert targets.count() > 5
    for k in range(targets.count()):
        box = targets.nth(k).bounding_box()
        assert box is not None
        assert box["height"] >= 44, targets.nth(k).inner_text()
    page.screenshot(path=_shots(tmp_path) / "session-portrait.png", full_page=True)
