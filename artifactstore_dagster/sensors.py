"""Sensors over the registry's event log: what happens outside Dagster shows on the assets.

- ``build_external_packages_sensor(assets)``: packages put by the CLI, the library or the
  HTTP API under a name mapped to an asset (its key path, or ``artifactstore/package_name``
  metadata on the ``AssetSpec``; one more segment per partition dimension for a
  partitioned asset) are reported as runless ``AssetMaterialization``\\ s with the
  artifact-store metadata, so ``ArtifactStoreIOManager`` loads them as inputs and the
  consumer's package records them as its inputs (lineage spans the manual upload).
- ``build_retention_sensor()``: every expiry, purge, hold, release, retention change and
  tier move of a package written by Dagster (mapped back through its provenance) or of
  an external asset's package is reported as an ``AssetObservation`` with the package's
  retention state: status, on hold, expiry (a timestamp), tier. Sweeps run from the CLI,
  the HTTP API or a Dagster job all show, since the sensor reads the log itself.

Both keep the registry's event sequence as their cursor, so each event is reported once;
a tick reads at most ``scan_limit`` events and reports at most ``batch_size`` of them.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of decorated
# functions (context) at definition time and needs real types there.

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    DefaultSensorStatus,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    PartitionsDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    partition_loading_context,
    sensor,
)

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import NotFoundError
from artifactstore_core.eventlog.log import RecordedEvent
from artifactstore_core.queries import PackageFilter
from artifactstore_dagster import _context, keys
from artifactstore_dagster.names import asset_package_name, content_digest
from artifactstore_dagster.resources import ArtifactStoreResource, Registry
from artifactstore_dagster.retention_jobs import _asset_of
from artifactstore_dagster.translator import default_output_metadata

EXTERNAL_SENSOR_NAME = "artifactstore_external_packages"
RETENTION_SENSOR_NAME = "artifactstore_retention_events"
BATCH_SIZE = 1_000
SCAN_LIMIT = 50_000
_EVENT_PAGE = 1_000
_PAGE = 500

#: Package events that change what the retention sensor reports, by event type.
_RETENTION_EVENTS = (
    ev.PackageExpired,
    ev.HoldPlaced,
    ev.HoldReleased,
    ev.RetentionChanged,
    ev.PackageTierChanged,
)
#: ``BlobPurged.reason`` of the sweep deleting bytes no live package needs.
_PURGE_REASON = "unreferenced"

ExternalAsset = AssetSpec | AssetsDefinition
T = TypeVar("T")


# ---------------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class _Mapped:
    """An asset whose packages are named ``name`` (plus the partition segments)."""

    name: str
    asset_key: AssetKey
    partitions_def: PartitionsDefinition[Any] | None

    def match(self, package_name: str) -> tuple[bool, str | None]:
        """Whether ``package_name`` is this asset's, and its partition key (if partitioned)."""
        if self.partitions_def is None:
            return package_name == self.name, None
        if not package_name.startswith(self.name + "/"):
            return False, None
        segments = package_name[len(self.name) + 1 :].split("/")
        key: str
        if isinstance(self.partitions_def, MultiPartitionsDefinition):
            dimensions = sorted(d.name for d in self.partitions_def.partitions_defs)
            if len(segments) != len(dimensions):
                return False, None
            key = MultiPartitionKey(dict(zip(dimensions, segments, strict=True)))
        elif len(segments) == 1:
            key = segments[0]
        else:
            return False, None
        # Dynamic partitions: looked up in the instance of ``partition_loading_context``.
        known = self.partitions_def.has_partition_key(key)
        return known, key if known else None


