"""Data versions from content: equal files give an equal ``DataVersion`` in any run.

The digest is ``names.content_digest`` over the paths and blob addresses of the files a
value is stored as. Two routes:

- by default the IO manager sets it from inside ``handle_output``
  (``set_data_version_from_io_manager``) through the step's data-version cache, which
  Dagster reads when it builds the materialization. That cache is not a public Dagster
  API: ``tests/dagster/test_data_versions.py`` fails loudly if a Dagster release changes
  it, and the integration pins Dagster's minor version;
- ``artifact_result`` returns it from an asset as ``MaterializeResult(data_version=...)``,
  Dagster's public API (and wins over the IO manager's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import DataVersion, MaterializeResult, OutputContext

from artifactstore_core.hashing import hash_copy
from artifactstore_core.sources import collect
from artifactstore_dagster import _context
from artifactstore_dagster.keys import SERIALIZER_KEY
from artifactstore_dagster.names import content_digest
from artifactstore_dagster.serializers import SerializerRegistry, default_registry

if TYPE_CHECKING:
    from dagster import AssetExecutionContext


def set_data_version_from_io_manager(context: OutputContext, digest: str) -> bool:
    """Give the materialization being handled the data version ``digest``, if possible.

    Uses the step's data version cache, which Dagster reads when it builds the
    materialization right after ``handle_output``. A data version the asset returned
    itself (``MaterializeResult(data_version=...)``) takes precedence. Returns whether it
    was set (no step context or no asset key: not).
    """
    step = _context.step_context(context)
    if step is None or not context.has_asset_key:
        return False
    setter = getattr(step, "set_data_version", None)
    if setter is None:
        context.log.warning(
            "this Dagster release has no step data-version cache: the data version of "
            f"{context.asset_key.to_user_string()} is Dagster's own, not the content digest "
            "(use artifactstore_dagster.artifact_result)"
        )
        return False
    setter(context.asset_key, DataVersion(digest))
    return True


def files_digest(
    value: Any, *, serializer: str | None = None, registry: SerializerRegistry | None = None
) -> str:
    """The content digest the IO manager will record for ``value`` (no bytes are stored)."""
    _, files = (registry or default_registry).serialize(value, serializer)
    entries = []
    for source in collect(files):
        with source.open() as stream:
            entries.append((source.path, hash_copy(stream).content_address))
    return content_digest(entries)


def artifact_result(
    value: Any,
    *,
    context: AssetExecutionContext | None = None,
    serializer: str | None = None,
    registry: SerializerRegistry | None = None,
    metadata: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MaterializeResult[Any]:
    """``MaterializeResult(value=value, data_version=<digest of its files>)``.

    The supported way to give an asset a content-based data version: the value is
    serialised as the IO manager will store it and its files hashed, so equal content
    gives an equal data version whatever the run. With ``context`` the asset's
    ``artifactstore/serializer`` metadata is honoured.
    """
    if serializer is None and context is not None:
        definition = _context.optional(
            lambda: context.assets_def.specs_by_key[context.asset_key].metadata
        )
        serializer = _context.plain((definition or {}).get(SERIALIZER_KEY))
    digest = files_digest(value, serializer=serializer, registry=registry)
    return MaterializeResult(
        value=value, data_version=DataVersion(digest), metadata=metadata, **kwargs
    )
