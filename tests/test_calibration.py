"""Calibration over the JSON API, on SQLite and PostgreSQL: assessor-versus-engine agreement
for a seeded set of overrides by two assessors (each number recounted from the sessions' own
pages, kappa computed independently from a confusion matrix), simulator-to-field validity
recomputed from the session pages with scipy.stats, the warning below the minimum count, and
the roles that may read them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats as sp

from assessengine.adapters.signer import IssuerKey
from assessengine.api.app import create_app
from assessengine.api.service.models import ObservationIn, OverrideIn

from .test_cohorts import fill
from .test_web_support import csrf_of

AGREEMENT = "/api/v1/calibration/agreement"
VALIDITY = "/api/v1/calibration/validity"
FLIP = {"pass": "fail", "fail": "pass"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """(client as a trainer, tokens) over `fill`'s store: assessor `ann` reviews the even
    sessions (an observation each) and flips `pre_use_checks` on three of them; assessor `bob`
    reviews the odd ones and marks one criterion not applicable on session 1 (every session
    observed: none is left incomplete for want of an observation)."""
    tmp_path = tmp_path_factory.mktemp("calibration")
    url: str | Path = tmp_path / "engine.db"
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = server.url(server.create_database())
    ids = fill(url)
    key = tmp_path / "issuer.pem"
    key.write_bytes(IssuerKey.generate().to_pem())
    key.chmod(0o600)
    app = create_app(db_path=url, issuer_key_path=key)
    service = app.state.service
    tokens = {}
    for name, role in (("admin", "admin"), ("trainer", "trainer"), ("ann", "assessor"),
                       ("bob", "assessor"), ("learner", "learner")):
        _, tokens[name] = service.create_token(name=name, role=role,
                                               learner="L-1" if role == "learner" else None,
                                               actor="test")  # fmt: skip
    ann, bob = service.authenticate(tokens["ann"]), service.authenticate(tokens["bob"])
    for sid in ids[::2]:
        service.observe(ann, sid, ObservationIn(criterion="looks_before_reversing",
                                                verdict="pass", note="seen"))  # fmt: skip
    with TestClient(app, headers={"Authorization": f"Bearer {tokens['trainer']}"}) as client:
        for sid in ids[0:6:2]:
            page = client.get(f"/api/v1/sessions/{sid}").json()
            machine = next(c["scorer_verdict"] for c in page["criteria"]
                           if c["id"] == "pre_use_checks")  # fmt: skip
            service.override(ann, sid, OverrideIn(criterion="pre_use_checks",
                                                  verdict=FLIP[machine],
                                                  reason="saw otherwise"))  # fmt: skip
        for sid in ids[1::2]:
            service.observe(bob, sid, ObservationIn(criterion="looks_before_reversing",
                                                    verdict="pass", note="seen"))  # fmt: skip
        service.override(bob, ids[1], OverrideIn(criterion="pre_use_checks",
                                                 verdict="not_applicable",
                                                 reason="no checks in this exercise"))
        yield client, tokens


def _details(client: TestClient) -> list[dict[str, Any]]:
    items = client.get("/api/v1/sessions?status=closed&limit=500").json()["items"]
    return [client.get(f"/api/v1/sessions/{s['session']}").json() for s in reversed(items)]


def _kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa from the confusion matrix (numpy), independently of `core.agreement`."""
    labels = sorted(set(a) | set(b))
    m = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b, strict=True):
        m[labels.index(x), labels.index(y)] += 1
    n = m.sum()
    po = np.trace(m) / n
    pe = float((m.sum(axis=1) @ m.sum(axis=0)) / (n * n))
    return None if pe == 1 else float((po - pe) / (1 - pe))


