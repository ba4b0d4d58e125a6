"""``ArtifactStoreIOManager``: every output becomes a registered package; inputs are read back.

This module only routes: ``handle_output`` asks the ``PackageTranslator`` what the
package is (name, kind, retention class, metadata, provenance) and stores it;
``load_input`` finds the package an input means and reads it back. What the IO manager
remembers while it runs (the packages each step loaded, what the run stored, scratch
space) is one ``Tracking`` object per IO manager (``_tracking.py``); data versions are in
``data_versions.py``.

Loading follows what Dagster's latest materialization of the upstream asset (partition)
points to, so the value is exactly the one Dagster shows.

An output covering a partition range (a single-run backfill) is a dict keyed by partition
key and becomes one package per partition, each partition's materialization pointing to
its own; ``store_output`` (also used by ``migration.py``) stores without touching Dagster.
"""

# No ``from __future__ import annotations`` here: Dagster reads the ``store`` annotation as
# a class to accept a resource configured at launch (tests/dagster/test_configure_at_launch).

import datetime as dt
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import (
    AssetRecordsFilter,
    ConfigurableIOManager,
    InitResourceContext,
    InputContext,
    MetadataValue,
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
from artifactstore_core.ingest import PutRequest
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import _context
from artifactstore_dagster._tracking import Tracking
from artifactstore_dagster.data_versions import set_data_version_from_io_manager
from artifactstore_dagster.keys import (
    ALLOW_MISSING_PARTITIONS_KEY,
    ATTEST_KEY,
    ATTESTATION,
    CONCAT_KEY,
    KIND_KEY,
    PACKAGE_ID,
    RETENTION_CLASS_KEY,
    SERIALIZER_KEY,
    STORED,
)
from artifactstore_dagster.names import content_digest
from artifactstore_dagster.resources import ArtifactStoreResource, Registry
from artifactstore_dagster.serializers import SerializerRegistry, StoredContent, default_registry
from artifactstore_dagster.translator import (
    LoadedInput,
    OutputKey,
    PackageTranslator,
    expiry,
    package_url,
)

_MISSING = object()

#: Rewrites the provenance of the package stored for an output (see ``store_output``).
ProvenanceHook = Callable[[OutputKey, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class StoredOutput:
    """What ``store_output`` did for one output (one partition of a range)."""

    output: OutputKey
    #: The partition key as Dagster gave it (``None`` for an unpartitioned output).
    key: str | None
    #: ``None`` when the value was ``None``: nothing was stored.
    package: Package | None
    #: The materialization metadata for this output (partition).
    metadata: Mapping[str, Any]
    #: ``names.content_digest`` of the package's files.
    digest: str | None


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
        default=True,
        description=(
            "Set each materialization's data version to the digest of the stored files, so "
            "a re-run with equal bytes keeps its data version (data_versions.py: rests on "
            "Dagster's step data-version cache; False: Dagster's own, new on every run)"
        ),
    )
    scratch_dir: str | None = Field(
        default=None,
        description="Where loaded file and directory packages are exported (default: a temp dir)",
    )
    keep_latest_versions: int = Field(
        default=1,
        ge=0,
        le=1000,
        description=(
            "Keep the package behind each asset (partition)'s latest materialization, and this "
            "many newest versions in all, whatever their expiry: a keep rule "
            "'prefix:<asset package name>' per asset (0: no rule, expiry alone decides)"
        ),
    )
    retention_class_by_group: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Retention class of the packages of each asset group whose assets name none "
            "(else the resource's default_retention_class, else the registry's default)"
        ),
    )
    attest_assets: list[str] = Field(
        default_factory=list,
        description=(
            "Asset keys ('a/b') whose packages are attested when materialized, in the "
            "registration's transaction, signed with the resource's signing_key (definition "
            "metadata artifactstore/attest: true/false decides per asset too)"
        ),
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
        stored = self.store_output(context, obj)
        if len(stored) == 1:
            context.add_output_metadata(stored[0].metadata)
            if self.auto_data_version and stored[0].digest is not None:
                set_data_version_from_io_manager(context, stored[0].digest)
            return
        # A single-run backfill: each partition's materialization gets its own metadata
        # (Dagster lays partition-scoped asset metadata over the output's). Dagster keeps
        # one data version per asset and step, so auto_data_version is not applied here.
        # Outside a step (build_output_context) there is no materialization to attach to.
        step = _context.step_context(context)
        if step is not None:
            for item in stored:
                step.add_asset_metadata(
                    item.metadata, asset_key=item.output.asset_key, partition_key=item.key
                )

    def store_output(
        self, context: OutputContext, obj: Any, *, provenance: ProvenanceHook | None = None
    ) -> list[StoredOutput]:
        """Store a value as the package(s) of an output, all or none; no Dagster metadata
        is attached (``handle_output`` does that). An output covering several asset
        partitions (a single-run backfill) takes a dict keyed by partition key and stores
        one package per partition. ``provenance`` may rewrite each package's provenance
        (the migration helper records where a value came from)."""
        translator = self.get_translator()
        parts = _parts(context, OutputKey.each(context), obj)
        kind = translator.get_kind(context)
        retention_class = translator.get_retention_class(context) or self._default_class(context)
        names = [translator.get_package_name(output) for output, _, _ in parts]
        shown = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}"
        failure = f"cannot store {_where([p[0] for p in parts])} as package {shown!r}"
        try:
            validate_kind(kind)  # its syntax; the registry checks that the kind exists
        except InvalidInputError as exc:
            add_context(exc, failure, _origin(context, translator, KIND_KEY, kind))
            raise
        try:
            inputs = self._step_inputs(context)
            requests: list[PutRequest] = []
            for (output, _, value), name in zip(parts, names, strict=True):
                if value is None:
                    continue
                try:
                    serializer, files = self.serializers().serialize(
                        value, _context.setting(context, SERIALIZER_KEY)
                    )
                except ArtifactStoreError as exc:
                    if len(parts) > 1:
                        add_context(exc, f"partition {output.partition_key!r}")
                    raise
                recorded = translator.get_provenance(
                    context, output, serializer=serializer.name, inputs=inputs
                )
                requests.append(
                    PutRequest(
                        name,
                        files,
                        kind=kind,
                        metadata=translator.get_package_metadata(context),
                        retention_class=retention_class,
                        inputs=[i.package_id for i in inputs],
                        provenance=provenance(output, recorded) if provenance else recorded,
                    )
                )
            store = self.store.get_store()
            attestor = self.store.get_attestor() if requests and self._attests(context) else None
            if attestor is not None:
                assert isinstance(store, ArtifactStore)  # get_attestor refuses remote mode
                packages = iter(store.put_many(requests, attestor=attestor))
            else:
                packages = iter(store.put_many(requests) if requests else [])
        except ArtifactStoreError as exc:
            refused = ""
            if isinstance(exc, UnknownRetentionClassError) and exc.name == retention_class:
                refused = _origin(context, translator, RETENTION_CLASS_KEY, retention_class)
            elif isinstance(exc, UnknownKindError | SchemaViolationError):
                refused = _origin(context, translator, KIND_KEY, kind)
            add_context(exc, failure, refused)
            raise
        first = parts[0][0]
        if requests and first.asset_key is not None:
            self._keep_current(store, translator.get_package_name(first.unpartitioned()))
        run_id = _context.run_id(context)
        stored: list[StoredOutput] = []
        for output, key, value in parts:
            if value is None:  # nothing stored for this partition, as for a None output
                stored.append(StoredOutput(output, key, None, {STORED: False}, None))
                continue
            package = next(packages)
            if run_id is not None and output.asset_key is not None:
                self._tracking.add_output(
                    run_id, (tuple(output.asset_key.path), output.partition_key), package
                )
            digest = content_digest((e.path, e.blob.content_address) for e in package.files)
            metadata = translator.get_output_metadata(
                package,
                digest=digest,
                storage_uri=store.uri_of(package),
                inputs=inputs,
                value=value,
                url=package_url(store, package),
            )
            if attestor is not None:
                metadata = {**metadata, ATTESTATION: MetadataValue.text(package.attestations[-1])}
            stored.append(StoredOutput(output, key, package, metadata, digest))
        return stored

    def _attests(self, context: OutputContext) -> bool:
        """Whether the output's packages are attested: its ``artifactstore/attest``
        metadata, else whether its asset is one of ``attest_assets``."""
        chosen = _context.setting(context, ATTEST_KEY)
        if chosen is not None:
            return bool(chosen)
        if not self.attest_assets or not context.has_asset_key:
            return False
        return context.asset_key.to_user_string() in self.attest_assets

    def _default_class(self, context: OutputContext) -> str | None:
        """The class of the asset's group (``retention_class_by_group``), else the
        resource's ``default_retention_class`` (``None``: the registry's default)."""
        group = _context.group_name(context)
        if group is not None and group in self.retention_class_by_group:
            return self.retention_class_by_group[group]
        return self.store.default_retention_class

    def _keep_current(self, store: Registry, name: str) -> None:
        """Make sure a keep rule keeps the newest ``keep_latest_versions`` versions of
        ``name`` and its partitions (one check per asset and process; never lowers a rule)."""
        if self.keep_latest_versions < 1:
            return
        selector = f"prefix:{name}"
        if self._tracking.kept(selector):
            return
        current = {rule.selector: rule.keep_latest for rule in store.keep_rules()}
        if current.get(selector, 0) < self.keep_latest_versions:
            store.set_keep_rule(selector, self.keep_latest_versions)
        self._tracking.mark_kept(selector)

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
            return _concatenated(context, values) if _wants_concat(context) else values
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
                    "again with ArtifactStoreIOManager, or move the stored values with "
                    "artifactstore_dagster.migrate_to_artifactstore"
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
        override = _context.plain((context.definition_metadata or {}).get(SERIALIZER_KEY))
        upstream = _context.optional(lambda: context.upstream_output)
        if not override and upstream is not None:  # the upstream asset's (an external one's)
            override = _context.plain((upstream.definition_metadata or {}).get(SERIALIZER_KEY))
        # No serializer recorded: not stored by this IO manager (an upload); a local path.
        fallback = "file" if len(package.files) == 1 else "directory"
        try:
            serializer = self.serializers().get(str(name or override or fallback))
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


