"""A Dagster project for the sensor daemon test: the registry comes from ``ARTIFACTSTORE_*``."""

from typing import Any

from dagster import AssetExecutionContext, AssetSpec, Definitions, asset

from artifactstore_dagster import build_artifactstore_defs

raw_upload = AssetSpec("raw_upload", metadata={"artifactstore/serializer": "json"})


@asset(metadata={"artifactstore/retention_class": "transient"})
def scratch(context: AssetExecutionContext) -> str:
    return f"scratch of run {context.run_id}"


@asset
def cleaned(raw_upload: dict[str, Any]) -> dict[str, Any]:
    return {"rows": [r for r in raw_upload["rows"] if r is not None]}


defs = Definitions.merge(
    Definitions(assets=[scratch, cleaned]),
    build_artifactstore_defs(external_assets=[raw_upload], retention_jobs=False),
)
