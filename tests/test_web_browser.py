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
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from assessengine.api import timeline as tl
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService

from .test_web_support import Sessions, fill_store, make_tokens

try:
    from playwright.sync_api import BrowserContext, Page, ViewportSize, expect, sync_playwright
except ImportError:  # reported by the `browser` fixture as a failure, not a skip
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TABLET: ViewportSize = {"width": 1180, "height": 820}  # a 10.9" tablet in landscape (CSS px)
TABLET_PORTRAIT: ViewportSize = {"width": 820, "height": 1180}


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    s: Sessions


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, socket.socket]:
    """uvicorn on 127.0.0.1 and a free port, in a thread; returns once it accepts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                            timeout_graceful_shutdown=3)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread, sock


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("browser") / "store.db"
    sessions = fill_store(db)
    service = ReviewService.open(db)
    try:
        tokens = make_tokens(service)
    finally:
        service.close()
    uv, thread, sock = _serve(create_app(db_path=db))
    try:
        yield Server(f"http://127.0.0.1:{sock.getsockname()[1]}", tokens, sessions)
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not shut down"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    if sync_playwright is None:
        pytest.fail("the Python package 'playwright' is missing: pip install -e '.[test]'")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y "
                    "chromium; .ci/run does it). This test never runs `playwright install`.")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            viewport=TABLET, has_touch=True, locale="en-GB",
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()


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
        rect = page.locator(f'rect.violation[data-criterion="{criterion["id"]}"]')
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
    title = page.locator('rect.violation[data-criterion="loaded_speed"] > title')
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
    form.get_by_role("button", name="Record observation").click()

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
