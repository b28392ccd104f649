"""Numbers and instants at the edge of what they can hold are refused with a message or held at
their end, never a 500: pagination cursors past SQLite's 64-bit integers, a session closed at
t = 1e308, dates whose offset carries them past year 1 or year 9999."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assessengine.api.app import create_app
from assessengine.core.instants import to_utc, utc_text
from assessengine.core.xapi import XapiError, iso_duration

from .test_api_support import Api, copy_template, make_tokens, open_api


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path_factory, tmp_path)


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("listing", ["/api/v1/sessions", "/api/v1/audit"])
@pytest.mark.parametrize("value", [
    cursor("s:9223372036854775808"), cursor("a:9223372036854775808"),
    cursor("s:" + "9" * 40), cursor("a:" + "9" * 40), cursor("s:-1"), cursor("a:-1"),
    cursor("s:"), cursor("s:\u0661"), cursor("a:1e3"), cursor("a: 1"), cursor("x:1"),
    "%%%", "====", "not-a-cursor", "_w",
])  # fmt: skip
def test_a_malformed_cursor_is_a_validation_problem(api: Api, listing: str, value: str) -> None:
    answer = api.get(listing, params={"cursor": value})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == [{"name": "query.cursor", "reason": "invalid cursor"}]


def test_the_largest_key_is_still_a_cursor(api: Api) -> None:
    """A cursor continues after the session it names, in opened order (storage.order); one
    that names no session (here the largest key) is still a cursor: an empty page, no error."""
    answer = api.get("/api/v1/sessions", params={"cursor": cursor(f"s:{2**63 - 1}"), "limit": 1})
    assert answer.status_code == 200
    assert answer.json()["items"] == []
    assert answer.json()["next_cursor"] is None


def test_the_review_page_refuses_a_cursor_past_64_bits(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    db, _ = copy_template(tmp_path_factory, tmp_path)
    app = create_app(db_path=db)
    token = make_tokens(app.state.service)["assessor"]
    with TestClient(app) as client:
        client.cookies.set("ae_token", token)
        page = client.get("/review", params={"cursor": cursor("s:9223372036854775808")})
    assert page.status_code == 422
    assert "cursor" in page.text


@pytest.fixture
def far_closed(api: Api) -> str:
    """A scored session whose close time is 1e308 s (finite, so the store took it)."""
    session = api.stored.forklift_mixed[0]
    with sqlite3.connect(api.db) as db:
        db.execute("UPDATE sessions SET close_t = 1e308 WHERE session = ?", (session,))
    return session


def test_xapi_of_a_session_closed_at_1e308_is_refused_with_a_message(
    api: Api, far_closed: str
) -> None:
    answer = api.get(f"/api/v1/sessions/{far_closed}/xapi")
    assert answer.status_code == 409
    assert "closed at t = 1e+308 s" in answer.json()["detail"]


def test_a_session_closed_at_1e308_is_still_readable(api: Api, far_closed: str) -> None:
    assert api.get(f"/api/v1/sessions/{far_closed}").json()["close_t"] == 1e308
    for query in ("", "?buckets=50", "?t_from=0&t_to=1000000000&buckets=5000"):
        assert api.get(f"/api/v1/sessions/{far_closed}/events{query}").status_code == 200


@pytest.mark.parametrize("seconds", [1e308, 1e9 + 1, float("inf"), float("nan"), -1.0])
def test_a_duration_xapi_cannot_carry_is_an_xapi_error(seconds: float) -> None:
    with pytest.raises(XapiError, match="a duration is a number of seconds from 0 to 1e"):
        iso_duration(seconds)


def test_the_longest_duration_is_formatted() -> None:
    assert iso_duration(1e9) == "PT277777H46M40S"


@pytest.mark.parametrize("document", [
    {"validFrom": "0001-01-01T00:00:00+01:00"},
    {"validUntil": "9999-12-31T23:59:59-05:00"},
    {"validFrom": "0001-01-01T00:00:00+01:00", "validUntil": "9999-12-31T23:59:59-05:00"},
])  # fmt: skip
def test_verifying_dates_at_the_ends_of_the_calendar_answers(
    api: Api, document: dict[str, str]
) -> None:
    answer = api.client.post("/api/v1/credentials/verify", json=document)
    assert answer.status_code == 200, answer.text
    assert answer.json()["valid"] is False  # no proof: but every check ran


def test_instants_past_the_calendar_are_held_at_its_ends() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    assert to_utc(early) == datetime.min.replace(tzinfo=UTC)
    assert to_utc(late) == datetime.max.replace(tzinfo=UTC)
    assert utc_text(datetime(5, 3, 1, tzinfo=UTC)) == "0005-03-01T00:00:00Z"
    assert utc_text(late, "milliseconds") == "9999-12-31T23:59:59.999Z"
