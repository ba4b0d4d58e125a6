"""Run the Alembic migrations programmatically (``artifactstore migrate``, tests, the store)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from artifactstore_core.config import sync_database_url

_HERE = Path(__file__).resolve().parent


def migrations_directory() -> Path:
    """The Alembic script directory: shipped in the wheel, or ``migrations/`` in a checkout."""
    for candidate in (_HERE / "migrations", _HERE.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the artifact-store migrations directory is missing")


def alembic_config(database_url: str) -> Config:
    """An Alembic ``Config`` bound to ``database_url`` (async drivers translated)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.set_main_option("path_separator", "os")
    url = sync_database_url(database_url).render_as_string(hide_password=False)
    config.attributes["database_url"] = url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at ``database_url`` up to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def ensure_current(engine: sa.Engine, database_url: str) -> None:
    """Upgrade the schema unless it is already at the head revision."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        upgrade(database_url)
