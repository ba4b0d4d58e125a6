"""Settings and database URLs: defaults, async translation and clear errors (no database
is opened here; see tests/integration/test_connections.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from artifactstore_core.config import (
    DEFAULT_DATABASE_URL,
    create_engine,
    is_memory_sqlite,
    is_read_only,
    load_settings,
    sqlite_read_only_url,
    sync_database_url,
)
from artifactstore_core.errors import ConfigurationError

pytestmark = pytest.mark.unit


def test_defaults_are_embedded_sqlite_and_local_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    for name in ("ARTIFACTSTORE_DATABASE_URL", "ARTIFACTSTORE_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.storage_url == "var/blobs"


def test_environment_and_dotenv_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    monkeypatch.delenv("ARTIFACTSTORE_STORAGE_URL", raising=False)
    (tmp_path / ".env").write_text("ARTIFACTSTORE_STORAGE_URL=s3://bucket/prefix\n")  # type: ignore[operator]
    monkeypatch.setenv("ARTIFACTSTORE_DATABASE_URL", "sqlite:///elsewhere.db")
    settings = load_settings()
    assert settings.storage_url == "s3://bucket/prefix"
    assert settings.database_url == "sqlite:///elsewhere.db"


def test_wrong_type_in_settings_names_variable_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTSTORE_GC_GRACE_SECONDS", "soon")
    with pytest.raises(ConfigurationError, match=r"ARTIFACTSTORE_GC_GRACE_SECONDS.*'soon'"):
        load_settings()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite+aiosqlite:///var/x.db", "sqlite:///var/x.db"),
        ("postgresql+asyncpg://u@h:5/db", "postgresql+psycopg://u@h:5/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///var/x.db", "sqlite:///var/x.db"),
    ],
)
def test_async_driver_names_translate_to_sync(given: str, expected: str) -> None:
    assert sync_database_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize("url", ["mysql://u@h/db", "oracle+cx://x", "not a url"])
def test_unknown_database_scheme_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="database URL"):
        create_engine(url)


@pytest.mark.parametrize(
    ("url", "memory"),
    [
        ("sqlite://", True),
        ("sqlite:///:memory:", True),
        ("sqlite:///file:reg?mode=memory&cache=shared&uri=true", True),
        ("sqlite:///var/r.db", False),
        ("postgresql://u@h/db", False),
    ],
)
def test_in_memory_sqlite_is_recognised(url: str, memory: bool) -> None:
    assert is_memory_sqlite(url) is memory


def test_unknown_sqlite_synchronous_level_names_variable_and_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARTIFACTSTORE_SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(ConfigurationError, match=r"ARTIFACTSTORE_SQLITE_SYNCHRONOUS.*'OFF'"):
        load_settings()
    with pytest.raises(ConfigurationError, match=r"synchronous level 'OFF'"):
        create_engine("sqlite://", synchronous="OFF")


def test_read_only_url_forms(tmp_path: Path) -> None:
    path = tmp_path / "a b.db"
    path.touch()
    writable = sync_database_url(f"sqlite:///{path}")
    assert sqlite_read_only_url(writable) is None
    asked = sqlite_read_only_url(sync_database_url(f"sqlite:///{path}?mode=ro"))
    assert asked is not None
    assert asked.database == f"file:{str(path).replace(' ', '%20')}"
    assert dict(asked.query) == {"mode": "ro", "uri": "true"}
    frozen = sqlite_read_only_url(sync_database_url(f"sqlite:///{path}?immutable=1"))
    assert frozen is not None and dict(frozen.query) == {"immutable": "1", "uri": "true"}
    assert is_read_only(create_engine(f"sqlite:///{path}?mode=ro"))
    assert not is_read_only(create_engine(f"sqlite:///{path}"))
