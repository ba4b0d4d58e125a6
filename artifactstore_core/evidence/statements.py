"""Provenance statements of stored packages: load a package and its inputs, then build
the canonical in-toto statement (``domain.statement``)."""

from __future__ import annotations

import importlib.metadata
from typing import Any, Protocol

from artifactstore_core.config import Settings, load_settings
from artifactstore_core.domain.package import Package
from artifactstore_core.domain.references import Reference
from artifactstore_core.domain.statement import (
    input_ids,
    provenance_statement,
    statement_bytes,
)

#: Origin of input URIs when no log origin is configured.
DEFAULT_ORIGIN = "localhost"


class PackageSource(Protocol):
    """What a statement is read from: an ``ArtifactStore`` or a server's client."""

    @property
    def actor(self) -> str: ...

    def describe(self, reference: Reference) -> Package: ...

    def lineage(
        self, reference: Reference, *, downstream: bool = False, depth: int | None = None
    ) -> list[tuple[Any, Package]]: ...


def statement_defaults(settings: Settings, actor: str) -> tuple[str, str]:
    """The builder id (``ARTIFACTSTORE_BUILDER_ID``, else ``urn:artifactstore:builder:<actor>``)
    and the origin of input URIs (``ARTIFACTSTORE_LOG_ORIGIN``, else ``localhost``)."""
    builder_id = settings.builder_id or f"urn:artifactstore:builder:{actor}"
    return builder_id, settings.log_origin or DEFAULT_ORIGIN


def statement_for(
    store: PackageSource,
    reference: Reference,
    *,
    builder_id: str | None = None,
    origin: str | None = None,
    settings: Settings | None = None,
) -> bytes:
    """The canonical statement of the package ``reference`` selects (expired ones too).

    ``builder_id`` defaults to ``ARTIFACTSTORE_BUILDER_ID``, else
    ``urn:artifactstore:builder:<store actor>``; ``origin`` (of the inputs' URIs) to the
    log's origin, ``ARTIFACTSTORE_LOG_ORIGIN``, else ``localhost``.
    """
    if builder_id is None or origin is None:
        default_builder, default_origin = statement_defaults(
            settings or load_settings(), store.actor
        )
        builder_id, origin = builder_id or default_builder, origin or default_origin
    package = store.describe(reference)
    found = {item.id: item for _, item in store.lineage(package, depth=1)}
    inputs = [found[i] for i in input_ids(package) if i in found]
    statement = provenance_statement(
        package,
        inputs,
        origin=origin,
        builder_id=builder_id,
        versions={"artifact-store": importlib.metadata.version("artifact-store")},
    )
    return statement_bytes(statement)