def _wants_concat(context: InputContext) -> bool:
    """``artifactstore/concat`` on the input, else on the upstream asset's definition."""
    if CONCAT_KEY in (context.definition_metadata or {}):
        return bool(_context.plain(context.definition_metadata[CONCAT_KEY]))
    upstream = _context.optional(lambda: context.upstream_output)
    metadata = (_context.optional(lambda: upstream.definition_metadata) if upstream else None) or {}
    return bool(_context.plain(metadata.get(CONCAT_KEY)))


def _concatenated(context: InputContext, values: dict[str, Any]) -> Any:
    """The DataFrames of a partition range as one, in partition order (a default
    ``RangeIndex`` is renumbered, any other index kept); partitions stored as None skipped."""
    frames = {key: value for key, value in values.items() if value is not None}
    pd = sys.modules.get("pandas")  # a DataFrame means pandas is imported already
    for key, value in frames.items():
        if pd is None or not isinstance(value, pd.DataFrame):
            raise InvalidInputError(
                f"cannot concatenate input {context.name!r}: asset "
                f"{context.asset_key.to_user_string()!r} partition {key!r} is a "
                f"{type(value).__name__}, not a pandas DataFrame ({CONCAT_KEY!r} is set)"
            )
    if pd is None or not frames:
        return None
    renumber = all(type(f.index) is pd.RangeIndex for f in frames.values())
    return pd.concat(list(frames.values()), ignore_index=renumber)