class PackageAssets:
    """Package names mapped to external assets (``artifactstore/package_name`` metadata,
    else the asset key path under ``package_prefix``), longest name first."""

    def __init__(self, assets: Iterable[ExternalAsset], package_prefix: str = "") -> None:
        mapped: list[_Mapped] = []
        for item in assets:
            specs = item.specs if isinstance(item, AssetsDefinition) else [item]
            for spec in specs:
                name = _context.plain(spec.metadata.get(keys.PACKAGE_NAME))
                mapped.append(
                    _Mapped(
                        str(name) if name else asset_package_name(package_prefix, spec.key.path),
                        spec.key,
                        spec.partitions_def,
                    )
                )
        self._mapped = sorted(mapped, key=lambda m: len(m.name), reverse=True)

    @property
    def names(self) -> list[str]:
        """The mapped package names (partitioned assets: the part before the partition)."""
        return [m.name for m in self._mapped]

    def asset_of(self, package_name: str) -> tuple[AssetKey | None, str | None]:
        """The asset (and partition) a package name maps to, or ``(None, None)``."""
        found = self.find(package_name)
        return (found[0].asset_key, found[1]) if found else (None, None)

    def find(self, package_name: str) -> tuple[_Mapped, str | None] | None:
        """The mapping a package name falls under, and its partition key."""
        for mapped in self._mapped:
            matches, partition = mapped.match(package_name)
            if matches:
                return mapped, partition
        return None


def written_by_dagster(provenance: Mapping[str, Any]) -> bool:
    """Whether a package's provenance says a Dagster run's IO manager stored it."""
    attributes = provenance.get("attributes") or {}
    dagster = attributes.get("dagster") if isinstance(attributes, Mapping) else None
    return isinstance(dagster, Mapping) and bool(dagster.get("run_id"))


# ---------------------------------------------------------------------------- cursor
def _since(context: SensorEvaluationContext) -> int:
    """The last event sequence reported (0 before the first tick)."""
    return int(context.cursor) if context.cursor else 0


def _scan(
    store: Registry,
    since: int,
    pick: Callable[[RecordedEvent], T | None],
    *,
    batch_size: int,
    scan_limit: int,
) -> tuple[list[T], int]:
    """What ``pick`` makes of the events after ``since`` (``None``: not wanted): at most
    ``batch_size`` of them from at most ``scan_limit`` events read; and the new cursor,
    the last event dealt with.

    Most of the log is registrations and retrievals, read quickly (about 60 µs an event
    on SQLite); the cost of a tick is in what it reports.
    """
    picked: list[T] = []
    cursor, read = since, 0
    while read < scan_limit:
        page = store.events(since=cursor, limit=min(_EVENT_PAGE, scan_limit - read))
        for recorded in page:
            cursor, read = recorded.sequence, read + 1
            item = pick(recorded)
            if item is not None:
                picked.append(item)
                if len(picked) >= batch_size:
                    return picked, cursor
        if len(page) < _EVENT_PAGE:
            break
    return picked, cursor


def _registry(context: SensorEvaluationContext, resource_key: str) -> Registry:
    resource: ArtifactStoreResource = getattr(context.resources, resource_key)
    return resource.get_store()


# ---------------------------------------------------------------------------- external
@dataclass(frozen=True)
class _Upload:
    """A registration outside Dagster under a mapped name."""

    package_id: str
    actor: str
    mapped: _Mapped
    partition: str | None


def external_materialization(
    store: Registry, package: Package, asset_key: AssetKey, partition: str | None, actor: str
) -> AssetMaterialization:
    """The materialization reporting ``package`` as the asset (partition): the same
    ``artifactstore/*`` metadata as the IO manager's, so ``load_input`` resolves it."""
    digest = content_digest((e.path, e.blob.content_address) for e in package.files)
    metadata = default_output_metadata(
        package, digest=digest, storage_uri=store.uri_of(package), inputs=[]
    )
    return AssetMaterialization(
        asset_key=asset_key,
        partition=partition,
        description=f"artifact-store package {package.reference} registered by {actor}",
        metadata={**metadata, keys.REGISTERED_BY: MetadataValue.text(actor)},
    )


