"""Forwarding statements to an LRS: a real HTTP server on 127.0.0.1 stands in for the LRS."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from assessengine.adapters.lrs import LrsClient, LrsError

from .waits import WAIT_S

STATEMENTS = [
    {"id": "d9b4fd46-03d3-59af-bad4-66456502b107", "actor": {}, "verb": {}, "object": {}},
    {"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "actor": {}, "verb": {}, "object": {}},
]


@dataclass
class StandIn:
    """What the stand-in LRS answers (one status per request; the last one repeats) and what
    it received."""

    statuses: list[int] = field(default_factory=lambda: [200])
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""

    def answer(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@pytest.fixture
def lrs() -> Iterator[StandIn]:
    stand_in = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stand_in.requests.append(
                (
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(body),
                )
            )
            status = stand_in.answer()
            payload = b""
            if status == 200:
                payload = json.dumps([s["id"] for s in json.loads(body)]).encode()
            elif status >= 400:
                payload = b'{"message": "stand-in says no"}'
            self.send_response(status)
            for name, value in stand_in.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}/xapi/"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=WAIT_S)


def client(url: str, sleeps: list[float], **options: Any) -> LrsClient:
    options.setdefault("attempts", 4)
    return LrsClient(url, username="engine", password="s3cret", sleep=sleeps.append, **options)


def test_statements_are_posted_with_basic_auth_and_the_xapi_version(lrs: StandIn) -> None:
    sleeps: list[float] = []
    ids = client(lrs.url, sleeps).send(STATEMENTS)
    assert ids == [s["id"] for s in STATEMENTS]
    ((method, path, headers, body),) = lrs.requests
    assert (method, path) == ("POST", "/xapi/statements")
    assert headers["x-experience-api-version"] == "1.0.3"
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"engine:s3cret").decode()
    assert body == STATEMENTS
    assert sleeps == []


def test_an_lrs_that_fails_twice_then_succeeds_gets_the_statements(lrs: StandIn) -> None:
    lrs.statuses = [503, 500, 200]
    sleeps: list[float] = []
    ids = client(lrs.url, sleeps, backoff_s=0.5).send(STATEMENTS)
    assert ids == [s["id"] for s in STATEMENTS]
    assert len(lrs.requests) == 3
    assert all(r[3] == STATEMENTS for r in lrs.requests)  # the same statements each time
    assert sleeps == [0.5, 1.0]  # exponential backoff


def test_the_client_gives_up_after_its_attempts(lrs: StandIn) -> None:
    lrs.statuses = [502]
    sleeps: list[float] = []
    with pytest.raises(LrsError, match=r"gave up after 3 attempts .* HTTP 502") as raised:
        client(lrs.url, sleeps, attempts=3, backoff_s=1.0, max_backoff_s=1.5).send(STATEMENTS)
    assert raised.value.status == 502
    assert len(lrs.requests) == 3
    assert sleeps == [1.0, 1.5]  # capped


@pytest.mark.parametrize(("status", "word"), [(400, "Bad Request"), (401, "Unauthorized"),
                                              (409, "Conflict")])  # fmt: skip
def test_a_refusal_is_final_and_says_why(lrs: StandIn, status: int, word: str) -> None:
    lrs.statuses = [status]
    sleeps: list[float] = []
    with pytest.raises(LrsError, match=f"HTTP {status} {word}: .*stand-in says no") as raised:
        client(lrs.url, sleeps).send(STATEMENTS)
    assert (raised.value.status, raised.value.retryable) == (status, False)
    assert len(lrs.requests) == 1
    assert sleeps == []


def test_too_many_requests_waits_as_asked_within_the_cap(lrs: StandIn) -> None:
    lrs.statuses = [429, 200]
    lrs.headers = {"Retry-After": "3"}
    sleeps: list[float] = []
    client(lrs.url, sleeps, backoff_s=0.5, max_backoff_s=8).send(STATEMENTS)
    assert sleeps == [3.0]


def test_a_204_answer_is_success_and_the_ids_sent_stand(lrs: StandIn) -> None:
    lrs.statuses = [204]
    assert client(lrs.url, []).send(STATEMENTS) == [s["id"] for s in STATEMENTS]


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(LrsError, match=r"gave up after 2 attempts .* no answer") as raised:
        client(f"http://127.0.0.1:{port}/xapi", sleeps, attempts=2).send(STATEMENTS)
    assert raised.value.status is None
    assert sleeps == [0.5]


def test_nothing_to_send_sends_nothing(lrs: StandIn) -> None:
    assert client(lrs.url, []).send([]) == []
    assert lrs.requests == []


@pytest.mark.parametrize(
    ("endpoint", "options"),
    [("lrs.example.org", {}), ("https://lrs.example.org", {"attempts": 0})],
)
def test_bad_settings_are_refused(endpoint: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"LRS endpoint|attempts"):
        LrsClient(endpoint, **options)
