"""The trainers' rubric page over HTTP: upload a draft, see what it changes on the stored
sessions (a raised limit flips a known verdict), then publish it; refusals."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assessengine.api.app import create_app
from assessengine.api.service import ReviewService
from assessengine.storage.sqlite import SqliteStore

from .stored_payloads import copy_store
from .test_web_support import LEARNER, _store, csrf_of, make_tokens

REPO = Path(__file__).resolve().parents[1]
V1 = (REPO / "rubrics" / "forklift-load-handling.yaml").read_text(encoding="utf-8")
V2 = V1.replace("\nversion: 1\n", "\nversion: 2\n").replace(
    'never: "load > 50 and speed > 8"', 'never: "load > 50 and speed > 30"'
)
EDIT = "criterion loaded_speed: never 'load > 50 and speed > 8' -> 'load > 50 and speed > 30'"


@dataclass(frozen=True)
class Template:
    path: Path
    speeder: str
    competent: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("rubric-versions") / "template.db"
    with SqliteStore(path) as store:
        speeder = _store(store, "forklift-load-handling", "speeder", seed=2, index=0)
        competent = _store(store, "forklift-load-handling", "competent", seed=3, index=1)
    service = ReviewService.open(path)
    try:
        tokens = make_tokens(service)
    finally:
        service.close()
    return Template(path, speeder, competent, tokens)


@pytest.fixture
def client(template: Template, tmp_path: Path) -> Iterator[TestClient]:
    db = tmp_path / "store.db"
    copy_store(template.path, db)
    with TestClient(create_app(db_path=db)) as http:
        yield http


def _signin(client: TestClient, token: str) -> None:
    form = client.get("/signin")
    answer = client.post("/signin", data={"token": token, "csrf": csrf_of(form.text), "next": ""},
                         follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303


def _draft(client: TestClient, text: str, csrf: str | None = None) -> str:
    page = client.get("/rubric-versions")
    answer = client.post("/rubric-versions/draft",
                         data={"csrf": csrf if csrf is not None else csrf_of(page.text)},
                         files={"file": ("forklift-v2.yaml", text.encode())})  # fmt: skip
    return answer.text if answer.status_code == 200 else f"{answer.status_code}\n{answer.text}"


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)
    assert found is not None, name
    return html.unescape(found.group(1))


def _versions(client: TestClient) -> list[tuple[str, str]]:
    """The forklift rubric's published versions, as the page lists them."""
    return re.findall(r'<tr data-rubric="(forklift-load-handling)" data-version="(\d+)">',
                      client.get("/rubric-versions").text)  # fmt: skip


def test_draft_diff_then_publish(client: TestClient, template: Template) -> None:
    _signin(client, template.tokens["trainer"])
    assert _versions(client) == [("forklift-load-handling", "1")]
    page = _draft(client, V2)
    assert EDIT in html.unescape(page)
    row = re.search(rf'<tr data-session="{template.speeder}" data-criterion="loaded_speed">'
                    r"(.*?)</tr>", page, re.S)  # fmt: skip
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert cells[-2].startswith("fail at t=")  # published version: failed, with its evidence
    assert cells[-1].startswith("pass at t=")  # the draft: passes
    assert f'data-session="{template.competent}"' not in page  # unchanged: not listed
    assert "2 session(s)" in page  # both closed sessions were tried
    assert _versions(client) == [("forklift-load-handling", "1")]  # nothing stored yet

    answer = client.post("/rubric-versions/publish", data={
        "csrf": _hidden(page, "csrf"), "filename": _hidden(page, "filename"),
        "text": _hidden(page, "text")}, follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/rubric-versions?published=")
    assert _versions(client) == [("forklift-load-handling", "1"), ("forklift-load-handling", "2")]
    service: ReviewService = client.app.state.service  # type: ignore[attr-defined]
    (row2,) = [r for r in service.review.rubrics("forklift-load-handling") if r.version == 2]
    assert row2.text == V2  # published exactly as uploaded (the form's CRLF undone)
    assert client.get("/rubrics/forklift-load-handling").text.count('data-version="2"') == 1


def test_a_draft_with_problems_lists_them_with_line_and_column(
    client: TestClient, template: Template
) -> None:
    _signin(client, template.tokens["trainer"])
    page = _draft(client, V2.replace("speed > 30", "sped > 30"))
    assert page.startswith("422\n")
    assert re.search(r"<li>line \d+, column \d+: unknown signal &#39;sped&#39;", page)


def test_a_draft_reusing_a_published_version_number_is_a_conflict(
    client: TestClient, template: Template
) -> None:
    _signin(client, template.tokens["trainer"])
    page = _draft(client, V2.replace("\nversion: 2\n", "\nversion: 1\n"))
    assert page.startswith("409\n")
    assert "give the new text a new version number" in page


def test_a_new_rubric_has_nothing_to_compare_with(client: TestClient, template: Template) -> None:
    _signin(client, template.tokens["trainer"])
    page = _draft(client, V2.replace("rubric: forklift-load-handling", "rubric: forklift-new"))
    assert 'id="no-base"' in page
    assert 'id="publish-form"' in page


@pytest.mark.parametrize("role", ["assessor", "learner"])
def test_other_roles_may_not_see_or_try_drafts(
    client: TestClient, template: Template, role: str
) -> None:
    _signin(client, template.tokens[role])
    assert client.get("/rubric-versions").status_code == 403
    page = client.get("/review" if role == "assessor" else "/signin")
    answer = client.post("/rubric-versions/publish",
                         data={"csrf": csrf_of(page.text) if "csrf" in page.text else "",
                               "text": V2})  # fmt: skip
    assert answer.status_code == 403
    assert _versions_as_admin(client, template) == [("forklift-load-handling", "1")]


def _versions_as_admin(client: TestClient, template: Template) -> list[tuple[str, str]]:
    _signin(client, template.tokens["admin"])
    return _versions(client)


def test_a_post_without_the_csrf_value_is_refused(client: TestClient, template: Template) -> None:
    _signin(client, template.tokens["trainer"])
    assert _draft(client, V2, csrf="forged").startswith("403\n")


def test_a_stranger_is_sent_to_the_signin_form(client: TestClient) -> None:
    answer = client.get("/rubric-versions", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?")


def test_the_learner_page_links_each_rubric_to_its_plain_language_page(
    client: TestClient, template: Template
) -> None:
    _signin(client, template.tokens["learner"])
    page = client.get(f"/learners/{LEARNER}").text
    (link,) = re.findall(r'<a class="rubric-page" href="([^"]+)">', page)
    assert link == "/rubrics/forklift-load-handling"
    assert client.get(link).status_code == 200
