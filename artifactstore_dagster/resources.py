"""``ArtifactStoreResource``: the registry, opened from Dagster configuration.

Embedded (``database_url`` + ``storage_url``: the process opens the database and the
blob storage itself) or remote (``url`` + ``token``: a ``RemoteArtifactStore`` talking to
``artifactstore serve``, so step processes hold neither database nor storage credentials).

The store is opened lazily, once per process and configuration, and shared by every
thread and every copy of the resource in that process. Dagster's multiprocess executor
sets resources up again in each step process; each of those opens its own store (engines
and connection pools must never cross a ``fork``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.config import (
    Settings,
    is_memory_sqlite,
    load_settings,
    parse_database_url,
)
from artifactstore_core.domain.attestation import Attestor
from artifactstore_core.errors import ConfigurationError
from artifactstore_core.evidence.attest import DsseAttestor
from artifactstore_core.evidence.keys import load_signer
from artifactstore_core.store import ArtifactStore

#: What ``get_store`` returns: the embedded store or the client of a server (same verbs).
Registry = ArtifactStore | RemoteArtifactStore


DAGSTER_HOME = "DAGSTER_HOME"
#: Settings that may name a local path (the database only when it is a SQLite file).
_LOCAL_PATH_SETTINGS = ("storage_url", "tier_cold_url", "tier_archive_url")


def _relative_sqlite_path(url: str) -> str | None:
    """The relative file path of a SQLite URL (``sqlite:///var/x.db``), else ``None``."""
    parsed = parse_database_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or is_memory_sqlite(parsed):
        return None
    if database.startswith("file:") or Path(database).is_absolute():
        return None
    return database


def _is_relative_directory(url: str) -> bool:
    """Whether a storage URL is a plain relative directory path (no scheme)."""
    return "://" not in url and not Path(url).is_absolute()


def _anchored(home: Path, relative: str) -> Path:
    """``home / relative``, refused when only the working directory has something there."""
    anchored, stray = home / relative, Path.cwd() / relative
    if stray.exists() and not anchored.exists() and stray.resolve() != anchored.resolve():
        raise ConfigurationError(
            f"relative registry path {relative!r} is ambiguous: it exists at {str(stray)!r} "
            f"(the working directory) but not at {str(anchored)!r} (DAGSTER_HOME, where "
            "Dagster resolves relative paths); set ARTIFACTSTORE_DATABASE_URL and "
            "ARTIFACTSTORE_STORAGE_URL to absolute paths"
        )
    return anchored


def anchor_relative_paths(settings: Settings, dagster_home: str | None) -> Settings:
    """``settings`` with relative local paths (the SQLite file, blob directories) made
    absolute under ``dagster_home``, so that every Dagster process (webserver, daemon,
    code servers, run workers) opens one registry whatever its working directory.

    Without ``dagster_home`` the settings are returned unchanged (relative to the working
    directory, as the CLI reads them). Raises ``ConfigurationError`` when ``dagster_home``
    is not absolute, or when a relative path exists in the working directory but not under
    ``dagster_home`` (a registry made before, or by the CLI): which one is meant is
    ambiguous.
    """
    if not dagster_home:
        return settings
    home = Path(dagster_home)
    if not home.is_absolute():
        raise ConfigurationError(f"DAGSTER_HOME {dagster_home!r} is not an absolute path")
    updates: dict[str, str] = {}
    database = _relative_sqlite_path(settings.database_url)
    if database is not None:
        url = parse_database_url(settings.database_url).set(database=str(_anchored(home, database)))
        updates["database_url"] = url.render_as_string(hide_password=False)
    for name in _LOCAL_PATH_SETTINGS:
        value = getattr(settings, name)
        if value and _is_relative_directory(value):
            updates[name] = str(_anchored(home, value))
    return settings.model_copy(update=updates)


class _OpenStores:
    """The stores this process opened, by configuration: one per process, deliberately.

    A store holds engines and connection pools, so every copy of a resource (Dagster
    makes one per run) and every thread shares it; the process id in the key keeps a
    forked child from using its parent's.
    """

    def __init__(self) -> None:
        self._stores: dict[tuple[Any, ...], Registry] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], open_store: Callable[[], Registry]) -> Registry:
        """The store under ``key``, opened by ``open_store`` on first use (nothing is kept
        when opening fails)."""
        store = self._stores.get(key)
        if store is not None:
            return store
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                store = self._stores[key] = open_store()
        return store

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return key in self._stores

    def close_all(self) -> None:
        with self._lock:
            stores = list(self._stores.values())
            self._stores.clear()
        for store in stores:
            store.close()


_OPEN_STORES = _OpenStores()