def build_external_packages_sensor(
    assets: Iterable[ExternalAsset],
    *,
    resource_key: str = "artifactstore",
    package_prefix: str = "",
    name: str = EXTERNAL_SENSOR_NAME,
    minimum_interval_seconds: int = 30,
    batch_size: int = BATCH_SIZE,
    scan_limit: int = SCAN_LIMIT,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    keep_latest_versions: int = 1,
) -> SensorDefinition:
    """A sensor reporting each package registered outside Dagster under a name mapped to
    one of ``assets`` (external ``AssetSpec``\\ s) as a materialization of that asset.

    A spec's packages are named by its ``artifactstore/package_name`` metadata, else by
    its key path under ``package_prefix`` (as the IO manager names outputs); a
    partitioned spec's have one more segment per partition dimension. Packages written
    by a Dagster run are left out: their run reported them already. As the IO manager
    does for its outputs, a keep rule (``prefix:<name>``) keeps the newest
    ``keep_latest_versions`` of each name reported, so the sweep never takes the package
    behind an asset's latest materialization (``0``: no rule).
    """
    mapping = PackageAssets(assets, package_prefix)

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={resource_key},
        description="Reports packages registered outside Dagster as materializations.",
    )
    def external_packages(context: SensorEvaluationContext) -> SensorResult:
        store = _registry(context, resource_key)

        def uploaded(recorded: RecordedEvent) -> _Upload | None:
            event = recorded.event
            if not isinstance(event, ev.PackageRegistered) or written_by_dagster(event.provenance):
                return None
            found = mapping.find(event.name)
            return _Upload(event.package_id, recorded.actor, *found) if found else None

        with partition_loading_context(dynamic_partitions_store=context.instance):
            found, cursor = _scan(
                store, _since(context), uploaded, batch_size=batch_size, scan_limit=scan_limit
            )
        reported: list[AssetMaterialization | AssetObservation] = []
        for upload in found:
            try:
                package = store.describe(upload.package_id)
            except NotFoundError:
                continue
            reported.append(
                external_materialization(
                    store, package, upload.mapped.asset_key, upload.partition, upload.actor
                )
            )
        _keep_current(store, {u.mapped.name for u in found}, keep_latest_versions)
        return SensorResult(asset_events=reported, cursor=str(cursor))

    return external_packages


def _keep_current(store: Registry, names: Iterable[str], keep_latest: int) -> None:
    """Make sure a keep rule keeps the newest ``keep_latest`` versions under each name
    (never lowers a rule; as ``ArtifactStoreIOManager`` does for its outputs)."""
    wanted = sorted(set(names))
    if keep_latest < 1 or not wanted:
        return
    current = {rule.selector: rule.keep_latest for rule in store.keep_rules()}
    for name in wanted:
        if current.get(f"prefix:{name}", 0) < keep_latest:
            store.set_keep_rule(f"prefix:{name}", keep_latest)


# ---------------------------------------------------------------------------- retention
def package_status(package: Package, purged: bool) -> str:
    """``active``, ``expired``, or ``purged`` (expired and its bytes deleted)."""
    if package.status == "expired" and purged:
        return "purged"
    return package.status


def retention_observation(
    package: Package,
    asset_key: AssetKey,
    partition: str | None,
    happened: Sequence[RecordedEvent],
    *,
    purged: bool,
) -> AssetObservation:
    """The observation of ``package``'s retention state after the events ``happened``."""
    status = package_status(package, purged)
    expires: MetadataValue = (
        MetadataValue.timestamp(package.expires_at)
        if package.expires_at is not None
        else MetadataValue.text("never")
    )
    what = ", ".join(dict.fromkeys(_describe(r) for r in happened))
    return AssetObservation(
        asset_key=asset_key,
        partition=partition,
        description=f"artifact-store package {package.reference}: {what}",
        metadata={
            keys.PACKAGE_ID: MetadataValue.text(str(package.id)),
            keys.REFERENCE: MetadataValue.text(package.reference),
            keys.STATUS: MetadataValue.text(status),
            keys.EXPIRED: MetadataValue.bool(status != "active"),
            keys.ON_HOLD: MetadataValue.bool(package.on_hold),
            keys.EXPIRES_AT: expires,
            keys.RETENTION_CLASS: MetadataValue.text(package.retention_class),
            keys.TIER: MetadataValue.text(package.retrieval_tier),
            keys.EVENTS: MetadataValue.json(
                [
                    {
                        "sequence": r.sequence,
                        "event": r.event.event_type,
                        "actor": r.actor,
                        "at": r.created_at.isoformat(),
                    }
                    for r in happened
                ]
            ),
        },
    )


def _describe(recorded: RecordedEvent) -> str:
    event = recorded.event
    by = f" by {recorded.actor}"
    if isinstance(event, ev.PackageExpired):
        return "expired" + by
    if isinstance(event, ev.BlobPurged):
        return "bytes purged" + by
    if isinstance(event, ev.HoldPlaced):
        return f"{event.hold_kind} hold placed{by}"
    if isinstance(event, ev.HoldReleased):
        return "hold released" + by
    if isinstance(event, ev.RetentionChanged):
        return "retention changed" + by
    if isinstance(event, ev.PackageTierChanged):
        return f"moved to tier {event.tier}{by}"
    return event.event_type + by


