"""The session page an assessor reads on a tablet, in a real browser (headless Chromium against
a real uvicorn server on a real SQLite file; see tests/test_web_browser.py for the set-up):

- the outcome says why (the reasons equal the API's), on a failed and an overridden session;
- a metric criterion's contributing intervals are drawn where the API's evidence says;
- a threshold of the rubric is a line at its height on its signal's lane;
- tapping a criterion's row zooms the timeline to its evidence (a server-rendered window);
- a session whose signals are sent only on change is drawn as held steps;
- the printable report: reasons, timeline, criteria with evidence, who changed what, signature
  lines; no forms.

With ``ASSESSENGINE_SCREENSHOTS=1`` the tests write the screenshots of docs/assessors.md into
docs/img (otherwise into pytest's tmp dir, so CI never rewrites the repository's files).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assessengine.adapters.library import find_rubric, load_rubric
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.core.codec import Columns, Layout, encode_columns_v1
from assessengine.core.compiler import compile_rubric
from assessengine.core.kernel_scorer import score_columns
from assessengine.storage.port import SessionInfo
from assessengine.storage.sqlite import SqliteStore

from .browser_support import Server, serving
from .test_web_support import fill_store, make_tokens

with contextlib.suppress(ImportError):  # the `browser` fixture reports it
    from playwright.sync_api import BrowserContext, Page, expect

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
ON_CHANGE = "on-change-0001"
# speed is sent only when it changes: (t, km/h); the other signals once at the start
SPEED_CHANGES = ((0.0, 0.0), (10.0, 5.0), (30.0, 11.0), (45.0, 2.0))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("session-browser") / "store.db"
    sessions = fill_store(db)
    _store_on_change_session(db)
    service = ReviewService.open(db)
    try:
        tokens = make_tokens(service)
    finally:
        service.close()
    with serving(create_app(db_path=db)) as url:
        yield Server(url, tokens, sessions)


def _store_on_change_session(db: Path) -> None:
    """A 60 s forklift session at 10 Hz whose speed is sent only when it changes."""
    rubric, scenario = load_rubric(find_rubric("forklift-load-handling"))
    compiled = compile_rubric(rubric, scenario)
    layout = Layout.of(scenario)
    t = np.round(np.arange(0, 600) * 0.1, 1)
    signals = np.full((len(layout.signal_names), len(t)), np.nan)
    speed = layout.signal_index["speed"]
    for when, value in SPEED_CHANGES:
        signals[speed, round(when * 10)] = value
    for name, value in (("load", 0.0), ("fork_height", 0.1), ("mast_tilt", 2.0),
                        ("pedestrian_distance", 50.0)):  # fmt: skip
        signals[layout.signal_index[name], 0] = value
    cols = Columns(np.arange(len(t), dtype=np.int64), t, np.zeros(len(t), np.int32), signals)
    with SqliteStore(db) as store:
        store.open_session(SessionInfo(ON_CHANGE, "learner-000009", scenario.scenario,
                                       rubric.rubric, rubric.version, compiled.sha256,
                                       "field", {}))  # fmt: skip
        header = {"session": ON_CHANGE, "first_seq": 0, "count": len(cols),
                  "encoding": "columns-v1", "dtype": layout.dtype_header()}  # fmt: skip
        store.append_batches([(ON_CHANGE, 0, len(cols), "columns-v1",
                               json.dumps(header).encode(), encode_columns_v1(cols, layout))])
        store.close_session(ON_CHANGE, 60.0)
        (report,) = score_columns(compiled, cols.to_batch(0), [ON_CHANGE], np.array([60.0]))
        store.save_report(ON_CHANGE, report.to_data())


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    folder = DOCS_IMG if os.environ.get("ASSESSENGINE_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=folder / name, full_page=True)


def _signin(page: Page, site: Server, role: str = "assessor") -> None:
    page.goto(f"{site.url}/signin")
    page.fill("#token", site.tokens[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _api(page: Page, site: Server, path: str) -> dict[str, Any]:
    answer = page.request.get(f"{site.url}/api/v1{path}",
                              headers={"Authorization": f"Bearer {site.tokens['assessor']}"})
    assert answer.ok, answer.text()
    data: dict[str, Any] = answer.json()
    return data


def _reasons_on_page(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("#outcome ul.reasons li").all_inner_texts()]


def _scale(page: Page) -> tuple[float, float, float, float, float]:
    """t_from, t_to, x_left, x_right and CSS px per SVG unit of the page's timeline."""
    svg = page.locator("svg.timeline")
    values = [float(svg.get_attribute(a) or "nan")
              for a in ("data-t-from", "data-t-to", "data-x-left", "data-x-right")]  # fmt: skip
    box = svg.bounding_box()
    assert box is not None
    px = box["width"] / float((svg.get_attribute("viewBox") or "").split()[2])
    return values[0], values[1], values[2], values[3], px


