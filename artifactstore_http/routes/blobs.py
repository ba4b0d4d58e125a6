"""Blobs by digest: ``HEAD`` (a dedup probe: needs ``write``) and ``GET`` (needs ``read``
of a package holding the blob)."""

from __future__ import annotations

from typing import Any, BinaryIO

from fastapi import APIRouter, Request, Response

from artifactstore_core.errors import BlobUnknownError
from artifactstore_core.hashing import BlobHash
from artifactstore_http.deps import CallerDep, StoreDep
from artifactstore_http.middleware import segment
from artifactstore_http.routes.common import OCTET_STREAM, blob_headers, bytes_response

router = APIRouter(tags=["blobs"])


def blob_json(blob: BlobHash) -> dict[str, Any]:
    return {"content_address": blob.content_address, "sha256": str(blob.sha256), "size": blob.size}


def blob_url(blob: BlobHash) -> str:
    return f"/v1/blobs/{blob.content_address}"


@router.head("/v1/blobs/{digest}", responses={404: {"description": "Not stored"}})
def head_blob(digest: str, store: StoreDep, caller: CallerDep) -> Response:
    """Whether the blob is stored: ``Content-Length``, ``ETag``, ``Repr-Digest``; 404."""
    caller.require_some("write")
    blob = store.stat(segment(digest))
    return Response(headers={**blob_headers(blob), "Content-Length": str(blob.size)})


@router.get(
    "/v1/blobs/{digest}",
    response_class=Response,
    responses={
        200: {"content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}}},
        206: {"description": "The requested range"},
        304: {"description": "Not modified"},
        416: {"description": "Range not satisfiable"},
    },
)
def get_blob(digest: str, request: Request, store: StoreDep, caller: CallerDep) -> Response:
    """The blob's bytes: whole (verified as streamed) or one ``Range``; immutable. The
    caller must be able to read a package holding it (or every name, for a blob not yet
    registered); for any other caller the blob does not exist (404)."""
    caller.require_some("read")
    blob = store.stat(segment(digest))
    if not caller.allows_everywhere("read") and not any(
        caller.allows("read", name) for name in store.names_with_blob(blob.content_address)
    ):
        raise BlobUnknownError([blob.content_address])

    def open_stream(start: int | None, end: int | None) -> BinaryIO:
        return store.open_blob(blob.content_address, start=start, end=end)

    return bytes_response(request, blob, open_stream)