def _expected_agreement(client: TestClient) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
    """Per assessor and criterion: (scorer's verdicts, assessor's), from the session pages."""
    found: dict[str, dict[str, tuple[list[str], list[str]]]] = defaultdict(dict)
    for d in _details(client):
        actors = {c[k]["by"] for c in d["criteria"] for k in ("observation", "override")
                  if c[k] is not None}  # fmt: skip
        for actor in actors:
            for c in d["criteria"]:
                if c["template"] == "observed" or c["scorer_verdict"] not in (
                        "pass", "fail", "not_applicable"):
                    continue
                mine = c["override"] is not None and c["override"]["by"] == actor
                own = c["override"]["verdict"] if mine else c["scorer_verdict"]
                machine, assessor = found[actor].setdefault(c["id"], ([], []))
                machine.append(c["scorer_verdict"])
                assessor.append(own)
    return found


def test_agreement_per_assessor_and_criterion_matches_the_session_pages(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, _ = api
    answer = client.get(AGREEMENT)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = _expected_agreement(client)
    assert [a["assessor"] for a in body["assessors"]] == sorted(expected) == ["ann", "bob"]
    for a in body["assessors"]:
        mine = expected[a["assessor"]]
        assert {c["criterion"] for c in a["criteria"]} == set(mine)
        for c in a["criteria"]:
            machine, assessor = mine[c["criterion"]]
            changed = sum(m != v for m, v in zip(machine, assessor, strict=True))
            assert (c["verdicts"], c["overridden"]) == (len(machine), changed)
            assert c["percent_agreement"] == pytest.approx(1 - changed / len(machine))
            k = _kappa(machine, assessor)
            assert c["kappa"] == (None if k is None else pytest.approx(k))
            assert (c["warning"] is None) == (len(machine) >= 10)
        everything = [v for pair in mine.values() for v in zip(*pair, strict=True)]
        assert a["verdicts"] == len(everything)
        assert a["overridden"] == sum(m != v for m, v in everything)
        assert a["kappa"] == pytest.approx(_kappa([m for m, _ in everything],
                                                  [v for _, v in everything]))
    ann = next(a for a in body["assessors"] if a["assessor"] == "ann")
    checks = next(c for c in ann["criteria"] if c["criterion"] == "pre_use_checks")
    assert (checks["verdicts"], checks["overridden"]) == (10, 3)   # 10 sessions reviewed
    assert checks["percent_agreement"] == pytest.approx(0.7)
    bob = next(a for a in body["assessors"] if a["assessor"] == "bob")
    assert bob["overridden"] == 1


def test_agreement_filters_by_rubric(api: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = api
    assert client.get(AGREEMENT, params={"rubric": "no-such-rubric"}).json()["assessors"] == []
    assert client.get(AGREEMENT, params={"rubric": "forklift-load-handling"}).json() == \
        client.get(AGREEMENT).json()


def test_validity_matches_the_session_pages_and_scipy(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, _ = api
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for d in _details(client):   # open order: later sessions replace earlier ones
        if d["with_overrides"]["outcome"] in ("pass", "fail"):
            latest[(d["learner"], d["source"])] = d
    learners = sorted({lr for lr, src in latest if src == "simulator"}
                      & {lr for lr, src in latest if src == "field"})  # fmt: skip
    answer = client.get(VALIDITY)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["learners"] == len(learners) > 1
    assert [p["learner"] for p in body["pairs"]] == learners
    sim = [latest[(lr, "simulator")]["with_overrides"] for lr in learners]
    field = [latest[(lr, "field")]["with_overrides"] for lr in learners]
    table = [[sum(1 for s, f in zip(sim, field, strict=True)
                  if s["outcome"] == a and f["outcome"] == b) for b in ("pass", "fail")]
             for a in ("pass", "fail")]  # fmt: skip
    assert body["labels"] == ["pass", "fail"]
    assert body["confusion"] == table
    scores = [s["score"] for s in sim]
    passed = [f["outcome"] == "pass" for f in field]
    assert body["point_biserial_count"] == len(learners)
    if len(set(passed)) > 1 and len(set(scores)) > 1:
        assert body["point_biserial"] == pytest.approx(sp.pointbiserialr(passed, scores)[0])
    else:
        assert body["point_biserial"] is None
    if len(set(scores)) > 1 and len({f["score"] for f in field}) > 1:
        assert body["spearman"] == pytest.approx(
            sp.spearmanr(scores, [f["score"] for f in field])[0])
    assert "fewer than 10" in body["warning"]


def test_only_trainers_and_admins_read_calibration(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = api
    for path in (AGREEMENT, VALIDITY):
        for name, status in (("admin", 200), ("trainer", 200), ("ann", 403), ("learner", 403)):
            answer = client.get(path, headers={"Authorization": f"Bearer {tokens[name]}"})
            assert answer.status_code == status, (path, name)
            if status == 403:
                assert answer.json()["detail"] == "Calibration is for trainers and admins."


@pytest.mark.parametrize("query", ["version=0", "opened_from=yesterday",
                                   "opened_from=2026-02-01&opened_to=2026-01-01"])
def test_calibration_refuses_bad_parameters(
    api: tuple[TestClient, dict[str, str]], query: str
) -> None:
    client, _ = api
    for path in (AGREEMENT, VALIDITY):
        assert client.get(f"{path}?{query}").status_code == 422, (path, query)


def _signed_in(client: TestClient, token: str) -> TestClient:
    page = TestClient(client.app)  # not entered: leaving would shut the shared app down
    form = page.get("/signin")
    answer = page.post("/signin", data={"token": token, "csrf": csrf_of(form.text), "next": ""},
                       follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303, answer.text
    return page


def test_the_calibration_page_shows_the_apis_numbers(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = api
    agreement, validity = client.get(AGREEMENT).json(), client.get(VALIDITY).json()
    page = _signed_in(client, tokens["trainer"])
    assert 'id="calibration-link"' in page.get("/dashboard").text
    html = page.get("/calibration").text
    for a in agreement["assessors"]:
        for c in a["criteria"]:
            row = html.split(f'data-assessor="{a["assessor"]}" '
                             f'data-criterion="{c["criterion"]}"', 1)[1].split("</tr>", 1)[0]
            kappa = "n/a" if c["kappa"] is None else f"{c['kappa']:.2f}"
            assert f'<td data-label="Kappa" class="kappa">{kappa}</td>' in row
            assert f'<td data-label="Overridden">{c["overridden"]}</td>' in row
    assert f'data-learners="{validity["learners"]}"' in html
    assert "Warning: only" in html
    for row in validity["confusion"]:
        assert "".join(f"<td>{n}</td>" for n in row) in html


def test_assessors_and_learners_do_not_get_the_calibration_page(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = api
    page = _signed_in(client, tokens["ann"])
    assert 'id="calibration-link"' not in page.get("/dashboard").text
    answer = page.get("/calibration")
    assert answer.status_code == 403
    assert "Calibration is for trainers and admins." in answer.text


@pytest.mark.parametrize("path", [AGREEMENT, VALIDITY, "/api/v1/dashboard",
                                  "/api/v1/review-queue", "/api/v1/review-queue.csv",
                                  "/api/v1/sessions.csv"])  # fmt: skip
def test_a_range_with_one_bound_naive_and_one_with_an_offset_is_compared_in_utc(
    api: tuple[TestClient, dict[str, str]], path: str
) -> None:
    # Found by the fuzz test: "from" with an offset, "to" without one was a 500.
    client, tokens = api
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    fine = client.get(path, headers=admin, params={"opened_from": "1970-01-01T00:00:00Z",
                                                   "opened_to": "2000-01-01T00:00:00"})
    assert fine.status_code == 200, fine.text
    reversed_ = client.get(path, headers=admin, params={"opened_from": "2000-01-01T01:00:00+02:00",
                                                        "opened_to": "1999-12-31T22:00:00"})
    assert reversed_.status_code == 422, reversed_.text


def test_validity_lists_at_most_the_limit_of_pairs_and_counts_them_all(
    api: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = api
    whole = client.get(VALIDITY).json()
    monkeypatch.setattr("assessengine.api.service.calibration.MAX_PAIRS_LISTED", 1)
    cut = client.get(VALIDITY).json()
    assert cut["pairs"] == whole["pairs"][:1]
    assert {k: v for k, v in cut.items() if k != "pairs"} == \
        {k: v for k, v in whole.items() if k != "pairs"}
