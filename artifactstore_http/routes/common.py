"""Helpers the routes share: loading a package the caller may see, ETags, byte responses."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from collections.abc import Callable
from typing import BinaryIO

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from artifactstore_core.domain.package import Package
from artifactstore_core.errors import NotFoundError
from artifactstore_core.hashing import BlobHash
from artifactstore_core.store import ArtifactStore
from artifactstore_http.deps import Caller
from artifactstore_http.streaming import iterate, parse_range

OCTET_STREAM = "application/octet-stream"
#: ``(start, end) -> stream``: the whole blob, verified, with ``(None, None)``; else the
#: inclusive range, unverified.
OpenStream = Callable[[int | None, int | None], BinaryIO]


def load_package(store: ArtifactStore, caller: Caller, reference: str, action: str) -> Package:
    """The package ``reference`` selects if the caller may ``action`` on its name; one the
    caller may not even read is reported as not existing, in the core's own words."""
    package = store.describe(reference)
    if not caller.allows("read", package.name) and not caller.allows(action, package.name):
        raise NotFoundError(f"no package matches reference {reference!r}")
    caller.require(action, package.name)
    return package


def package_url(package: Package) -> str:
    return f"/v1/packages/{urllib.parse.quote(package.name, safe='')}@{package.version}"


def package_etag(package: Package) -> str:
    """A strong ETag of the package's JSON form: its digest plus a hash of its current
    state (tags, holds and retention change; the files never do)."""
    state = json.dumps(package.to_dict(), sort_keys=True, separators=(",", ":"))
    return f'"{package.content_address}.{hashlib.sha256(state.encode()).hexdigest()[:16]}"'


def blob_etag(blob: BlobHash) -> str:
    return f'"{blob.content_address}"'


def repr_digest(blob: BlobHash) -> str:
    """RFC 9530 ``Repr-Digest``: ``sha-256=:<base64>:``."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(blob.sha256.hex)).decode()}:"


def matches_any(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match``/``If-Match`` list names ``etag`` (or is ``*``)."""
    if header is None:
        return False
    for item in header.split(","):
        item = item.strip()
        if item == "*" or item.removeprefix("W/") == etag:
            return True
    return False


def package_response(package: Package, *, status: int = 200) -> Response:
    return JSONResponse(
        package.to_dict(),
        status_code=status,
        headers={"ETag": package_etag(package), "Content-Location": package_url(package)},
    )


def blob_headers(blob: BlobHash) -> dict[str, str]:
    return {
        "ETag": blob_etag(blob),
        "Repr-Digest": repr_digest(blob),
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=31536000, immutable",
    }


def bytes_response(
    request: Request,
    blob: BlobHash,
    open_stream: OpenStream,
) -> Response:
    """The bytes of ``blob``: whole (verified while streamed) or one ``Range`` (206);
    304 when ``If-None-Match`` names its ETag."""
    headers = blob_headers(blob)
    if matches_any(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    wanted = parse_range(request.headers.get("range"), blob.size)
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != headers["ETag"]:
        wanted = None
    if wanted is None:
        stream = open_stream(None, None)
        headers["Content-Length"] = str(blob.size)
        return StreamingResponse(iterate(stream), headers=headers, media_type=OCTET_STREAM)
    start, end = wanted
    stream = open_stream(start, end)
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
    return StreamingResponse(
        iterate(stream, length=end - start + 1), status_code=206, headers=headers,
        media_type=OCTET_STREAM,
    )  # fmt: skip
