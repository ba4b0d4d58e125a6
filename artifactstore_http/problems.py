"""RFC 9457 problem details: the one mapping from core errors to HTTP status and ``code``.

Every error response is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail``, ``instance`` (the request id, also in ``X-Request-Id``) and ``code``, a stable
UPPER_SNAKE value (OCI codes where they fit); some add extension members (``errors``,
``expected``/``actual``, ``sequence``, ``received``, ``retry_after``). docs/http.md lists
them all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from artifactstore_core import errors as core

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/v1/problems/"
"""``type`` is this prefix plus the lower-case code; the gateway describes each there."""
RETRY_AFTER_SECONDS = 5

log = logging.getLogger("artifactstore_http")


@dataclass(frozen=True, slots=True)
class Mapping_:
    status: int
    code: str
    title: str


# Most specific first: the first class the error is an instance of decides.
ERROR_TABLE: tuple[tuple[type[core.ArtifactStoreError], Mapping_], ...] = (
    (core.DigestInvalidError, Mapping_(400, "DIGEST_INVALID", "Digest mismatch")),
    (core.SizeInvalidError, Mapping_(400, "SIZE_INVALID", "Size mismatch")),
    (core.SchemaViolationError, Mapping_(422, "SCHEMA_VIOLATION", "Metadata violates schema")),
    (core.AmbiguousReferenceError, Mapping_(400, "REFERENCE_AMBIGUOUS", "Ambiguous reference")),
    (core.InvalidInputError, Mapping_(400, "INVALID_INPUT", "Invalid input")),
    (core.BlobUnknownError, Mapping_(404, "BLOB_UNKNOWN", "Blob unknown")),
    (core.UploadUnknownError, Mapping_(404, "BLOB_UPLOAD_UNKNOWN", "Upload unknown")),
    (core.NotFoundError, Mapping_(404, "PACKAGE_UNKNOWN", "Not found")),
    (core.UploadRangeError, Mapping_(416, "BLOB_UPLOAD_INVALID", "Chunk out of order")),
    (core.IdempotencyConflictError, Mapping_(409, "IDEMPOTENCY_CONFLICT", "Key reused")),
    (core.PreconditionFailedError, Mapping_(412, "PRECONDITION_FAILED", "Precondition failed")),
    (core.ConflictError, Mapping_(409, "CONFLICT", "Conflict")),
    (core.AuthenticationError, Mapping_(401, "UNAUTHORIZED", "Authentication required")),
    (core.AccessDeniedError, Mapping_(403, "DENIED", "Access denied")),
    (core.EventLogTamperedError, Mapping_(500, "LOG_TAMPERED", "Event log tampered")),
    (core.CheckpointError, Mapping_(422, "CHECKPOINT_INVALID", "Checkpoint does not verify")),
    (core.IntegrityError, Mapping_(500, "INTEGRITY_FAILURE", "Integrity failure")),
    (core.PackageExpiredError, Mapping_(410, "PACKAGE_EXPIRED", "Package expired")),
    (core.ArchivedError, Mapping_(409, "ARCHIVED", "Package archived")),
    (core.RetentionError, Mapping_(409, "RETENTION_DENIED", "Retention refuses")),
    (core.BackendUnavailableError, Mapping_(503, "BACKEND_UNAVAILABLE", "Backend unavailable")),
    (core.ReadOnlyRegistryError, Mapping_(409, "READ_ONLY", "Registry is read-only")),
    (core.ConfigurationError, Mapping_(501, "UNSUPPORTED", "Not configured here")),
    (core.ArtifactStoreError, Mapping_(500, "INTERNAL_ERROR", "Internal error")),
)

# Plain HTTP conditions raised by routing, Starlette or this package.
STATUS_CODES: Mapping[int, tuple[str, str]] = {
    400: ("INVALID_INPUT", "Invalid input"),
    401: ("UNAUTHORIZED", "Authentication required"),
    403: ("DENIED", "Access denied"),
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    406: ("NOT_ACCEPTABLE", "Not acceptable"),
    409: ("CONFLICT", "Conflict"),
    411: ("LENGTH_REQUIRED", "Length required"),
    412: ("PRECONDITION_FAILED", "Precondition failed"),
    413: ("TOO_LARGE", "Request body too large"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"),
    416: ("RANGE_NOT_SATISFIABLE", "Range not satisfiable"),
    422: ("INVALID_INPUT", "Invalid input"),
    428: ("PRECONDITION_REQUIRED", "Precondition required"),
    429: ("TOOMANYREQUESTS", "Too many requests"),
    501: ("UNSUPPORTED", "Not supported"),
    503: ("UNAVAILABLE", "Service unavailable"),
}

_TITLES = {mapping.code: mapping.title for _cls, mapping in ERROR_TABLE} | {
    "RANGE_NOT_SATISFIABLE": "Range not satisfiable",
    "TOOMANYREQUESTS": "Too many requests",
    "PRECONDITION_FAILED": "Precondition failed",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request id (X-Request-Id)"},
        "code": {"type": "string", "description": "stable UPPER_SNAKE code"},
    },
    "additionalProperties": True,
}
OPENAPI_RESPONSES: dict[int | str, dict[str, Any]] = {
    key: {
        "description": "A problem (RFC 9457)",
        "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
    }
    for key in ("4XX", "5XX")
}
"""Every route may answer a problem: documented once, for all of them."""

WWW_AUTHENTICATE = 'Bearer realm="artifactstore", error="invalid_token"'


class Problem(Exception):
    """An HTTP problem raised by a route: status, code, detail, extensions, headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or STATUS_CODES.get(status, ("ERROR", ""))[0]
        self.headers = dict(headers or {})
        self.extensions = extensions


