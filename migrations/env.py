"""Alembic environment: one URL for runtime and migrations.

The URL is, in order: ``-x url=...``, an explicit ``sqlalchemy.url`` set by the caller
through ``Config.attributes["database_url"]``, ``ARTIFACTSTORE_DATABASE_URL`` / ``.env``.
Async driver names are translated to their sync counterparts first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from artifactstore_core.config import (
    create_engine,
    load_settings,
    sqlite_foreign_key_violation,
    sqlite_foreign_keys_off,
)
from artifactstore_core.errors import IntegrityError
from artifactstore_core.schema import metadata

config = context.config
MIGRATION_LOCK_KEY = 0x4D69_6772_6174_65  # "Migrate"


def _database_url() -> str:
    explicit = context.get_x_argument(as_dictionary=True).get("url")
    explicit = explicit or config.attributes.get("database_url")
    return str(explicit) if explicit else load_settings().database_url


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_engine(_database_url())
    try:
        with engine.connect() as conn:
            _migrate(conn)
    finally:
        engine.dispose()


def _migrate(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
        render_as_batch=True,
        # SQLite runs DDL in transactions too: every revision, and the key check below,
        # commit together or not at all.
        transactional_ddl=True,
    )
    # SQLite drops a column by rebuilding the table; with foreign keys on, dropping the
    # old table would delete every row referencing it (ON DELETE CASCADE). So they are off
    # for the migration and checked once before it commits.
    with sqlite_foreign_keys_off(connection), context.begin_transaction():
        # Processes opening a new registry at once migrate one after another; each reads
        # the current revision only once it holds the lock (SQLite: BEGIN IMMEDIATE).
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        context.run_migrations()
        violation = sqlite_foreign_key_violation(connection)
        if violation is not None:
            raise IntegrityError(
                f"the migration breaks a foreign key: {violation}; nothing was changed"
            )


if context.is_offline_mode():
    context.configure(url=str(_database_url()), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations()
