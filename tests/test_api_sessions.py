"""Sessions over HTTP: list filters and cursor pages, one session's report, events raw and
downsampled, and errors as problem+json."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assessengine.api.service.series import downsample

from .test_api_support import FORKLIFT, LEARNER, Api, open_api, store_sessions


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path_factory, tmp_path)


def all_pages(a: Api, query: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        url = f"/api/v1/sessions?limit={limit}&{query}" + (f"&cursor={cursor}" if cursor else "")
        page = a.get(url).json()
        seen += [s["session"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the listing does not end")


def test_list_is_newest_first_and_pages_cover_every_session_once(api: Api) -> None:
    everything = api.get("/api/v1/sessions?limit=500").json()
    ids = [s["session"] for s in everything["items"]]
    assert ids == list(reversed(api.stored.all))
    assert everything["next_cursor"] is None
    assert all_pages(api, "", 5) == ids
    assert all_pages(api, "scenario=forklift-warehouse", 4) == [
        i for i in ids if i.startswith("forklift")
    ]


def test_a_page_continues_where_the_previous_ended_even_after_new_sessions(api: Api) -> None:
    first = api.get("/api/v1/sessions?limit=3").json()
    with_new = store_sessions(api.service.store, FORKLIFT, "competent", 1, seed=9)  # type: ignore[arg-type]
    second = api.get(f"/api/v1/sessions?limit=3&cursor={first['next_cursor']}").json()
    expected = list(reversed(api.stored.all))[3:6]
    assert [s["session"] for s in second["items"]] == expected
    assert with_new[0] not in [s["session"] for s in second["items"]]


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("learner=learner-000001", lambda s: s["learner"] == LEARNER),
        ("scenario=network-lab", lambda s: s["scenario"] == "network-lab"),
        ("rubric=forklift-load-handling", lambda s: s["rubric"] == "forklift-load-handling"),
        ("outcome=incomplete", lambda s: s["machine"]["outcome"] == "incomplete"),
        ("outcome=fail", lambda s: s["machine"]["outcome"] == "fail"),
        ("source=simulator", lambda s: s["source"] == "simulator"),
        ("status=open", lambda s: s["status"] == "open"),
    ],
)
def test_filters_keep_only_matching_sessions(
    api: Api, query: str, check: Callable[[dict[str, Any]], bool]
) -> None:
    everything = api.get("/api/v1/sessions?limit=500").json()["items"]
    page = api.get(f"/api/v1/sessions?limit=500&{query}").json()["items"]
    scored = [s for s in everything if s["machine"] is not None or "outcome" not in query]
    assert page, query
    assert [s["session"] for s in page] == [s["session"] for s in scored if check(s)]


def test_field_source_and_date_range_filters(api: Api) -> None:
    assert api.get("/api/v1/sessions?source=field").json()["items"] == []
    items = api.get("/api/v1/sessions?limit=500").json()["items"]
    middle = sorted(s["opened_at"] for s in items)[len(items) // 2]
    later = api.get(f"/api/v1/sessions?limit=500&opened_from={middle}").json()["items"]
    earlier = api.get(f"/api/v1/sessions?limit=500&opened_to={middle}").json()["items"]
    assert all(s["opened_at"] >= middle for s in later)
    assert all(s["opened_at"] <= middle for s in earlier)
    assert len(later) + len(earlier) == len(items) + 1
    assert api.get("/api/v1/sessions?opened_from=2999-01-01T00:00:00Z").json()["items"] == []
    # bounds at the ends of the calendar, or that an offset pushes past them, still filter
    # (years before 1000 once compared as text wrongly: "999-..." sorted after "2026-...")
    for bound, expected in [("0999-01-01T00:00:00Z", len(items)),
                            ("0001-01-01T05:00:00+14:00", len(items)),
                            ("9999-12-31T20:00:00-10:00", 0)]:  # fmt: skip
        answer = api.get("/api/v1/sessions", params={"limit": 500, "opened_from": bound})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["items"]) == expected
    late = api.get("/api/v1/sessions", params={"limit": 500,
                                               "opened_to": "9999-12-31T20:00:00-10:00"})
    assert len(late.json()["items"]) == len(items)
    audit = api.get("/api/v1/audit", params={"since": "0001-01-01T05:00:00+14:00",
                                             "until": "9999-12-31T20:00:00-10:00"})
    assert audit.status_code == 200, audit.text
    assert audit.json()["items"] == api.get("/api/v1/audit").json()["items"]


def test_a_bad_cursor_is_a_validation_problem(api: Api) -> None:
    answer = api.get("/api/v1/sessions?cursor=not-a-cursor")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["errors"] == [{"name": "query.cursor", "reason": "invalid cursor"}]
    assert problem["instance"] == "/api/v1/sessions"


def test_validation_problems_name_their_fields(api: Api) -> None:
    problem = api.get("/api/v1/sessions?limit=0&outcome=maybe").json()
    assert problem["type"] == "urn:assessengine:problem:validation"
    assert problem["status"] == 422
    assert {e["name"] for e in problem["errors"]} == {"query.limit", "query.outcome"}
    for key in ("type", "title", "status", "detail", "instance"):
        assert key in problem


def test_one_session_has_criteria_verdicts_and_evidence(api: Api) -> None:
    sid = api.stored.forklift_mixed[0]
    detail = api.get(f"/api/v1/sessions/{sid}").json()
    report = api.service.store.report(sid)
    assert report is not None
    assert detail["scored"] == {"outcome": report["outcome"], "score": report["score"]}
    assert [c["id"] for c in detail["criteria"]] == [c["id"] for c in report["criteria"]]
    for shown, stored in zip(detail["criteria"], report["criteria"], strict=True):
        assert shown["scorer_verdict"] == shown["verdict"] == shown["final_verdict"]
        assert shown["evidence"] == stored["evidence"]
        assert shown["override"] is None
    assert detail["rubric_available"] is True
    assert detail["batches"] > 1
    observed = next(c for c in detail["criteria"] if c["template"] == "observed")
    assert observed["verdict"] == "pending"
    assert observed["decided_by"] == "pending"


def test_an_open_session_has_no_outcome_yet(api: Api) -> None:
    detail = api.get(f"/api/v1/sessions/{api.stored.open_session}").json()
    assert detail["status"] == "open"
    assert detail["machine"] is None
    assert detail["criteria"] == []


def test_an_unknown_session_is_a_404_problem(api: Api) -> None:
    answer = api.get("/api/v1/sessions/nope")
    assert answer.status_code == 404
    assert answer.json()["type"] == "urn:assessengine:problem:not-found"


def test_raw_events_in_a_time_range(api: Api) -> None:
    sid = api.stored.forklift_mixed[0]
    data = api.get(f"/api/v1/sessions/{sid}/events?t_from=10&t_to=20&signals=speed,load").json()
    assert data["downsampled"] is False
    assert set(data["values"]) == {"speed", "load"}
    assert all(10 <= t <= 20 for t in data["t"])
    assert len(data["t"]) == len(data["values"]["speed"]) == data["rows"] > 10
    assert data["seq"] == sorted(data["seq"])


def test_downsampled_events_keep_the_extremes_of_each_bucket(api: Api) -> None:
    sid = api.stored.forklift_mixed[1]
    raw = api.get(f"/api/v1/sessions/{sid}/events?signals=speed&t_to=1000000").json()
    assert raw["rows"] <= 20_000
    coarse = api.get(f"/api/v1/sessions/{sid}/events?signals=speed&buckets=7").json()
    assert coarse["downsampled"] is True
    assert len(coarse["t"]) == len(coarse["min"]["speed"]) == 7
    speeds = [v for v in raw["values"]["speed"] if v is not None]
    assert max(v for v in coarse["max"]["speed"] if v is not None) == max(speeds)
    assert min(v for v in coarse["min"]["speed"] if v is not None) == min(speeds)
    top = coarse["max"]["speed"].index(max(speeds))
    assert coarse["t"][top] <= coarse["t_max"]["speed"][top] <= coarse["t_end"][top]


def test_a_one_sample_spike_survives_downsampling() -> None:
    t = np.linspace(0.0, 100.0, 10_001)
    values = np.sin(t)[None, :].copy()
    values[0, 4321] = 50.0
    values[0, 100:200] = np.nan
    b = downsample(t, values, 0.0, 100.0, 10)
    assert b.hi[0, 4] == 50.0
    assert b.t_hi[0, 4] == t[4321]
    assert np.all(b.lo[0] >= -1.0)
    assert np.allclose(b.end - b.start, 10.0)


def test_empty_buckets_are_null(api: Api) -> None:
    sid = api.stored.forklift_mixed[0]
    data = api.get(f"/api/v1/sessions/{sid}/events?t_from=0&t_to=0.05&buckets=50"
                   "&signals=speed").json()  # fmt: skip
    assert None in data["min"]["speed"]


def test_unknown_signal_and_too_many_raw_rows_are_422(api: Api) -> None:
    sid = api.stored.forklift_mixed[0]
    bad = api.get(f"/api/v1/sessions/{sid}/events?signals=sped")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["name"] == "query.signals"
    reversed_range = api.get(f"/api/v1/sessions/{sid}/events?t_from=5&t_to=1")
    assert reversed_range.status_code == 422


def test_named_events_are_listed_with_their_times(api: Api) -> None:
    sid = api.stored.forklift_mixed[0]
    data = api.get(f"/api/v1/sessions/{sid}/events?buckets=10").json()
    names = {e["event"] for e in data["events"]}
    assert "engine_start" in names
    assert "sample" not in names


def test_health_and_metrics_need_no_token(api: Api) -> None:
    assert api.client.get("/health").json() == {"status": "ok"}
    metrics = api.client.get("/metrics")
    assert metrics.text == "assessengine_up 1\n"
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
