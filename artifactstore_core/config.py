"""Settings (``ARTIFACTSTORE_*`` environment variables and ``.env``) and database URLs."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from artifactstore_core.domain.limits import MAX_DURATION_SECONDS
from artifactstore_core.errors import (
    BackendUnavailableError,
    ConfigurationError,
    MissingExtraError,
    ReadOnlyRegistryError,
)

DEFAULT_DATABASE_URL = "sqlite:///var/artifactstore.db"
DEFAULT_STORAGE_URL = "var/blobs"
#: Execution option that makes a SQLite transaction start as a plain (deferred) BEGIN.
READ_ONLY = "artifactstore_read_only"

# Async driver names map to the sync driver used by Alembic and the registry itself.
_SYNC_DRIVERS = {
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
}
_DRIVER_MODULES = {"postgresql+psycopg": "psycopg", "postgresql+psycopg2": "psycopg2"}


class Settings(BaseSettings):
    """Runtime settings, read from ``ARTIFACTSTORE_*`` variables and a ``.env`` file."""

    model_config = SettingsConfigDict(
        env_prefix="ARTIFACTSTORE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the registry")
    storage_url: str = Field(DEFAULT_STORAGE_URL, description="Directory or s3://bucket/prefix")
    actor: str = Field("artifactstore", description="Actor recorded on events by default")
    builder_id: str | None = Field(
        None, description="builder.id of provenance statements (urn:artifactstore:builder:<actor>)"
    )
    attest_classes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Retention classes attested at registration (comma-separated)",
    )
    signing_key: SecretStr | None = Field(
        None, description="Key (path or key URI) that signs attestations made at registration"
    )
    default_retention_class: str = Field("raw-evidence")
    gc_grace_seconds: int = Field(
        3600, ge=0, le=MAX_DURATION_SECONDS, description="Blobs younger than this are kept"
    )
    fsync: bool = Field(True, description="fsync local blobs before they become visible")
    tier_cold_url: str | None = Field(None, description="Storage URL of the cold tier")
    tier_archive_url: str | None = Field(None, description="Storage URL of the archive tier")
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: str | None = Field(None, pattern="^(path|virtual|auto)$")
    s3_connect_timeout: float = Field(
        5.0, gt=0, le=600, description="Seconds to wait for a TCP connection, per attempt"
    )
    s3_read_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds an attempt may go without progress"
    )
    s3_max_attempts: int = Field(
        3, ge=1, le=10, description="Attempts per S3 request, the first one included"
    )
    http_anonymous_read: bool = Field(
        False, description="The HTTP gateway lets requests without a token read"
    )
    log_origin: str | None = Field(
        None,
        max_length=255,
        pattern=r"^[^\s+]+$",
        description="The log's name in its checkpoints, e.g. artifacts.example.org/prod",
    )
    log_key: str | None = Field(
        None, description="Ed25519 PEM private key (path or file2: URI) signing checkpoints"
    )
    sqlite_synchronous: str = Field(
        "NORMAL",
        pattern="(?i)^(NORMAL|FULL|EXTRA)$",
        description="SQLite PRAGMA synchronous: NORMAL may lose the last commits on power loss",
    )

    @field_validator("attest_classes", mode="before")
    @classmethod
    def _split_classes(cls, value: Any) -> Any:
        """``release-evidence,permanent-record`` (the environment's form) as a list."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning a validation failure into a ``ConfigurationError``."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"ARTIFACTSTORE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']} "
            f"(got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc


def parse_database_url(url: str) -> URL:
    """Parse a database URL and check that its backend is one artifact-store supports."""
    if not isinstance(url, str) or "\x00" in url:
        raise ConfigurationError(f"database URL {url!r} is not text without NUL characters")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(f"cannot parse database URL {url!r}") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"unsupported database URL scheme {parsed.drivername!r} in {url!r}; "
            "use sqlite:///path or postgresql+psycopg://user@host/db"
        )
    return parsed


