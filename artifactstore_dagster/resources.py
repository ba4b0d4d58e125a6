"""``ArtifactStoreResource``: the registry, opened from Dagster configuration.

The store is opened lazily, once per process and configuration, and shared by every
thread and every copy of the resource in that process. Dagster's multiprocess executor
sets resources up again in each step process; each of those opens its own store (engines
and connection pools must never cross a ``fork``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from artifactstore_core.config import Settings, load_settings
from artifactstore_core.store import ArtifactStore

_STORES: dict[tuple[Any, ...], ArtifactStore] = {}
_STORES_LOCK = threading.Lock()


class ArtifactStoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """The artifact-store registry as a Dagster resource.

    Unset fields fall back to ``ARTIFACTSTORE_*`` environment variables (and ``.env``),
    then to the embedded default (SQLite under ``var/``, blobs in ``var/blobs``). Use
    ``dagster.EnvVar`` for secrets such as ``s3_secret_access_key``.
    """

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the registry (ARTIFACTSTORE_DATABASE_URL)"
    )
    storage_url: str | None = Field(
        default=None, description="Directory or s3://bucket/prefix for blobs (hot tier)"
    )
    tier_cold_url: str | None = Field(default=None, description="Storage URL of the cold tier")
    tier_archive_url: str | None = Field(
        default=None, description="Storage URL of the archive tier"
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint URL")
    s3_region: str | None = Field(default=None, description="S3 region")
    s3_access_key_id: str | None = Field(default=None, description="S3 access key id")
    s3_secret_access_key: str | None = Field(default=None, description="S3 secret key (use EnvVar)")
    s3_addressing_style: str | None = Field(default=None, description="path, virtual or auto")
    actor: str = Field(default="dagster", description="Actor recorded on registry events")
    default_retention_class: str | None = Field(
        default=None,
        description="Retention class of packages whose asset names none (settings default)",
    )
    migrate: bool = Field(
        default=True, description="Create or upgrade the registry schema when opening it"
    )

    def settings(self) -> Settings:
        """The core ``Settings`` this configuration describes (unset fields: environment)."""
        overrides = {
            name: value
            for name in (
                "database_url",
                "storage_url",
                "tier_cold_url",
                "tier_archive_url",
                "s3_endpoint_url",
                "s3_region",
                "s3_access_key_id",
                "s3_secret_access_key",
                "s3_addressing_style",
                "default_retention_class",
            )
            if (value := getattr(self, name)) is not None
        }
        return load_settings(actor=self.actor, **overrides)

    def _cache_key(self) -> tuple[Any, ...]:
        # Unset fields come from ARTIFACTSTORE_* variables: they are part of the identity.
        environment = tuple(
            sorted((k, v) for k, v in os.environ.items() if k.startswith("ARTIFACTSTORE_"))
        )
        return (
            os.getpid(),
            environment,
            self.database_url,
            self.storage_url,
            self.tier_cold_url,
            self.tier_archive_url,
            self.s3_endpoint_url,
            self.s3_region,
            self.s3_access_key_id,
            self.s3_secret_access_key,
            self.s3_addressing_style,
            self.actor,
            self.default_retention_class,
            self.migrate,
        )

    def get_store(self) -> ArtifactStore:
        """The open registry for this configuration in this process (opened on first use).

        Raises the core's ``BackendUnavailableError`` naming the server when the database
        cannot be reached, and ``ConfigurationError`` for bad settings.
        """
        key = self._cache_key()
        store = _STORES.get(key)
        if store is not None:
            return store
        with _STORES_LOCK:
            store = _STORES.get(key)
            if store is None:
                store = ArtifactStore.open(settings=self.settings(), migrate=self.migrate)
                _STORES[key] = store
        return store


def close_cached_stores() -> None:
    """Close every store opened in this process (tests; long-lived processes that reconfigure)."""
    with _STORES_LOCK:
        stores = list(_STORES.values())
        _STORES.clear()
    for store in stores:
        store.close()