def _purged_packages(
    store: Registry, addresses: set[str], prefixes: Sequence[str]
) -> dict[str, set[str]]:
    """Expired packages (under ``prefixes``) with a file among the purged ``addresses``:
    package id -> the purged addresses. Only the sweep's purges of unneeded bytes count;
    a tier move's copies are reported by its own event."""
    found: dict[str, set[str]] = defaultdict(set)
    for prefix in prefixes:
        after: tuple[str, int] | None = None
        while True:
            page = store.list_packages(
                PackageFilter(
                    status="expired", name_prefix=prefix or None, limit=_PAGE, after=after
                )
            )
            for package in page:
                hit = {e.blob.content_address for e in package.files} & addresses
                if hit:
                    found[str(package.id)] |= hit
            if len(page) < _PAGE:
                break
            after = (page[-1].name, page[-1].version)
    return found


def _retention_event(recorded: RecordedEvent) -> RecordedEvent | None:
    event = recorded.event
    purge = isinstance(event, ev.BlobPurged) and event.reason == _PURGE_REASON
    return recorded if purge or isinstance(event, _RETENTION_EVENTS) else None


def build_retention_sensor(
    *,
    resource_key: str = "artifactstore",
    package_prefix: str = "",
    external_assets: Iterable[ExternalAsset] = (),
    name: str = RETENTION_SENSOR_NAME,
    minimum_interval_seconds: int = 30,
    batch_size: int = BATCH_SIZE,
    scan_limit: int = SCAN_LIMIT,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """A sensor reporting every retention event of a Dagster asset's package, wherever
    it came from (a Dagster sweep, ``artifactstore sweep``, the HTTP API), as an
    ``AssetObservation`` of the asset (partition) with the package's retention state.

    Packages map to assets through the provenance the IO manager records, or through
    ``external_assets`` (as ``build_external_packages_sensor``); only assets of the
    sensor's own code location are reported. One observation per package per tick lists
    the events in ``artifactstore/events``.
    """
    mapping = PackageAssets(external_assets, package_prefix)
    prefix = package_prefix.strip("/")
    prefixes = [prefix, *(n for n in mapping.names if not n.startswith(prefix))] if prefix else [""]

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        required_resource_keys={resource_key},
        description="Reports expiries, purges, holds and tier moves of packages on their assets.",
    )
    def retention_events(context: SensorEvaluationContext) -> SensorResult:
        store = _registry(context, resource_key)
        found, cursor = _scan(
            store, _since(context), _retention_event, batch_size=batch_size, scan_limit=scan_limit
        )
        happened: dict[str, list[RecordedEvent]] = defaultdict(list)
        purges: dict[str, RecordedEvent] = {}
        for recorded in found:
            event = recorded.event
            if isinstance(event, _RETENTION_EVENTS):
                happened[event.package_id].append(recorded)
            elif isinstance(event, ev.BlobPurged) and event.reason == _PURGE_REASON:
                purges[event.content_address] = recorded
        purged = _purged_packages(store, set(purges), prefixes) if purges else {}
        for package_id, addresses in purged.items():
            happened[package_id] += dict.fromkeys(purges[a] for a in sorted(addresses))
        # Only this code location's assets: each location with the sensor reports its own.
        repository = _context.optional(lambda: context.repository_def)
        defined = repository.asset_graph.get_all_asset_keys() if repository else None
        reported: list[AssetMaterialization | AssetObservation] = []
        for package_id, recorded_events in happened.items():
            try:
                package = store.describe(package_id)
            except NotFoundError:
                continue
            asset_key, partition = _asset_of(package)
            if asset_key is None:
                with partition_loading_context(dynamic_partitions_store=context.instance):
                    asset_key, partition = mapping.asset_of(package.name)
            if asset_key is None or (defined is not None and asset_key not in defined):
                continue
            ordered = sorted(recorded_events, key=lambda r: r.sequence)
            reported.append(
                retention_observation(
                    package, asset_key, partition, ordered, purged=package_id in purged
                )
            )
        return SensorResult(asset_events=reported, cursor=str(cursor))

    return retention_events
