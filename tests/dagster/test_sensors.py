"""Sensors over the registry's event log, evaluated for real against a Dagster instance.

Each tick is evaluated with ``build_sensor_context`` and its asset events are recorded
with ``report_runless_asset_event``, as the sensor daemon does; the cursor is carried from
tick to tick as the daemon stores it.
"""

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    ComponentTree,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    SensorDefinition,
    StaticPartitionsDefinition,
    TimestampMetadataValue,
    asset,
    build_sensor_context,
    materialize,
)

from artifactstore_core.cli import cli
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import (
    ArtifactStoreComponent,
    ArtifactStoreIOManager,
    ArtifactStoreResource,
    build_artifactstore_defs,
    build_external_packages_sensor,
    build_retention_sensor,
)
from artifactstore_dagster import keys as k
from tests.http import conftest as http
from tests.http.conftest import LiveServer, issue_token

from .conftest import QUIET

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

days = DailyPartitionsDefinition(start_date="2024-05-01", end_date="2024-05-05")

raw_upload = AssetSpec("raw_upload", metadata={k.SERIALIZER_KEY: "json"})
daily_uploads = AssetSpec("daily_uploads", partitions_def=days)


@asset
def cleaned(raw_upload: dict[str, Any]) -> dict[str, Any]:
    return {"rows": [r for r in raw_upload["rows"] if r is not None]}


@asset(partitions_def=days)
def daily_sizes(context: AssetExecutionContext, daily_uploads: Path) -> int:
    return len(daily_uploads.read_bytes())


@asset(partitions_def=days, metadata={k.RETENTION_CLASS_KEY: "transient"})
def scratch_logs(context: AssetExecutionContext) -> str:
    return f"scratch {context.partition_key} of run {context.run_id}"


class Ticker:
    """Evaluates a sensor tick after tick and records its events, as the daemon does."""

    def __init__(
        self,
        sensor: SensorDefinition,
        instance: DagsterInstance,
        resource: ArtifactStoreResource,
        definitions: Definitions | None = None,
    ) -> None:
        self.sensor, self.instance, self.resource = sensor, instance, resource
        self.definitions = definitions
        self.cursor: str | None = None

    def tick(self) -> list[Any]:
        with build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"artifactstore": self.resource},
            definitions=self.definitions,
        ) as context:
            data = self.sensor.evaluate_tick(context)
        for event in data.asset_events:
            self.instance.report_runless_asset_event(event)
        self.cursor = data.cursor
        return list(data.asset_events)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as dagster_instance:
        yield dagster_instance


def _cli(resource: ArtifactStoreResource, *args: str) -> str:
    env = {
        "ARTIFACTSTORE_DATABASE_URL": resource.database_url or "",
        "ARTIFACTSTORE_STORAGE_URL": resource.storage_url or "",
        "ARTIFACTSTORE_TIER_COLD_URL": resource.tier_cold_url or "",
        "ARTIFACTSTORE_ACTOR": "alice",
    }
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _meta(event: Any) -> dict[str, Any]:
    return {key: value.value for key, value in event.metadata.items()}


