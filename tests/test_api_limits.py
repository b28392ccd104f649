"""Request bodies over a real uvicorn server on 127.0.0.1: a route that needs a token refuses a
request without one (401) or whose role may not (403) before it reads the body, and every body is
bounded while it streams in (413), chunked or with a declared length; the server stays healthy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from assessengine.api.app import create_app
from assessengine.webserver import WebServer

from .test_api_support import copy_template, make_tokens
from .waits import WAIT_S

CHUNK = 64 * 1024
TOTAL = 16 * 2**20  # more than the socket buffers between client and server hold
UPLOAD_CAP = 256 * 1024
MULTIPART = "multipart/form-data; boundary=b"
FILE_PART = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="log.csv"\r\n'
             b"Content-Type: text/csv\r\n\r\nt,speed\n")  # fmt: skip


@dataclass
class Body:
    """A chunked request body of `total` bytes that counts how much of it was sent."""

    total: int = TOTAL
    head: bytes = b""
    sent: int = field(default=0, init=False)

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"x" * CHUNK
        self.sent = len(self.head)
        yield self.head
        while self.sent < self.total:
            self.sent += CHUNK
            yield chunk


@pytest.fixture
def server(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    db, _ = copy_template(tmp_path_factory, tmp_path)
    app = create_app(db_path=db, max_upload_bytes=UPLOAD_CAP)  # with the pages
    tokens = make_tokens(app.state.service)
    served = WebServer(app, "127.0.0.1", 0)
    served.start()
    try:
        yield served.url, tokens
    finally:
        served.stop()


def send(base: str, path: str, body: Body, token: str | None = None,
         content_type: str = "application/json") -> httpx.Response:  # fmt: skip
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=base, timeout=60) as http:
        return http.post(path, content=iter(body), headers=headers)


def healthy(base: str) -> bool:
    with httpx.Client(base_url=base, timeout=WAIT_S) as http:
        return http.get("/health").json() == {"status": "ok"}


@pytest.mark.parametrize("path", [
    "/api/v1/rescores", "/api/v1/field-sessions", "/api/v1/rubrics",
    "/api/v1/sessions/any/observations", "/api/v1/sessions/any/overrides",
    "/api/v1/credentials/issue", "/api/v1/credentials/urn:uuid:1/revoke",
])  # fmt: skip
def test_a_chunked_body_without_a_token_is_refused_unread(
    server: tuple[str, dict[str, str]], path: str
) -> None:
    base, _ = server
    body = Body()
    answer = send(base, path, body)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:assessengine:problem:unauthenticated"
    assert body.sent < body.total
    assert healthy(base)


def test_a_chunked_body_of_a_role_that_may_not_is_refused_unread(
    server: tuple[str, dict[str, str]],
) -> None:
    base, tokens = server
    body = Body()
    answer = send(base, "/api/v1/rescores", body, tokens["learner"])
    assert answer.status_code == 403
    assert answer.json()["type"] == "urn:assessengine:problem:forbidden"
    assert body.sent < body.total
    assert healthy(base)


@pytest.mark.parametrize(("path", "content_type"), [
    ("/api/v1/rescores", "application/json"),
    ("/api/v1/credentials/verify", "application/json"),
    ("/api/v1/field-sessions", MULTIPART),
    ("/api/v1/rubrics", MULTIPART),
])  # fmt: skip
def test_a_chunked_body_past_its_cap_is_refused_while_it_streams(
    server: tuple[str, dict[str, str]], path: str, content_type: str
) -> None:
    base, tokens = server
    body = Body(head=FILE_PART if content_type == MULTIPART else b"")
    answer = send(base, path, body, tokens["admin"], content_type)
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "urn:assessengine:problem:too-large"
    assert body.sent < body.total
    assert healthy(base)


def test_a_declared_length_past_the_cap_is_refused_before_the_body(
    server: tuple[str, dict[str, str]],
) -> None:
    base, tokens = server
    body = Body()
    headers = {"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "application/json",
               "Content-Length": str(body.total)}  # fmt: skip
    with httpx.Client(base_url=base, timeout=60) as http:
        answer = http.post("/api/v1/rescores", content=iter(body), headers=headers)
    assert answer.status_code == 413
    assert body.sent < body.total
    assert healthy(base)


def test_a_body_within_its_cap_still_reaches_the_route(
    server: tuple[str, dict[str, str]],
) -> None:
    base, tokens = server
    body = Body(total=CHUNK)  # 64 KiB of 'x': not JSON, so the route's own validation answers
    answer = send(base, "/api/v1/rescores", body, tokens["admin"])
    assert answer.status_code == 422
    assert body.sent == body.total


@pytest.mark.parametrize("cookie", [None, "aet_not-a-token"])
@pytest.mark.parametrize("form", ["observations", "overrides"])
def test_a_page_form_without_a_live_token_goes_to_sign_in_unread(
    server: tuple[str, dict[str, str]], cookie: str | None, form: str
) -> None:
    base, _ = server
    body = Body(head=b"csrf=x&note=")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=base, timeout=60) as http:
        if cookie is not None:
            http.cookies.set("ae_token", cookie)
        answer = http.post(f"/sessions/S-1/{form}", content=iter(body), headers=headers)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?next=%2Fsessions%2FS-1"
    assert body.sent < body.total
    assert healthy(base)
