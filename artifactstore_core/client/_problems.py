"""Problem details (RFC 9457) back to the core's typed errors: the inverse of the server's table.

The server answers every failure as ``application/problem+json`` with a stable ``code``
(http-api.md E3) and extension members carrying the error's attributes; ``error_from``
rebuilds the core error of that code with the server's one-line ``detail`` as message,
so a caller catches the same classes remotely as in embedded mode. An unknown code falls
back to the class of the HTTP status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from artifactstore_core import errors as e

#: ``code`` → the core error class it stands for (one row per code the server sends).
CODES: dict[str, type[e.ArtifactStoreError]] = {
    "INVALID_INPUT": e.InvalidInputError,
    "NAME_INVALID": e.InvalidInputError,
    "UNKNOWN_RETENTION_CLASS": e.UnknownRetentionClassError,
    "UNKNOWN_KIND": e.UnknownKindError,
    "SCHEMA_VIOLATION": e.SchemaViolationError,
    "DIGEST_INVALID": e.DigestInvalidError,
    "SIZE_INVALID": e.SizeInvalidError,
    "REFERENCE_AMBIGUOUS": e.AmbiguousReferenceError,
    "NOT_FOUND": e.NotFoundError,
    "PACKAGE_UNKNOWN": e.NotFoundError,
    "BLOB_UNKNOWN": e.BlobUnknownError,
    "BLOB_UPLOAD_UNKNOWN": e.UploadUnknownError,
    "CONFLICT": e.ConflictError,
    "PRECONDITION_FAILED": e.PreconditionFailedError,
    "BLOB_UPLOAD_INVALID": e.UploadRangeError,
    "IDEMPOTENCY_CONFLICT": e.IdempotencyConflictError,
    "UNAUTHORIZED": e.AuthenticationError,
    "DENIED": e.AccessDeniedError,
    "INTEGRITY_FAILURE": e.IntegrityError,
    "BLOB_MISSING": e.MissingBlobError,
    "LOG_TAMPERED": e.EventLogTamperedError,
    "CHECKPOINT_INVALID": e.CheckpointError,
    "RETENTION_DENIED": e.RetentionError,
    "PACKAGE_EXPIRED": e.PackageExpiredError,
    "ARCHIVED": e.ArchivedError,
    "BACKEND_UNAVAILABLE": e.BackendUnavailableError,
    "TOOMANYREQUESTS": e.BackendUnavailableError,
    "READ_ONLY": e.ReadOnlyRegistryError,
    "CONFIGURATION": e.ConfigurationError,
    "UNSUPPORTED": e.ConfigurationError,
    "UNAVAILABLE": e.BackendUnavailableError,
    "TOO_LARGE": e.InvalidInputError,
    "RANGE_NOT_SATISFIABLE": e.InvalidInputError,
    "INTERNAL_ERROR": e.ArtifactStoreError,
}

#: Extension members that become attributes of the error (the core classes' own names).
_ATTRIBUTES: dict[type[e.ArtifactStoreError], dict[str, Callable[[Any], Any]]] = {
    e.UnknownRetentionClassError: {"name": str, "known": tuple},
    e.UnknownKindError: {"kind": str, "known": tuple},
    e.DigestInvalidError: {"expected": str, "actual": str},
    e.SizeInvalidError: {"expected": int, "actual": int},
    e.BlobUnknownError: {"addresses": tuple},
    e.UploadRangeError: {"upload_id": str, "start": int, "received": int},
    e.AuthenticationError: {"reason": str},
    e.AccessDeniedError: {"action": str, "name": str},
    e.EventLogTamperedError: {"sequence": int, "reason": str},
}


#: The class of a response without a known code, by status.
_STATUSES: dict[int, type[e.ArtifactStoreError]] = {
    400: e.InvalidInputError, 413: e.InvalidInputError, 422: e.InvalidInputError,
    401: e.AuthenticationError, 403: e.AccessDeniedError, 404: e.NotFoundError,
    409: e.ConflictError, 416: e.ConflictError, 412: e.PreconditionFailedError,
    410: e.RetentionError, 429: e.BackendUnavailableError, 502: e.BackendUnavailableError,
    503: e.BackendUnavailableError, 504: e.BackendUnavailableError,
}  # fmt: skip


def error_from(status: int, problem: Mapping[str, Any] | None, where: str) -> e.ArtifactStoreError:
    """The core error a problem document stands for; its message is the server's detail
    (or, without a problem body, the status and ``where``: method and path). It also
    carries the response's ``status``, ``code`` and ``request_id``."""
    problem = problem or {}
    code = problem.get("code")
    by_status = _STATUSES.get(status, e.ArtifactStoreError)
    cls = CODES.get(code, by_status) if isinstance(code, str) else by_status
    detail = problem.get("detail") or problem.get("title") or f"HTTP {status} from {where}"
    detail = " ".join(str(detail).split())
    if cls is e.ArtifactStoreError and problem.get("instance"):
        detail += f" (request {problem['instance']})"  # what the server's log names
    error = cls.__new__(cls)
    Exception.__init__(error, detail)
    if isinstance(error, e.AuthenticationError):
        problem = {"reason": error.args[0], **problem}
    attributes = _ATTRIBUTES.get(cls, {})
    errors = problem.get("errors")
    for name, kind in attributes.items():
        value = problem.get(name)
        if value is None and name == "addresses" and isinstance(errors, list):
            value = [
                item.get("digest", item) if isinstance(item, dict) else item for item in errors
            ]
        setattr(error, name, kind(value) if value is not None else None)
    vars(error).update(status=status, code=code, request_id=problem.get("instance"))
    return error
