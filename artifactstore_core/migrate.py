"""Run the Alembic migrations programmatically (``artifactstore migrate``, tests, the store).

Alembic is imported only when a migration actually runs, so opening a registry that is
already current stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from artifactstore_core.config import (
    READ_ONLY,
    create_engine,
    is_memory_sqlite,
    is_read_only,
    sync_database_url,
)
from artifactstore_core.errors import ReadOnlyRegistryError
from artifactstore_core.retention.classes import record_definitions

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest revision in ``migrations/versions`` (a test keeps the two in step).
SCHEMA_REVISION = "0007"
_HERE = Path(__file__).resolve().parent


log = logging.getLogger(__name__)


def migrations_directory() -> Path:
    """The Alembic script directory: shipped in the wheel, or ``migrations/`` in a checkout."""
    for candidate in (_HERE / "migrations", _HERE.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the artifact-store migrations directory is missing")


def alembic_config(database_url: str) -> Config:
    """An Alembic ``Config`` bound to ``database_url`` (async drivers translated)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.set_main_option("path_separator", "os")
    url = sync_database_url(database_url).render_as_string(hide_password=False)
    config.attributes["database_url"] = url
    return config


def upgrade(
    database_url: str, revision: str = "head", *, connection: sa.Connection | None = None
) -> None:
    """Migrate the database at ``database_url`` up to ``revision`` (on ``connection`` if
    given, else on a connection of its own)."""
    from alembic import command

    config = alembic_config(database_url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def migrate(database_url: str) -> None:
    """Upgrade ``database_url`` to the newest revision and record its retention class
    definitions as events (``artifactstore migrate``)."""
    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        record_definitions(engine)
    finally:
        engine.dispose()


def current_revision(engine: sa.Engine) -> str | None:
    """The revision recorded in ``alembic_version``, or ``None`` for an empty database."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_current(engine: sa.Engine, database_url: str) -> None:
    """Upgrade the schema unless it is already at ``SCHEMA_REVISION``.

    An in-memory SQLite database exists only on the engine's one connection, so it is
    migrated through that connection. A read-only registry is only checked: one at another
    revision raises ``ReadOnlyRegistryError``. Seeded retention classes get their
    definitions recorded as events (once).
    """
    revision = current_revision(engine)
    if revision == SCHEMA_REVISION:
        record_definitions(engine)
        return
    if is_read_only(engine):
        raise ReadOnlyRegistryError(
            f"the read-only registry {engine.url.database!r} is at schema revision "
            f"{revision!r}, this artifact-store needs {SCHEMA_REVISION!r}; migrate a writable "
            "copy with `artifactstore migrate`"
        )
    with _alembic_quiet():  # a library opening a registry does not narrate Alembic's steps
        if is_memory_sqlite(engine.url):
            with engine.connect() as conn:
                upgrade(database_url, connection=conn)
        else:
            upgrade(database_url)
    log.info("registry schema upgraded from %s to %s", revision or "nothing", SCHEMA_REVISION)
    record_definitions(engine)


@contextlib.contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic's INFO lines (plugin set-up, each step) held back while in the block."""
    logger = logging.getLogger("alembic")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
