"""Dagster integration for artifact-store: every asset output becomes a registered package.

``build_artifactstore_defs()`` gives the resource, the IO manager, integrity checks,
retention jobs and (stopped) schedules in one ``Definitions``; the pieces are exported
for projects that wire them by hand. The integration maps Dagster contexts onto
``ArtifactStore`` calls and holds no registry logic of its own.
"""

from artifactstore_dagster.checks import CHECK_NAMES, build_artifact_checks
from artifactstore_dagster.data_versions import (
    artifact_result,
    files_digest,
    set_data_version_from_io_manager,
)
from artifactstore_dagster.definitions import (
    ArtifactStoreComponent,
    build_artifactstore_defs,
    validate_checked_assets,
)
from artifactstore_dagster.io_manager import ArtifactStoreIOManager
from artifactstore_dagster.keys import RETENTION_TAG
from artifactstore_dagster.migration import migrate_to_artifactstore
from artifactstore_dagster.resources import ArtifactStoreResource, close_cached_stores
from artifactstore_dagster.retention_jobs import (
    SweepConfig,
    TierMoveConfig,
    VerifyConfig,
    build_retention_jobs,
    build_retention_schedule,
)
from artifactstore_dagster.sensors import build_external_packages_sensor, build_retention_sensor
from artifactstore_dagster.serializers import (
    Serializer,
    SerializerRegistry,
    StoredContent,
    Unsuitable,
    default_registry,
    register_serializer,
)
from artifactstore_dagster.translator import OutputKey, PackageTranslator

__all__ = [
    "CHECK_NAMES",
    "RETENTION_TAG",
    "ArtifactStoreComponent",
    "ArtifactStoreIOManager",
    "ArtifactStoreResource",
    "OutputKey",
    "PackageTranslator",
    "Serializer",
    "SerializerRegistry",
    "StoredContent",
    "SweepConfig",
    "TierMoveConfig",
    "Unsuitable",
    "VerifyConfig",
    "artifact_result",
    "build_artifact_checks",
    "build_artifactstore_defs",
    "build_external_packages_sensor",
    "build_retention_jobs",
    "build_retention_schedule",
    "build_retention_sensor",
    "close_cached_stores",
    "default_registry",
    "files_digest",
    "migrate_to_artifactstore",
    "register_serializer",
    "set_data_version_from_io_manager",
    "validate_checked_assets",
]
