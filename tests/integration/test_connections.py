"""Settings reach the database connections, and an unreachable server is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifactstore_core.config import check_connection, create_engine, load_settings
from artifactstore_core.errors import BackendUnavailableError
from artifactstore_core.store import ArtifactStore
from artifactstore_core.testing.servers import free_port

pytestmark = pytest.mark.integration


def test_unreachable_postgres_names_host_and_port() -> None:
    port = free_port()  # nothing listens here
    engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none")
    with pytest.raises(BackendUnavailableError, match=rf"127\.0\.0\.1:{port}"):
        check_connection(engine)


@pytest.mark.parametrize(("level", "pragma"), [("NORMAL", 1), ("FULL", 2), ("extra", 3)])
def test_sqlite_synchronous_setting_reaches_every_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, level: str, pragma: int
) -> None:
    monkeypatch.setenv("ARTIFACTSTORE_SQLITE_SYNCHRONOUS", level)
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    store = ArtifactStore.open(storage_url=str(tmp_path / "blobs"), settings=settings)
    with store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == pragma
