"""Fixtures shared by every test tier: databases on SQLite and a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from artifactstore_core.config import create_engine
from artifactstore_core.testing.servers import postgres_server

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a maintenance database on the test PostgreSQL server.

    ``ARTIFACTSTORE_TEST_POSTGRES_URL`` points at an existing server; otherwise one is
    started for the session. A server that cannot start fails the test with its log.
    """
    external = os.environ.get("ARTIFACTSTORE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    with postgres_server() as server:
        yield server.url()


def _fresh_postgres_database(admin_url: str) -> tuple[str, sa.Engine, str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    return url, admin, name


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    request.applymarker(pytest.mark.postgres)
    admin_url = request.getfixturevalue("postgres_admin_url")
    url, admin, name = _fresh_postgres_database(admin_url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on the empty ``database_url``."""
    eng = create_engine(database_url)
    try:
        yield eng
    finally:
        eng.dispose()


_POSTGRES_PASSED = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``ARTIFACTSTORE_REQUIRE_POSTGRES=1`` (CI), a run with no PostgreSQL test fails."""
    if os.environ.get("ARTIFACTSTORE_REQUIRE_POSTGRES") != "1" or exitstatus != 0:
        return
    if session.config.stash.get(_POSTGRES_PASSED, 0) == 0:
        print("\nERROR: no PostgreSQL test ran; CI requires the real PostgreSQL tests")
        session.exitstatus = 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Count PostgreSQL tests that passed, for the check above."""
    report: pytest.TestReport = yield
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        item.config.stash[_POSTGRES_PASSED] = item.config.stash.get(_POSTGRES_PASSED, 0) + 1
    return report


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of the test S3 server (moto, in a subprocess, for the session).

    ``ARTIFACTSTORE_TEST_S3_ENDPOINT`` points at an existing server instead (it must accept
    the test credentials). A server that cannot start fails the test with its log.
    """
    from artifactstore_core.testing.servers import s3_server

    external = os.environ.get("ARTIFACTSTORE_TEST_S3_ENDPOINT")
    if external:
        yield external
        return
    with s3_server() as server:
        yield server.endpoint_url
