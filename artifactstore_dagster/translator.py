"""``PackageTranslator``: how a Dagster output becomes a package, overridable method by method.

The default mapping:

- package name: the asset key path plus the partition (``names.asset_package_name``);
  op outputs ``job/op/output`` (``names.op_package_name``), under ``package_prefix``;
- kind, retention class and package metadata: the ``artifactstore/*`` keys of the
  output's runtime metadata, else of the asset's definition metadata, else defaults;
- provenance: run id, job, step, output, asset key, partition, code version, run tags and
  the exact packages the step loaded (so lineage links package versions);
- output metadata: the ``artifactstore/*`` entries shown on the materialization.

Each ``get_*`` method delegates to a module function here or in ``names.py``; subclass
the translator, override what you need, and return it from
``ArtifactStoreIOManager.get_translator()``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dagster import (
    AssetKey,
    MetadataValue,
    OutputContext,
    TableColumn,
    TableRecord,
    TableSchema,
)

from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import InvalidInputError
from artifactstore_dagster import _context, keys
from artifactstore_dagster.names import asset_package_name, op_package_name

__all__ = ["LoadedInput", "OutputKey", "PackageTranslator"]

#: Rows listed in the upstream and file tables (the rest are counted, not shown).
_LISTED = 200
#: Dagster's own metadata keys for tables (shown in the asset's overview).
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"


@dataclass(frozen=True)
class OutputKey:
    """Which Dagster output a package records: an asset (partition), or a step's output."""

    asset_key: AssetKey | None = None
    partition_key: str | None = None
    keys_by_dimension: Mapping[str, str] | None = None
    job_name: str | None = None
    step_key: str | None = None
    output_name: str | None = None
    mapping_key: str | None = None

    @property
    def where(self) -> str:
        """The output as error messages name it."""
        if self.asset_key is not None:
            partition = (
                f" partition {self.partition_key!r}" if self.partition_key is not None else ""
            )
            return f"asset {self.asset_key.to_user_string()!r}{partition}"
        return f"output {self.output_name!r} of step {self.step_key!r} in job {self.job_name!r}"

    def unpartitioned(self) -> OutputKey:
        """The same output without its partition: whose package name prefixes every
        partition's."""
        return dataclasses.replace(self, partition_key=None, keys_by_dimension=None)

    @classmethod
    def of(cls, context: OutputContext) -> OutputKey:
        """The output a context handles; an output covering several partitions is refused."""
        if context.has_asset_key:
            key = context.asset_key
            if not context.has_asset_partitions:
                return cls(asset_key=key)
            partition_keys = context.asset_partition_keys
            if len(partition_keys) != 1:
                raise InvalidInputError(
                    f"asset {key.to_user_string()!r}: one output covers {len(partition_keys)} "
                    "partitions; artifact-store records one package per partition. Launch "
                    "the backfill as one run per partition, or return None from the asset "
                    "and store the partitions yourself"
                )
            partitions_def = _context.optional(lambda: context.asset_partitions_def)
            partition, dims = _context.partition_key_and_dimensions(
                partition_keys[0], partitions_def
            )
            return cls(asset_key=key, partition_key=partition, keys_by_dimension=dims)
        job = _context.optional(lambda: context.job_name)
        step = _context.optional(lambda: context.step_key)
        if job is None or step is None:
            raise InvalidInputError(
                "cannot name a package for an output with neither an asset key nor a job "
                "name and step key"
            )
        output = _context.optional(lambda: context.name) or "result"
        return cls(job_name=job, step_key=step, output_name=output, mapping_key=context.mapping_key)


@dataclass(frozen=True)
class LoadedInput:
    """A package a step loaded as one of its inputs."""

    input_name: str
    package_id: str
    reference: str
    asset_key: tuple[str, ...] | None
    partition_key: str | None

    def to_dict(self) -> dict[str, Any]:
        """The form recorded in provenance (``attributes.dagster.inputs``)."""
        return {
            "input": self.input_name,
            "package_id": self.package_id,
            "reference": self.reference,
            "asset_key": list(self.asset_key) if self.asset_key is not None else None,
            "partition_key": self.partition_key,
        }


# ---------------------------------------------------------------------------- defaults
def default_package_name(output: OutputKey, prefix: str = "") -> str:
    """``prefix/asset/path[/partition...]`` or ``prefix/job/op[/key]/output[/key]``."""
    if output.asset_key is not None:
        return asset_package_name(
            prefix, output.asset_key.path, output.partition_key, output.keys_by_dimension
        )
    if output.job_name is None or output.step_key is None or output.output_name is None:
        raise InvalidInputError(f"cannot name a package for {output!r}")
    return op_package_name(
        prefix, output.job_name, output.step_key, output.output_name, output.mapping_key
    )


