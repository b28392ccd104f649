"""`assessengine serve` refuses what it cannot do with one line and exit status 2, never a
traceback: a store another `serve` runs on (its lock beside the store), a ZeroMQ or HTTP port
in use."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from assessengine.storage.lock import StoreInUseError, lock_path
from assessengine.storage.sqlite import SqliteStore

from .test_engine_helpers import serve


def run_serve(db: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`assessengine serve` that is expected to refuse (so it is given little time)."""
    return subprocess.run(
        [sys.executable, "-m", "assessengine", "serve", "--db", str(db), *options],
        capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


PROGRESS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ")


def assert_refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2 and one `error:` line; INFO progress lines (the kernel loading) may precede it,
    nothing else (no traceback, no second message)."""
    lines = [x for x in result.stderr.strip().splitlines() if not PROGRESS.match(x)]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback TCP port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def test_a_second_serve_on_the_same_store_refuses_and_the_first_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "engine.db"
    first = serve(db, "--scoring", "thread")
    try:
        second = run_serve(db, "--zmq", "tcp://127.0.0.1:*", "--http", "127.0.0.1:0")
        assert_refused(second, str(db), "in use by another engine", f"pid {first.process.pid}")
        assert first.health() == 200
    finally:
        assert first.terminate() == 0, first.log()
    third = serve(db, "--scoring", "thread")  # the lock went with the first process
    assert third.terminate() == 0, third.log()


def test_the_store_lock_is_held_while_an_exclusive_store_is_open(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with SqliteStore(db, exclusive=True):
        with pytest.raises(StoreInUseError, match="in use by another engine"):
            SqliteStore(db, exclusive=True)
        with SqliteStore(db) as reader:  # readers do not take the lock
            assert reader.sessions() == []
    assert lock_path(db).exists()
    SqliteStore(db, exclusive=True).close()


def test_serve_on_a_busy_zeromq_port_says_so_in_one_line(tmp_path: Path, busy_port: int) -> None:
    result = run_serve(tmp_path / "e.db", "--zmq", f"tcp://127.0.0.1:{busy_port}", "--http",
                       "127.0.0.1:0", "--scoring", "thread")  # fmt: skip
    assert_refused(result, f"tcp://127.0.0.1:{busy_port}", "Address already in use")


def test_serve_on_a_busy_http_port_says_so_in_one_line(tmp_path: Path, busy_port: int) -> None:
    result = run_serve(tmp_path / "e.db", "--zmq", "tcp://127.0.0.1:*", "--http",
                       f"127.0.0.1:{busy_port}", "--scoring", "thread")  # fmt: skip
    assert_refused(result, f"HTTP on 127.0.0.1:{busy_port}", "in use")
