"""Attesting the packages of chosen assets at materialization (issue #15, item 6): a real
``materialize`` signs the chosen assets' statements with the resource's key, in the
registration's transaction, and shows each attestation in ``artifactstore/attestation``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from artifactstore_core.domain.statement import DAGSTER_ASSET_BUILD
from artifactstore_core.errors import ConfigurationError
from artifactstore_core.evidence.dsse import verify_envelope
from artifactstore_core.evidence.keys import generate_keypair, load_public_key
from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource, keys

from .conftest import QUIET

pytestmark = pytest.mark.dagster


@asset
def raw_logs() -> list[str]:
    return ["a", "b"]


@asset
def daily_report(raw_logs: list[str]) -> dict[str, int]:
    return {"lines": len(raw_logs)}


@asset(metadata={keys.ATTEST_KEY: True})
def signed_by_metadata() -> str:
    return "chosen by its definition"


@asset(metadata={keys.ATTEST_KEY: False})
def opted_out() -> str:
    return "listed, but its definition says no"


def _metadata(instance: DagsterInstance, name: str) -> dict[str, Any]:
    record = instance.get_latest_materialization_event(AssetKey(name))
    assert record is not None and record.asset_materialization is not None
    return dict(record.asset_materialization.metadata)


def test_chosen_assets_are_attested_at_materialization(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    private, public = generate_keypair(tmp_path / "dagster")
    signing = ArtifactStoreResource(
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        storage_url=str(tmp_path / "blobs"),
        signing_key=str(private),
    )
    io_manager = ArtifactStoreIOManager(store=signing, attest_assets=["daily_report", "opted_out"])
    assert materialize(
        [raw_logs, daily_report, signed_by_metadata, opted_out],
        resources={"io_manager": io_manager},
        instance=instance,
        run_config=QUIET,
    ).success
    store = signing.get_store()
    assert isinstance(store, ArtifactStore)
    shown = _metadata(instance, "daily_report")[keys.ATTESTATION].value
    assert shown == ".attestations/daily_report/1@1"
    (attestation,) = store.attestations("daily_report@1")
    assert attestation.reference == shown
    (line,) = store.read_bytes(attestation, record=False).splitlines()
    statement = json.loads(verify_envelope(line, [load_public_key(public)]).payload)
    assert statement["subject"][0]["name"] == "daily_report@1"
    build = statement["predicate"]["buildDefinition"]
    assert build["buildType"] == DAGSTER_ASSET_BUILD
    assert [d["name"] for d in build["resolvedDependencies"]] == ["raw_logs@1"]
    assert _metadata(instance, "signed_by_metadata")[keys.ATTESTATION].value == (
        ".attestations/signed_by_metadata/1@1"
    )
    for name in ("raw_logs", "opted_out"):
        assert keys.ATTESTATION not in _metadata(instance, name)
        assert store.describe(name).attestations == ()


def test_attesting_without_a_key_stores_nothing(
    resource: ArtifactStoreResource, instance: DagsterInstance
) -> None:
    io_manager = ArtifactStoreIOManager(store=resource, attest_assets=["raw_logs"])
    result = materialize(
        [raw_logs],
        resources={"io_manager": io_manager},
        instance=instance,
        run_config=QUIET,
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "needs a signing key" in failure.to_string()
    assert resource.get_store().list_packages() == []
    with pytest.raises(ConfigurationError, match="needs a signing key"):
        resource.get_attestor()
