"""Multiprocess executor, Dagster instance on PostgreSQL (dagster-postgres, configured by
examples/dagster.yaml) and the registry on the same real PostgreSQL server."""

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, build_reconstructable_job, execute_job

from artifactstore_core.config import create_engine
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster.keys import PACKAGE_ID

pytestmark = [pytest.mark.dagster, pytest.mark.postgres, pytest.mark.slow]

EXAMPLE_INSTANCE_YAML = Path(__file__).parents[2] / "examples" / "dagster.yaml"


@pytest.fixture
def databases(postgres_admin_url: str) -> Iterator[tuple[str, str]]:
    """(Dagster URL with psycopg2, registry URL with psycopg) for two new databases."""
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    suffix = uuid.uuid4().hex[:12]
    names = [f"dagster_{suffix}", f"registry_{suffix}"]
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = sa.make_url(postgres_admin_url)
    dagster_url = base.set(drivername="postgresql+psycopg2", database=names[0])
    registry_url = base.set(drivername="postgresql+psycopg", database=names[1])
    try:
        yield (
            dagster_url.render_as_string(hide_password=False),
            registry_url.render_as_string(hide_password=False),
        )
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_multiprocess_run_on_postgres_records_every_output_once(
    databases: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dagster_url, registry_url = databases
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(EXAMPLE_INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_url)
    storage = str(tmp_path / "blobs")
    job = build_reconstructable_job(
        "tests.dagster.mp_pipeline",
        "define_job",
        reconstructable_kwargs={"database_url": registry_url, "storage_url": storage},
        reconstructor_working_directory=str(Path(__file__).parents[2]),
    )
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        run_config = {
            "execution": {"config": {"multiprocess": {"max_concurrent": 3}}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        }
        with execute_job(job, instance=instance, run_config=run_config) as result:
            assert result.success, [
                e.event_specific_data for e in result.all_events if e.is_failure
            ]
            run_id = result.run_id
            step_pids = {
                e.pid for e in result.all_events if e.event_type == DagsterEventType.STEP_START
            }
            materializations = {
                e.asset_key.to_user_string(): e.materialization.metadata[PACKAGE_ID].value  # type: ignore[union-attr]
                for e in result.get_asset_materialization_events()
            }
    assert len(step_pids) == 5  # one process per step

    with ArtifactStore.open(registry_url, storage) as store:
        packages = {p.name: p for p in store.list_packages()}
        assert sorted(packages) == ["evidence_bundle", "joined", "shard_a", "shard_b", "shard_c"]
        assert all(p.version == 1 for p in packages.values())  # each output recorded once
        registered = [e for e in store.events() if type(e.event).__name__ == "PackageRegistered"]
        assert len(registered) == 5
        assert {name: str(p.id) for name, p in packages.items()} == materializations
        for name, package in packages.items():
            dagster = package.provenance.attributes["dagster"]
            assert package.provenance.run_id == run_id == dagster["run_id"]
            assert dagster["step_key"] == name and dagster["job_name"] == "mp_job"
        shard_ids = {str(packages[n].id) for n in ("shard_a", "shard_b", "shard_c")}
        assert set(packages["joined"].provenance.inputs) == shard_ids
        assert packages["evidence_bundle"].provenance.inputs == (str(packages["joined"].id),)
        assert [f.path for f in packages["evidence_bundle"].files] == [
            "joined.txt",
            "meta/count.txt",
        ]
        assert store.read_bytes("joined") == b'["a", "b", "c"]'
        report = store.verify_log()
        assert report.checked == len(store.events()) and report.checked >= 5 + 4
        assert store.verify().ok
