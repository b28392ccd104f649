"""What the browser tests share: Debian's Chromium driven by Playwright (`open_browser`; the
`browser` fixture in conftest.py), a real uvicorn server in a thread (`serving`), and the
`Server` the module fixtures yield."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import pytest
import uvicorn

from .test_web_support import Sessions
from .waits import WAIT_S

try:
    from playwright.sync_api import BrowserContext, Page, ViewportSize, sync_playwright
except ImportError:  # reported by the `browser` fixture as a failure, not a skip
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TABLET: ViewportSize = {"width": 1180, "height": 820}  # a 10.9" tablet in landscape (CSS px)
TABLET_PORTRAIT: ViewportSize = {"width": 820, "height": 1180}


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    s: Sessions


def listening() -> socket.socket:
    """A socket listening on 127.0.0.1 and a free port (for `serving`, when the app must know
    its URL before it is made)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextmanager
def serving(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """uvicorn serving `app` on 127.0.0.1 and a free port (or on `sock`), in a thread, while
    inside: yields its base URL once it accepts, stops it on the way out and checks that it
    shut down."""
    sock = sock or listening()
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                            timeout_graceful_shutdown=3)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not shut down"


@contextmanager
def open_browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """Headless Debian Chromium as a tablet (touch, landscape), its profile under `tmp_path`;
    a failure (not a skip) when Playwright or Chromium is missing."""
    if sync_playwright is None:
        pytest.fail("the Python package 'playwright' is missing: pip install -e '.[test]'")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y "
                    "chromium; .ci/run does it). This test never runs `playwright install`.")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            viewport=TABLET, has_touch=True, locale="en-GB", accept_downloads=True,
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()


AXE_TAGS: Final = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")


def axe_violations(page: Page) -> list[str]:
    """axe-core's violations of WCAG 2.0/2.1 A and AA on `page` as it is now, one line each
    (rule, impact, the elements' selectors). axe-core is the copy that the `axe-playwright-python`
    package ships (the `test` extra), evaluated in the page through the DevTools protocol, which
    the pages' Content-Security-Policy does not block; nothing is downloaded."""
    page.evaluate(_axe_source())
    results = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, "
        "resultTypes: ['violations']})", list(AXE_TAGS))  # fmt: skip
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: "
        + ", ".join(" ".join(map(str, n["target"])) for n in v["nodes"][:6])
        for v in results["violations"]
    ]


@cache
def _axe_source() -> str:
    return (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def docs_screenshot(page: Any, name: str) -> None:
    """A screenshot of `page` for the docs (``docs/img/NAME.png``), taken only with
    ``ASSESSENGINE_SCREENSHOTS=1`` (CI never rewrites the repository's files)."""
    if os.environ.get("ASSESSENGINE_SCREENSHOTS") == "1":
        page.screenshot(path=DOCS_IMG / f"{name}.png", full_page=True)
