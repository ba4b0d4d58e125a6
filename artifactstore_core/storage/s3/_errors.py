"""Provider errors in, ``ArtifactStoreError`` out: the one translation of the S3 adapter.

``Translator`` names the endpoint and bucket in every message and keeps the provider's
exception as ``__cause__``; the classifiers read the S3 error code and HTTP status found
anywhere along an exception's cause chain (s3fs and aiobotocore wrap each other's errors).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

from artifactstore_core.errors import (
    ArtifactStoreError,
    BackendUnavailableError,
    ConfigurationError,
    ConflictError,
)

_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)


class Translator:
    """Turns the provider errors of requests to ``bucket`` at ``endpoint`` into the
    ``ArtifactStoreError`` tree; ``url`` is the store's, for hints."""

    def __init__(self, bucket: str, endpoint: str, url: str) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self.url = url

    @contextlib.contextmanager
    def translated(self, action: str) -> Iterator[None]:
        """Errors raised inside go through ``reraise`` with ``action`` (for the message)."""
        try:
            yield
        except Exception as exc:
            self.reraise(exc, action)

    def reraise(self, exc: Exception, action: str) -> NoReturn:
        """Raise ``exc`` translated if it is a provider error, else unchanged."""
        if isinstance(exc, ArtifactStoreError) or not isinstance(exc, provider_errors()):
            raise exc
        raise self.translate(exc, action) from exc

    def no_bucket(self) -> ConfigurationError:
        return ConfigurationError(
            f"S3 bucket {self.bucket!r} does not exist at {self.endpoint}; create it, or "
            f"correct the storage URL {self.url!r} or ARTIFACTSTORE_S3_ENDPOINT_URL"
        )

    def translate(self, exc: BaseException, action: str) -> ArtifactStoreError:
        """The ``ArtifactStoreError`` for a provider error (the caller chains ``exc``)."""
        code, status, message = error_details(exc)
        where = f"S3 bucket {self.bucket!r} at {self.endpoint}"
        if code == "NoSuchBucket":
            return self.no_bucket()
        if code in _AUTH_CODES or status in (401, 403) or _is_credentials_error(exc):
            return BackendUnavailableError(
                f"{where} refused access while {action} ({message}); check the credentials "
                "(ARTIFACTSTORE_S3_ACCESS_KEY_ID / ARTIFACTSTORE_S3_SECRET_ACCESS_KEY or the "
                "AWS_* variables) and their permissions on the bucket"
            )
        if code == "ConditionalRequestConflict":
            return ConflictError(f"{where}: a concurrent write conflicted while {action}; retry")
        if _is_connection_failure(exc):
            return BackendUnavailableError(f"cannot connect to {where} while {action}: {message}")
        if _is_timeout(exc):
            return BackendUnavailableError(
                f"{where} did not answer in time while {action}: {message}"
            )
        return BackendUnavailableError(f"{where} failed while {action}: {message}")


def provider_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the storage service failed (not a bug in the caller)."""
    import aiohttp
    import botocore.exceptions  # type: ignore[import-untyped]

    return (
        OSError,
        aiohttp.ClientError,
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
    )


def error_details(exc: BaseException) -> tuple[str | None, int | None, str]:
    """The S3 error code, HTTP status and a one-line message found along ``exc``'s chain."""
    for error in _chain(exc):
        response = getattr(error, "response", None)
        if isinstance(response, dict) and "Error" in response:
            code = response["Error"].get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            text = response["Error"].get("Message") or code
            return code, status, f"{code}: {text}" if text != code else str(code)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return None, None, f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def precondition_failed(exc: BaseException) -> bool:
    """Whether a create-only write failed because the object exists already."""
    if isinstance(exc, FileExistsError):
        return True
    code, status, _ = error_details(exc)
    return code in ("PreconditionFailed", "412") or status == 412


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_credentials_error(exc: BaseException) -> bool:
    names = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
    return any(
        isinstance(error, PermissionError) or type(error).__name__ in names for error in _chain(exc)
    )


def _is_connection_failure(exc: BaseException) -> bool:
    names = {"EndpointConnectionError", "ClientConnectorError", "ProxyConnectionError"}
    return any(
        isinstance(error, ConnectionRefusedError) or type(error).__name__ in names
        for error in _chain(exc)
    )


def _is_timeout(exc: BaseException) -> bool:
    return any(
        isinstance(error, TimeoutError) or "Timeout" in type(error).__name__
        for error in _chain(exc)
    )