class ArtifactStoreResource(ConfigurableResource):  # type: ignore[type-arg]
    """The artifact-store registry as a Dagster resource.

    Unset fields fall back to ``ARTIFACTSTORE_*`` environment variables (and ``.env``),
    then to the embedded default (SQLite under ``var/``, blobs in ``var/blobs``). Relative
    local paths resolve against ``DAGSTER_HOME`` when it is set (every Dagster process
    agrees on it; working directories differ), else the working directory. Use
    ``dagster.EnvVar`` for secrets such as ``s3_secret_access_key``. Every field but
    ``migrate``, ``url`` and ``token`` is the ``Settings`` field of the same name.

    With ``url`` (and ``token``, an access token: use ``dagster.EnvVar``) the registry is
    the server at ``url`` and no database or storage field may be set.

    Example:
        >>> import tempfile
        >>> from dagster import asset, materialize
        >>> from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource
        >>> home = tempfile.mkdtemp()
        >>> registry = ArtifactStoreResource(
        ...     database_url=f"sqlite:///{home}/registry.db", storage_url=f"{home}/blobs"
        ... )
        >>> @asset
        ... def numbers() -> list[int]:
        ...     return [1, 2, 3]
        >>> io_manager = ArtifactStoreIOManager(store=registry)
        >>> materialize([numbers], resources={"io_manager": io_manager}).success
        True
        >>> registry.get_store().describe("numbers").reference
        'numbers@1'
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
    signing_key: str | None = Field(
        default=None,
        description=(
            "Key that signs the attestations of the IO manager's attest_assets: a private key "
            "file or a key URI such as awskms:... (ARTIFACTSTORE_SIGNING_KEY; use EnvVar)"
        ),
    )
    builder_id: str | None = Field(
        default=None, description="builder.id of attestations (ARTIFACTSTORE_BUILDER_ID)"
    )
    migrate: bool = Field(
        default=True, description="Create or upgrade the registry schema when opening it"
    )
    url: str | None = Field(
        default=None, description="URL of an artifact-store server (remote mode, no database)"
    )
    token: str | None = Field(
        default=None, description="Access token for the server at url (use EnvVar)"
    )

    def settings(self) -> Settings:
        """The core ``Settings`` this configuration describes (unset fields: environment),
        relative local paths anchored in ``DAGSTER_HOME`` when it is set
        (``anchor_relative_paths``)."""
        overrides = {
            name: value
            for name, value in self.model_dump().items()
            if name in Settings.model_fields and value is not None
        }
        return anchor_relative_paths(load_settings(**overrides), os.environ.get(DAGSTER_HOME))

    def _cache_key(self) -> tuple[Any, ...]:
        # Unset fields come from ARTIFACTSTORE_* variables, relative paths are anchored in
        # DAGSTER_HOME: both are part of the identity.
        environment = tuple(
            sorted(
                (k, v)
                for k, v in os.environ.items()
                if k.startswith("ARTIFACTSTORE_") or k == DAGSTER_HOME
            )
        )
        return (os.getpid(), environment, *self.model_dump().items())

    def get_store(self) -> Registry:
        """The open registry for this configuration in this process (opened on first use):
        an ``ArtifactStore``, or with ``url`` a ``RemoteArtifactStore``.

        Raises the core's ``BackendUnavailableError`` naming the server when the database
        cannot be reached, and ``ConfigurationError`` for bad settings.
        """
        return _OPEN_STORES.get(self._cache_key(), self._open)

    def _open(self) -> Registry:
        if self.url is None:
            return ArtifactStore.open(settings=self.settings(), migrate=self.migrate)
        embedded = [
            name
            for name in ("database_url", "storage_url", "tier_cold_url", "tier_archive_url")
            if getattr(self, name) is not None
        ]
        if embedded:
            raise ConfigurationError(
                f"give either url (a registry server) or {', '.join(embedded)} "
                f"(an embedded registry), not both; url is {self.url!r}"
            )
        return RemoteArtifactStore(self.url, self.token)

    def get_attestor(self) -> Attestor:
        """The attestor that signs with ``signing_key`` (``ConfigurationError`` when no key
        is set, or in remote mode: attesting needs the registry's database)."""
        settings = self.settings()
        if self.url is not None:
            raise ConfigurationError(
                f"attesting packages needs an embedded registry, not the server {self.url!r}; "
                "attest them on the server with `artifactstore evidence attest`"
            )
        if settings.signing_key is None:
            raise ConfigurationError(
                "attesting packages needs a signing key: set signing_key on the "
                "ArtifactStoreResource (or ARTIFACTSTORE_SIGNING_KEY)"
            )
        signer = load_signer(settings.signing_key.get_secret_value())
        return DsseAttestor.from_settings(signer, settings, actor=self.actor)

    def is_store_open(self) -> bool:
        """Whether ``get_store()`` has opened the registry for this configuration here."""
        return self._cache_key() in _OPEN_STORES


def close_cached_stores() -> None:
    """Close every store opened in this process (tests; long-lived processes that reconfigure)."""
    _OPEN_STORES.close_all()