def _x(page: Page, t: float) -> float:
    t_from, t_to, x_left, x_right, _ = _scale(page)
    return x_left + (min(max(t, t_from), t_to) - t_from) / (t_to - t_from) * (x_right - x_left)


def _check_contributing(page: Page, criterion: dict[str, Any]) -> int:
    """Each contributing interval of the evidence is a bar at its place (SVG and layout)."""
    t_from, t_to, _, _, px = _scale(page)
    svg_box = page.locator("svg.timeline").bounding_box()
    assert svg_box is not None
    spans = [s for s in criterion["evidence"]["contributing"] if s[1] >= t_from and s[0] <= t_to]
    bars = page.locator(f'svg.timeline rect.contrib[data-criterion="{criterion["id"]}"]')
    expect(bars).to_have_count(len(spans))
    for k, (t0, t1) in enumerate(spans):
        bar = bars.nth(k)
        assert float(bar.get_attribute("data-t-start") or "nan") == t0
        assert float(bar.get_attribute("data-t-end") or "nan") == t1
        assert float(bar.get_attribute("x") or "nan") == pytest.approx(_x(page, t0), abs=0.01)
        drawn = bar.bounding_box()
        assert drawn is not None
        assert drawn["x"] == pytest.approx(svg_box["x"] + _x(page, t0) * px, abs=1.0)
        assert drawn["width"] >= max((_x(page, t1) - _x(page, t0)) * px - 1.0, 1.0)
    return len(spans)


# ==================================================================================== tests


def test_a_failed_session_says_why_on_the_page_as_in_the_api(
    site: Server, browser: BrowserContext, tmp_path: Path
) -> None:
    page = browser.new_page()
    _signin(page, site)
    page.goto(f"{site.url}/sessions/{site.s.speeder}")
    detail = _api(page, site, f"/sessions/{site.s.speeder}")
    assert _reasons_on_page(page) == [r["text"] for r in detail["reasons"]]
    (reason,) = detail["reasons"]
    assert reason["kind"] == "below_pass_mark"
    assert "Loaded travel at or under 8 km/h (20 points)" in reason["text"]
    assert "Empty travel over 12 km/h for no more than 10 s in total (10 points)" in reason["text"]
    _shot(page, tmp_path, "session-page.png")

    page.goto(f"{site.url}/sessions/{site.s.critical}")
    expect(page.locator("#outcome ul.reasons li").first).to_have_text(
        "Critical criterion failed: All four pre-use checks done before starting the engine")


def test_an_overridden_session_says_which_outcome_counts_and_who_changed_what(
    site: Server, browser: BrowserContext, tmp_path: Path
) -> None:
    page = browser.new_page()
    _signin(page, site)
    page.goto(f"{site.url}/sessions/{site.s.critical}")
    row = page.locator('tr[data-criterion="pre_use_checks"]')
    row.locator("details.override summary").click()
    form = row.locator("details.override form")
    form.locator("label.choice-pass").click()
    form.locator("textarea[name=reason]").fill("Checks done on paper, sensor log lost")
    form.get_by_role("button", name="Save override").click()
    page.wait_for_url(f"{site.url}/sessions/{site.s.critical}?*")
    outcome = page.locator("#outcome")
    expect(outcome.locator(".counts-note")).to_contain_text("this is the outcome that counts")
    detail = _api(page, site, f"/sessions/{site.s.critical}")
    assert outcome.get_attribute("data-outcome-counts") == detail["with_overrides"]["outcome"]
    assert _reasons_on_page(page) == [r["text"] for r in detail["reasons"]]
    override = next(r for r in detail["reasons"] if r["kind"] == "override")
    assert override["text"].startswith(
        "assessor-ann overrode All four pre-use checks done before starting the engine "
        "(fail by the scorer) to pass on ")
    assert override["text"].endswith(": Checks done on paper, sensor log lost")
    expect(outcome).to_contain_text("Before overrides")


