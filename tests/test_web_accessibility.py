"""The web pages are accessible (WCAG 2.1 AA), in a real browser (headless Chromium against a
real uvicorn server over a real SQLite file, as tests/test_web_browser.py):

- axe-core (the copy the `axe-playwright-python` package ships) finds no violation of its
  wcag2a, wcag2aa, wcag21a and wcag21aa rules on any page, in any state: signed out, the queue
  and the search (with and without results), every kind of session page (failed, pending, its
  forms open, a refused entry, after an observation and an override, zoomed, printable, still
  running, as the learner sees it), the dashboard, calibration, the learner page, the
  credential pages (a learner's, one credential, its public page, the expiring ones), the
  rubric pages, the Open Badges API's consent page, an error page;
- the session page by keyboard alone: tab to a criterion's override, choose, write, send; the
  focus lands on the confirmation, which names the criterion and the new outcome;
- the session page at 200 % zoom (the viewport halved, twice the device scale): no sideways
  scrolling of the page, the whole timeline in view, no text smaller than `MIN_TEXT_PX`.

With ``ASSESSENGINE_SCREENSHOTS=1`` the zoomed page's screenshot goes to docs/img.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from assessengine.api.app import create_app
from assessengine.api.oauth import CREDENTIAL_READ

from .browser_support import (
    TABLET,
    Server,
    axe_violations,
    docs_screenshot,
    serving,
    sync_playwright,
)
from .test_web_support import (
    ELIGIBLE,
    add_eligible_and_tokens,
    fill_store,
)

if sync_playwright is not None:
    from playwright.sync_api import BrowserContext, Page, ViewportSize, expect

REPO = Path(__file__).resolve().parents[1]
# a draft of a rubric not published yet: its page has nothing to score against (fast)
DRAFT = (REPO / "rubrics" / "forklift-load-handling.yaml").read_text(encoding="utf-8").replace(
    "rubric: forklift-load-handling", "rubric: forklift-new")  # fmt: skip
MIN_TEXT_PX = 12.0  # the smallest text on the page at 200 % zoom, in CSS px of the zoomed page


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`fill_store`'s sessions and ELIGIBLE's three observed passes (they meet a policy)."""
    db = tmp_path_factory.mktemp("a11y") / "store.db"
    sessions = fill_store(db)
    tokens = add_eligible_and_tokens(db)
    with serving(create_app(db_path=db)) as url:
        yield Server(url, tokens, sessions)


