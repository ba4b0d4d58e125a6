"""``ArtifactStoreIOManager``: every output becomes a registered package; inputs are read back.

This module only routes: ``handle_output`` asks the ``PackageTranslator`` what the
package is (name, kind, retention class, metadata, provenance) and stores it;
``load_input`` finds the package an input means and reads it back. What the IO manager
remembers while it runs (the packages each step loaded, what the run stored, scratch
space) is one ``Tracking`` object per IO manager (``_tracking.py``); data versions are in
``data_versions.py``.

Loading follows what Dagster's latest materialization of the upstream asset (partition)
points to, so the value is exactly the one Dagster shows.
"""

# No ``from __future__ import annotations`` here: Dagster reads the ``store`` annotation as
# a class to accept a resource configured at launch (tests/dagster/test_configure_at_launch).

import datetime as dt
from pathlib import Path
from typing import Any

from dagster import (
    AssetRecordsFilter,
    ConfigurableIOManager,
    InitResourceContext,
    InputContext,
    OutputContext,
)
from pydantic import Field, PrivateAttr

from artifactstore_core.domain.names import validate_kind
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import (
    ArtifactStoreError,
    InvalidInputError,
    NotFoundError,
    RetentionError,
    SchemaViolationError,
    UnknownKindError,
    UnknownRetentionClassError,
    add_context,
)
from artifactstore_dagster import _context
from artifactstore_dagster._tracking import Tracking
from artifactstore_dagster.data_versions import set_data_version_from_io_manager
from artifactstore_dagster.keys import (
    ALLOW_MISSING_PARTITIONS_KEY,
    KIND_KEY,
    PACKAGE_ID,
    RETENTION_CLASS_KEY,
    SERIALIZER_KEY,
    STORED,
)
from artifactstore_dagster.names import content_digest
from artifactstore_dagster.resources import ArtifactStoreResource, Registry
from artifactstore_dagster.serializers import SerializerRegistry, StoredContent, default_registry
from artifactstore_dagster.translator import LoadedInput, OutputKey, PackageTranslator, expiry

_MISSING = object()


