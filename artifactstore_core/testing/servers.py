"""Throw-away servers on loopback for tests and benchmarks: PostgreSQL 15 (and, later, S3).

A server that cannot start raises ``ServerStartError`` carrying its log, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# --- S3: moto's server mode in a subprocess --------------------------------------------
# (This section was appended; its imports stay here so the PostgreSQL part is untouched.)


#: Credentials the test S3 server accepts while authentication is off (any non-empty pair).
S3_TEST_ACCESS_KEY = "testing"
S3_TEST_SECRET_KEY = "testing"
S3_TEST_REGION = "us-east-1"
_S3_START_TIMEOUT = 30.0
# Loopback requests must not go through an HTTP proxy from the environment.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class S3Server:
    """A moto S3 server in its own process on loopback.

    ``kill()`` and ``pause()``/``resume()`` exist for fault tests; ``enable_auth()`` makes
    it check signatures against IAM credentials from ``create_credentials()``.
    """

    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are accepted but never answered."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a paused server (SIGCONT)."""
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGCONT)
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def client(self, service: str = "s3") -> Any:
        """A boto3 client for ``service`` on this server, with the test credentials."""
        return s3_client(self.endpoint_url, service)

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` on this server and return its name."""
        return create_s3_bucket(self.endpoint_url, name)

    def create_credentials(self, user: str = "artifactstore") -> tuple[str, str]:
        """An IAM user with full S3 access; its ``(access key id, secret)``.

        Call before ``enable_auth()``: once authentication is on, only these work.
        """
        iam = self.client("iam")
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="s3-full-access",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    def enable_auth(self) -> None:
        """Make the server verify every request's signature and IAM permissions.

        moto accepts any credentials until ``INITIAL_NO_AUTH_ACTION_COUNT`` requests have
        been served; its ``/moto-api/reset-auth`` endpoint sets that count to 0.
        """
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            # A form content type would make the server parse (and empty) the body.
            headers={"Content-Type": "text/plain"},
        )
        with _LOOPBACK.open(request, timeout=5) as response:
            if response.status != 200:
                raise RuntimeError(f"moto refused to enable authentication: {response.status}")


def s3_client(
    endpoint_url: str,
    service: str = "s3",
    key: str = S3_TEST_ACCESS_KEY,
    secret: str = S3_TEST_SECRET_KEY,
) -> Any:
    """A boto3 client for ``service`` at ``endpoint_url`` (test credentials by default)."""
    import boto3  # type: ignore[import-untyped]  # a development dependency (moto)

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=S3_TEST_REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )


def create_s3_bucket(endpoint_url: str, name: str) -> str:
    """Create bucket ``name`` at ``endpoint_url`` (us-east-1: no location constraint)."""
    s3_client(endpoint_url).create_bucket(Bucket=name)
    return name


def _wait_until_answering(server: S3Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise ServerStartError(
                f"moto S3 server exited with {server.process.returncode} before answering "
                f"on {server.endpoint_url}:\n{server.log()}"
            )
        try:
            with _LOOPBACK.open(f"{server.endpoint_url}/moto-api/", timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"moto S3 server did not answer on {server.endpoint_url} within "
                    f"{timeout:.0f} s ({exc}):\n{server.log()}"
                ) from exc
            time.sleep(0.05)


def _default_signals() -> None:
    # A shell running us in the background may ignore these; the server must not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def s3_server(env: Mapping[str, str] | None = None) -> Iterator[S3Server]:
    """Start moto's S3 server as a subprocess on a free loopback port; stop it after.

    ``env`` adds environment variables for the server process (moto settings).
    """
    root = Path(tempfile.mkdtemp(prefix="artifactstore-s3-"))
    log_path = root / "server.log"
    port = free_port()
    child_env = {**os.environ, "AWS_DEFAULT_REGION": S3_TEST_REGION, **(env or {})}
    try:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
                preexec_fn=_default_signals,
            )
        server = S3Server(f"http://127.0.0.1:{port}", process, log_path)
        try:
            _wait_until_answering(server, _S3_START_TIMEOUT)
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