# ---------------------------------------------------------------------------- item 3
def test_a_package_put_outside_dagster_is_materialized_loaded_and_linked(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
    tmp_path: Path,
) -> None:
    upload = tmp_path / "data.json"
    upload.write_text(json.dumps({"rows": [1, None, 3]}))
    _cli(resource, "put", "raw_upload", str(upload))
    _cli(resource, "put", "unmapped/thing", str(upload))

    def run() -> Any:
        return materialize(
            [raw_upload, cleaned],
            selection=[cleaned],
            resources={"io_manager": io_manager},
            instance=instance,
            run_config=QUIET,
            raise_on_error=False,
        )

    # Without the sensor Dagster has never seen the upload.
    failed = run()
    assert not failed.success
    assert "it has never been materialized" in str(failed.get_step_failure_events()[0])

    ticker = Ticker(build_external_packages_sensor([raw_upload]), instance, resource)
    [reported] = ticker.tick()
    assert reported.asset_key == AssetKey("raw_upload")
    upload_package = store.describe("raw_upload@1")
    assert _meta(reported)[k.PACKAGE_ID] == str(upload_package.id)
    assert _meta(reported)[k.REGISTERED_BY] == "alice"
    assert ticker.tick() == []  # each registration once

    result = run()
    assert result.success
    assert result.output_for_node("cleaned") == {"rows": [1, 3]}
    output = store.describe("cleaned")
    assert [p.id for _, p in store.lineage(output)] == [upload_package.id]
    assert ticker.tick() == []  # Dagster's own outputs are not reported again

    # A new version becomes the latest materialization and what the consumer reads.
    upload.write_text(json.dumps({"rows": [None, 7]}))
    store.put("raw_upload", [upload], actor="bob")
    [second] = ticker.tick()
    assert _meta(second)[k.REFERENCE] == "raw_upload@2"
    assert run().output_for_node("cleaned") == {"rows": [7]}
    [latest] = instance.fetch_materializations(AssetKey("raw_upload"), limit=1).records
    assert latest.asset_materialization is not None
    assert latest.asset_materialization.metadata[k.REGISTERED_BY].value == "bob"

    # As for the IO manager's outputs, the package behind the latest materialization is
    # kept by a keep rule, whatever its expiry.
    assert {(r.selector, r.keep_latest) for r in store.keep_rules()} >= {("prefix:raw_upload", 1)}
    store.set_retention("raw_upload@2", expires_at=store.clock() - dt.timedelta(hours=1),
                        override=True, reason="test")  # fmt: skip
    store.sweep(grace=dt.timedelta(0))
    assert store.describe("raw_upload@2").status == "active"


def test_partitioned_uploads_map_their_last_segment_to_the_partition(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
) -> None:
    for name in ("daily_uploads/2024-05-01", "daily_uploads/2024-05-02", "daily_uploads/junk"):
        store.put(name, {"day.csv": name.encode()})
    store.put("daily_uploads", {"day.csv": b"no partition"})
    last = store.events()[-1].sequence
    sensor = build_external_packages_sensor([daily_uploads], batch_size=1, scan_limit=3)
    ticker = Ticker(sensor, instance, resource)
    reported = []
    while int(ticker.cursor or 0) < last:  # at most 3 events read and 1 reported a tick
        before = int(ticker.cursor or 0)
        events = ticker.tick()
        assert len(events) <= 1 and 0 < int(ticker.cursor or 0) - before <= 3
        reported += events
    assert ticker.tick() == []
    assert [(e.asset_key, e.partition) for e in reported] == [
        (AssetKey("daily_uploads"), "2024-05-01"),
        (AssetKey("daily_uploads"), "2024-05-02"),
    ]
    result = materialize(
        [daily_uploads, daily_sizes],
        selection=[daily_sizes],
        partition_key="2024-05-02",
        resources={"io_manager": io_manager},
        instance=instance,
        run_config=QUIET,
    )
    assert result.output_for_node("daily_sizes") == len(b"daily_uploads/2024-05-02")
    [(_, upstream)] = store.lineage("daily_sizes/2024-05-02")
    assert upstream.reference == "daily_uploads/2024-05-02@1"


def test_package_name_metadata_and_prefix_choose_the_name(
    resource: ArtifactStoreResource, store: ArtifactStore, instance: DagsterInstance
) -> None:
    named = AssetSpec("vendor_feed", metadata={k.PACKAGE_NAME: "inbox/vendor"})
    prefixed = AssetSpec(["lake", "events"])
    regions = StaticPartitionsDefinition(["eu", "us"])
    regional = AssetSpec(
        "regional", partitions_def=MultiPartitionsDefinition({"day": days, "region": regions})
    )
    drops = AssetSpec("drops", partitions_def=DynamicPartitionsDefinition(name="vendors"))
    instance.add_dynamic_partitions("vendors", ["acme"])
    sensor = build_external_packages_sensor(
        [named, prefixed, regional, drops], package_prefix="team"
    )
    store.put("inbox/vendor", {"a": b"1"})
    store.put("vendor_feed", {"a": b"2"})
    store.put("team/lake/events", {"a": b"3"})
    store.put("lake/events", {"a": b"4"})
    store.put("team/regional/2024-05-03/eu", {"a": b"5"})  # dimensions in name order
    store.put("team/regional/eu/2024-05-03", {"a": b"6"})
    store.put("team/drops/acme", {"a": b"7"})
    store.put("team/drops/initech", {"a": b"8"})  # no such partition (yet)
    reported = Ticker(sensor, instance, resource).tick()
    assert [(e.asset_key, e.partition, _meta(e)[k.REFERENCE]) for e in reported] == [
        (AssetKey("vendor_feed"), None, "inbox/vendor@1"),
        (AssetKey(["lake", "events"]), None, "team/lake/events@1"),
        (
            AssetKey("regional"),
            MultiPartitionKey({"day": "2024-05-03", "region": "eu"}),
            "team/regional/2024-05-03/eu@1",
        ),
        (AssetKey("drops"), "acme", "team/drops/acme@1"),
    ]


