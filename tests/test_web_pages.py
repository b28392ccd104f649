"""The server-rendered pages over a real SQLite store (TestClient): sign-in and cookies, roles,
CSRF refusals, the review queue, the session page (timeline, criteria, forms) and the learner
page, escaping of what people type."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from assessengine.api import timeline as tl
from assessengine.api.app import create_app
from assessengine.api.service import ReviewService

from .stored_payloads import copy_store
from .test_web_support import LEARNER, OTHER_LEARNER, Sessions, csrf_of, fill_store, make_tokens

NOTE_HTML = '<script>alert("pwned")</script><b>bold</b> & more'


@dataclass(frozen=True)
class Template:
    path: Path
    sessions: Sessions
    tokens: dict[str, str]


@dataclass
class Site:
    client: TestClient
    s: Sessions
    tokens: dict[str, str]

    def signin(self, role: str) -> Any:
        form = self.client.get("/signin")
        answer = self.client.post("/signin", data={"token": self.tokens[role],
                                                   "csrf": csrf_of(form.text), "next": ""},
                                  follow_redirects=False)  # fmt: skip
        assert answer.status_code == 303, answer.text
        return answer

    def page(self, url: str) -> str:
        answer = self.client.get(url)
        assert answer.status_code == 200, answer.text
        return answer.text

    def post(self, url: str, data: dict[str, str], *, csrf: str | None = None) -> Any:
        """POST a form with the CSRF value of the page at the session URL (or `csrf`)."""
        if csrf is None:
            csrf = csrf_of(self.page(url.rsplit("/", 1)[0]))
        return self.client.post(url, data={"csrf": csrf, **data}, follow_redirects=False)

    def report(self, sid: str) -> dict[str, Any]:
        service: ReviewService = self.client.app.state.service  # type: ignore[attr-defined]
        report = service.store.report(sid)
        assert report is not None
        return report


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("web") / "template.db"
    sessions = fill_store(path)
    service = ReviewService.open(path)
    try:
        tokens = make_tokens(service)
    finally:
        service.close()
    return Template(path, sessions, tokens)


@pytest.fixture
def site(template: Template, tmp_path: Path) -> Iterator[Site]:
    db = tmp_path / "store.db"
    copy_store(template.path, db)
    with TestClient(create_app(db_path=db)) as client:
        yield Site(client, template.sessions, template.tokens)


def _outcome(html: str) -> str:
    found = re.search(r'id="outcome"[^>]*?data-outcome="(\w*)"', html, re.S)
    assert found is not None
    return found.group(1)


def _row(html: str, criterion: str) -> str:
    found = re.search(rf'<tr id="c-{criterion}".*?</tr>', html, re.S)
    assert found is not None, criterion
    return found.group(0)


def _queue(html: str) -> list[str]:
    return re.findall(r'class="queue-item" href="[^"]+" data-session="([^"]+)"', html)


# ==================================================================================== sign-in


@pytest.mark.parametrize("url", ["/", "/review", "/sessions/x", "/learners/y?z=1"])
def test_pages_send_a_stranger_to_the_signin_form(site: Site, url: str) -> None:
    answer = site.client.get(url, follow_redirects=False)
    assert answer.status_code == 303
    target = urlsplit(answer.headers["location"])
    assert target.path == "/signin"
    assert parse_qs(target.query)["next"] == [url]


def test_a_form_sent_without_signing_in_comes_back_to_its_page_after_signin(site: Site) -> None:
    url = f"/sessions/{site.s.no_tilt}"
    answer = site.client.post(f"{url}/observations", data={"csrf": "x"}, follow_redirects=False)
    assert answer.status_code == 303
    assert parse_qs(urlsplit(answer.headers["location"]).query)["next"] == [url]


def test_signin_keeps_the_token_in_an_httponly_strict_cookie(site: Site) -> None:
    form = site.client.get("/signin")
    answer = site.client.post("/signin", data={"token": site.tokens["assessor"],
                                               "csrf": csrf_of(form.text), "next": "/learners/x"},
                              follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"] == "/learners/x"
    cookies = answer.headers.get_list("set-cookie")
    token_cookie = next(c for c in cookies if c.startswith("ae_token="))
    assert site.tokens["assessor"] in token_cookie
    assert "HttpOnly" in token_cookie
    assert "samesite=strict" in token_cookie.lower()
    # a new CSRF value from now on
    csrf_cookie = next(c for c in cookies if c.startswith("ae_csrf="))
    assert csrf_of(form.text) not in csrf_cookie


@pytest.mark.parametrize(("target", "landing"), [
    ("", f"/learners/{LEARNER}"), ("/review", f"/learners/{LEARNER}"),
    ("/dashboard", f"/learners/{LEARNER}"), ("/", f"/learners/{LEARNER}"),
    (f"/learners/{LEARNER}/credentials", f"/learners/{LEARNER}/credentials"),
    ("/sessions/S-1", "/sessions/S-1"), ("/learners/someone-else", f"/learners/{LEARNER}"),
])  # fmt: skip
def test_a_learner_lands_on_their_own_page_after_signing_in(
    site: Site, target: str, landing: str
) -> None:
    form = site.client.get("/signin" + (f"?next={target}" if target else ""))
    kept = re.search(r'name="next" value="([^"]*)"', form.text)
    assert kept is not None
    answer = site.client.post("/signin", data={"token": site.tokens["learner"],
                                               "csrf": csrf_of(form.text),
                                               "next": kept.group(1)},
                              follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"] == landing


def test_staff_land_where_they_were_going_or_on_the_queue(site: Site) -> None:
    for target, landing in (("", "/review"), ("/dashboard", "/dashboard")):
        form = site.client.get("/signin")
        answer = site.client.post("/signin", data={"token": site.tokens["trainer"],
                                                   "csrf": csrf_of(form.text), "next": target},
                                  follow_redirects=False)  # fmt: skip
        assert answer.headers["location"] == landing


def test_signin_with_an_unknown_token_is_refused(site: Site) -> None:
    form = site.client.get("/signin")
    answer = site.client.post("/signin", data={"token": "aet_nope", "csrf": csrf_of(form.text)},
                              follow_redirects=False)  # fmt: skip
    assert answer.status_code == 401
    assert "not valid" in answer.text
    assert "ae_token" not in answer.headers.get("set-cookie", "")


def test_signin_without_the_csrf_value_is_refused(site: Site) -> None:
    site.client.get("/signin")  # sets the CSRF cookie
    answer = site.client.post("/signin", data={"token": site.tokens["admin"], "csrf": "x" * 43},
                              follow_redirects=False)  # fmt: skip
    assert answer.status_code == 403
    assert "ae_token" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_signin_never_sends_anyone_to_another_site(site: Site, target: str) -> None:
    form = site.client.get("/signin")
    answer = site.client.post("/signin", data={"token": site.tokens["assessor"],
                                               "csrf": csrf_of(form.text), "next": target},
                              follow_redirects=False)  # fmt: skip
    assert answer.headers["location"] == "/review"


def test_a_revoked_token_sends_back_to_signin_and_is_forgotten(site: Site) -> None:
    site.signin("assessor")
    service: ReviewService = site.client.app.state.service  # type: ignore[attr-defined]
    service.revoke_token("assessor-ann", actor="test")
    answer = site.client.get("/review", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin")
    assert 'ae_token=""' in answer.headers["set-cookie"]


def test_signout_forgets_the_token(site: Site) -> None:
    site.signin("assessor")
    csrf = csrf_of(site.page("/review"))
    answer = site.client.post("/signout", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert site.client.get("/review", follow_redirects=False).status_code == 303


def test_home_is_the_queue_for_staff_and_the_record_for_a_learner(site: Site) -> None:
    site.signin("trainer")
    assert site.client.get("/", follow_redirects=False).headers["location"] == "/review"
    site.signin("learner")
    assert site.client.get("/", follow_redirects=False).headers["location"] == (
        f"/learners/{LEARNER}"
    )


def test_pages_carry_security_headers(site: Site) -> None:
    site.signin("assessor")
    answer = site.client.get(f"/sessions/{site.s.speeder}")
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_stylesheet_is_served(site: Site) -> None:
    answer = site.client.get("/static/web.css")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/css")
    assert "@media" in answer.text


# ==================================================================================== queue


def test_queue_lists_sessions_that_need_a_person_newest_first(site: Site) -> None:
    site.signin("assessor")
    html = site.page("/review")
    s = site.s
    assert _queue(html) == [s.critical, s.network, s.competent, s.no_tilt, s.speeder]
    assert "Critical failed: All four pre-use checks done before starting the engine" in html
    assert "Observation pending: Looks over the shoulder in the direction of travel" in html


def test_queue_filters_by_scenario(site: Site) -> None:
    site.signin("trainer")
    html = site.page("/review?scenario=network-lab")
    assert _queue(html) == [site.s.network]
    assert '<option value="network-lab" selected>' in html


def test_a_session_that_passes_after_an_observation_leaves_the_queue(site: Site) -> None:
    site.signin("assessor")
    url = f"/sessions/{site.s.competent}/observations"
    site.post(url, {"criterion": "looks_before_reversing", "verdict": "pass", "note": "looked"})
    assert site.s.competent not in _queue(site.page("/review"))


def test_learners_have_no_queue(site: Site) -> None:
    site.signin("learner")
    answer = site.client.get("/review")
    assert answer.status_code == 403
    assert site.s.speeder not in answer.text


# ============================================================================== session page


def test_session_page_draws_each_violation_where_the_evidence_says(site: Site) -> None:
    site.signin("assessor")
    html = site.page(f"/sessions/{site.s.speeder}")
    report = site.report(site.s.speeder)
    failed = {c["id"]: c["evidence"] for c in report["criteria"] if c["verdict"] == "fail"}
    assert set(failed) == {"loaded_speed", "empty_speed"}
    svg = re.search(r'<svg[^>]*class="timeline".*?</svg>', html, re.S)
    assert svg is not None
    from_ = float(re.search(r'data-t-from="([^"]+)"', svg.group(0)).group(1))  # type: ignore[union-attr]
    to = float(re.search(r'data-t-to="([^"]+)"', svg.group(0)).group(1))  # type: ignore[union-attr]
    scale = tl.time_scale(from_, to)
    assert to == report_close(site, site.s.speeder)
    for criterion, evidence in failed.items():
        # a metric's bars are its contributing intervals; the others' their evidence interval
        kind, spans = ("contrib", evidence["contributing"]) if evidence.get("contributing") else (
            "violation", [[evidence["t_start"], evidence["t_end"]]])  # fmt: skip
        rects = re.findall(rf'<rect class="{kind}" data-criterion="{criterion}"[^>]*>',
                           svg.group(0))  # the wide copy (the narrow one draws the same)
        assert len(rects) == len(spans), criterion
        for rect, (t_start, t_end) in zip(rects, spans, strict=True):
            attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', rect))
            assert float(attrs["data-t-start"]) == t_start
            assert float(attrs["data-t-end"]) == t_end
            assert float(attrs["x"]) == pytest.approx(scale.x(t_start), abs=0.01)
            assert float(attrs["x"]) + float(attrs["width"]) == pytest.approx(
                max(scale.x(t_end), scale.x(t_start) + tl.MIN_RECT_PX), abs=0.02
            )
    assert failed["empty_speed"]["contributing"]  # the over-speed moments, not the session


def report_close(site: Site, sid: str) -> float:
    service: ReviewService = site.client.app.state.service  # type: ignore[attr-defined]
    record = service.store.session(sid)
    assert record is not None
    assert record.close_t is not None
    return record.close_t


def test_session_page_plots_the_rubrics_signals_and_marks_decisions(site: Site) -> None:
    site.signin("assessor")
    html = site.page(f"/sessions/{site.s.speeder}")
    wide = re.search(r'<svg[^>]*class="timeline".*?</svg>', html, re.S)
    assert wide is not None  # the narrow copy (timeline-narrow) draws the same
    html = wide.group(0)
    lanes = re.findall(r'<g class="lane" data-signal="(\w+)"', html)
    assert lanes == ["speed", "load", "fork_height", "mast_tilt", "pedestrian_distance"]
    decided = re.findall(r'<g class="decision" data-criterion="(\w+)" data-verdict="(\w+)"', html)
    assert ("loaded_speed", "fail") in decided
    assert ("pre_use_checks", "pass") in decided
    assert "looks_before_reversing" not in {c for c, _ in decided}  # pending: not decided


def test_session_page_shows_the_criteria_with_evidence(site: Site) -> None:
    site.signin("assessor")
    html = site.page(f"/sessions/{site.s.speeder}")
    row = _row(html, "loaded_speed")
    assert 'data-verdict="fail"' in row
    assert "2:29.6 - 2:30.6" in row  # the evidence interval
    assert "Rule: never load &gt; 50 kg and speed &gt; 8 km/h for 1.0 s or longer" in row
    assert "speed 8.042 to 9.842 km/h during it" in row  # the values over the episode
    assert _outcome(html) == "fail"
    metric = _row(html, "empty_speed")
    assert re.search(r"\d+\.\d s of speed &gt; 12 km/h while load ≤ 50 kg, limit 10 s", metric)
    passed = _row(html, "pre_use_checks")
    assert "min " not in passed  # no whole-session extremes for a pass
    assert "max " not in passed


def test_an_observation_changes_the_outcome_at_once(site: Site) -> None:
    site.signin("assessor")
    sid = site.s.no_tilt
    assert _outcome(site.page(f"/sessions/{sid}")) == "incomplete"
    answer = site.post(f"/sessions/{sid}/observations",
                       {"criterion": "looks_before_reversing", "verdict": "pass",
                        "note": "Looked over the shoulder every time"})  # fmt: skip
    assert answer.status_code == 303
    target = answer.headers["location"]
    assert target.startswith(f"/sessions/{sid}?")
    assert target.endswith("#confirmation")  # the browser scrolls to it (and focuses it)
    html = site.page(target)
    assert _outcome(html) == "pass"
    # the confirmation names the criterion by its number and title, and the new outcome
    assert re.search(r'id="confirmation" role="status" tabindex="-1" autofocus>Observation '
                     r"recorded for 11\. Looks over the shoulder in the direction of travel "
                     r"before and while reversing\.\s*<span class=\"outcome-now\">The outcome is "
                     r"now <strong>pass</strong>, score 85\.", html)
    row = _row(html, "looks_before_reversing")
    assert 'data-verdict="pass"' in row
    assert "Looked over the shoulder every time" in row


def test_notes_and_reasons_are_escaped(site: Site) -> None:
    site.signin("admin")
    sid = site.s.speeder
    site.post(f"/sessions/{sid}/observations",
              {"criterion": "looks_before_reversing", "verdict": "fail", "note": NOTE_HTML})
    site.post(f"/sessions/{sid}/overrides",
              {"criterion": "empty_speed", "verdict": "pass", "reason": NOTE_HTML})
    html = site.page(f"/sessions/{sid}")
    assert "<script>alert" not in html
    assert "<b>bold</b>" not in html
    escaped = ("&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; "
               "&amp; more")
    assert html.count(escaped) == 6  # in the reasons, the criteria table and the history


def test_an_override_is_shown_beside_the_machine_verdict(site: Site) -> None:
    site.signin("assessor")
    sid = site.s.speeder
    answer = site.post(f"/sessions/{sid}/overrides",
                       {"criterion": "loaded_speed", "verdict": "pass",
                        "reason": "Speedometer calibrated wrong on this truck"})  # fmt: skip
    assert answer.status_code == 303
    html = site.page(answer.headers["location"])
    row = _row(html, "loaded_speed")
    assert 'data-verdict="fail"' in row  # the machine verdict stays
    assert 'data-final-verdict="pass"' in row
    assert "override: pass" in row
    assert "Speedometer calibrated wrong" in row
    # 60 + 20 points, the observation still pending: no longer certain to fail
    assert 'data-outcome-with-overrides="incomplete"' in html
    assert _outcome(html) == "fail"
    assert "Before overrides" in html
    assert "this is the outcome that counts, with the overrides below" in html
    # the violation is still drawn: the evidence has not changed
    assert '<rect class="violation" data-criterion="loaded_speed"' in html


def test_an_override_needs_a_reason(site: Site) -> None:
    site.signin("assessor")
    sid = site.s.speeder
    answer = site.post(f"/sessions/{sid}/overrides",
                       {"criterion": "loaded_speed", "verdict": "pass", "reason": "   "})
    assert answer.status_code == 422
    assert "needs a written reason" in answer.text
    assert 'data-final-verdict="fail"' in _row(answer.text, "loaded_speed")


def test_an_observation_of_a_scored_criterion_is_refused_and_the_note_kept(site: Site) -> None:
    site.signin("assessor")
    sid = site.s.speeder
    answer = site.post(f"/sessions/{sid}/observations",
                       {"criterion": "loaded_speed", "verdict": "pass", "note": "my <note>"})
    assert answer.status_code == 422
    assert "only &#39;observed&#39; criteria take observations" in answer.text
    assert _outcome(answer.text) == "fail"


def test_a_blank_note_is_refused(site: Site) -> None:
    site.signin("assessor")
    answer = site.post(f"/sessions/{site.s.no_tilt}/observations",
                       {"criterion": "looks_before_reversing", "verdict": "pass", "note": " "})
    assert answer.status_code == 422
    assert "write what was observed" in answer.text
    assert _outcome(answer.text) == "incomplete"


def test_a_refused_entry_is_marked_at_its_field_and_the_summary_links_only_to_a_field(
    site: Site,
) -> None:
    site.signin("assessor")
    answer = site.post(f"/sessions/{site.s.no_tilt}/observations",
                       {"criterion": "looks_before_reversing", "verdict": "pass", "note": " "})
    assert answer.status_code == 422
    note = re.search(r'<textarea id="note-looks_before_reversing"[^>]*>', answer.text)
    assert note is not None
    assert 'aria-invalid="true"' in note.group(0)
    assert 'aria-describedby="err-note-looks_before_reversing"' in note.group(0)
    assert "autofocus" in note.group(0)
    assert re.search(r'<p class="field-error" id="err-note-looks_before_reversing">'
                     r"write what was observed</p>", answer.text)
    assert 'href="#note-looks_before_reversing"' in answer.text
    assert answer.text.count('aria-invalid="true"') == 1  # no other field is marked
    # a criterion the engine decides has no observation field: nothing to link to
    answer = site.post(f"/sessions/{site.s.speeder}/observations",
                       {"criterion": "loaded_speed", "verdict": "pass", "note": "my note"})
    assert answer.status_code == 422
    assert 'href="#note-loaded_speed"' not in answer.text
    assert 'id="note-loaded_speed"' not in answer.text


@pytest.mark.parametrize("csrf", ["", "wrong" * 10])
def test_a_post_without_the_right_csrf_value_changes_nothing(site: Site, csrf: str) -> None:
    site.signin("assessor")
    sid = site.s.no_tilt
    answer = site.post(f"/sessions/{sid}/observations",
                       {"criterion": "looks_before_reversing", "verdict": "pass", "note": "x"},
                       csrf=csrf)  # fmt: skip
    assert answer.status_code == 403
    assert "expired or did not come from this site" in answer.text
    assert _outcome(site.page(f"/sessions/{sid}")) == "incomplete"


def test_a_post_without_a_csrf_cookie_is_refused(site: Site) -> None:
    site.signin("assessor")
    csrf = csrf_of(site.page(f"/sessions/{site.s.no_tilt}"))
    site.client.cookies.delete("ae_csrf")
    answer = site.post(f"/sessions/{site.s.no_tilt}/observations",
                       {"criterion": "looks_before_reversing", "verdict": "pass", "note": "x"},
                       csrf=csrf)  # fmt: skip
    assert answer.status_code == 403


def test_trainers_read_sessions_but_get_no_forms_and_may_not_post(site: Site) -> None:
    site.signin("trainer")
    sid = site.s.no_tilt
    html = site.page(f"/sessions/{sid}")
    assert "/observations" not in html
    assert "/overrides" not in html
    csrf = csrf_of(html)  # the sign-out form's
    answer = site.post(f"/sessions/{sid}/observations",
                       {"criterion": "looks_before_reversing", "verdict": "pass", "note": "x"},
                       csrf=csrf)  # fmt: skip
    assert answer.status_code == 403
    assert _outcome(site.page(f"/sessions/{sid}")) == "incomplete"


def test_a_learner_reads_their_own_session_without_forms(site: Site) -> None:
    site.signin("learner")
    html = site.page(f"/sessions/{site.s.speeder}")
    assert '<rect class="violation" data-criterion="loaded_speed"' in html
    assert "/observations" not in html
    assert "/overrides" not in html


def test_a_learner_cannot_see_another_learners_session(site: Site) -> None:
    site.signin("learner")
    answer = site.client.get(f"/sessions/{site.s.competent}")
    assert answer.status_code == 404
    assert site.s.competent in answer.text  # "no session '...'"
    assert "looks_before_reversing" not in answer.text


def test_a_running_session_shows_its_timeline_and_no_verdicts_yet(site: Site) -> None:
    site.signin("assessor")
    html = site.page(f"/sessions/{site.s.running}")
    assert 'data-outcome=""' in html
    assert "No verdicts yet" in html
    assert '<g class="lane" data-signal="speed"' in html
    assert 'class="violation"' not in html
    assert site.s.running not in _queue(site.page("/review"))


def test_an_unknown_session_is_not_found(site: Site) -> None:
    site.signin("assessor")
    assert site.client.get("/sessions/nope").status_code == 404


# ============================================================================== learner page


def test_learner_page_charts_every_attempt_and_lists_competencies(site: Site) -> None:
    site.signin("assessor")
    html = site.page(f"/learners/{LEARNER}")
    marks = re.findall(r'<a class="attempt" href="[^"]+" data-session="([^"]+)" '
                       r'data-outcome="(\w*)"', html)  # fmt: skip
    assert marks == [(site.s.speeder, "fail"), (site.s.no_tilt, "incomplete")]
    statuses = dict(re.findall(r'data-code="([\w-]+)" data-status="(\w+)"', html))
    assert set(statuses) == {"MH-101", "MH-102", "MH-103", "MH-104", "MH-105"}
    assert statuses["MH-101"] == "demonstrated"
    assert "pass mark 80" in html


def test_learner_page_follows_an_observation(site: Site) -> None:
    site.signin("assessor")
    site.post(f"/sessions/{site.s.no_tilt}/observations",
              {"criterion": "looks_before_reversing", "verdict": "pass", "note": "ok"})
    html = site.page(f"/learners/{LEARNER}")
    assert f'data-session="{site.s.no_tilt}" data-outcome="pass"' in html


def test_an_attempt_not_scored_yet_is_charted_as_such(site: Site) -> None:
    site.signin("trainer")
    html = site.page("/learners/learner-000003")
    marks = re.findall(r'data-session="([^"]+)" data-outcome="(\w*)"', html)
    assert marks == [(site.s.critical, "fail"), (site.s.running, "")]
    assert "not scored" in html


def test_a_learner_sees_only_their_own_record(site: Site) -> None:
    site.signin("learner")
    assert site.client.get(f"/learners/{LEARNER}").status_code == 200
    answer = site.client.get(f"/learners/{OTHER_LEARNER}")
    assert answer.status_code == 404
    assert site.s.competent not in answer.text
