"""What every command is handed: settings, and the store opened on first use.

With a server URL (``--server`` or ``ARTIFACTSTORE_SERVER_URL``) the store is a
``RemoteArtifactStore`` talking to it with ``--token`` (``ARTIFACTSTORE_TOKEN``) instead
of the database; commands that need the database itself (``local_store``) then refuse
with one line naming the command (exit 2).
"""

from __future__ import annotations

import click

from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.config import Settings, is_read_only
from artifactstore_core.errors import ConfigurationError
from artifactstore_core.store import ArtifactStore


class CliContext:
    """Settings from options and environment; the store is opened on first use."""

    def __init__(
        self, settings: Settings, *, server: str | None = None, token: str | None = None
    ) -> None:
        self.settings = settings
        self.server = server
        self.token = token
        self._store: ArtifactStore | RemoteArtifactStore | None = None

    @property
    def remote(self) -> bool:
        """Whether commands go to a server rather than to the database."""
        return bool(self.server)

    @property
    def store(self) -> ArtifactStore | RemoteArtifactStore:
        if self._store is None:
            self._store = (
                RemoteArtifactStore(self.server, self.token)
                if self.server
                else ArtifactStore.from_settings(self.settings)
            )
        return self._store

    @property
    def local_store(self) -> ArtifactStore:
        """The store of a command that needs the database itself; refused in remote mode."""
        self.require_local()
        store = self.store
        assert isinstance(store, ArtifactStore)
        return store

    def require_local(self) -> None:
        """Refuse the current command in remote mode, naming it (exit 2)."""
        if self.remote:
            command = click.get_current_context().command_path
            raise ConfigurationError(
                f"{command!r} has no remote equivalent: it needs the registry's database; "
                f"run it without --server / ARTIFACTSTORE_SERVER_URL (server {self.server})"
            )

    @property
    def read_only(self) -> bool:
        """Whether the registry refuses writes (a read-only database; never a server)."""
        store = self.store
        return isinstance(store, ArtifactStore) and is_read_only(store.engine)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_context = click.make_pass_decorator(CliContext)