def _origin(context: OutputContext, translator: PackageTranslator, key: str, value: str) -> str:
    """Where a refused kind or retention class came from, for the error message."""
    if _context.setting(context, key) == value:
        return f" (from the {key!r} metadata of the asset or output)"
    method = {KIND_KEY: "get_kind", RETENTION_CLASS_KEY: "get_retention_class"}[key]
    if getattr(type(translator), method) is not getattr(PackageTranslator, method):
        return f" (from {type(translator).__name__}.{method})"
    return ""


def _parts(
    context: OutputContext, outputs: list[OutputKey], obj: Any
) -> list[tuple[OutputKey, str | None, Any]]:
    """Each output (partition) with its Dagster partition key and its value. A range takes
    a dict keyed by partition key, with exactly the range's keys (Dagster's convention)."""
    if len(outputs) == 1:
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        return [(outputs[0], keys[0], obj)]
    keys = list(context.asset_partition_keys)
    where = f"{_where(outputs)}: one output covers {len(keys)} partitions"
    if not isinstance(obj, Mapping):
        raise InvalidInputError(
            f"{where}; return a dict keyed by partition key, not {type(obj).__name__}"
        )
    given = {str(k): v for k, v in obj.items()}
    expected = {str(k) for k in keys}
    missing = [str(k) for k in keys if str(k) not in given]
    extra = sorted(k for k in given if k not in expected)
    problems = [f"is missing {_listed(missing)}"] if missing else []
    problems += [f"has keys not in the range: {_listed(extra)}"] if extra else []
    if problems:
        raise InvalidInputError(f"{where}, but the dict returned {' and '.join(problems)}")
    return [(output, key, given[str(key)]) for output, key in zip(outputs, keys, strict=True)]


def _where(outputs: list[OutputKey]) -> str:
    """The output, or the partition range of an asset, as error messages name it."""
    first, last = outputs[0], outputs[-1]
    if len(outputs) == 1 or first.asset_key is None:
        return first.where
    return (
        f"asset {first.asset_key.to_user_string()!r} partitions "
        f"{first.partition_key}..{last.partition_key}"
    )


def _listed(keys: list[str], shown: int = 5) -> str:
    more = f" (and {len(keys) - shown} more)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _timestamp(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")