def sync_database_url(url: str) -> URL:
    """Return the synchronous form of ``url`` (``+aiosqlite``/``+asyncpg`` → sync drivers).

    A bare ``postgresql://`` gets the explicit ``+psycopg`` driver.
    """
    parsed = parse_database_url(url)
    driver = parsed.drivername
    if driver == "postgresql":
        driver = "postgresql+psycopg"
    driver = _SYNC_DRIVERS.get(driver, driver)
    return parsed.set(drivername=driver)


DEFAULT_CACHE_KIB = 64 * 1024
"""SQLite page cache per connection, in KiB."""


def is_memory_sqlite(url: str | URL) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``:memory:``)."""
    parsed = url if isinstance(url, URL) else parse_database_url(url)
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and (
        database in ("", ":memory:")
        or "mode=memory" in database
        or parsed.query.get("mode") == "memory"
    )


def create_engine(url: str, *, synchronous: str = "NORMAL", **kwargs: Any) -> sa.Engine:
    """Create a synchronous engine for ``url``; SQLite gets WAL mode and foreign keys.

    A SQLite file that cannot be written (read-only media or permissions), or a URL with
    ``?mode=ro`` or ``?immutable=1``, is opened read-only (see ``sqlite_read_only_url``).
    ``synchronous`` is SQLite's ``PRAGMA synchronous`` (NORMAL, FULL or EXTRA).
    """
    parsed = sync_database_url(url)
    if synchronous.upper() not in SYNCHRONOUS_LEVELS:
        raise ConfigurationError(
            f"SQLite synchronous level {synchronous!r} is not one of "
            + ", ".join(SYNCHRONOUS_LEVELS)
        )
    module = _DRIVER_MODULES.get(parsed.drivername)
    if module is not None:
        try:
            __import__(module)
        except ImportError as exc:
            raise MissingExtraError("a PostgreSQL registry", "postgres", module) from exc
    if is_memory_sqlite(parsed):
        # One connection for every thread: each new one would be another, empty database.
        kwargs.setdefault("poolclass", sa.pool.StaticPool)
        kwargs.setdefault(
            "connect_args", {"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
        )
    elif parsed.get_backend_name() == "sqlite":
        read_only = sqlite_read_only_url(parsed)
        if read_only is not None:
            parsed = read_only
        elif parsed.database and not parsed.database.startswith("file:"):
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot create the directory of the SQLite database {parsed.database!r}: "
                    f"{exc.strerror or exc}"
                ) from exc
        kwargs.setdefault("connect_args", {"timeout": BUSY_TIMEOUT_SECONDS})
    # Sorted keys: JSON text is the same however a payload's maps were ordered (SQLite
    # compares JSON as text in `views check`).
    kwargs.setdefault("json_serializer", _json_dumps)
    engine = sa.create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        pragmas = _sqlite_pragmas(synchronous.upper(), writable=not is_read_only(engine))
        sa.event.listen(engine, "connect", lambda dbapi, _record: _configure_sqlite(dbapi, pragmas))
        sa.event.listen(engine, "begin", _begin_immediate)
    return engine


BUSY_TIMEOUT_SECONDS = 30
"""How long a SQLite writer waits for another writer's lock before giving up."""
SYNCHRONOUS_LEVELS = ("NORMAL", "FULL", "EXTRA")
_READ_ONLY_QUERY = {"mode": "ro", "uri": "true"}
_IMMUTABLE_QUERY = {"immutable": "1", "uri": "true"}


