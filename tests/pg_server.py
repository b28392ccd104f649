"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` package, one cluster per
test session in a temporary directory, on 127.0.0.1 and a free port.

The tests run as root in CI; PostgreSQL refuses to run as root, so the cluster belongs to the
``postgres`` OS user and its programs run through ``runuser -u postgres --`` (as the current
user when that is not root). The package's own default cluster (``/var/lib/postgresql/*/main``)
is never touched: it may be running or not.

Databases are made per test from a template (``CREATE DATABASE ... TEMPLATE ...``: a file copy,
milliseconds), so every test starts from a known state. The server runs with ``fsync=off``:
it is thrown away at the end, and the tests check what the engine commits, not the disk
(the benchmarks start theirs with ``durable=True``).

More server settings go in `config` (``{"wal_level": "logical"}``: the replication tests);
`standby` makes a streaming standby of a running server (``pg_basebackup``), `promote` turns
a standby into a primary.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Final

import pytest

USER: Final = "postgres"
PASSWORD: Final = "assessengine-tests"
MISSING: Final = (
    "PostgreSQL tests skipped: Debian's postgresql package is not installed "
    "(apt-get install -y postgresql)"
)


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's program folder, or None without the package."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgServer:
    """A running cluster: `url(dbname)` connects to one of its databases as the superuser
    (password authentication over TCP)."""

    def __init__(
        self, programs: Path, *, durable: bool = False, config: Mapping[str, str] | None = None
    ) -> None:
        self.programs = programs
        self.durable = durable
        self.config = dict(config or {})
        self.root = Path(tempfile.mkdtemp(prefix="assessengine-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self._as_postgres = os.geteuid() == 0
        os.chmod(self.root, 0o755)
        if self._as_postgres:
            shutil.chown(self.root, USER, USER)

    def url(self, dbname: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_postgres:
            shutil.chown(pwfile, USER, USER)
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}",
                  "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")  # fmt: skip
        self.resume()

    @property
    def _options(self) -> str:
        """The server's command-line options (``pg_ctl -o``)."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        if not self.durable:  # tests: nothing to keep; benchmarks sync as a real server does
            options += " -c fsync=off -c full_page_writes=off"
        for name, value in self.config.items():
            options += f" -c {name}={value}"
        return options

    def standby(self, *, config: Mapping[str, str] | None = None) -> PgServer:
        """A streaming standby of this (running) server, started: a base backup
        (``pg_basebackup -R``: it follows this server from then on) on a port of its own.
        Stop it with `stop`."""
        replica = PgServer(self.programs, durable=self.durable,
                           config={**self.config, **(config or {})})  # fmt: skip
        conninfo = (f"host=127.0.0.1 port={self.port} user={USER} password={PASSWORD} "
                    "application_name=standby")  # fmt: skip
        replica._run("pg_basebackup", "-D", str(replica.data), "-d", conninfo, "-R",
                     "-X", "stream", "-c", "fast", "--no-sync")  # fmt: skip
        replica.resume()
        return replica

    def promote(self) -> None:
        """Make this standby a primary (``pg_ctl promote``, waiting until it takes writes)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def create_database(self, *, template: str = "template1") -> str:
        """A new, empty database (a copy of `template`): its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def sql(self, statement: str, dbname: str = "postgres") -> str:
        """Run one statement with psql over the socket (trust); its unaligned output."""
        return self._run(
            "psql", "-X", "-q", "-A", "-t", "-h", str(self.root), "-p", str(self.port),
            "-U", USER, "-d", dbname, "-v", "ON_ERROR_STOP=1", "-c", statement,
        )  # fmt: skip

    def halt(self) -> None:
        """Stop the server as a crash would (``pg_ctl stop -m immediate``), keeping its data
        directory and port: `resume` starts it again (an outage, not the end of the test)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start a server `halt` stopped, on the same data directory and port."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o",
                  self._options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> str:
        command = [str(self.programs / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{tail}"
            )
        return done.stdout


def start_server(
    *, durable: bool = False, config: Mapping[str, str] | None = None
) -> Iterator[PgServer]:
    """A started server, stopped and deleted afterwards; skips when PostgreSQL is missing.
    `durable`: fsync as a production server does (benchmarks), not as the tests need;
    `config`: more server settings (``-c NAME=VALUE``)."""
    programs = bin_dir()
    if programs is None:
        pytest.skip(MISSING)
    server = PgServer(programs, durable=durable, config=config)
    try:
        server.start()
        yield server
    finally:
        server.stop()