def test_a_metric_is_drawn_where_its_contributing_intervals_are(
    site: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, site)
    page.goto(f"{site.url}/sessions/{site.s.speeder}")
    detail = _api(page, site, f"/sessions/{site.s.speeder}")
    metric = next(c for c in detail["criteria"] if c["id"] == "empty_speed")
    assert metric["verdict"] == "fail"
    assert _check_contributing(page, metric) >= 1
    # not the whole session: the bars cover less than the session's length
    covered = sum(b - a for a, b in metric["evidence"]["contributing"])
    assert covered < detail["close_t"] / 2


def test_a_threshold_is_a_line_at_its_height_on_its_lane(
    site: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, site)
    page.goto(f"{site.url}/sessions/{site.s.speeder}")
    lane = page.locator('svg.timeline g.lane[data-signal="speed"]')
    lo, hi, y_lo, y_hi = (float(lane.get_attribute(a) or "nan")
                          for a in ("data-lo", "data-hi", "data-y-lo", "data-y-hi"))  # fmt: skip
    lines = lane.locator("line.threshold")
    values = sorted(float(v or "nan") for v in lines.evaluate_all(
        "els => els.map(e => e.getAttribute('data-value'))"))  # fmt: skip
    assert values == [0.5, 1.0, 3.0, 8.0, 12.0]  # every limit the rubric puts on speed
    twelve = lane.locator('line.threshold[data-value="12.0"]')
    y = y_lo + (12.0 - lo) / (hi - lo) * (y_hi - y_lo)
    assert float(twelve.get_attribute("y1") or "nan") == pytest.approx(y, abs=0.01)
    # on the laid-out page too: the line sits between the lane's top and bottom edges
    frame = lane.locator("rect").first.bounding_box()
    drawn = twelve.bounding_box()
    assert frame is not None
    assert drawn is not None
    share = (12.0 - lo) / (hi - lo)
    expected = frame["y"] + frame["height"] - 3 - share * (frame["height"] - 6)
    assert drawn["y"] + drawn["height"] / 2 == pytest.approx(expected, abs=4.0)


def test_tapping_a_criterion_row_zooms_to_its_evidence(
    site: Server, browser: BrowserContext, tmp_path: Path
) -> None:
    page = browser.new_page()
    _signin(page, site)
    page.goto(f"{site.url}/sessions/{site.s.speeder}")
    detail = _api(page, site, f"/sessions/{site.s.speeder}")
    loaded = next(c for c in detail["criteria"] if c["id"] == "loaded_speed")
    page.locator('svg.timeline g.violation-row[data-criterion="loaded_speed"] a.row-link').tap()
    page.wait_for_url(re.compile(r".*zoom=loaded_speed.*"))
    t_from, t_to, _, _, _ = _scale(page)
    ev = loaded["evidence"]
    assert t_from < ev["t_start"]
    assert ev["t_end"] < t_to
    assert t_to - t_from < detail["close_t"] / 4  # a window, not the whole session
    expect(page.locator(".zoom-note")).to_contain_text("Loaded travel at or under 8 km/h")
    bar = page.locator('svg.timeline rect.violation[data-criterion="loaded_speed"]')
    assert float(bar.get_attribute("x") or "nan") == pytest.approx(_x(page, ev["t_start"]),
                                                                   abs=0.01)
    box = bar.bounding_box()
    assert box is not None
    assert box["width"] > 20  # a 1 s episode is now wide
    _shot(page, tmp_path, "session-zoomed.png")
    # the criteria table's title link zooms too; "Whole session" goes back
    page.locator('tr[data-criterion="empty_speed"] a.zoom-link').click()
    page.wait_for_url(re.compile(r".*zoom=empty_speed.*"))
    metric = next(c for c in detail["criteria"] if c["id"] == "empty_speed")
    assert _check_contributing(page, metric) >= 1
    page.locator("a.zoom-out").click()
    page.wait_for_url(re.compile(rf".*/sessions/{site.s.speeder}#timeline"))
    assert _scale(page)[1] == detail["close_t"]


