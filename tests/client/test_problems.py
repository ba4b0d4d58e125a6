"""Problem documents become the core's typed errors (one table, the server's inverse)."""

from __future__ import annotations

import pytest

from artifactstore_core import errors as e
from artifactstore_core.client import CODES
from artifactstore_core.client._problems import error_from
from artifactstore_core.client._transport import RetryPolicy, retry_after

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_gives_its_class_with_the_servers_detail(code: str) -> None:
    error = error_from(400, {"code": code, "detail": "one\nline  detail", "instance": "r1"}, "x")
    assert type(error) is CODES[code]
    suffix = " (request r1)" if CODES[code] is e.ArtifactStoreError else ""
    assert str(error) == "one line detail" + suffix


def test_extension_members_become_the_errors_attributes() -> None:
    problem = {"code": "BLOB_UPLOAD_INVALID", "detail": "d", "upload_id": "u", "start": 5,
               "received": 3}  # fmt: skip
    error = error_from(416, problem, "PATCH /v1/blobs/uploads/u")
    assert isinstance(error, e.UploadRangeError) and isinstance(error, e.ConflictError)
    assert (error.upload_id, error.start, error.received) == ("u", 5, 3)
    missing = error_from(400, {"code": "BLOB_UNKNOWN", "errors": [{"digest": "blake3:a"}]}, "x")
    assert isinstance(missing, e.BlobUnknownError) and missing.addresses == ("blake3:a",)
    problem = {"code": "DENIED", "detail": "d", "action": "write", "name": "a/b"}
    denied = error_from(403, problem, "")
    assert isinstance(denied, e.AccessDeniedError) and denied.action == "write"


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, e.InvalidInputError), (401, e.AuthenticationError), (403, e.AccessDeniedError),
     (404, e.NotFoundError), (409, e.ConflictError), (410, e.RetentionError),
     (503, e.BackendUnavailableError), (500, e.ArtifactStoreError)],
)  # fmt: skip
def test_an_unknown_code_or_no_body_falls_back_to_the_status(
    status: int, cls: type[e.ArtifactStoreError]
) -> None:
    for problem in (None, {"code": "SOMETHING_NEW", "detail": "new"}):
        error = error_from(status, problem, "GET http://h/v1/x")
        assert type(error) is cls
        assert str(error) == ("new" if problem else f"HTTP {status} from GET http://h/v1/x")


def test_retry_after_in_seconds_or_as_a_date_and_backoff_bounds() -> None:
    import datetime as dt

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert retry_after("7", lambda: now) == 7.0
    assert retry_after("Thu, 01 Jan 2026 00:00:30 GMT", lambda: now) == 30.0
    assert retry_after("nonsense", lambda: now) is None and retry_after(None, lambda: now) is None
    policy = RetryPolicy(backoff=1.0, max_wait=4.0, max_retry_after=60.0)
    assert all(0.5 <= policy.wait(1, None) <= 1.0 for _ in range(50))
    assert all(2.0 <= policy.wait(9, None) <= 4.0 for _ in range(50))
    assert policy.wait(1, 600.0) == 60.0 and policy.wait(1, 3.0) == 3.0


def test_the_table_is_the_inverse_of_the_servers() -> None:
    """Every code the gateway sends names the class it was made from, or a base of it."""
    from artifactstore_http.problems import ERROR_TABLE, STATUS_CODES

    for cls, mapping in ERROR_TABLE:
        assert mapping.code in CODES, mapping
        assert issubclass(cls, CODES[mapping.code]), (cls, mapping.code)
        error = error_from(mapping.status, {"code": mapping.code, "detail": "d"}, "")
        assert isinstance(error, CODES[mapping.code])
    exact = {cls for cls, mapping in ERROR_TABLE if CODES[mapping.code] is cls}
    assert exact >= {e.UploadRangeError, e.BlobUnknownError, e.PackageExpiredError,
                     e.AccessDeniedError, e.EventLogTamperedError}  # fmt: skip
    for status, (code, _title) in STATUS_CODES.items():
        error = error_from(status, {"code": code, "detail": "d"}, "")
        assert isinstance(error, e.ArtifactStoreError), (status, code)
