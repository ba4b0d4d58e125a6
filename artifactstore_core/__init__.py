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
    AccessDeniedError,
    AmbiguousReferenceError,
    ArchivedError,
    ArtifactStoreError,
    AuthenticationError,
    BackendUnavailableError,
    BlobUnknownError,
    CheckpointError,
    ConfigurationError,
    ConflictError,
    DigestInvalidError,
    EventLogTamperedError,
    EvidenceError,
    IdempotencyConflictError,
    IntegrityError,
    InvalidInputError,
    MissingBlobError,
    MissingExtraError,
    NotFoundError,
    PackageExpiredError,
    PreconditionFailedError,
    ReadOnlyRegistryError,
    RetentionError,
    SchemaViolationError,
    SizeInvalidError,
    UnknownKindError,
    UnknownRetentionClassError,
    UploadRangeError,
    UploadUnknownError,
)
from artifactstore_core.hashing import BlobHash, Digest
from artifactstore_core.ingest import PutRequest, RegisterRequest
from artifactstore_core.ledger import Ledger
from artifactstore_core.queries import PackageFilter
from artifactstore_core.retention.sweep import SweepPlan, SweepResult
from artifactstore_core.retention.tiering import TierMove
from artifactstore_core.store import ArtifactStore, BlobProblem, VerifyResult
from artifactstore_core.tiers import Tiers
from artifactstore_core.uploads import Uploads, UploadSession

__all__ = [
    "AccessDeniedError",
    "AmbiguousReferenceError",
    "ArchivedError",
    "ArtifactStore",
    "ArtifactStoreError",
    "AuthenticationError",
    "BackendUnavailableError",
    "BlobHash",
    "BlobProblem",
    "BlobUnknownError",
    "CheckpointError",
    "ConfigurationError",
    "ConflictError",
    "Digest",
    "DigestInvalidError",
    "EventLogTamperedError",
    "EvidenceError",
    "FileEntry",
    "Hold",
    "IdempotencyConflictError",
    "IntegrityError",
    "InvalidInputError",
    "Ledger",
    "MissingBlobError",
    "MissingExtraError",
    "NotFoundError",
    "Package",
    "PackageExpiredError",
    "PackageFilter",
    "PreconditionFailedError",
    "Principal",
    "Provenance",
    "PutRequest",
    "ReadOnlyRegistryError",
    "RegisterRequest",
    "RetentionError",
    "SchemaViolationError",
    "Scope",
    "Settings",
    "SizeInvalidError",
    "SweepPlan",
    "SweepResult",
    "TierMove",
    "Tiers",
    "TokenInfo",
    "UnknownKindError",
    "UnknownRetentionClassError",
    "UploadRangeError",
    "UploadSession",
    "UploadUnknownError",
    "Uploads",
    "VerifyResult",
    "load_settings",
]