class ArtifactStoreIOManager(ConfigurableIOManager):
    """Stores every output as an artifact-store package and loads inputs from the registry.

    Definition (or output) metadata tunes one asset: ``artifactstore/kind``,
    ``artifactstore/retention_class``, ``artifactstore/serializer`` and
    ``artifactstore/metadata`` (a JSON object recorded as the package's metadata).

    Two extension points, both by subclassing (Dagster configures IO managers from plain
    config fields, so objects are not passed in): ``get_translator()`` returns the
    ``PackageTranslator`` that maps outputs to packages, ``serializers()`` the registry
    of serializers.
    """

    store: ArtifactStoreResource
    package_prefix: str = Field(
        default="", description="Prepended to every package name (e.g. a team or project)"
    )
    default_kind: str = Field(default="output", description="Package kind when none is set")
    auto_data_version: bool = Field(
        default=False,
        description=(
            "Set each materialization's data version to the digest of the stored files from "
            "inside the IO manager (uses the step context; no effect where Dagster lacks it)"
        ),
    )
    scratch_dir: str | None = Field(
        default=None,
        description="Where loaded file and directory packages are exported (default: a temp dir)",
    )
    _tracking: Tracking = PrivateAttr(default_factory=Tracking)

    # ------------------------------------------------------------------ extension points
    def get_translator(self) -> PackageTranslator:
        """The mapping from outputs to packages; override to return your own translator."""
        return PackageTranslator(package_prefix=self.package_prefix, default_kind=self.default_kind)

    def serializers(self) -> SerializerRegistry:
        """The serializer registry; override in a subclass to use your own."""
        return default_registry

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """End of the run (or step process): drop what was tracked, remove scratch space."""
        self._tracking.close()

    # ------------------------------------------------------------------ output side
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            # Dagster's convention: a None value means "nothing for the IO manager to keep";
            # loading it back gives None again.
            context.add_output_metadata({STORED: False})
            return
        translator = self.get_translator()
        output = OutputKey.of(context)
        name = translator.get_package_name(output)
        kind = translator.get_kind(context)
        retention_class = translator.get_retention_class(context)
        failure = f"cannot store {output.where} as package {name!r}"
        try:
            validate_kind(kind)  # its syntax; the registry checks that the kind exists
        except InvalidInputError as exc:
            add_context(exc, failure, _origin(context, translator, KIND_KEY, kind))
            raise
        try:
            serializer, files = self.serializers().serialize(
                obj, _context.setting(context, SERIALIZER_KEY)
            )
            inputs = self._step_inputs(context)
            store = self.store.get_store()
            package = store.put(
                name,
                files,
                kind=kind,
                metadata=translator.get_package_metadata(context),
                retention_class=retention_class,
                inputs=[i.package_id for i in inputs],
                provenance=translator.get_provenance(
                    context, output, serializer=serializer.name, inputs=inputs
                ),
            )
        except ArtifactStoreError as exc:
            refused = ""
            if isinstance(exc, UnknownRetentionClassError) and exc.name == retention_class:
                refused = _origin(context, translator, RETENTION_CLASS_KEY, retention_class)
            elif isinstance(exc, UnknownKindError | SchemaViolationError):
                refused = _origin(context, translator, KIND_KEY, kind)
            add_context(exc, failure, refused)
            raise
        run_id = _context.run_id(context)
        if run_id is not None and output.asset_key is not None:
            self._tracking.add_output(
                run_id, (tuple(output.asset_key.path), output.partition_key), package
            )
        digest = content_digest((e.path, e.blob.content_address) for e in package.files)
        context.add_output_metadata(
            translator.get_output_metadata(
                package, digest=digest, storage_uri=store.uri_of(package), inputs=inputs
            )
        )
        if self.auto_data_version:
            set_data_version_from_io_manager(context, digest)

    def _step_inputs(self, context: OutputContext) -> list[LoadedInput]:
        run_id = _context.run_id(context)
        step_key = _context.optional(lambda: context.step_key)
        if run_id is None or step_key is None or _context.step_context(context) is None:
            return []
        return self._tracking.inputs(run_id, step_key)

    # ------------------------------------------------------------------ input side
    def load_input(self, context: InputContext) -> Any:
        store = self.store.get_store()
        if context.has_asset_key:
            if not context.has_asset_partitions:
                return self._load_asset(context, store, None)
            keys = context.asset_partition_keys
            if not keys:
                return None
            if len(keys) == 1:
                return self._load_asset(context, store, keys[0])
            values: dict[str, Any] = {}
            for key in keys:
                value = self._load_asset(context, store, key)
                if value is not _MISSING:
                    values[str(key)] = value
            return values
        return self._load_op_output(context, store)

    def _load_asset(self, context: InputContext, store: Registry, key: str | None) -> Any:
        asset_key = context.asset_key
        partitions_def = _context.optional(lambda: context.asset_partitions_def)
        partition, dims = (
            (None, None)
            if key is None
            else _context.partition_key_and_dimensions(key, partitions_def)
        )
        output = OutputKey(asset_key=asset_key, partition_key=partition, keys_by_dimension=dims)
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING_PARTITIONS_KEY))
        instance = _context.instance(context)
        pointer = ""
        run_id = _consumer(context)[0]
        same_run = (
            self._tracking.output(run_id, (tuple(asset_key.path), partition)) if run_id else None
        )
        reference: str | Package
        if same_run is not None:
            reference = same_run
        elif instance is None:
            # No Dagster instance (a unit test's build_input_context): the newest package.
            reference = self.get_translator().get_package_name(output)
        else:
            records = instance.fetch_materializations(
                AssetRecordsFilter(
                    asset_key=asset_key, asset_partitions=[key] if key is not None else None
                ),
                limit=1,
            ).records
            if not records:
                if allow_missing and key is not None:
                    context.log.warning(f"{output.where} has no materialization; skipped")
                    return _MISSING
                raise NotFoundError(f"cannot load {output.where}: it has never been materialized")
            record = records[0]
            materialization = record.asset_materialization
            meta = materialization.metadata if materialization is not None else {}
            when = f"run {record.run_id} at {_timestamp(record.timestamp)}"
            if PACKAGE_ID not in meta:
                if STORED in meta and _context.plain(meta[STORED]) is False:
                    return None
                raise NotFoundError(
                    f"cannot load {output.where}: its latest materialization ({when}) was not "
                    f"recorded by artifact-store (no {PACKAGE_ID!r} metadata); materialize it "
                    "again with ArtifactStoreIOManager"
                )
            reference = str(_context.plain(meta[PACKAGE_ID]))
            pointer = f"Dagster's latest materialization ({when}) points to "
        package, value = self._read(context, store, reference, output.where, pointer)
        self._track_input(context, package, tuple(asset_key.path), partition)
        return value

    def _load_op_output(self, context: InputContext, store: Registry) -> Any:
        upstream = context.upstream_output
        if upstream is None:
            raise InvalidInputError(
                f"input {context.name!r} has neither an asset key nor an upstream output"
            )
        output = OutputKey(
            job_name=upstream.job_name,
            step_key=upstream.step_key,
            output_name=upstream.name,
            mapping_key=upstream.mapping_key,
        )
        name = self.get_translator().get_package_name(output)
        producing_run = _context.run_id(upstream)
        reference = name
        if producing_run is not None:
            candidates = store.list_packages(name=name, run_id=producing_run)
            if not candidates:
                raise NotFoundError(
                    f"cannot load {output.where}: no package {name!r} was recorded by run "
                    f"{producing_run}"
                )
            reference = str(max(candidates, key=lambda p: p.version).id)
        package, value = self._read(context, store, reference, output.where, "")
        self._track_input(context, package, None, None)
        return value

    def _track_input(
        self,
        context: InputContext,
        package: Package,
        asset_key: tuple[str, ...] | None,
        partition: str | None,
    ) -> None:
        run_id, step_key, input_name = _consumer(context)
        if run_id is not None and step_key is not None:
            loaded = LoadedInput(
                input_name, str(package.id), package.reference, asset_key, partition
            )
            self._tracking.add_input(run_id, step_key, loaded)

    def _read(
        self,
        context: InputContext,
        store: Registry,
        reference: str | Package,
        where: str,
        pointer: str,
    ) -> tuple[Package, Any]:
        """Record the retrieval and load the value; ``reference`` may be a known package."""
        run_id, step_key, input_name = _consumer(context)
        purpose = f"dagster input {input_name!r}" + (f" of step {step_key!r}" if step_key else "")
        actor = self.store.actor
        try:
            if isinstance(reference, Package):
                # Written by this run in this process: readability is checked by the read.
                package = reference
                store.record_retrieval(package, actor=actor, purpose=purpose, run_id=run_id)
            else:
                package = store.get(reference, actor=actor, purpose=purpose, run_id=run_id)
        except NotFoundError as exc:
            shown = (
                f"{reference.reference} ({reference.id})"
                if isinstance(reference, Package)
                else reference
            )
            add_context(
                exc,
                f"cannot load {where}: {pointer}package {shown}, which the registry does not have",
            )
            raise
        except RetentionError as exc:
            add_context(exc, f"cannot load {where}")
            raise
        name = package.provenance.attributes.get("serializer")
        override = (context.definition_metadata or {}).get(SERIALIZER_KEY)
        try:
            serializer = self.serializers().get(str(name or _context.plain(override) or "pickle"))
            content = StoredContent(
                package,
                read=lambda path: store.read_bytes(package, path, record=False),
                export=lambda: self._export(store, package),
            )
            return package, serializer.load(content)
        except ArtifactStoreError as exc:
            add_context(
                exc,
                f"cannot load {where}: package {package.reference} ({package.id}) of retention "
                f"class {package.retention_class!r}, created {package.created_at.isoformat()}, "
                f"expires {expiry(package)}",
            )
            raise

    def _export(self, store: Registry, package: Package) -> Path:
        destination = self._tracking.scratch_dir(self.scratch_dir)
        store.export(package, destination, record=False)
        return destination


# ---------------------------------------------------------------------------- helpers
def _consumer(context: InputContext) -> tuple[str | None, str | None, str]:
    """Run id, step key and input name of the step loading an input."""
    step = _context.step_context(context)
    run_id = step.run_id if step is not None else None
    step_key = step.step.key if step is not None else None
    input_name = _context.optional(lambda: context.name) or "input"
    return run_id, step_key, input_name


def _origin(context: OutputContext, translator: PackageTranslator, key: str, value: str) -> str:
    """Where a refused kind or retention class came from, for the error message."""
    if _context.setting(context, key) == value:
        return f" (from the {key!r} metadata of the asset or output)"
    method = {KIND_KEY: "get_kind", RETENTION_CLASS_KEY: "get_retention_class"}[key]
    if getattr(type(translator), method) is not getattr(PackageTranslator, method):
        return f" (from {type(translator).__name__}.{method})"
    return ""


def _timestamp(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")