def default_provenance(
    context: OutputContext, output: OutputKey, *, serializer: str, inputs: Sequence[LoadedInput]
) -> dict[str, Any]:
    """Producer, run id, code version and the Dagster facts under ``attributes.dagster``."""
    step = _context.step_context(context)
    run_id = _context.run_id(context)
    spec = _context.optional(lambda: context.asset_spec)
    code_version = getattr(spec, "code_version", None) or _context.op_code_version(context)
    dagster: dict[str, Any] = {
        "run_id": run_id,
        "job_name": _context.optional(lambda: context.job_name),
        "step_key": _context.optional(lambda: context.step_key),
        "output_name": _context.optional(lambda: context.name),
        "mapping_key": context.mapping_key,
        "asset_key": list(output.asset_key.path) if output.asset_key else None,
        "partition_key": output.partition_key,
        "partition_keys_by_dimension": (
            dict(output.keys_by_dimension) if output.keys_by_dimension else None
        ),
        "code_version": code_version,
        "run_tags": dict(step.dagster_run.tags) if step is not None else {},
        "inputs": [i.to_dict() for i in inputs],
    }
    producer = (
        f"dagster:{output.asset_key.to_user_string()}"
        if output.asset_key
        else f"dagster:{dagster['job_name']}/{dagster['step_key']}"
    )
    return {
        "producer": producer,
        "run_id": run_id,
        "code_version": code_version,
        "attributes": {"dagster": dagster, "serializer": serializer},
    }


def expiry(package: Package) -> str:
    """When the package expires, as shown to users (ISO time or ``never``)."""
    return package.expires_at.isoformat() if package.expires_at else "never"


def readable_size(size: int) -> str:
    """``size`` bytes as people read it: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for larger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"


def package_url(store: Any, package: Package) -> str | None:
    """The package's page on the registry server (``<url>/v1/packages/<name>@<version>``)
    when ``store`` is a server's client; ``None`` for an embedded registry."""
    if not isinstance(store, RemoteArtifactStore):
        return None
    base = store.url.rstrip("/")
    return f"{base}/v1/packages/{quote(package.name, safe='')}@{package.version}"


def upstream_metadata(inputs: Sequence[LoadedInput]) -> dict[str, MetadataValue]:
    """The loaded packages as a table (``name@version``, asset, partition) and, per input
    from an asset, a link to that asset (``artifactstore/upstream/<input>``)."""
    if not inputs:
        return {}
    schema = TableSchema(
        columns=[
            TableColumn("input", "string"),
            TableColumn("package", "string", description="name@version"),
            TableColumn("asset", "string"),
            TableColumn("partition", "string"),
            TableColumn("package_id", "string"),
        ]
    )
    rows = [
        TableRecord(
            {
                "input": i.input_name,
                "package": i.reference,
                "asset": AssetKey(list(i.asset_key)).to_user_string() if i.asset_key else None,
                "partition": i.partition_key,
                "package_id": i.package_id,
            }
        )
        for i in inputs
    ]
    result: dict[str, MetadataValue] = {
        keys.UPSTREAM_PACKAGES: MetadataValue.table(rows[:_LISTED], schema=schema)
    }
    for i in inputs:
        if i.asset_key is not None:
            result[keys.UPSTREAM_ASSET + i.input_name] = MetadataValue.asset(
                AssetKey(list(i.asset_key))
            )
    return result


def files_metadata(package: Package) -> dict[str, MetadataValue]:
    """The files of a multi-file (directory) package as a table (the first 200)."""
    if len(package.files) < 2:
        return {}
    schema = TableSchema(
        columns=[
            TableColumn("path", "string"),
            TableColumn("size", "int", description="bytes"),
            TableColumn("content_address", "string"),
        ]
    )
    rows = [
        TableRecord(
            {"path": e.path, "size": e.blob.size, "content_address": e.blob.content_address}
        )
        for e in package.files[:_LISTED]
    ]
    return {keys.FILES: MetadataValue.table(rows, schema=schema)}


def value_metadata(value: Any) -> dict[str, MetadataValue]:
    """Dagster's own table entries for a pandas DataFrame: ``dagster/row_count`` and
    ``dagster/column_schema`` (column names and dtypes); nothing for other values."""
    pandas = sys.modules.get("pandas")
    if pandas is None or not isinstance(value, pandas.DataFrame):
        return {}
    schema = TableSchema(
        columns=[TableColumn(str(name), str(dtype)) for name, dtype in value.dtypes.items()]
    )
    return {
        ROW_COUNT: MetadataValue.int(len(value)),
        COLUMN_SCHEMA: MetadataValue.table_schema(schema),
    }


