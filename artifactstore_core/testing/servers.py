"""Throw-away servers on loopback for tests and benchmarks: PostgreSQL 15 (and, later, S3).

A server that cannot start raises ``ServerStartError`` carrying its log, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

POSTGRES_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"),)
POSTGRES_USER = "postgres"


class ServerStartError(RuntimeError):
    """A test server failed to start; the message includes its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin() -> Path:
    for directory in POSTGRES_BIN_DIRS:
        if (directory / "pg_ctl").is_file():
            return directory
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise ServerStartError(
        "PostgreSQL server binaries not found (looked in "
        f"{', '.join(map(str, POSTGRES_BIN_DIRS))} and PATH); install postgresql-15"
    )


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server; ``url(db)`` gives a psycopg URL for database ``db``."""

    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"


def _run_as(user: str | None, args: list[str], log: Path | None = None) -> None:
    command = ["runuser", "-u", user, "--", *args] if user else args
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        extra = log.read_text(errors="replace") if log and log.exists() else ""
        raise ServerStartError(
            f"{' '.join(args[:1])} failed ({result.returncode}):\n{result.stdout}\n"
            f"{result.stderr}\n{extra}"
        )


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start PostgreSQL in a temporary directory on a free loopback port; stop it after.

    As root the server runs as the ``postgres`` user (it refuses to run as root).
    """
    bin_dir = _postgres_bin()
    as_user = POSTGRES_USER if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="artifactstore-pg-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if as_user:
        entry = pwd.getpwnam(as_user)
        for path in (root, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        root.chmod(0o755)
    port = free_port()
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        _run_as(as_user, [*initdb, "-E", "UTF8", "--no-sync"])
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off"
        pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
        _run_as(as_user, [*pg_ctl, "-l", str(log), "-w", "-o", options, "start"], log)
        try:
            yield PostgresServer("127.0.0.1", port, "postgres")
        finally:
            _run_as(as_user, [*pg_ctl, "-m", "fast", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
