"""A live gateway on loopback over a fresh store: SQLite + local blobs, PostgreSQL + S3.

Tests speak raw HTTP (httpx) to a real uvicorn server in a thread, bound to a socket
pre-opened on ``127.0.0.1:0`` (no port race); streaming cannot be tested through
``httpx.ASGITransport``, which buffers whole responses.

Fixtures: ``gateway_store`` (both flavours), ``sqlite_store``; ``gateway`` and
``sqlite_gateway`` (a ``LiveServer`` over them); ``LiveServer.client(secret)`` and
``issue_token(store, *scopes, ...)`` for tokens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from artifactstore_core import ArtifactStore, Settings
from artifactstore_core.testing.servers import (
    S3_TEST_ACCESS_KEY,
    S3_TEST_REGION,
    S3_TEST_SECRET_KEY,
    create_s3_bucket,
)
from artifactstore_http import Limits, create_app
from tests.conftest import _fresh_postgres_database

FLAVOURS = ("sqlite-local", "postgres-s3")
ADMIN = "package:**:admin"


@dataclass
class LiveServer:
    """A gateway answering at ``url`` over ``store``."""

    url: str
    store: ArtifactStore
    app: FastAPI

    def client(self, secret: str | None = None, **kwargs: Any) -> httpx.Client:
        """An httpx client on the server, with ``Authorization: Bearer <secret>``."""
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


@contextlib.contextmanager
def live_server(
    store: ArtifactStore, *, settings: Settings | None = None, limits: Limits | None = None
) -> Iterator[LiveServer]:
    """Serve ``create_app(store)`` on a free loopback port in a thread while in the block."""
    app = create_app(store, settings=settings or Settings(), limits=limits)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test gateway did not start")
        time.sleep(0.01)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", store, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _sqlite_store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.open(f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "blobs"))


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[ArtifactStore]:
    """A store on SQLite with local blobs."""
    store = _sqlite_store(tmp_path)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=FLAVOURS)
def gateway_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    """A store on SQLite + local blobs, and on the PostgreSQL server + the S3 server."""
    if request.param == "sqlite-local":
        store = _sqlite_store(tmp_path)
        try:
            yield store
        finally:
            store.close()
        return
    request.applymarker(pytest.mark.postgres)
    request.applymarker(pytest.mark.s3)
    url, admin, name = _fresh_postgres_database(request.getfixturevalue("postgres_admin_url"))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = create_s3_bucket(endpoint, f"h-{uuid.uuid4().hex[:16]}")
    settings = Settings(
        database_url=url,
        storage_url=f"s3://{bucket}/hot",
        s3_endpoint_url=endpoint,
        s3_region=S3_TEST_REGION,
        s3_access_key_id=S3_TEST_ACCESS_KEY,
        s3_secret_access_key=S3_TEST_SECRET_KEY,  # type: ignore[arg-type]
    )
    store = ArtifactStore.from_settings(settings)
    try:
        yield store
    finally:
        store.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def gateway(gateway_store: ArtifactStore) -> Iterator[LiveServer]:
    """A live gateway over each store flavour."""
    with live_server(gateway_store) as server:
        yield server


@pytest.fixture
def sqlite_gateway(sqlite_store: ArtifactStore) -> Iterator[LiveServer]:
    """A live gateway over SQLite + local blobs (for tests of the HTTP layer itself)."""
    with live_server(sqlite_store) as server:
        yield server


def issue_token(
    store: ArtifactStore,
    *scopes: str,
    actor: str = "alice",
    run_id: str | None = None,
    expires_in: dt.timedelta = dt.timedelta(hours=1),
) -> str:
    """The secret of a new token (issued with the registry's own authority)."""
    issued = store.tokens.issue(
        actor=actor, scopes=scopes or (ADMIN,), expires_at=expires_in,
        run_id=run_id, issued_by="test",
    )  # fmt: skip
    return issued.secret


@pytest.fixture
def admin_secret(gateway: LiveServer) -> str:
    """A token with ``admin`` on every name, for ``gateway``."""
    return issue_token(gateway.store)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and code; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"] == f"/v1/problems/{code.lower()}"
    assert body["instance"] == response.headers["x-request-id"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body
