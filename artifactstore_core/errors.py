"""The one error tree of artifact-store.

Every failure a user can act on has its own subclass; messages name the offending value::

    ArtifactStoreError
    ├── ConfigurationError          bad setting, unknown URL scheme
    │   ├── MissingExtraError       an optional dependency is not installed (with install hint)
    │   └── ReadOnlyRegistryError   a write on a registry opened read-only
    ├── InvalidInputError           bad path, metadata, reference syntax, unknown class or kind
    │   ├── UnknownRetentionClassError  no retention class has the name (``name``, ``known``)
    │   ├── UnknownKindError        no kind has the name (``kind``, ``known``)
    │   ├── SchemaViolationError    metadata does not satisfy its kind's JSON Schema
    │   ├── DigestInvalidError      uploaded bytes do not hash to the digest the caller gave
    │   └── SizeInvalidError        uploaded bytes are not as long as the caller said
    ├── NotFoundError               no package, file, hold or blob matches
    │   ├── BlobUnknownError        blobs a registration names are not stored (``addresses``)
    │   └── UploadUnknownError      no open upload session has the id (or it expired)
    ├── AmbiguousReferenceError     a reference matches more than one package
    ├── ConflictError               concurrent change, lease held, duplicate
    │   ├── UploadRangeError        a chunk does not start where the upload stands (``received``)
    │   ├── PreconditionFailedError  a conditional change found another state than expected
    │   └── IdempotencyConflictError  an idempotency key was reused for another request
    ├── AuthenticationError         no, unknown, expired or revoked access token
    ├── AccessDeniedError           the token lacks the scope (``action``, ``name``)
    ├── IntegrityError              bytes or events do not match their digests
    │   ├── MissingBlobError        recorded bytes are not in the backend reads look in
    │   ├── EventLogTamperedError   the hash chain of the event log is broken
    │   ├── CheckpointError         a checkpoint, signed note or log proof is malformed or
    │   │                           does not verify
    │   └── EvidenceError           a signature, envelope or statement does not verify
    ├── RetentionError              retention policy refuses the operation
    │   ├── PackageExpiredError     the package has expired; its bytes may be gone
    │   └── ArchivedError           bytes are in the archive tier and need a restore
    └── BackendUnavailableError     a database or storage server cannot be reached
"""

from __future__ import annotations

from collections.abc import Iterable


class ArtifactStoreError(Exception):
    """Root of every error raised by artifact-store."""


class ConfigurationError(ArtifactStoreError):
    """A setting or URL is invalid."""


class MissingExtraError(ConfigurationError):
    """An optional dependency is needed but not installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the Python package {module!r}, which is not installed; "
            f"install it with: pip install 'artifact-store[{extra}]'"
        )
        self.extra = extra
        self.module = module


class ReadOnlyRegistryError(ConfigurationError):
    """A command that writes was given a registry opened read-only (media or ``?mode=ro``)."""


class InvalidInputError(ArtifactStoreError):
    """A value given by the caller is not acceptable."""


class UnknownRetentionClassError(InvalidInputError):
    """No retention class is called ``name``; ``known`` lists the classes there are."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(
            f"unknown retention class {name!r}; known classes: {', '.join(self.known)}"
        )


class UnknownKindError(InvalidInputError):
    """``kind`` is neither built in nor has a registered metadata schema; ``known``: built-ins."""

    def __init__(self, kind: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.known = tuple(known)
        super().__init__(
            f"unknown kind {kind!r}; use one of {', '.join(self.known)} "
            "or register a metadata schema for it first"
        )


class SchemaViolationError(InvalidInputError):
    """Metadata does not satisfy the JSON Schema registered for its kind."""


class NotFoundError(ArtifactStoreError):
    """Nothing matches the given reference or key."""


class AmbiguousReferenceError(InvalidInputError):
    """A reference matches more than one package."""


class ConflictError(ArtifactStoreError):
    """The operation conflicts with the current state (a held lease, a duplicate)."""


class DigestInvalidError(InvalidInputError):
    """Uploaded bytes do not hash to the digest the caller said they have."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"uploaded bytes hash to {actual}, not to the expected {expected}")
        self.expected = expected
        self.actual = actual


class SizeInvalidError(InvalidInputError):
    """Uploaded bytes are not as many as the caller said."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"uploaded {actual} bytes, not the expected {expected}")
        self.expected = expected
        self.actual = actual


class BlobUnknownError(NotFoundError):
    """Blobs a registration names are not stored; ``addresses`` lists them."""

    def __init__(self, addresses: Iterable[str]) -> None:
        self.addresses = tuple(addresses)
        super().__init__(
            f"{len(self.addresses)} blob(s) are not stored; upload them first: "
            + ", ".join(self.addresses[:10])
            + (" ..." if len(self.addresses) > 10 else "")
        )


class UploadUnknownError(NotFoundError):
    """No open upload session has this id (never opened, expired, cancelled or revoked)."""


class UploadRangeError(ConflictError):
    """A chunk does not start where the upload stands; ``received`` is the resume offset."""

    def __init__(self, upload_id: str, start: int, received: int) -> None:
        super().__init__(
            f"upload {upload_id} has {received} bytes; a chunk starting at byte {start} "
            f"leaves a gap or overlaps (resume at byte {received})"
        )
        self.upload_id = upload_id
        self.start = start
        self.received = received


class PreconditionFailedError(ConflictError):
    """A conditional change (``tag(..., current=...)``) found another state than expected."""


class IdempotencyConflictError(ConflictError):
    """An idempotency key already registered a different package under this name."""


class AuthenticationError(ArtifactStoreError):
    """No access token, or one that is unknown, expired or revoked (``reason`` says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccessDeniedError(ArtifactStoreError):
    """The access token has no scope allowing ``action`` on package name ``name``."""

    def __init__(self, action: str, name: str | None, *, detail: str | None = None) -> None:
        target = f"package {name!r}" if name is not None else "this registry"
        super().__init__(detail or f"the token lacks the {action!r} scope for {target}")
        self.action = action
        self.name = name


class IntegrityError(ArtifactStoreError):
    """Stored bytes or events do not match their recorded digests."""


class MissingBlobError(IntegrityError):
    """Bytes the registry records are not in the backend where reads look for them."""


class EventLogTamperedError(IntegrityError):
    """The event log's hash chain is broken at ``sequence``."""

    def __init__(self, sequence: int, reason: str) -> None:
        super().__init__(f"event log verification failed at sequence {sequence}: {reason}")
        self.sequence = sequence
        self.reason = reason


class CheckpointError(IntegrityError):
    """A checkpoint, signed note or log proof is malformed, or its signature does not verify."""


class EvidenceError(IntegrityError):
    """A DSSE envelope, its signature or an in-toto statement is malformed or does not
    verify; the message names the part."""


class RetentionError(ArtifactStoreError):
    """Retention policy refuses the operation."""


class PackageExpiredError(RetentionError):
    """The package expired; its manifest stays readable but its bytes may be gone."""


class ArchivedError(RetentionError):
    """The package's bytes are in the archive tier and must be restored first."""


class BackendUnavailableError(ArtifactStoreError):
    """A database or storage server cannot be reached or refused the credentials."""


def add_context(error: ArtifactStoreError, where: str, suffix: str = "") -> None:
    """Make ``error``'s one-line message say where it happened: ``where: message suffix``.

    For a handler that then re-raises the same object (``raise``): its class, attributes
    (``UnknownRetentionClassError.name`` ...) and traceback are kept; nothing is rebuilt.
    """
    error.args = (f"{where}: {error}{suffix}", *error.args[1:])