# ---------------------------------------------------------------------------- item 2
@pytest.fixture
def pg_resource(database_url: str, tmp_path: Path) -> ArtifactStoreResource:
    """The resource on each database backend (SQLite file, PostgreSQL database)."""
    return ArtifactStoreResource(
        database_url=database_url,
        storage_url=str(tmp_path / "blobs"),
        tier_cold_url=str(tmp_path / "cold"),
        actor="tests",
    )


def _observations(instance: DagsterInstance, key: str) -> list[Any]:
    records = instance.fetch_observations(AssetKey(key), limit=100).records
    return [r.asset_observation for r in sorted(records, key=lambda r: r.storage_id)]


def test_a_cli_sweep_shows_on_the_asset_partitions_it_touched(
    pg_resource: ArtifactStoreResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    resource = pg_resource
    store = resource.get_store()
    io_manager = ArtifactStoreIOManager(store=resource, scratch_dir=str(tmp_path / "scratch"))
    # The current version is kept (the IO manager's keep rule): 2024-05-01@1 is superseded.
    for day in ("2024-05-01", "2024-05-02", "2024-05-03", "2024-05-01"):
        assert materialize(
            [scratch_logs],
            partition_key=day,
            resources={"io_manager": io_manager},
            instance=instance,
            run_config=QUIET,
        ).success
    store.put("someone/else", {"a": b"not an asset"}, retention_class="transient")
    store.put("raw_upload", {"a": b"an upload"}, retention_class="transient")
    sensor = build_retention_sensor(external_assets=[raw_upload])
    ticker = Ticker(sensor, instance, resource)
    assert ticker.tick() == []  # registrations and reads are no retention events
    # The same sensor in a code location that defines the upload but not scratch_logs.
    elsewhere = Ticker(sensor, instance, resource, Definitions(assets=[raw_upload, cleaned]))
    assert elsewhere.tick() == []

    past = store.clock() - dt.timedelta(hours=1)
    for name in ("scratch_logs/2024-05-01@1", "someone/else", "raw_upload"):
        store.set_retention(name, expires_at=past, override=True, reason="t")
    _cli(resource, "retention", "sweep", "--grace-seconds", "0")

    # One per package and tick; "someone/else" is no asset's.
    swept, upload = sorted(ticker.tick(), key=lambda o: o.asset_key.to_user_string(), reverse=True)
    assert upload.asset_key == AssetKey("raw_upload") and upload.partition is None
    assert _meta(upload)[k.STATUS] == "purged"
    assert swept.asset_key == AssetKey("scratch_logs") and swept.partition == "2024-05-01"
    seen = _meta(swept)
    assert seen[k.STATUS] == "purged" and seen[k.EXPIRED] is True and seen[k.TIER] == "hot"
    assert [(e["event"], e["actor"]) for e in seen[k.EVENTS]] == [
        ("RetentionChanged", "tests"),
        ("PackageExpired", "alice"),
        ("BlobPurged", "alice"),
    ]
    assert seen[k.EXPIRES_AT] == past.timestamp()
    assert ticker.tick() == []
    [only_upload] = elsewhere.tick()
    assert only_upload.asset_key == AssetKey("raw_upload")


def test_every_retention_event_is_observed_with_the_package_state(
    resource: ArtifactStoreResource,
    io_manager: ArtifactStoreIOManager,
    store: ArtifactStore,
    instance: DagsterInstance,
) -> None:
    """Sweep (from the CLI), expiry, purge, hold, release, retention change and tier move,
    each tick's observation carrying status, on hold, expiry timestamp and tier."""
    for day in ("2024-05-01", "2024-05-02", "2024-05-01"):
        assert materialize(
            [scratch_logs],
            partition_key=day,
            resources={"io_manager": io_manager},
            instance=instance,
            run_config=QUIET,
        ).success
    ticker = Ticker(build_retention_sensor(), instance, resource)
    assert ticker.tick() == []

    def observed() -> dict[str, Any]:
        [observation] = ticker.tick()
        assert observation.asset_key == AssetKey("scratch_logs")
        return {"partition": observation.partition, **observation.metadata}

    hold = store.place_hold("scratch_logs/2024-05-02", reason="audit", actor="carol")
    seen = observed()
    assert seen["partition"] == "2024-05-02"
    assert seen[k.ON_HOLD].value is True and seen[k.STATUS].value == "active"
    assert [e["actor"] for e in seen[k.EVENTS].value] == ["carol"]

    store.release_hold("scratch_logs/2024-05-02", hold.hold_id)
    assert observed()[k.ON_HOLD].value is False

    later = dt.datetime(2030, 1, 2, tzinfo=dt.UTC)
    store.set_retention("scratch_logs/2024-05-02", expires_at=later)
    seen = observed()
    assert isinstance(seen[k.EXPIRES_AT], TimestampMetadataValue)
    assert seen[k.EXPIRES_AT].value == later.timestamp()
    assert seen[k.RETENTION_CLASS].value == "transient"

    _cli(resource, "tier", "move", "scratch_logs/2024-05-02", "--to", "cold")
    seen = observed()
    assert seen[k.TIER].value == "cold" and seen[k.STATUS].value == "active"

    past = store.clock() - dt.timedelta(minutes=5)
    store.set_retention("scratch_logs/2024-05-01@1", expires_at=past, override=True, reason="t")
    ticker.tick()
    _cli(resource, "retention", "sweep", "--grace-seconds", "0")
    seen = observed()
    assert seen["partition"] == "2024-05-01"
    assert seen[k.STATUS].value == "purged" and seen[k.EXPIRED].value is True
    assert [e["event"] for e in seen[k.EVENTS].value] == ["PackageExpired", "BlobPurged"]
    assert [e["actor"] for e in seen[k.EVENTS].value] == ["alice", "alice"]
    assert ticker.tick() == []
    assert len(_observations(instance, "scratch_logs")) == 6


# ---------------------------------------------------------------------------- remote
gateway_store = http.gateway_store
gateway = http.gateway


def test_the_sensors_read_a_registry_server_with_a_token(
    gateway: LiveServer, instance: DagsterInstance
) -> None:
    """Remote mode (``url`` + a token) over SQLite + local blobs and over PostgreSQL + the
    S3 server: the same events, the same asset events. The retention sensor only reads;
    the external one also sets the keep rule of the names it reports."""
    registry = gateway.store

    def remote(scopes: str) -> ArtifactStoreResource:
        return ArtifactStoreResource(
            url=gateway.url, token=issue_token(registry, scopes, actor="dagster")
        )

    for rows in ("[]", "[1]"):
        registry.put("raw_upload", {"data.json": b'{"rows": %s}' % rows.encode()},
                     retention_class="transient")  # fmt: skip
    sensor = build_external_packages_sensor([raw_upload])
    external = Ticker(sensor, instance, remote("package:**:read,write"))
    reported = external.tick()
    assert [_meta(r)[k.REFERENCE] for r in reported] == ["raw_upload@1", "raw_upload@2"]
    assert _meta(reported[0])[k.STORAGE_URI].startswith(gateway.url)  # the server's URL
    assert [r.selector for r in registry.keep_rules()] == ["prefix:raw_upload"]

    for version in (1, 2):
        registry.set_retention(
            f"raw_upload@{version}", expires_at=registry.clock() - dt.timedelta(hours=1),
            override=True, reason="test",
        )  # fmt: skip
    registry.sweep(grace=dt.timedelta(0))
    retention = Ticker(
        build_retention_sensor(external_assets=[raw_upload]), instance, remote("package:**:read")
    )
    observed = sorted(retention.tick(), key=lambda o: _meta(o)[k.REFERENCE])
    assert [(_meta(o)[k.REFERENCE], _meta(o)[k.STATUS]) for o in observed] == [
        ("raw_upload@1", "purged"),
        ("raw_upload@2", "active"),  # its expiry changed, but it is current: kept
    ]
    assert external.tick() == [] and retention.tick() == []


# ---------------------------------------------------------------------------- daemon
@pytest.mark.slow
def test_the_sensor_daemon_records_uploads_and_cli_sweeps(
    tmp_path: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real sensor daemon iteration over ``tests/dagster/sensor_project.py`` (its code
    server in a subprocess): both sensors run by default and their events are recorded."""
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import PythonFileTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    from . import sensor_project

    resource = ArtifactStoreResource(
        database_url=f"sqlite:///{tmp_path / 'registry.db'}", storage_url=str(tmp_path / "b")
    )
    for name in ("database_url", "storage_url"):
        monkeypatch.setenv(f"ARTIFACTSTORE_{name.upper()}", str(getattr(resource, name)))
    store = resource.get_store()
    io_manager = ArtifactStoreIOManager(store=resource)
    for _ in range(2):  # the current version is kept: scratch@1 is superseded
        assert materialize([sensor_project.scratch], resources={"io_manager": io_manager},
                           instance=instance, run_config=QUIET).success  # fmt: skip
    past = store.clock() - dt.timedelta(hours=1)
    store.set_retention("scratch@1", expires_at=past, override=True, reason="test")
    _cli(resource, "retention", "sweep", "--grace-seconds", "0")
    upload = tmp_path / "data.json"
    upload.write_text(json.dumps({"rows": [1, None]}))
    _cli(resource, "put", "raw_upload", str(upload))

    target = PythonFileTarget(sensor_project.__file__, "defs", None, None)
    with create_test_daemon_workspace_context(target, instance) as workspace:
        list(execute_sensor_iteration(workspace, logging.getLogger(__name__), None, None))

    [observation] = _observations(instance, "scratch")
    assert observation.metadata[k.STATUS].value == "purged"
    [record] = instance.fetch_materializations(AssetKey("raw_upload"), limit=5).records
    assert record.asset_materialization is not None
    package_id = record.asset_materialization.metadata[k.PACKAGE_ID].value
    result = materialize(
        [sensor_project.raw_upload, sensor_project.cleaned],
        selection=[sensor_project.cleaned],
        resources={"io_manager": io_manager},
        instance=instance,
        run_config=QUIET,
    )
    assert result.output_for_node("cleaned") == {"rows": [1]}
    assert [str(p.id) for _, p in store.lineage("cleaned")] == [package_id]


# ---------------------------------------------------------------------------- wiring
def _sensor_names(defs: Definitions) -> list[str]:
    return sorted(s.name for s in defs.sensors or [])


def test_the_factory_and_the_component_add_the_sensors(resource: ArtifactStoreResource) -> None:
    defs = build_artifactstore_defs(resource=resource, external_assets=[raw_upload])
    assert _sensor_names(defs) == [
        "artifactstore_external_packages",
        "artifactstore_retention_events",
    ]
    assert defs.resolve_asset_graph().get(AssetKey("raw_upload")).is_external
    assert _sensor_names(build_artifactstore_defs(resource=resource)) == [
        "artifactstore_retention_events"
    ]
    assert _sensor_names(build_artifactstore_defs(resource=resource, retention_sensor=False)) == []

    component = ArtifactStoreComponent(
        database_url=resource.database_url, external_assets=["raw_upload", "a/b"]
    )
    built = component.build_defs(ComponentTree.for_test().load_context)
    assert _sensor_names(built) == [
        "artifactstore_external_packages",
        "artifactstore_retention_events",
    ]
    graph = built.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {"raw_upload", "a/b"}