def default_output_metadata(
    package: Package,
    *,
    digest: str,
    storage_uri: str,
    inputs: Sequence[LoadedInput],
    value: Any = None,
    url: str | None = None,
) -> dict[str, MetadataValue]:
    """The ``artifactstore/*`` entries of ``keys.OUTPUT_METADATA_KEYS``, plus what applies:
    the upstream table and asset links, the file table, the package URL, and Dagster's
    row count and column schema for a DataFrame ``value``."""
    metadata: dict[str, MetadataValue] = {
        keys.PACKAGE_ID: MetadataValue.text(str(package.id)),
        keys.REFERENCE: MetadataValue.text(package.reference),
        keys.CONTENT_ADDRESS: MetadataValue.text(package.content_address),
        keys.SHA256: MetadataValue.text(package.digest_sha256),
        keys.SIZE: MetadataValue.int(package.size),
        keys.SIZE_READABLE: MetadataValue.text(readable_size(package.size)),
        keys.FILE_COUNT: MetadataValue.int(len(package.files)),
        keys.RETENTION_CLASS: MetadataValue.text(package.retention_class),
        # A timestamp the UI shows in the viewer's time zone; "never" has no timestamp.
        keys.EXPIRES_AT: (
            MetadataValue.timestamp(package.expires_at)
            if package.expires_at
            else MetadataValue.text("never")
        ),
        keys.STORAGE_URI: MetadataValue.text(storage_uri),
        keys.UPSTREAM_PACKAGE_IDS: MetadataValue.json([i.package_id for i in inputs]),
        keys.CONTENT_DIGEST: MetadataValue.text(digest),
        keys.SERIALIZER: MetadataValue.text(
            str(package.provenance.attributes.get("serializer", ""))
        ),
    }
    if url is not None:
        metadata[keys.PACKAGE_URL] = MetadataValue.url(url)
    return {
        **metadata,
        **upstream_metadata(inputs),
        **files_metadata(package),
        **value_metadata(value),
    }


# ---------------------------------------------------------------------------- translator
class PackageTranslator:
    """Maps Dagster outputs onto packages: name, kind, retention class, metadata, provenance.

    Exposed so that methods can be overridden to change the mapping (as dagster-dbt's
    ``DagsterDbtTranslator``). The IO manager names packages with ``get_package_name`` on
    both sides, so a custom name is also where inputs are looked up when Dagster has no
    materialization to point to.

    Example::

        class TeamTranslator(PackageTranslator):
            def get_package_name(self, output: OutputKey) -> str:
                return "team-a/" + super().get_package_name(output)

            def get_retention_class(self, context: OutputContext) -> str | None:
                return super().get_retention_class(context) or "summary-evidence"


        class TeamIOManager(ArtifactStoreIOManager):
            def get_translator(self) -> PackageTranslator:
                return TeamTranslator(
                    package_prefix=self.package_prefix, default_kind=self.default_kind
                )
    """

    def __init__(self, *, package_prefix: str = "", default_kind: str = "output") -> None:
        self.package_prefix = package_prefix
        self.default_kind = default_kind

    def get_package_name(self, output: OutputKey) -> str:
        """The package name of an output (``default_package_name`` under the prefix)."""
        return default_package_name(output, self.package_prefix)

    def get_kind(self, context: OutputContext) -> str:
        """``artifactstore/kind`` from the output's or asset's metadata, else ``default_kind``."""
        return str(_context.setting(context, keys.KIND_KEY) or self.default_kind)

    def get_retention_class(self, context: OutputContext) -> str | None:
        """``artifactstore/retention_class`` from the metadata; ``None``: the store's default."""
        value = _context.setting(context, keys.RETENTION_CLASS_KEY)
        return str(value) if value else None

    def get_package_metadata(self, context: OutputContext) -> Mapping[str, Any]:
        """``artifactstore/metadata`` (a JSON object recorded as the package's metadata)."""
        value: Mapping[str, Any] = _context.setting(context, keys.PACKAGE_METADATA_KEY) or {}
        return value

    def get_provenance(
        self,
        context: OutputContext,
        output: OutputKey,
        *,
        serializer: str,
        inputs: Sequence[LoadedInput],
    ) -> dict[str, Any]:
        """The package's provenance (``default_provenance``); ``inputs``: what the step loaded."""
        return default_provenance(context, output, serializer=serializer, inputs=inputs)

    def get_output_metadata(
        self,
        package: Package,
        *,
        digest: str,
        storage_uri: str,
        inputs: Sequence[LoadedInput],
        value: Any = None,
        url: str | None = None,
    ) -> dict[str, MetadataValue]:
        """The materialization's metadata (``default_output_metadata``); ``value``: the
        stored object, ``url``: the package on the registry server (remote mode)."""
        return default_output_metadata(
            package, digest=digest, storage_uri=storage_uri, inputs=inputs, value=value, url=url
        )
