"""The review queue, the CSV download, "next in queue", the cohort dashboard, the learner's
sign-in landing and the credential progress in a real browser (headless Chromium, as
`test_web_browser`), against a real uvicorn server over a real SQLite file.

Screenshots of the pages go to ``docs/img`` only when ``ASSESSENGINE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assessengine.api.app import create_app
from assessengine.api.cohort_charts import BAR_WIDTH, percent

from .browser_support import Server, docs_screenshot, serving, sync_playwright
from .test_web_support import (
    ELIGIBLE,
    add_eligible_and_tokens,
    add_session,
    fill_store,
)

if sync_playwright is not None:
    from playwright.sync_api import BrowserContext, Page, expect

HOSTILE_SITE = "=HYPERLINK(\"http://evil.example\",\"x\")"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`fill_store`'s sessions, one at a site whose name is a formula, and ELIGIBLE's two
    simulator passes and one field pass (observed), which meet `forklift-operator`."""
    folder = tmp_path_factory.mktemp("browser-cohorts")
    db = folder / "store.db"
    sessions = fill_store(db)
    add_session(db, "speeder", seed=21, learner="learner-000009",
                metadata={"site": HOSTILE_SITE})  # fmt: skip
    tokens = add_eligible_and_tokens(db)
    with serving(create_app(db_path=db)) as url:
        yield Server(url, tokens, sessions)