def _signin(page: Page, site: Server, role: str) -> None:
    page.goto(f"{site.url}/signin")
    page.fill("#token", site.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


class Audit:
    """axe-core's violations per page state, gathered so that one test reports them all."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.found: dict[str, list[str]] = {}
        self.states: list[str] = []

    def check(self, state: str) -> None:
        self.states.append(state)
        violations = axe_violations(self.page)
        if violations:
            self.found[state] = violations

    def visit(self, state: str, url: str) -> None:
        self.page.goto(url)
        self.check(state)

    def assert_clean(self) -> None:
        assert not self.found, "\n".join(
            f"{state}:\n  " + "\n  ".join(v) for state, v in self.found.items())


# ========================================================================================= axe


def test_signed_out_pages_have_no_wcag_violations(site: Server, browser: BrowserContext) -> None:
    audit = Audit(browser.new_page())
    audit.visit("sign-in", f"{site.url}/signin")
    audit.page.fill("#token", "not-a-token")
    audit.page.get_by_role("button", name="Sign in").click()
    expect(audit.page.locator(".notice.error")).to_be_visible()
    audit.check("sign-in refused")
    audit.assert_clean()


def test_staff_pages_have_no_wcag_violations(site: Server, browser: BrowserContext) -> None:
    audit = Audit(browser.new_page())
    _signin(audit.page, site, "admin")
    url = site.url
    audit.visit("review queue", f"{url}/review")
    audit.visit("review queue, one reason", f"{url}/review?reason=critical")
    audit.visit("review queue, nothing left", f"{url}/review?learner=nobody")
    audit.visit("search", f"{url}/search")
    audit.visit("search, no match", f"{url}/search?learner=nobody")
    audit.visit("dashboard", f"{url}/dashboard")
    audit.visit("calibration", f"{url}/calibration")
    audit.visit("rubric page", f"{url}/rubrics/forklift-load-handling")
    audit.visit("rubric versions", f"{url}/rubric-versions")
    audit.page.set_input_files("input[type=file]", files=[{
        "name": "forklift-v2.yaml", "mimeType": "application/yaml", "buffer": DRAFT.encode()}])
    audit.page.get_by_role("button", name="See what it changes").click()
    expect(audit.page.locator("#publish-form")).to_be_visible()
    audit.check("rubric draft")
    audit.visit("not found", f"{url}/sessions/no-such-session")
    audit.assert_clean()


def test_session_pages_have_no_wcag_violations(site: Server, browser: BrowserContext) -> None:
    audit = Audit(browser.new_page())
    page = audit.page
    _signin(page, site, "assessor")
    s, url = site.s, site.url
    audit.visit("failed session", f"{url}/sessions/{s.speeder}")
    audit.visit("zoomed", f"{url}/sessions/{s.speeder}?zoom=loaded_speed")
    audit.visit("critical failed", f"{url}/sessions/{s.critical}")
    audit.visit("still running", f"{url}/sessions/{s.running}")
    audit.visit("observation pending", f"{url}/sessions/{s.no_tilt}")
    row = page.locator('tr[data-criterion="mast_tilted_back"]')
    row.locator("details.override summary").click()
    audit.check("override form open")
    row.locator("details.override label.choice-fail").click()
    row.locator("textarea[name=reason]").fill("   ")
    row.locator("details.override button[type=submit]").click()
    expect(page.locator("#form-error, [aria-invalid=true]").first).to_be_visible()
    audit.check("override refused")
    row = page.locator('tr[data-criterion="looks_before_reversing"]')
    row.locator("details.observe label.choice-pass").click()
    row.locator("textarea[name=note]").fill("Looked over the shoulder")
    row.locator("details.observe button[type=submit]").click()
    page.wait_for_url("**done=observation**")
    audit.check("observation recorded")
    row = page.locator('tr[data-criterion="mast_tilted_back"]')
    row.locator("details.override summary").click()
    row.locator("details.override label.choice-not_applicable").click()
    row.locator("textarea[name=reason]").fill("Mast sensor disconnected")
    row.locator("details.override button[type=submit]").click()
    page.wait_for_url("**done=override**")
    audit.check("override recorded")
    audit.visit("printable report", f"{url}/sessions/{s.no_tilt}?view=print")
    _signin(page, site, "learner")
    audit.visit("learner's view of a session", f"{url}/sessions/{s.speeder}")
    audit.assert_clean()


def test_learner_and_credential_pages_have_no_wcag_violations(
    site: Server, browser: BrowserContext
) -> None:
    audit = Audit(browser.new_page())
    page = audit.page
    _signin(page, site, "trainer")
    audit.visit("learner page, eligible", f"{site.url}/learners/{ELIGIBLE}")
    audit.visit("learner page", f"{site.url}/learners/learner-000001")
    audit.visit("no credentials", f"{site.url}/learners/learner-000001/credentials")
    page.goto(f"{site.url}/learners/{ELIGIBLE}")
    page.locator('.policy[data-policy="forklift-operator"]').get_by_role("button").click()
    page.wait_for_url(f"**/learners/{ELIGIBLE}/credentials/**")
    audit.check("credential")
    # shared on issue: its public page, as anyone sees it (the link names the configured host)
    public = urlsplit(page.locator("#share a.public-link").get_attribute("href") or "").path
    audit.visit("public credential page", f"{site.url}{public}")
    audit.visit("credentials", f"{site.url}/learners/{ELIGIBLE}/credentials")
    audit.visit("expiring credentials", f"{site.url}/credentials/expiring?within_days=3650")
    audit.visit("none expiring", f"{site.url}/credentials/expiring?within_days=1")
    _signin(page, site, "learner")
    audit.check("learner's own page")
    audit.visit("a host asks the learner's consent", _consent_url(page, site))
    audit.assert_clean()


def _consent_url(page: Page, site: Server) -> str:
    """The Open Badges API's consent page of a newly registered host (PKCE S256)."""
    callback = "http://127.0.0.1:9/callback"
    registered = page.request.post(f"{site.url}/oauth/register", data={
        "client_name": "Wallet", "redirect_uris": [callback], "scope": CREDENTIAL_READ})
    assert registered.status == 201, registered.text()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 50).digest()).rstrip(b"=")
    return f"{site.url}/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": registered.json()["client_id"],
        "redirect_uri": callback, "scope": CREDENTIAL_READ,
        "code_challenge": challenge.decode(), "code_challenge_method": "S256"})


# ============================================================================= session page

