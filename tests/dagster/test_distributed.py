"""A partitioned job on a real distributed executor: Dask, a scheduler and two worker
processes on loopback, the Dagster instance on PostgreSQL (dagster-postgres).

The registry is on the same PostgreSQL server with its blobs on the S3 server, reached by
the workers either directly (their environment holds the registry's settings) or through
``artifactstore serve`` with a token bound to the run (their environment holds nothing
of the registry). Either way every output is recorded once, with its exact upstream
packages and run id, by steps that ran in both worker processes, and the chain verifies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    JobExecutionResult,
    build_reconstructable_job,
)
from dagster._core.execution.api import execute_run  # a run whose id is known beforehand
from distributed import Client

from artifactstore_core.config import load_settings
from artifactstore_core.store import ArtifactStore
from artifactstore_core.testing.servers import (
    S3_TEST_ACCESS_KEY,
    S3_TEST_REGION,
    S3_TEST_SECRET_KEY,
    create_s3_bucket,
    free_port,
)
from artifactstore_dagster.keys import PACKAGE_ID
from tests.dagster import dask_pipeline
from tests.dagster.test_postgres_multiprocess import databases
from tests.http.conftest import issue_token

pytestmark = [
    pytest.mark.dagster,
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.integration,
    pytest.mark.slow,
]

ROOT = Path(__file__).parents[2]
PARTITIONS = dask_pipeline.PARTITIONS.get_partition_keys()
QUIET = {"console": {"config": {"log_level": "WARNING"}}}
#: Environment variables that would give a process a database or a bucket.
SECRETS = ("ARTIFACTSTORE_", "AWS_", "DAGSTER_POSTGRES_URL")

#: The ``artifactstore`` resource's config for a run, given the run's id.
RunConfig = Callable[[str], dict[str, str]]

__all__ = ["databases"]  # the fixture, shared with test_postgres_multiprocess


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _process(
    args: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` in a new session with exactly ``env``; stopped (SIGTERM, then SIGKILL) after."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, env=dict(env), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_default_signals,
        )  # fmt: skip
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait(
    ready: Callable[[], bool], what: str, logs: list[Path], procs: list[subprocess.Popen[bytes]]
) -> None:
    """Poll ``ready`` for a minute; fail with the logs if a process exits or time runs out."""
    deadline = time.monotonic() + 60
    while not ready():
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise AssertionError(f"{what}:\n" + "\n".join(p.read_text() for p in logs))
        time.sleep(0.1)


def _clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment less anything naming the registry, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRETS)}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@dataclass
class DaskCluster:
    address: str
    worker_pids: set[int]
    worker_environ: list[dict[str, str]]


@contextlib.contextmanager
def dask_cluster(tmp_path: Path, worker_env: Mapping[str, str]) -> Iterator[DaskCluster]:
    """``dask scheduler`` and two single-threaded ``dask worker`` processes on loopback,
    the workers with exactly ``worker_env``."""
    scheduler_file = tmp_path / "scheduler.json"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    with contextlib.ExitStack() as stack:
        scheduler = stack.enter_context(_process(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", *common, "--port", "0",
             "--scheduler-file", str(scheduler_file)],
            _clean_environment(), logs[0],
        ))  # fmt: skip
        _wait(scheduler_file.exists, "the Dask scheduler did not start", logs, [scheduler])
        workers = []
        for i, log in enumerate(logs[1:], start=1):
            # --preload: Dagster and the job are imported while the worker starts.
            args = [sys.executable, "-m", "distributed.cli.dask_worker", *common, "--no-nanny",
                    "--nthreads", "1", "--preload", "tests.dagster.dask_pipeline",
                    "--name", f"worker-{i}", "--scheduler-file", str(scheduler_file),
                    "--local-directory", str(tmp_path / f"w{i}")]  # fmt: skip
            workers.append(stack.enter_context(_process(args, worker_env, log)))
        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            pids = client.run(os.getpid)
            environ = client.run(lambda: dict(os.environ))
        assert set(pids.values()) == {w.pid for w in workers}
        yield DaskCluster(address, set(pids.values()), list(environ.values()))


@pytest.fixture
def registry(databases: tuple[str, str], s3_endpoint: str) -> dict[str, str]:
    """The registry's settings (``ARTIFACTSTORE_*``): the PostgreSQL database and a new
    bucket on the S3 server."""
    bucket = create_s3_bucket(s3_endpoint, f"dask-{uuid.uuid4().hex[:12]}")
    return {
        "ARTIFACTSTORE_DATABASE_URL": databases[1],
        "ARTIFACTSTORE_STORAGE_URL": f"s3://{bucket}/hot",
        "ARTIFACTSTORE_S3_ENDPOINT_URL": s3_endpoint,
        "ARTIFACTSTORE_S3_REGION": S3_TEST_REGION,
        "ARTIFACTSTORE_S3_ACCESS_KEY_ID": S3_TEST_ACCESS_KEY,
        "ARTIFACTSTORE_S3_SECRET_ACCESS_KEY": S3_TEST_SECRET_KEY,
    }


@pytest.fixture
def instance(databases: tuple[str, str], tmp_path: Path) -> Iterator[DagsterInstance]:
    """A Dagster instance whose run, event and schedule storage is PostgreSQL."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = {"storage": {"postgres": {"postgres_url": databases[0]}},
              "telemetry": {"enabled": False}}  # fmt: skip
    (home / "dagster.yaml").write_text(json.dumps(config))  # JSON is YAML
    with DagsterInstance.from_config(str(home)) as dagster_instance:
        assert type(dagster_instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        yield dagster_instance


def _open_registry(settings: Mapping[str, str]) -> ArtifactStore:
    """The registry these ``ARTIFACTSTORE_*`` settings name, opened here (migrated)."""
    return ArtifactStore.from_settings(
        load_settings(**{k.removeprefix("ARTIFACTSTORE_").lower(): v for k, v in settings.items()})
    )


JOB = build_reconstructable_job(
    "tests.dagster.dask_pipeline", "define_job", reconstructor_working_directory=str(ROOT)
)


def run_partition(
    instance: DagsterInstance, cluster: DaskCluster, partition: str, registry_config: RunConfig
) -> JobExecutionResult:
    """Run the job for ``partition`` on the cluster; ``registry_config(run_id)`` is the
    ``artifactstore`` resource's config (the run id is chosen first, as a launcher would)."""
    run_id = str(uuid.uuid4())
    run_config = {
        "execution": {"config": {"cluster": {"existing": {"address": cluster.address}}}},
        "resources": {"artifactstore": {"config": registry_config(run_id)}},
        "loggers": QUIET,
    }
    run = instance.create_run_for_job(
        job_def=JOB.get_definition(), run_id=run_id, run_config=run_config,
        tags={"dagster/partition": partition}, job_code_origin=JOB.get_python_origin(),
    )  # fmt: skip
    return execute_run(JOB, run, instance)


def run_partitions(
    instance: DagsterInstance, cluster: DaskCluster, registry_config: RunConfig
) -> dict[str, str]:
    """One successful run per partition: the run id of each partition."""
    run_ids = {}
    for partition in PARTITIONS:
        result = run_partition(instance, cluster, partition, registry_config)
        assert result.success, [e.event_specific_data for e in result.all_events if e.is_failure]
        run_ids[partition] = result.run_id
    return run_ids


def _registered(store: ArtifactStore) -> list[Any]:
    return [e for e in store.events() if type(e.event).__name__ == "PackageRegistered"]


def assert_recorded_once_with_exact_provenance(
    store: ArtifactStore, instance: DagsterInstance, run_ids: dict[str, str], cluster: DaskCluster
) -> None:
    """Every output once, its package the materialization's, inputs exactly the upstream
    packages of the same partition, the run's id; steps spread over both workers."""
    prefix = dask_pipeline.PREFIX
    packages = {p.name: p for p in store.list_packages()}
    expected = {f"{prefix}/{a}/{p}" for a in dask_pipeline.ASSET_NAMES for p in PARTITIONS}
    assert set(packages) == expected
    assert all(p.version == 1 for p in packages.values())
    assert len(_registered(store)) == len(expected)

    step_pids = set()
    for partition, run_id in run_ids.items():

        def package(asset: str, partition: str = partition) -> Any:
            return packages[f"{prefix}/{asset}/{partition}"]

        for asset in dask_pipeline.ASSET_NAMES:
            got = package(asset)
            assert got.provenance.run_id == run_id
            dagster = got.provenance.attributes["dagster"]
            assert (dagster["run_id"], dagster["partition_key"]) == (run_id, partition)
            records = instance.fetch_materializations(
                AssetKey(asset), limit=10
            ).records  # every partition's materializations of this asset
            mine = [r for r in records if r.partition_key == partition]
            assert len(mine) == 1 and mine[0].run_id == run_id
            assert mine[0].asset_materialization.metadata[PACKAGE_ID].value == str(got.id)
        assert sorted(package("calibrated").provenance.inputs) == sorted(
            [str(package("sensor_readings").id), str(package("station_metadata").id)]
        )
        assert package("daily_summary").provenance.inputs == (str(package("calibrated").id),)
        assert not package("sensor_readings").provenance.inputs
        logs = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        step_pids |= {r.dagster_event.pid for r in logs if r.dagster_event is not None}
        assert store.read_bytes(f"{prefix}/daily_summary/{partition}") == (
            f"{partition} st-1 total=60".encode()
        )

    assert step_pids <= cluster.worker_pids and len(step_pids) >= 2, (step_pids, cluster)
    report = store.verify_log()
    assert report.checked == len(store.events()) >= len(expected)
    assert store.verify().ok


def test_dask_workers_write_to_one_registry_on_postgres_and_s3(
    instance: DagsterInstance, registry: dict[str, str], tmp_path: Path
) -> None:
    worker_env = _clean_environment(**registry)
    # The registry is migrated once, before the workers start (as a deployment does).
    with _open_registry(registry) as store, dask_cluster(tmp_path, worker_env) as cluster:
        run_ids = run_partitions(instance, cluster, lambda run_id: {})
        assert_recorded_once_with_exact_provenance(store, instance, run_ids, cluster)
        assert {p.actor for p in store.list_packages()} == {"dagster"}


def _serve_args(port: int) -> list[str]:
    """``artifactstore serve`` on ``port``."""
    return [sys.executable, "-c", "from artifactstore_core.cli import main; main()",
            "serve", "--port", str(port)]  # fmt: skip


def _healthy(url: str) -> Callable[[], bool]:
    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    return healthy


def test_dask_workers_with_only_a_run_bound_token(
    instance: DagsterInstance, registry: dict[str, str], tmp_path: Path
) -> None:
    worker_env = _clean_environment()
    scope = f"package:{dask_pipeline.PREFIX}/**:read,write"
    port = free_port()
    url, serve_log = f"http://127.0.0.1:{port}", tmp_path / "serve.log"
    with (
        _open_registry(registry) as store,
        # The gateway alone holds the registry's settings.
        _process(_serve_args(port), {**_clean_environment(), **registry}, serve_log) as gateway,
        dask_cluster(tmp_path, worker_env) as cluster,
    ):
        _wait(_healthy(url), "artifactstore serve did not start", [serve_log], [gateway])
        for environ in cluster.worker_environ:
            assert not [k for k in environ if k.startswith(SECRETS)], environ
            assert not [v for v in environ.values() if registry["ARTIFACTSTORE_DATABASE_URL"] in v]

        def token_for(run_id: str) -> dict[str, str]:
            secret = issue_token(store, scope, actor="fleet-runner", run_id=run_id)
            return {"url": url, "token": secret}

        run_ids = run_partitions(instance, cluster, token_for)
        assert_recorded_once_with_exact_provenance(store, instance, run_ids, cluster)
        assert {p.actor for p in store.list_packages()} == {"fleet-runner"}
        packages = store.list_packages()

        # The binding is what stops a worker: a token of another run registers nothing.
        def stolen(run_id: str) -> dict[str, str]:
            secret = issue_token(store, scope, actor="fleet-runner", run_id=run_ids["north"])
            return {"url": url, "token": secret}

        refused = run_partition(instance, cluster, "north", stolen)
        assert not refused.success
        failures = [str(e.event_specific_data) for e in refused.all_events if e.is_failure]
        assert any("is bound to run" in f for f in failures), failures
        # dagster-dask runs downstream steps even after their upstream failed (they load
        # the upstream's previous materialization): each is refused in turn.
        steps = {e.step_key for e in refused.all_events if e.is_step_failure}
        assert steps == set(dask_pipeline.ASSET_NAMES)
        assert len(_registered(store)) == len(packages)  # nothing was registered
