"""artifact-store: a content-addressed registry for generated artifacts.

``ArtifactStore`` is the one entry point; everything else here is the vocabulary of
its arguments and results.
"""

from artifactstore_core.access import TokenInfo
from artifactstore_core.config import Settings, load_settings
from artifactstore_core.domain.access import Principal, Scope
from artifactstore_core.domain.manifest import FileEntry, Provenance
from artifactstore_core.domain.package import Hold, Package
from artifactstore_core.errors import (
    AmbiguousReferenceError,
    ArchivedError,
    ArtifactStoreError,
    BackendUnavailableError,
    ConfigurationError,
    ConflictError,
    EventLogTamperedError,
    IntegrityError,
    InvalidInputError,
    MissingBlobError,
    MissingExtraError,
    NotFoundError,
    PackageExpiredError,
    ReadOnlyRegistryError,
    RetentionError,
    SchemaViolationError,
    UnknownKindError,
    UnknownRetentionClassError,
)
from artifactstore_core.hashing import BlobHash, Digest
from artifactstore_core.ingest import PutRequest
from artifactstore_core.ledger import Ledger
from artifactstore_core.queries import PackageFilter
from artifactstore_core.retention.sweep import SweepPlan, SweepResult
from artifactstore_core.retention.tiering import TierMove
from artifactstore_core.store import ArtifactStore, BlobProblem, VerifyResult
from artifactstore_core.tiers import Tiers

__all__ = [
    "AmbiguousReferenceError",
    "ArchivedError",
    "ArtifactStore",
    "ArtifactStoreError",
    "BackendUnavailableError",
    "BlobHash",
    "BlobProblem",
    "ConfigurationError",
    "ConflictError",
    "Digest",
    "EventLogTamperedError",
    "FileEntry",
    "Hold",
    "IntegrityError",
    "InvalidInputError",
    "Ledger",
    "MissingBlobError",
    "MissingExtraError",
    "NotFoundError",
    "Package",
    "PackageExpiredError",
    "PackageFilter",
    "Principal",
    "Provenance",
    "PutRequest",
    "ReadOnlyRegistryError",
    "RetentionError",
    "SchemaViolationError",
    "Scope",
    "Settings",
    "SweepPlan",
    "SweepResult",
    "TierMove",
    "Tiers",
    "TokenInfo",
    "UnknownKindError",
    "UnknownRetentionClassError",
    "VerifyResult",
    "load_settings",
]