def test_a_signal_sent_only_on_change_is_drawn_as_held_steps(
    site: Server, browser: BrowserContext
) -> None:
    page = browser.new_page()
    _signin(page, site)
    page.goto(f"{site.url}/sessions/{ON_CHANGE}")
    lane = page.locator('svg.timeline g.lane[data-signal="speed"]')
    lo, hi, y_lo, y_hi = (float(lane.get_attribute(a) or "nan")
                          for a in ("data-lo", "data-hi", "data-y-lo", "data-y-hi"))  # fmt: skip
    assert lo <= 0.0  # the range covers every value sent, and the limits
    assert hi >= 11.0

    def y(v: float) -> float:
        return y_lo + (v - lo) / (hi - lo) * (y_hi - y_lo)

    d = lane.locator("path.signal").get_attribute("d") or ""
    assert d.count("M") == 1  # one run: no gaps between the changes
    points = [(float(a), float(b)) for a, b in re.findall(r"([-\d.]+),([-\d.]+)", d)]
    # each value sent is one flat step, from its change to the next: a horizontal segment of
    # the path at its height over the whole span
    steps = [(a, b) for a, b in itertools.pairwise(points) if a[1] == b[1]]
    for (t0, value), (t1, _) in zip(SPEED_CHANGES, (*SPEED_CHANGES[1:], (60.0, 0.0)),
                                    strict=True):  # fmt: skip
        assert any(
            a[1] == pytest.approx(y(value), abs=0.01)
            and min(a[0], b[0]) <= _x(page, t0) + 2 and max(a[0], b[0]) >= _x(page, t1) - 2
            for a, b in steps
        ), (t0, value)
    # the API gives the same held values (hold=true)
    series = _api(page, site, f"/sessions/{ON_CHANGE}/events?buckets=60&signals=speed&hold=true")
    assert series["min"]["speed"][20] == series["max"]["speed"][20] == 5.0  # t 20..21 s
    raw = _api(page, site, f"/sessions/{ON_CHANGE}/events?buckets=60&signals=speed")
    assert raw["min"]["speed"][20] is None  # without hold: nothing was sent then


def test_the_printable_report(
    site: Server, browser: BrowserContext, tmp_path: Path
) -> None:
    page = browser.new_page()
    _signin(page, site, "admin")
    sid = site.s.no_tilt
    page.goto(f"{site.url}/sessions/{sid}")
    row = page.locator('tr[data-criterion="mast_tilted_back"]')
    row.locator("details.override summary").click()
    form = row.locator("details.override form")
    form.locator("label.choice-not_applicable").click()
    form.locator("textarea[name=reason]").fill("Mast sensor disconnected on this rig")
    form.get_by_role("button", name="Save override").click()
    page.wait_for_url(f"{site.url}/sessions/{sid}?*")
    # the same page, printed: no forms or navigation; reasons, timeline, criteria, who/when,
    # signature lines
    page.emulate_media(media="print")
    expect(page.locator("details.review-form").first).to_be_hidden()
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("section.signatures")).to_be_visible()
    page.emulate_media(media="screen")
    expect(page.locator("section.signatures")).to_be_hidden()
    # the printable view, linked from the page
    page.locator("a.print-link").click()
    page.wait_for_url(f"{site.url}/sessions/{sid}?view=print")
    expect(page.locator("form[action$='/overrides']")).to_have_count(0)
    expect(page.locator("section.signatures .signature")).to_have_count(3)
    expect(page.locator("#outcome ul.reasons li").first).to_be_visible()
    expect(page.locator("svg.timeline")).to_be_visible()
    expect(page.locator("table.criteria tr[data-criterion]")).to_have_count(12)
    history = page.locator("ul.history li.override")
    expect(history).to_contain_text("admin-ann")
    expect(history).to_contain_text("Mast sensor disconnected on this rig")
    expect(history).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"))
    page.emulate_media(media="print")
    _shot(page, tmp_path, "session-print.png")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