def sqlite_read_only_url(url: URL) -> URL | None:
    """The read-only ``file:`` URI form of a SQLite file URL, or ``None`` to open it writable.

    Read-only when the URL asks for it (``?mode=ro``, ``?immutable=1``) or when the file or
    its directory cannot be written (a snapshot on read-only media, a file owned by
    another user). A WAL database opened with ``mode=ro`` still needs its ``-shm`` file; if
    that neither exists nor can be created, and there is no ``-wal`` holding commits, no
    writer can be at work and the file is opened ``immutable=1`` (no locks, no ``-shm``).
    """
    database = url.database or ""
    query = dict(url.query)
    if database.startswith("file:"):
        path = urllib.parse.unquote(database[5:].partition("?")[0])
    else:
        path = database
    asked = query.pop("mode", None) == "ro" or query.get("immutable") == "1"
    query.pop("uri", None)
    file = Path(path)
    if not asked and (not file.exists() or (_writable(file) and _writable(file.parent))):
        return None
    if query.pop("immutable", None) == "1":
        chosen = _IMMUTABLE_QUERY
    else:
        chosen = _READ_ONLY_QUERY
        shm, wal = Path(f"{path}-shm"), Path(f"{path}-wal")
        if not shm.exists() and not _writable(file.parent):
            if wal.exists() and wal.stat().st_size > 0:
                raise ReadOnlyRegistryError(
                    f"read-only SQLite registry {path!r} has a -wal file with commits but no "
                    "-shm file; checkpoint it where it is writable before copying, or pass "
                    "?immutable=1 to read it without the -wal commits"
                )
            chosen = _IMMUTABLE_QUERY
    uri = "file:" + urllib.parse.quote(str(file.resolve()))
    return url.set(database=uri, query={**query, **chosen})


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def is_read_only(engine: sa.Engine) -> bool:
    """Whether ``engine`` opens its SQLite registry read-only (``create_engine`` decides)."""
    url = engine.url
    return url.get_backend_name() == "sqlite" and (
        url.query.get("mode") == "ro" or url.query.get("immutable") == "1"
    )


def _json_dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sqlite_pragmas(synchronous: str, *, writable: bool) -> list[str]:
    pragmas = [
        f"PRAGMA synchronous={synchronous}",
        "PRAGMA foreign_keys=ON",
        # A 64 MiB page cache: replays and sweeps touch large tables in key order.
        f"PRAGMA cache_size={-DEFAULT_CACHE_KIB}",
    ]
    # Switching to WAL writes the database header: only a writable registry does it.
    return ["PRAGMA journal_mode=WAL", *pragmas] if writable else pragmas


def _configure_sqlite(dbapi_connection: Any, pragmas: list[str]) -> None:
    # Let SQLAlchemy own transactions, so BEGIN IMMEDIATE below serialises writers.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in pragmas:
        cursor.execute(pragma)
    cursor.close()


def _begin_immediate(connection: sa.Connection) -> None:
    # A write lock from the first statement keeps the event chain head linear across processes;
    # read-only work opts out with the READ_ONLY execution option.
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    elif is_read_only(connection.engine):
        raise ReadOnlyRegistryError(
            f"the registry {connection.engine.url.database!r} is opened read-only "
            "(read-only media or ?mode=ro); this command writes"
        )
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.contextmanager
def sqlite_foreign_keys_off(conn: sa.Connection) -> Iterator[None]:
    """Run the block with SQLite's foreign keys off: no per-row checks and no ``ON DELETE``
    actions (so rebuilding a parent table does not empty its children); a no-op elsewhere.

    Enter it before the transaction begins (SQLite ignores the pragma inside one) and
    call ``sqlite_foreign_key_violation`` before committing.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    assert not conn.in_transaction(), "foreign keys can only be switched off between transactions"
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    dbapi.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        dbapi.execute("PRAGMA foreign_keys=ON")


def sqlite_foreign_key_violation(conn: sa.Connection) -> str | None:
    """On SQLite, the first row whose foreign key names a missing row, in words; else None."""
    if conn.dialect.name != "sqlite":
        return None
    violation = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
    if violation is None:
        return None
    return (
        f"a row of {violation[0]!r} (rowid {violation[1]}) names a missing row of {violation[2]!r}"
    )


def check_connection(engine: sa.Engine) -> None:
    """Connect once, raising ``BackendUnavailableError`` that names host and port (or the
    SQLite file) on failure: unreachable, refused, or a file that is not a database."""
    try:
        with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        url = engine.url
        where = (
            f"{url.host or 'localhost'}:{url.port or 5432}"
            if url.get_backend_name() == "postgresql"
            else repr(url.database)
        )
        raise BackendUnavailableError(
            f"cannot connect to the {url.get_backend_name()} database at {where}: "
            f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}"
        ) from exc