def _signin(page: Page, server: Server, role: str, start: str = "/signin") -> None:
    page.goto(f"{server.url}{start}")
    page.fill("#token", server.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _api(page: Page, server: Server, path: str, role: str = "assessor") -> Any:
    answer = page.request.get(f"{server.url}/api/v1{path}",
                              headers={"Authorization": f"Bearer {server.tokens[role]}"})
    assert answer.ok, answer.text()
    return answer.json()


def test_queue_counts_and_filters(server: Server, browser: BrowserContext) -> None:
    page = browser.new_page()
    _signin(page, server, "assessor")
    page.wait_for_url(f"{server.url}/review")
    queue = _api(page, server, "/review-queue?limit=500")
    chips = page.locator("a.count-chip")
    for reason in ("all", "critical", "pending", "incomplete"):
        count = queue["counts"]["total" if reason == "all" else reason]
        expect(page.locator(f'a.count-chip[data-reason="{reason}"] .count')).to_have_text(
            str(count))
    expect(page.locator("a.queue-item")).to_have_count(len(queue["items"]))
    docs_screenshot(page, "review-queue")

    chips.and_(page.locator('[data-reason="critical"]')).click()
    page.wait_for_url("**/review?reason=critical")
    critical = _api(page, server, "/review-queue?reason=critical")["items"]
    expect(page.locator("a.queue-item")).to_have_count(len(critical))
    expect(page.locator("a.queue-item .badge-critical").first).to_contain_text(
        "All four pre-use checks done before starting the engine")

    page.goto(f"{server.url}/review")
    page.select_option("#f-scenario", "network-lab")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**scenario=network-lab**")
    expect(page.locator("a.queue-item")).to_have_count(1)
    expect(page.locator("a.queue-item")).to_have_attribute("data-session", server.s.network)

    page.goto(f"{server.url}/review")
    page.fill("#f-learner", "learner-000001")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**learner=learner-000001**")
    mine = _api(page, server, "/review-queue?learner=learner-000001")
    expect(page.locator("a.queue-item")).to_have_count(len(mine["items"]))
    expect(page.locator('a.count-chip[data-reason="all"] .count')).to_have_text(
        str(mine["counts"]["total"]))


def test_csv_download_equals_the_queue_with_formulas_neutralised(
    server: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, server, "trainer", "/review")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    items = _api(page, server, "/review-queue?limit=500")["items"]
    assert [r[0] for r in rows[1:]] == [i["session"] for i in items]
    site = rows[0].index("site")
    assert [r[site] for r in rows[1:] if r[site]] == ["'" + HOSTILE_SITE]


def test_next_in_queue_after_a_decision(server: Server, browser: BrowserContext) -> None:
    page = browser.new_page()
    _signin(page, server, "assessor", "/review?reason=pending")
    items = _api(page, server, "/review-queue?reason=pending&limit=500")["items"]
    first, second = items[0]["session"], items[1]["session"]
    page.locator(f'a.queue-item[data-session="{first}"]').click()
    page.wait_for_url(f"**/sessions/{first}")
    form = page.locator('form:has(input[name="criterion"][value="looks_before_reversing"])')
    form = form.filter(has=page.locator('textarea[name="note"]')).first
    form.locator('label.choice-pass').click()
    form.locator('textarea[name="note"]').fill("looked over the shoulder")
    form.locator('button[type="submit"]').click()
    page.wait_for_url(f"**/sessions/{first}?done=observation**")
    page.get_by_role("link", name="Next in queue").click()
    page.wait_for_url(f"**/sessions/{second}")


def test_dashboard_numbers_equal_the_api(server: Server, browser: BrowserContext) -> None:
    page = browser.new_page()
    _signin(page, server, "trainer", "/dashboard")
    page.wait_for_url(f"{server.url}/dashboard")
    numbers = _api(page, server, "/dashboard", "trainer")
    expect(page.locator("#cohort-summary")).to_have_attribute(
        "data-sessions", str(numbers["sessions"]))
    for c in numbers["criteria"]:
        row = page.locator(f'#criteria tr[data-criterion="{c["criterion"]}"]')
        expect(row.locator("td.rate")).to_have_text(percent(c["failure_rate"]))
        expect(row.locator("td.rate-first")).to_have_text(percent(c["first_attempt_failure_rate"]))
        bar = page.locator(f"#criteria rect.bar[data-label={json.dumps(c['title'])}]")
        rate = c["failure_rate"]
        if rate is None:  # nothing decided: an empty bar without a value
            assert bar.get_attribute("data-value") == ""
            continue
        assert float(bar.get_attribute("data-value") or "nan") == rate
        assert float(bar.get_attribute("width") or "nan") == pytest.approx(rate * BAR_WIDTH,
                                                                           abs=0.01)
    for p in numbers["pass_rates"]:
        row = page.locator(f'#pass-rates tr[data-period="{p["period"]}"]'
                           f'[data-rubric="{p["rubric"]}"]')
        expect(row.locator("td.rate")).to_have_text(percent(p["pass_rate"]))
        dot = page.locator(f'circle.rate-point[data-period="{p["period"]}"]'
                           f'[data-series="{p["rubric"]} v{p["rubric_version"]}"]')
        assert float(dot.get_attribute("data-value") or "nan") == p["pass_rate"]
    for f in numbers["attempts_to_first_pass"]:
        attempt = "" if f["attempt"] is None else str(f["attempt"])
        row = page.locator(f'#first-pass tr[data-rubric="{f["rubric"]}"][data-attempt="{attempt}"]')
        expect(row.locator("td.learners")).to_have_text(str(f["learners"]))
    for key in ("scenario", "site", "source"):
        for b in numbers[f"by_{key}"]:
            row = page.locator(f"#by-{key} tr[data-key={json.dumps(b['key'] or '')}]")
            expect(row.locator("td.rate")).to_have_text(percent(b["pass_rate"]))
    expect(page.locator("#by-site td", has_text=HOSTILE_SITE)).to_have_count(1)
    docs_screenshot(page, "dashboard")


def test_a_learner_lands_on_their_own_page_from_any_signin(
    server: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, server, "learner")
    page.wait_for_url(f"{server.url}/learners/learner-000001")
    page.context.clear_cookies()
    _signin(page, server, "learner", "/review")
    page.wait_for_url(f"{server.url}/learners/learner-000001")
    expect(page.locator("#credential-progress")).to_be_visible()
    expect(page.get_by_role("button", name="Issue credential")).to_have_count(0)


def test_an_eligible_learner_gets_an_issue_button_and_a_credential(
    server: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, server, "trainer", f"/learners/{ELIGIBLE}")
    page.wait_for_url(f"{server.url}/learners/{ELIGIBLE}")
    policy = page.locator('.policy[data-policy="forklift-operator"]')
    expect(policy).to_have_attribute("data-eligible", "yes")
    expect(policy.locator('li.requirement[data-met="yes"]')).to_have_count(2)
    other = page.locator('.policy[data-policy="network-technician"]')
    expect(other).to_have_attribute("data-eligible", "no")
    expect(other.locator("button")).to_have_count(0)
    docs_screenshot(page, "learner-progress")
    policy.get_by_role("button").click()
    page.wait_for_url(f"**/learners/{ELIGIBLE}/credentials/**")
    page.goto(f"{server.url}/learners/{ELIGIBLE}")
    expect(page.locator('.policy[data-policy="forklift-operator"] button')).to_have_count(0)
    expect(page.locator('.policy[data-policy="forklift-operator"] .badge').first).to_have_text(
        "held")


def test_search_lists_what_the_api_lists_under_the_same_filters(
    server: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, server, "trainer", "/search")
    page.wait_for_url(f"{server.url}/search")
    everything = _api(page, server, "/sessions?limit=500")["items"]
    expect(page.locator("table.results tbody tr")).to_have_count(len(everything))
    page.select_option("#f-source", "field")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**source=field**")
    field = _api(page, server, "/sessions?source=field")["items"]
    assert 0 < len(field) < len(everything)
    rows = page.locator("table.results tbody tr")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.session)") == [
        s["session"] for s in field]
    page.goto(f"{server.url}/search")
    docs_screenshot(page, "search")
