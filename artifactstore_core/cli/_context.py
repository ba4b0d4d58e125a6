"""What every command is handed: settings, and the store opened on first use."""

from __future__ import annotations

import click

from artifactstore_core.config import Settings
from artifactstore_core.store import ArtifactStore


class CliContext:
    """Settings from options and environment; the store is opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: ArtifactStore | None = None

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            self._store = ArtifactStore.from_settings(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


pass_context = click.make_pass_decorator(CliContext)