CONTRAST = """(el) => {
  const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = c => { const [r, g, b] = rgb(c).map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  let bg = el.parentElement, colour = 'rgba(0, 0, 0, 0)';
  while (bg && /rgba\\(.*, 0\\)$/.test(colour)) {
    colour = getComputedStyle(bg).backgroundColor; bg = bg.parentElement; }
  const a = lum(getComputedStyle(el).borderTopColor), b = lum(colour);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def _tab_to(page: Page, selector: str, most: int = 400) -> None:
    """Press Tab until the element `selector` has the focus (at most `most` times)."""
    target = page.locator(selector)
    for _ in range(most):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    pytest.fail(f"{selector} never got the focus by Tab")


def test_by_keyboard_alone_an_override_lands_the_focus_on_the_confirmation(
    site: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    page.goto(f"{site.url}/signin")
    _tab_to(page, "#token")
    page.keyboard.type(site.tokens["assessor"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site.url}/review")
    page.goto(f"{site.url}/sessions/{site.s.critical}")
    summary = 'tr[data-criterion="pre_use_checks"] details.override summary'
    _tab_to(page, summary)
    expect(page.locator(summary)).to_have_text(re.compile(r"^Override \d+\. All four pre-use"))
    page.keyboard.press("Enter")  # opens the form
    page.keyboard.press("Tab")  # the first choice, then the arrow keys move through them
    page.keyboard.press("Space")
    expect(page.locator(f"{summary} ~ form input[value=pass]")).to_be_checked()
    page.keyboard.press("Tab")
    page.keyboard.type("Checks done on paper, the sensor log was lost")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url("**done=override**#confirmation")
    focused = page.evaluate("document.activeElement.id")
    assert focused == "confirmation"
    confirmation = page.locator("#confirmation")
    expect(confirmation).to_contain_text(
        "Override recorded for 1. All four pre-use checks done before starting the engine.")
    counts = page.locator("#outcome").get_attribute("data-outcome-counts")
    expect(confirmation).to_contain_text(f"The outcome is now {counts}")
    box = confirmation.bounding_box()
    assert box is not None
    assert -1 <= box["y"] < TABLET["height"]  # in view, not 1,900 px above it
    # the focus ring is the page's own (3 px solid), not the browser's default
    page.keyboard.press("Tab")
    ring = page.evaluate("(s => [s.outlineStyle, s.outlineWidth])"
                         "(getComputedStyle(document.activeElement))")  # fmt: skip
    assert ring == ["solid", "3px"]


def test_a_refused_entry_is_shown_at_its_field(site: Server, browser: BrowserContext) -> None:
    page = browser.new_page()
    _signin(page, site, "assessor")
    page.goto(f"{site.url}/sessions/{site.s.speeder}")
    row = page.locator('tr[data-criterion="empty_speed"]')
    row.locator("details.override summary").click()
    row.locator("details.override label.choice-pass").click()
    row.locator("textarea[name=reason]").fill("   ")
    row.locator("details.override button[type=submit]").click()
    reason = row.locator("textarea[name=reason]")
    expect(reason).to_have_attribute("aria-invalid", "true")
    described = reason.get_attribute("aria-describedby") or ""
    expect(page.locator(f"#{described}")).to_have_text("an override needs a written reason")
    assert page.evaluate("document.activeElement.id") == "reason-empty_speed"
    expect(row.locator("details.override input[value=pass]")).to_be_checked()  # kept
    expect(page.locator("#form-error a")).to_have_attribute("href", "#reason-empty_speed")


def test_each_criterion_s_review_controls_have_names_of_their_own(
    site: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, site, "admin")
    page.goto(f"{site.url}/sessions/{site.s.no_tilt}")
    names = page.evaluate("""() => {
      const text = el => el.textContent.replace(/\\s+/g, ' ').trim();
      const cells = [...document.querySelectorAll('td.review-cell')];
      return {
        controls: cells.flatMap(c => [...c.querySelectorAll('summary, button, legend')].map(text)),
        fields: cells.flatMap(c => [...c.querySelectorAll('textarea')].map(
          t => text(document.querySelector(`label[for="${t.id}"]`)))),
      };
    }""")  # fmt: skip
    rows = page.locator("table.criteria tr[data-criterion]").count()
    assert len(names["controls"]) >= 3 * rows  # override: summary, legend, button
    for kind in ("controls", "fields"):
        repeated = {n for n in names[kind] if names[kind].count(n) > 1}
        assert not repeated, kind
    assert "Override 11. Looks over the shoulder in the direction of travel before and while " \
           "reversing" in names["controls"]  # fmt: skip


def test_field_borders_have_3_to_1_contrast(site: Server, browser: BrowserContext) -> None:
    page = browser.new_page()
    _signin(page, site, "admin")
    page.goto(f"{site.url}/sessions/{site.s.no_tilt}")
    fields = page.locator("textarea, label.choice, details.review-form .button:not(.primary)")
    assert fields.count() > 10
    ratios = fields.evaluate_all(f"els => els.map({CONTRAST})")
    assert min(ratios) >= 3.0
    page.goto(f"{site.url}/review")
    fields = page.locator("main input:not([type=hidden]), main select, main .button")
    ratios = fields.evaluate_all(f"els => els.map({CONTRAST})")
    assert min(ratios) >= 3.0


ZOOMED: ViewportSize = {"width": TABLET["width"] // 2, "height": TABLET["height"] // 2}  # 200 %
TEXT_SIZES = """() => {
  const seen = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!el.getClientRects().length) continue;  // not rendered
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest('.vh')) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    const scale = el instanceof SVGElement ? el.getScreenCTM().a : 1;
    seen.push([size * scale, el.tagName + ' ' + el.textContent.trim().slice(0, 30)]);
  }
  return seen;
}"""


def test_at_200_percent_zoom_the_whole_session_is_readable_without_scrolling_sideways(
    site: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    page.set_viewport_size(ZOOMED)  # what a tablet's browser lays out at 200 % zoom
    _signin(page, site, "assessor")
    page.goto(f"{site.url}/sessions/{site.s.speeder}")
    width = ZOOMED["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    expect(page.locator("svg.timeline")).to_be_hidden()  # the narrow copy instead
    svg = page.locator("svg.timeline-narrow")
    expect(svg).to_be_visible()
    box = svg.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width
    chart = page.locator(".timeline-chart")
    assert chart.evaluate("el => el.scrollWidth <= el.clientWidth")  # nothing hidden in it
    detail = page.request.get(f"{site.url}/api/v1/sessions/{site.s.speeder}",
                              headers={"Authorization": f"Bearer {site.tokens['assessor']}"})
    assert float(svg.get_attribute("data-t-to") or "nan") == detail.json()["close_t"]
    sizes = page.evaluate(TEXT_SIZES)
    assert any(what.startswith("text") for _, what in sizes)  # the SVG's text is measured
    small = [(round(size, 1), what) for size, what in sizes if size < MIN_TEXT_PX]
    assert not small
    docs_screenshot(page, "session-zoom-200")
    # the failed criteria's rows are there, and tapping one zooms as on the wide chart
    svg.locator('g.violation-row[data-criterion="loaded_speed"] a.row-link').tap()
    page.wait_for_url(re.compile(r".*zoom=loaded_speed.*"))
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # printed (paper is narrow too): the wide timeline, never none
    page.goto(f"{site.url}/sessions/{site.s.speeder}?view=print")
    page.emulate_media(media="print")
    expect(page.locator("svg.timeline")).to_be_visible()
    expect(page.locator("svg.timeline-narrow")).to_be_hidden()


def _overlaps(boxes: list[dict[str, float]]) -> list[tuple[int, int]]:
    return [
        (i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j
        and a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]
    ]  # fmt: skip


@pytest.mark.parametrize("viewport", [TABLET, ZOOMED], ids=["tablet", "zoomed"])
def test_threshold_and_event_labels_never_overlap_and_every_event_is_labelled(
    site: Server, browser: BrowserContext, viewport: ViewportSize
) -> None:
    page = browser.new_page()
    page.set_viewport_size(viewport)
    _signin(page, site, "assessor")
    page.goto(f"{site.url}/sessions/{site.s.speeder}")
    svg = page.locator("svg.timeline:visible, svg.timeline-narrow:visible")
    for lane in svg.locator("g.lane").all():
        labels = lane.locator("text.threshold-label")
        boxes = labels.evaluate_all("els => els.map(e => e.getBoundingClientRect().toJSON())")
        assert not _overlaps(boxes), lane.get_attribute("data-signal")
        values = " ".join(labels.evaluate_all("els => els.map(e => e.dataset.values)")).split()
        lines = lane.locator("line.threshold").evaluate_all(
            "els => els.map(e => e.dataset.value)")
        assert sorted(map(float, values)) == sorted(map(float, lines))  # each line labelled
    events = svg.locator("line.event")
    assert events.count() > 0
    labels = svg.locator("text.event-label")
    assert labels.count() == events.count()
    boxes = labels.evaluate_all("els => els.map(e => e.getBoundingClientRect().toJSON())")
    assert not _overlaps(boxes)
    keys = page.locator(".event-keys").inner_text()
    for label in labels.all():
        text = label.text_content()
        name = label.get_attribute("data-event") or ""
        assert text == name or f"{text} {name}" in keys, (text, name)
