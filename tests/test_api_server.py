"""The API served by a real uvicorn server on 127.0.0.1 (an ephemeral port, in a thread, shut down
cleanly), spoken to over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from assessengine.api.app import create_app

from .test_api_support import LEARNER, copy_template, make_tokens
from .waits import WAIT_S


@pytest.fixture
def served(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    db, stored = copy_template(tmp_path_factory, tmp_path)
    app = create_app(db_path=db, metrics=lambda: "up 1\n", web=False)
    tokens = make_tokens(app.state.service)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none",
                            lifespan="on", access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    assert host == "127.0.0.1"
    try:
        yield f"http://127.0.0.1:{port}", tokens, list(stored.forklift_competent)
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT_S)
    assert not thread.is_alive(), "the server did not shut down"
    # the lifespan closed the store: a new app can open the same file at once
    create_app(db_path=db, web=False).state.service.close()


def test_a_real_server_answers_the_review_flow(
    served: tuple[str, dict[str, str], list[str]],
) -> None:
    base, tokens, competent = served
    assessor = {"Authorization": f"Bearer {tokens['assessor']}"}
    with httpx.Client(base_url=base, timeout=WAIT_S) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/metrics").text == "up 1\n"
        refused = http.get("/api/v1/sessions")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        page = http.get("/api/v1/sessions", params={"outcome": "incomplete", "limit": 2},
                        headers=assessor).json()  # fmt: skip
        assert len(page["items"]) == 2
        sid = competent[0]
        observed = http.post(f"/api/v1/sessions/{sid}/observations", headers=assessor, json={
            "criterion": "looks_before_reversing", "verdict": "pass", "note": "checked",
        })  # fmt: skip
        assert observed.status_code == 201
        assert observed.json()["machine"]["outcome"] == "pass"
        csv = "t,event,speed,load\n0,,0,0\n1,engine_start,0.5,0\n2,,3,0\n"
        field = http.post("/api/v1/field-sessions", headers=assessor,
                          files={"file": ("log.csv", csv.encode(), "text/csv")},
                          data={"learner": LEARNER, "rubric": "forklift-load-handling"})
        assert field.status_code == 201, field.text
        assert field.json()["source"] == "field"
        mine = http.get("/api/v1/sessions", params={"limit": 100},
                        headers={"Authorization": f"Bearer {tokens['learner']}"}).json()
        assert field.json()["session"] in [s["session"] for s in mine["items"]]
        schema = http.get("/openapi.json").json()
        assert "/api/v1/sessions/{session_id}/observations" in schema["paths"]