def lookup(error: core.ArtifactStoreError) -> Mapping_:
    """The status, code and title of a core error (``ERROR_TABLE``, first match)."""
    for cls, mapping in ERROR_TABLE:
        if isinstance(error, cls):
            return mapping
    raise AssertionError("ArtifactStoreError is in the table")  # pragma: no cover


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """The ``application/problem+json`` response for one problem."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code.lower(),
        "title": title or _TITLES.get(code) or STATUS_CODES.get(status, (code, code))[1],
        "status": status,
        "detail": detail,
        "code": code,
    }
    rid = request_id(request) if request is not None else ""
    if rid:
        body["instance"] = rid
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def core_error_response(request: Request, error: core.ArtifactStoreError) -> JSONResponse:
    """The problem response for a core error, with its context members and headers."""
    mapping = lookup(error)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(error, core.DigestInvalidError | core.SizeInvalidError):
        extra = {"expected": error.expected, "actual": error.actual}
    elif isinstance(error, core.BlobUnknownError):
        extra = {"errors": [{"code": "BLOB_UNKNOWN", "digest": a} for a in error.addresses]}
    elif isinstance(error, core.UploadRangeError):
        extra = {"received": error.received}
        headers["Range"] = f"0-{error.received - 1}" if error.received else "0-0"
    elif isinstance(error, core.EventLogTamperedError):
        extra = {"sequence": error.sequence}
    elif isinstance(error, core.AuthenticationError):
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    elif isinstance(error, core.AccessDeniedError):
        extra = {"action": error.action, "name": error.name}
    elif isinstance(error, core.ArchivedError):
        extra = {"restore": "POST /v1/packages/{ref}:restore"}
    elif isinstance(error, core.BackendUnavailableError):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        extra = {"retry_after": RETRY_AFTER_SECONDS}
    if mapping.status == 500:
        log.error("request %s failed: %s", request_id(request), error, exc_info=error)
    return problem_response(
        request, mapping.status, mapping.code, _one_line(str(error)), title=mapping.title,
        headers=headers, **extra,
    )  # fmt: skip


def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem details."""

    async def on_core_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, core.ArtifactStoreError)
        return core_error_response(request, exc)

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            request, exc.status, exc.code, exc.detail, headers=exc.headers, **exc.extensions
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {
                "location": ".".join(str(part) for part in error.get("loc", ()))[:200],
                "message": _one_line(str(error.get("msg", "")), 300),
            }
            for error in exc.errors()[:20]
        ]
        detail = "; ".join(f"{p['location']}: {p['message']}" for p in problems[:3])
        return problem_response(
            request, 400, "INVALID_INPUT", f"invalid request: {detail}", errors=problems
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code, title = STATUS_CODES.get(exc.status_code, ("ERROR", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path[:200]}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path[:200]}"
        return problem_response(
            request, exc.status_code, code, _one_line(detail), title=title,
            headers=dict(exc.headers or {}),
        )  # fmt: skip

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s failed unexpectedly", request_id(request), exc_info=exc)
        return problem_response(
            request, 500, "INTERNAL_ERROR", "the server failed; the request id names it in its log"
        )

    app.add_exception_handler(core.ArtifactStoreError, on_core_error)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
