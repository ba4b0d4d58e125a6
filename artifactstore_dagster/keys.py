"""Every ``artifactstore/...`` key the Dagster integration reads or writes, in one place.

Definition or output metadata tunes how an output is stored (``KIND_KEY`` ...); output
metadata on each materialization says what was stored (``PACKAGE_ID`` ...); the sweep's
asset observations reuse the same keys; ``RETENTION_TAG`` marks retention runs.
"""

from __future__ import annotations

#: Definition or output metadata keys the IO manager reads.
KIND_KEY = "artifactstore/kind"
RETENTION_CLASS_KEY = "artifactstore/retention_class"
SERIALIZER_KEY = "artifactstore/serializer"
PACKAGE_METADATA_KEY = "artifactstore/metadata"
#: Definition metadata of an input: skip partitions never materialized.
ALLOW_MISSING_PARTITIONS_KEY = "allow_missing_partitions"
#: Definition metadata of an input (or of the upstream asset): concatenate the DataFrames
#: of a partition range into one instead of a dict of partition key to value.
CONCAT_KEY = "artifactstore/concat"
#: Definition or output metadata: attest (True) or not (False) the asset's packages,
#: whatever the IO manager's ``attest_assets`` says.
ATTEST_KEY = "artifactstore/attest"

#: Output metadata keys the IO manager writes (shown in the Dagster UI).
PACKAGE_ID = "artifactstore/package_id"
REFERENCE = "artifactstore/reference"
CONTENT_ADDRESS = "artifactstore/content_address"
SHA256 = "artifactstore/sha256"
SIZE = "artifactstore/size"
SIZE_READABLE = "artifactstore/size_readable"
FILE_COUNT = "artifactstore/file_count"
RETENTION_CLASS = "artifactstore/retention_class"
EXPIRES_AT = "artifactstore/expires_at"
STORAGE_URI = "artifactstore/storage_uri"
UPSTREAM_PACKAGE_IDS = "artifactstore/upstream_package_ids"
CONTENT_DIGEST = "artifactstore/content_digest"
SERIALIZER = "artifactstore/serializer"
#: Written when they apply: the package on the registry server (remote mode), the
#: loaded packages (a table; ``UPSTREAM_ASSET + <input>`` links to the input's asset),
#: the files of a multi-file package (a table).
PACKAGE_URL = "artifactstore/package_url"
UPSTREAM_PACKAGES = "artifactstore/upstream_packages"
UPSTREAM_ASSET = "artifactstore/upstream/"
FILES = "artifactstore/files"
#: The attestation made for the package (``ArtifactStoreIOManager.attest_assets``).
ATTESTATION = "artifactstore/attestation"
#: On a materialization ``migrate_to_artifactstore`` reported: the run it came from.
MIGRATED_FROM = "artifactstore/migrated_from"
#: ``False`` on the materialization of a ``None`` output: nothing was stored.
STORED = "artifactstore/stored"
OUTPUT_METADATA_KEYS = (
    PACKAGE_ID,
    REFERENCE,
    CONTENT_ADDRESS,
    SHA256,
    SIZE,
    SIZE_READABLE,
    FILE_COUNT,
    RETENTION_CLASS,
    EXPIRES_AT,
    STORAGE_URI,
    UPSTREAM_PACKAGE_IDS,
    CONTENT_DIGEST,
    SERIALIZER,
)

#: Asset observation metadata of the sweep: the package expired.
EXPIRED = "artifactstore/expired"

#: Definition metadata of an external asset: the name its packages are registered under.
PACKAGE_NAME = "artifactstore/package_name"
#: Materialization metadata of a package registered outside Dagster: who registered it.
REGISTERED_BY = "artifactstore/registered_by"
#: Observation metadata of the retention sensor (``sensors.py``).
STATUS = "artifactstore/status"
ON_HOLD = "artifactstore/on_hold"
TIER = "artifactstore/tier"
EVENTS = "artifactstore/events"

#: Run tag of every retention run (two never overlap).
RETENTION_TAG = "artifactstore/retention"
