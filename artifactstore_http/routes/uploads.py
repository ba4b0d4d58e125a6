"""Upload sessions (the OCI blob-upload protocol): open, append chunks, resume, commit.

Authorisation is checked when a session opens; later requests on it need the token that
opened it or another token of the same actor. Session state lives in the database and
the bytes in the blob backend's staging, so any worker can take the next chunk.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, BinaryIO

import anyio.to_thread
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from artifactstore_core.errors import AuthenticationError, UploadUnknownError
from artifactstore_core.hashing import BlobHash
from artifactstore_core.store import ArtifactStore
from artifactstore_core.uploads import UploadSession
from artifactstore_http.deps import BridgeDep, Caller, CallerDep, SessionCallerDep, StoreDep
from artifactstore_http.middleware import segment
from artifactstore_http.problems import Problem
from artifactstore_http.routes.blobs import blob_json, blob_url
from artifactstore_http.routes.common import OCTET_STREAM, blob_headers

router = APIRouter(tags=["uploads"])

_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?")
Digests = Annotated[list[str], Query(alias="digest", max_length=2)]


def _session_headers(session: UploadSession) -> dict[str, str]:
    end = max(session.received - 1, 0)
    return {
        "Location": f"/v1/blobs/uploads/{session.id}",
        "Range": f"0-{end}",
        "Upload-Offset": str(session.received),
        "Upload-Expires": session.expires_at.isoformat(),
        "Docker-Upload-UUID": session.id,
    }


def _owned(store: ArtifactStore, caller: Caller, upload_id: str) -> UploadSession:
    """The session if the caller opened it (its token, even expired since, or another
    live token of the same actor); anyone else is told it does not exist."""
    session = store.uploads.status(upload_id)
    same_token = caller.token_id is not None and session.token_id == caller.token_id
    same_actor = caller.principal is not None and session.actor == caller.actor
    if not same_token and not same_actor:
        raise UploadUnknownError(f"no open upload session {upload_id!r:.80}")
    if caller.expired and not same_token:
        raise AuthenticationError("token expired")
    return session


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length != "0"
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _committed(blob: BlobHash) -> Response:
    return JSONResponse(
        blob_json(blob), status_code=201,
        headers={**blob_headers(blob), "Location": blob_url(blob),
                 "Docker-Content-Digest": blob.content_address},
    )  # fmt: skip


@router.post(
    "/v1/blobs/uploads",
    status_code=202,
    openapi_extra=_RAW_BODY,
    responses={201: {"description": "Monolithic upload stored"}, 429: {"description": "Busy"}},
)
async def open_upload(
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    bridge: BridgeDep,
    digest: Digests = [],  # noqa: B006 - FastAPI copies query defaults
    size: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Open a session (202, ``Location``); with ``digest`` and a body, store the body as
    one blob instead (201, ``Location: /v1/blobs/<blake3>``). Needs ``write``."""
    caller.require_some("write")
    if digest or _has_body(request):
        if not digest:
            raise Problem(400, "a monolithic upload needs ?digest=", code="DIGEST_INVALID")

        def consume(body: BinaryIO) -> BlobHash:
            return store.uploads.put_blob(body, digests=digest, size=size, actor=caller.actor)

        return _committed(await bridge.consume(request, consume))
    session = await anyio.to_thread.run_sync(
        lambda: store.uploads.open(actor=caller.actor, token_id=caller.token_id)
    )
    headers = _session_headers(session)
    headers["Range"] = "0-0"
    headers["Upload-Min-Chunk"] = "0"
    return JSONResponse(session.to_dict(), status_code=202, headers=headers)


@router.patch("/v1/blobs/uploads/{upload_id}", status_code=202, openapi_extra=_RAW_BODY)
async def append(
    upload_id: str,
    request: Request,
    store: StoreDep,
    caller: SessionCallerDep,
    bridge: BridgeDep,
    content_range: Annotated[str | None, Header(alias="Content-Range", max_length=100)] = None,
) -> Response:
    """Append one chunk at ``Content-Range: <start>-<end>`` (inclusive; 416 on a gap or
    an overlap, with ``Range`` naming what the server has); 202 + ``Range: 0-<end>``."""
    upload_id = segment(upload_id)
    session = await anyio.to_thread.run_sync(lambda: _owned(store, caller, upload_id))
    if content_range is None:
        start, length = session.received, None
    else:
        match = _CONTENT_RANGE.fullmatch(content_range.strip())
        if match is None or int(match[2]) < int(match[1]):
            raise Problem(
                416, f"Content-Range {content_range[:60]!r} is not <start>-<end>",
                code="BLOB_UPLOAD_INVALID", headers=_session_headers(session),
            )  # fmt: skip
        start, length = int(match[1]), int(match[2]) - int(match[1]) + 1
        declared = request.headers.get("content-length")
        if declared is not None and declared != str(length):
            raise Problem(
                400, f"Content-Length {declared[:20]} does not match Content-Range "
                f"{content_range[:60]!r} ({length} bytes)", code="SIZE_INVALID",
            )  # fmt: skip

    def consume(body: BinaryIO) -> UploadSession:
        return store.uploads.append(upload_id, start, body, length=length)

    updated = await bridge.consume(request, consume)
    return Response(status_code=202, headers=_session_headers(updated))


@router.get("/v1/blobs/uploads/{upload_id}", status_code=204)
def upload_status(upload_id: str, store: StoreDep, caller: SessionCallerDep) -> Response:
    """Where the session stands: 204 + ``Range: 0-<end>`` (resume at ``end + 1``)."""
    session = _owned(store, caller, segment(upload_id))
    return Response(status_code=204, headers=_session_headers(session))


@router.put(
    "/v1/blobs/uploads/{upload_id}",
    status_code=201,
    openapi_extra=_RAW_BODY,
    responses={400: {"description": "DIGEST_INVALID or SIZE_INVALID"}},
)
async def commit(
    upload_id: str,
    request: Request,
    store: StoreDep,
    caller: SessionCallerDep,
    bridge: BridgeDep,
    digest: Digests = [],  # noqa: B006 - FastAPI copies query defaults
    size: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Close the session with the whole blob's ``digest`` (``blake3:`` and/or ``sha256:``)
    and an optional last chunk: 201 + ``Location``; a repeat answers the same."""
    upload_id = segment(upload_id)
    await anyio.to_thread.run_sync(lambda: _owned(store, caller, upload_id))
    if not digest:
        raise Problem(400, "closing an upload needs ?digest=", code="DIGEST_INVALID")

    def close(last: BinaryIO | None) -> BlobHash:
        return store.uploads.commit(
            upload_id, digests=digest, size=size, last=last, actor=caller.actor
        )

    if _has_body(request):
        blob = await bridge.consume(request, close)
    else:
        blob = await anyio.to_thread.run_sync(close, None)
    return _committed(blob)


@router.delete("/v1/blobs/uploads/{upload_id}", status_code=204)
def cancel(upload_id: str, store: StoreDep, caller: SessionCallerDep) -> Response:
    """Cancel the session and remove its staged bytes."""
    upload_id = segment(upload_id)
    _owned(store, caller, upload_id)
    store.uploads.cancel(upload_id)
    return Response(status_code=204)
