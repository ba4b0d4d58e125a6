"""``ArtifactStoreIOManager``: every output becomes a registered package; inputs are read back.

The mapping, in one place:

- package name: the asset key path, plus the partition (``names.asset_package_name``);
  op outputs ``job/op/output`` (``names.op_package_name``);
- kind, retention class, serializer and package metadata: the ``artifactstore/*`` keys of
  the output's runtime metadata, else of the asset's definition metadata, else defaults;
- provenance: run id, job, step, output, asset key, partition, code version, run tags and
  the exact packages this step loaded (inputs, so lineage links package versions);
- UI metadata: ``artifactstore/*`` entries on the materialization (``OUTPUT_METADATA_KEYS``);
- data version: the digest of the package's files (``names.content_digest``), returned
  by ``artifact_result`` or, with ``auto_data_version``, set from here.

Loading follows what Dagster's latest materialization of the upstream asset (partition)
points to, so the value is exactly the one Dagster shows.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    ConfigurableIOManager,
    DagsterInvariantViolationError,
    DataVersion,
    InputContext,
    MaterializeResult,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    OutputContext,
)
from pydantic import Field

from artifactstore_core.domain.package import Package
from artifactstore_core.errors import (
    ArtifactStoreError,
    InvalidInputError,
    MissingBlobError,
    NotFoundError,
    RetentionError,
)
from artifactstore_core.hashing import hash_copy
from artifactstore_core.sources import collect
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster.names import asset_package_name, content_digest, op_package_name
from artifactstore_dagster.resources import ArtifactStoreResource
from artifactstore_dagster.serializers import (
    Serializer,
    SerializerRegistry,
    StoredContent,
    default_registry,
)

if TYPE_CHECKING:
    from dagster import AssetExecutionContext, DagsterInstance
    from dagster._core.execution.context.system import StepExecutionContext

#: Definition or output metadata keys the IO manager reads.
KIND_KEY = "artifactstore/kind"
RETENTION_CLASS_KEY = "artifactstore/retention_class"
SERIALIZER_KEY = "artifactstore/serializer"
PACKAGE_METADATA_KEY = "artifactstore/metadata"
ALLOW_MISSING_PARTITIONS_KEY = "allow_missing_partitions"

#: Output metadata keys the IO manager writes (shown in the Dagster UI).
PACKAGE_ID = "artifactstore/package_id"
REFERENCE = "artifactstore/reference"
CONTENT_ADDRESS = "artifactstore/content_address"
SHA256 = "artifactstore/sha256"
SIZE = "artifactstore/size"
FILE_COUNT = "artifactstore/file_count"
RETENTION_CLASS = "artifactstore/retention_class"
EXPIRES_AT = "artifactstore/expires_at"
STORAGE_URI = "artifactstore/storage_uri"
UPSTREAM_PACKAGE_IDS = "artifactstore/upstream_package_ids"
CONTENT_DIGEST = "artifactstore/content_digest"
SERIALIZER = "artifactstore/serializer"
STORED = "artifactstore/stored"
OUTPUT_METADATA_KEYS = (
    PACKAGE_ID,
    REFERENCE,
    CONTENT_ADDRESS,
    SHA256,
    SIZE,
    FILE_COUNT,
    RETENTION_CLASS,
    EXPIRES_AT,
    STORAGE_URI,
    UPSTREAM_PACKAGE_IDS,
    CONTENT_DIGEST,
    SERIALIZER,
)

_MISSING = object()
#: What ``build_output_context`` uses as run id when none is given.
_RUN_ID_PLACEHOLDER = "__EPHEMERAL_RUN_ID"


# ---------------------------------------------------------------------------- step inputs
@dataclass(frozen=True)
class LoadedInput:
    """A package a step loaded as one of its inputs."""

    input_name: str
    package_id: str
    reference: str
    asset_key: tuple[str, ...] | None
    partition_key: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input_name,
            "package_id": self.package_id,
            "reference": self.reference,
            "asset_key": list(self.asset_key) if self.asset_key is not None else None,
            "partition_key": self.partition_key,
        }


class _StepInputs:
    """Packages loaded per (run id, step key) in this process.

    A step loads its inputs and handles its outputs in one process, whichever executor
    runs it, so this is complete for the step; every load is also recorded in the
    registry as a retrieval carrying the run id.
    """

    def __init__(self, max_steps: int = 4096) -> None:
        self._steps: OrderedDict[tuple[str, str], list[LoadedInput]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_steps

    def add(self, run_id: str, step_key: str, loaded: LoadedInput) -> None:
        with self._lock:
            items = self._steps.setdefault((run_id, step_key), [])
            self._steps.move_to_end((run_id, step_key))
            if all(i.package_id != loaded.package_id for i in items):
                items.append(loaded)
            while len(self._steps) > self._max:
                self._steps.popitem(last=False)

    def get(self, run_id: str, step_key: str) -> list[LoadedInput]:
        with self._lock:
            return list(self._steps.get((run_id, step_key), ()))


_STEP_INPUTS = _StepInputs()


class _RunOutputs:
    """Packages this process wrote per (run id, asset key, partition), newest runs kept.

    Within one run an upstream asset materialized by that same run is the version
    Dagster's latest materialization points to; reading it from here saves a lookup in
    Dagster's event log (the in-process executor runs every step in one process).
    """

    def __init__(self, max_entries: int = 16384) -> None:
        self._items: OrderedDict[tuple[str, tuple[str, ...], str | None], Package] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def add(self, run_id: str, asset: tuple[str, ...], partition: str | None, pkg: Package) -> None:
        with self._lock:
            self._items[(run_id, asset, partition)] = pkg
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def get(self, run_id: str, asset: tuple[str, ...], partition: str | None) -> Package | None:
        with self._lock:
            return self._items.get((run_id, asset, partition))


_RUN_OUTPUTS = _RunOutputs()


# ---------------------------------------------------------------------------- scratch space
_SCRATCH: list[Path] = []
_SCRATCH_LOCK = threading.Lock()


def _scratch_root(configured: str | None) -> Path:
    if configured:
        root = Path(configured)
        root.mkdir(parents=True, exist_ok=True)
        return root
    with _SCRATCH_LOCK:
        if not _SCRATCH:
            _SCRATCH.append(Path(tempfile.mkdtemp(prefix="artifactstore-dagster-")))
            atexit.register(shutil.rmtree, _SCRATCH[0], True)
        return _SCRATCH[0]


# ---------------------------------------------------------------------------- context helpers
def _optional(getter: Any) -> Any:
    """A context property that raises when the context was built without it, or ``None``."""
    try:
        return getter()
    except (DagsterInvariantViolationError, AttributeError, KeyError):
        return None
    except Exception as exc:  # dagster's check.failed raises CheckError
        if type(exc).__name__ == "CheckError":
            return None
        raise


def _run_id(context: OutputContext) -> str | None:
    """The run id, or ``None`` for a context built outside a run (Dagster's placeholder)."""
    run_id: str | None = _optional(lambda: context.run_id)
    return None if run_id in (None, _RUN_ID_PLACEHOLDER) else run_id


def _step_context(context: InputContext | OutputContext) -> StepExecutionContext | None:
    result: StepExecutionContext | None = _optional(lambda: context.step_context)
    return result


def _instance(context: InputContext) -> DagsterInstance | None:
    instance: DagsterInstance | None = _optional(lambda: context.instance)
    if instance is None:
        step = _step_context(context)
        instance = step.instance if step is not None else None
    return instance


def _op_code_version(context: OutputContext) -> str | None:
    """The op's ``code_version`` (Dagster 1.x offers it only as the deprecated ``version``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        version: str | None = _optional(lambda: context.op_def.version)
    return version


def _plain(value: Any) -> Any:
    """The Python value of a metadata entry (``MetadataValue`` objects are unwrapped)."""
    return value.value if isinstance(value, MetadataValue) else value


def _setting(context: OutputContext, key: str) -> Any:
    """``key`` from the output's runtime metadata, else from its definition metadata."""
    runtime = _optional(lambda: context.output_metadata) or {}
    if key in runtime:
        return _plain(runtime[key])
    definition = context.definition_metadata or {}
    return _plain(definition.get(key))


def _partition_parts(key: str, partitions_def: Any) -> tuple[str, Mapping[str, str] | None]:
    if isinstance(key, MultiPartitionKey):
        return str(key), dict(key.keys_by_dimension)
    if isinstance(partitions_def, MultiPartitionsDefinition):
        multi = partitions_def.get_partition_key_from_str(key)
        return str(multi), dict(multi.keys_by_dimension)
    return str(key), None


@dataclass(frozen=True)
class _Target:
    """Which package an output is, and how to describe it."""

    name: str
    where: str
    asset_key: AssetKey | None
    partition_key: str | None
    keys_by_dimension: Mapping[str, str] | None


def _annotated(exc: ArtifactStoreError, message: str) -> ArtifactStoreError:
    """An error of the same class with a message that says where it happened."""
    try:
        return type(exc)(message)
    except TypeError:  # a subclass with a different constructor
        return ArtifactStoreError(message)


def _describe_partition(partition_key: str | None) -> str:
    return f" partition {partition_key!r}" if partition_key is not None else ""


def _expiry(package: Package) -> str:
    return package.expires_at.isoformat() if package.expires_at else "never"


class ArtifactStoreIOManager(ConfigurableIOManager):
    """Stores every output as an artifact-store package and loads inputs from the registry.

    Definition (or output) metadata tunes one asset: ``artifactstore/kind``,
    ``artifactstore/retention_class``, ``artifactstore/serializer`` and
    ``artifactstore/metadata`` (a JSON object recorded as the package's metadata).
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

    # ------------------------------------------------------------------ extension points
    def serializers(self) -> SerializerRegistry:
        """The serializer registry; override in a subclass to use your own."""
        return default_registry

    # ------------------------------------------------------------------ output side
    def _target(self, context: OutputContext) -> _Target:
        if context.has_asset_key:
            key = context.asset_key
            partition: str | None = None
            dims: Mapping[str, str] | None = None
            if context.has_asset_partitions:
                keys = context.asset_partition_keys
                if len(keys) != 1:
                    raise InvalidInputError(
                        f"asset {key.to_user_string()!r}: one output covers {len(keys)} "
                        "partitions; artifact-store records one package per partition. Launch "
                        "the backfill as one run per partition, or return None from the asset "
                        "and store the partitions yourself"
                    )
                partitions_def = _optional(lambda: context.asset_partitions_def)
                partition, dims = _partition_parts(keys[0], partitions_def)
            name = asset_package_name(self.package_prefix, key.path, partition, dims)
            where = f"asset {key.to_user_string()!r}{_describe_partition(partition)}"
            return _Target(name, where, key, partition, dims)
        job = _optional(lambda: context.job_name)
        step = _optional(lambda: context.step_key)
        output = _optional(lambda: context.name) or "result"
        if job is None or step is None:
            raise InvalidInputError(
                "cannot name a package for an output with neither an asset key nor a job "
                "name and step key"
            )
        name = op_package_name(self.package_prefix, job, step, output, context.mapping_key)
        where = f"output {output!r} of step {step!r} in job {job!r}"
        return _Target(name, where, None, None, None)

    def _provenance(
        self, context: OutputContext, target: _Target, serializer: Serializer, inputs: list[Any]
    ) -> dict[str, Any]:
        step = _step_context(context)
        run_id = _run_id(context)
        spec = _optional(lambda: context.asset_spec)
        code_version = getattr(spec, "code_version", None) or _op_code_version(context)
        tags = dict(step.dagster_run.tags) if step is not None else {}
        dagster: dict[str, Any] = {
            "run_id": run_id,
            "job_name": _optional(lambda: context.job_name),
            "step_key": _optional(lambda: context.step_key),
            "output_name": _optional(lambda: context.name),
            "mapping_key": context.mapping_key,
            "asset_key": list(target.asset_key.path) if target.asset_key else None,
            "partition_key": target.partition_key,
            "partition_keys_by_dimension": (
                dict(target.keys_by_dimension) if target.keys_by_dimension else None
            ),
            "code_version": code_version,
            "run_tags": tags,
            "inputs": [i.to_dict() for i in inputs],
        }
        producer = (
            f"dagster:{target.asset_key.to_user_string()}"
            if target.asset_key
            else f"dagster:{dagster['job_name']}/{dagster['step_key']}"
        )
        return {
            "producer": producer,
            "run_id": run_id,
            "code_version": code_version,
            "attributes": {"dagster": dagster, "serializer": serializer.name},
        }

    def _step_inputs(self, context: OutputContext) -> list[LoadedInput]:
        run_id = _run_id(context)
        step_key = _optional(lambda: context.step_key)
        if run_id is None or step_key is None or _step_context(context) is None:
            return []
        return _STEP_INPUTS.get(run_id, step_key)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            # Dagster's convention: a None value means "nothing for the IO manager to keep";
            # loading it back gives None again.
            context.add_output_metadata({STORED: False})
            return
        target = self._target(context)
        kind = _setting(context, KIND_KEY) or self.default_kind
        retention_class = _setting(context, RETENTION_CLASS_KEY) or None
        serializer_name = _setting(context, SERIALIZER_KEY)
        metadata = _setting(context, PACKAGE_METADATA_KEY) or {}
        try:
            serializer, files = self.serializers().serialize(obj, serializer_name)
            inputs = self._step_inputs(context)
            store = self.store.get_store()
            package = store.put(
                target.name,
                files,
                kind=str(kind),
                metadata=metadata,
                retention_class=str(retention_class) if retention_class else None,
                inputs=[i.package_id for i in inputs],
                provenance=self._provenance(context, target, serializer, inputs),
            )
        except ArtifactStoreError as exc:
            source = ""
            if "retention class" in str(exc) and retention_class:
                source = f" (from the {RETENTION_CLASS_KEY!r} metadata of the asset or output)"
            elif "kind" in str(exc) and kind != self.default_kind:
                source = f" (from the {KIND_KEY!r} metadata of the asset or output)"
            raise _annotated(
                exc, f"cannot store {target.where} as package {target.name!r}: {exc}{source}"
            ) from exc
        run_id = _run_id(context)
        if run_id is not None and target.asset_key is not None:
            _RUN_OUTPUTS.add(run_id, tuple(target.asset_key.path), target.partition_key, package)
        digest = content_digest((e.path, e.blob.content_address) for e in package.files)
        context.add_output_metadata(self._output_metadata(store, package, digest, inputs))
        if self.auto_data_version:
            set_data_version_from_io_manager(context, digest)

    @staticmethod
    def _output_metadata(
        store: ArtifactStore, package: Package, digest: str, inputs: Sequence[LoadedInput]
    ) -> dict[str, Any]:
        files = package.files
        uri = store.blobs.uri(files[0].blob.blake3) if len(files) == 1 else store.blobs.url
        return {
            PACKAGE_ID: MetadataValue.text(str(package.id)),
            REFERENCE: MetadataValue.text(package.reference),
            CONTENT_ADDRESS: MetadataValue.text(package.content_address),
            SHA256: MetadataValue.text(package.digest_sha256),
            SIZE: MetadataValue.int(package.size),
            FILE_COUNT: MetadataValue.int(len(files)),
            RETENTION_CLASS: MetadataValue.text(package.retention_class),
            EXPIRES_AT: MetadataValue.text(_expiry(package)),
            STORAGE_URI: MetadataValue.text(uri),
            UPSTREAM_PACKAGE_IDS: MetadataValue.json([i.package_id for i in inputs]),
            CONTENT_DIGEST: MetadataValue.text(digest),
            SERIALIZER: MetadataValue.text(
                str(package.provenance.attributes.get("serializer", ""))
            ),
        }

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

    def _consumer(self, context: InputContext) -> tuple[str | None, str | None, str]:
        step = _step_context(context)
        run_id = step.run_id if step is not None else None
        step_key = step.step.key if step is not None else None
        input_name = _optional(lambda: context.name) or "input"
        return run_id, step_key, input_name

    def _load_asset(self, context: InputContext, store: ArtifactStore, key: str | None) -> Any:
        asset_key = context.asset_key
        partitions_def = _optional(lambda: context.asset_partitions_def)
        partition, dims = (None, None) if key is None else _partition_parts(key, partitions_def)
        where = f"asset {asset_key.to_user_string()!r}{_describe_partition(partition)}"
        allow_missing = bool((context.definition_metadata or {}).get(ALLOW_MISSING_PARTITIONS_KEY))
        instance = _instance(context)
        pointer = ""
        run_id = self._consumer(context)[0]
        same_run = _RUN_OUTPUTS.get(run_id, tuple(asset_key.path), partition) if run_id else None
        reference: str | Package
        if same_run is not None:
            reference = same_run
        elif instance is None:
            # No Dagster instance (a unit test's build_input_context): the newest package.
            reference = asset_package_name(self.package_prefix, asset_key.path, partition, dims)
        else:
            records = instance.fetch_materializations(
                AssetRecordsFilter(
                    asset_key=asset_key, asset_partitions=[key] if key is not None else None
                ),
                limit=1,
            ).records
            if not records:
                if allow_missing and key is not None:
                    context.log.warning(f"{where} has no materialization; skipped")
                    return _MISSING
                raise NotFoundError(f"cannot load {where}: it has never been materialized")
            record = records[0]
            materialization = record.asset_materialization
            meta = materialization.metadata if materialization is not None else {}
            when = f"run {record.run_id} at {_timestamp(record.timestamp)}"
            if PACKAGE_ID not in meta:
                if STORED in meta and _plain(meta[STORED]) is False:
                    return None
                raise NotFoundError(
                    f"cannot load {where}: its latest materialization ({when}) was not "
                    f"recorded by artifact-store (no {PACKAGE_ID!r} metadata); materialize it "
                    "again with ArtifactStoreIOManager"
                )
            reference = str(_plain(meta[PACKAGE_ID]))
            pointer = f"Dagster's latest materialization ({when}) points to "
        loaded = self._read(context, store, reference, where, pointer)
        run_id, step_key, input_name = self._consumer(context)
        if run_id is not None and step_key is not None:
            _STEP_INPUTS.add(
                run_id,
                step_key,
                LoadedInput(
                    input_name,
                    str(loaded[0].id),
                    loaded[0].reference,
                    tuple(asset_key.path),
                    partition,
                ),
            )
        return loaded[1]

    def _load_op_output(self, context: InputContext, store: ArtifactStore) -> Any:
        upstream = context.upstream_output
        if upstream is None:
            raise InvalidInputError(
                f"input {context.name!r} has neither an asset key nor an upstream output"
            )
        job, step, output = upstream.job_name, upstream.step_key, upstream.name
        name = op_package_name(self.package_prefix, job, step, output, upstream.mapping_key)
        where = f"output {output!r} of step {step!r} in job {job!r}"
        producing_run = _run_id(upstream)
        reference = name
        if producing_run is not None:
            candidates = store.list_packages(name=name, run_id=producing_run)
            if not candidates:
                raise NotFoundError(
                    f"cannot load {where}: no package {name!r} was recorded by run {producing_run}"
                )
            reference = str(max(candidates, key=lambda p: p.version).id)
        package, value = self._read(context, store, reference, where, "")
        run_id, step_key, input_name = self._consumer(context)
        if run_id is not None and step_key is not None:
            _STEP_INPUTS.add(
                run_id,
                step_key,
                LoadedInput(input_name, str(package.id), package.reference, None, None),
            )
        return value

    def _read(
        self,
        context: InputContext,
        store: ArtifactStore,
        reference: str | Package,
        where: str,
        pointer: str,
    ) -> tuple[Package, Any]:
        """Record the retrieval and load the value; ``reference`` may be a known package."""
        run_id, step_key, input_name = self._consumer(context)
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
            raise _annotated(
                exc,
                f"cannot load {where}: {pointer}package {_shown(reference)}, which the "
                f"registry does not have: {exc}",
            ) from exc
        except RetentionError as exc:
            raise _annotated(exc, f"cannot load {where}: {exc}") from exc
        name = package.provenance.attributes.get("serializer")
        override = (context.definition_metadata or {}).get(SERIALIZER_KEY)
        try:
            serializer = self.serializers().get(str(name or _plain(override) or "pickle"))
            fresh = isinstance(reference, Package)
            content = StoredContent(
                package,
                read=lambda path: _read_file(store, package, path, fresh),
                export=lambda: self._export(store, package),
            )
            return package, serializer.load(content)
        except ArtifactStoreError as exc:
            raise _annotated(
                exc,
                f"cannot load {where}: package {package.reference} ({package.id}) of retention "
                f"class {package.retention_class!r}, created {package.created_at.isoformat()}, "
                f"expires {_expiry(package)}: {exc}",
            ) from exc

    def _export(self, store: ArtifactStore, package: Package) -> Path:
        destination = Path(tempfile.mkdtemp(prefix="package-", dir=_scratch_root(self.scratch_dir)))
        store.export(package, destination, record=False)
        return destination


def _read_file(store: ArtifactStore, package: Package, path: str | None, fresh: bool) -> bytes:
    """One file's bytes, verified as they stream.

    A package this run just wrote (``fresh``) is read straight from the hot tier, where
    ``put`` wrote it; if it is no longer there, the registry's own read path decides.
    """
    if fresh:
        try:
            with store.blobs.open(package.file(path).blob) as stream:
                data: bytes = stream.read()
                return data
        except MissingBlobError:
            pass
    return store.read_bytes(package, path, record=False)


def _shown(reference: str | Package) -> str:
    return (
        f"{reference.reference} ({reference.id})" if isinstance(reference, Package) else reference
    )


def _timestamp(value: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- data versions
def set_data_version_from_io_manager(context: OutputContext, digest: str) -> bool:
    """Give the materialization being handled the data version ``digest``, if possible.

    Uses the step's data version cache, which Dagster reads when it builds the
    materialization right after ``handle_output``. A data version the asset returned
    itself (``MaterializeResult(data_version=...)``) takes precedence. Returns whether it
    was set (no step context or no asset key: not).
    """
    step = _step_context(context)
    setter = getattr(step, "set_data_version", None)
    if step is None or setter is None or not context.has_asset_key:
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
        definition = _optional(lambda: context.assets_def.specs_by_key[context.asset_key].metadata)
        serializer = _plain((definition or {}).get(SERIALIZER_KEY))
    digest = files_digest(value, serializer=serializer, registry=registry)
    return MaterializeResult(
        value=value, data_version=DataVersion(digest), metadata=metadata, **kwargs
    )
