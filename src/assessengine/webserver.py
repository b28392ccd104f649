"""uvicorn serving an ASGI app from a thread of the engine's process.

    server = WebServer(app, "127.0.0.1", 0)     # port 0: a free port
    server.start()                              # returns once it accepts connections
    print(server.url)
    server.stop()

The listening socket is bound here (so the real port is known before uvicorn starts); uvicorn
installs no signal handlers outside the main thread, so the process keeps its own.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class WebServer:
    """An ASGI app on HOST:PORT, in a daemon thread. Not restartable."""

    def __init__(self, app: Any, host: str, port: int, *, log_level: str = "warning") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(128)
        except OSError:
            self._socket.close()
            raise
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_level=log_level, lifespan="on", ws="none", access_log=False,
            timeout_graceful_shutdown=5,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="engine-http", daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start serving; raises RuntimeError if it is not up within `timeout` seconds."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the HTTP server did not start: {self._error}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the HTTP server did not start within {timeout}s")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, finish requests in flight (up to a few seconds), close. Idempotent."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._socket.close()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); the engine keeps running
            self._error = exc
            log.exception("HTTP server failed")
