"""A throwaway S3-compatible server for the archive tests: moto's standalone server
(``moto[server]`` from PyPI, the `moto_server` program), on 127.0.0.1 and a free port, its
objects in memory.

Why moto and not SeaweedFS: the ``seaweedfs`` wheel (which ships the ``weed`` binary) is not
on the package index this project installs from; moto's server speaks the S3 HTTP protocol
(SigV4, multipart uploads, listing, ranged reads), which is what s3fs and pyarrow use.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from .pg_server import free_port
from .waits import WAIT_S

KEY: Final = "assessengine-test-key"
SECRET: Final = "assessengine-test-secret"
REGION: Final = "us-east-1"


def program() -> list[str]:
    """The server's command: the `moto_server` beside this interpreter, else on PATH."""
    found = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "moto.server"]


@contextmanager
def s3_server() -> Iterator[str]:
    """Start the server; yield its endpoint URL (http://127.0.0.1:PORT); stop it."""
    port = free_port()
    proc = subprocess.Popen([*program(), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {endpoint}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def aws_environ(endpoint: str) -> Mapping[str, str]:
    """The standard AWS variables that point a client at the test server."""
    return {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint}  # fmt: skip
