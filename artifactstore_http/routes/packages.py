"""Packages: list, register, show, files, tags, lineage, verify."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, BinaryIO, Literal, cast

from fastapi import APIRouter, Body, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from artifactstore_core.domain.names import validate_file_path, validate_name
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import BlobUnknownError
from artifactstore_core.ingest import PutRequest, RegisterRequest
from artifactstore_core.queries import PackageFilter
from artifactstore_core.store import ArtifactStore
from artifactstore_http.deps import BridgeDep, Caller, CallerDep, LimitsDep, StoreDep
from artifactstore_http.middleware import segment
from artifactstore_http.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_cursor,
    encode_cursor,
    next_link,
)
from artifactstore_http.problems import Problem
from artifactstore_http.routes.common import (
    OCTET_STREAM,
    bytes_response,
    load_package,
    matches_any,
    package_response,
    package_url,
)
from artifactstore_http.streaming import Sha256Checked

router = APIRouter(tags=["packages"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]


class FileRef(BaseModel):
    """A stored blob named by digest, optionally with the size the client expects."""

    model_config = ConfigDict(extra="forbid")
    digest: str = Field(max_length=80)
    size: int | None = Field(None, ge=0)


class InlineFile(BaseModel):
    """A small file's bytes carried in the request itself (base64), stored with the
    registration in one transaction (within the JSON body limit)."""

    model_config = ConfigDict(extra="forbid")
    content_base64: str


class Registration(BaseModel):
    """A package to register from blobs already uploaded (``POST /v1/blobs/uploads``), or
    from small files given inline (every file of the package one or the other)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=512)
    files: dict[str, str | FileRef | InlineFile]
    kind: str = "output"
    metadata: dict[str, Any] | None = None
    retention_class: str | None = None
    inputs: list[str] = Field(default_factory=list, max_length=10_000)
    provenance: dict[str, Any] | None = None


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    packages: list[Registration] = Field(max_length=10_000)


class TagTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)


# ---------------------------------------------------------------------------- listing
@router.get("/v1/packages")
def list_packages(
    store: StoreDep,
    caller: CallerDep,
    response: Response,
    prefix: Annotated[str | None, Query(max_length=512)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=128)] = None,
    retention_class: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    after: Annotated[str | None, Query(max_length=2048)] = None,
) -> dict[str, Any]:
    """Packages by name and version, ``limit`` a page; ``next`` is the cursor of the next
    page (also in ``Link: <...>; rel="next"``). Only names the caller may read appear."""
    key = decode_cursor(after, (str, int)) if after else None
    position = (key[0], key[1]) if key else None

    def page(after: tuple[str, int] | None, count: int) -> list[Package]:
        return store.list_packages(
            PackageFilter(
                name_prefix=prefix, kind=kind, tag=tag, retention_class=retention_class,
                status=status, limit=count, after=after,
            )
        )  # fmt: skip

    items: list[Package] = []
    # Names the caller may not read are skipped; read on until the page is full.
    while len(items) < limit:
        found = page(position, limit)
        for package in found:
            position = (package.name, package.version)
            if caller.allows("read", package.name):
                items.append(package)
                if len(items) == limit:
                    break
        if len(found) < limit:
            break
    more = len(items) == limit and bool(page(position, 1))
    cursor = encode_cursor(position) if more and position is not None else None
    if cursor is not None:
        response.headers["Link"] = next_link(
            "/v1/packages",
            {"prefix": prefix, "kind": kind, "tag": tag, "retention_class": retention_class,
             "status": status, "limit": limit, "after": cursor},
        )  # fmt: skip
    return {"items": [p.to_dict() for p in items], "next": cursor}


# ---------------------------------------------------------------------------- registering
def _files(store: ArtifactStore, files: dict[str, str | FileRef | InlineFile]) -> dict[str, str]:
    """Paths to content addresses; a size the client gave must be the stored one."""
    result: dict[str, str] = {}
    for path, ref in files.items():
        if isinstance(ref, InlineFile):
            raise Problem(
                400, f"file {path[:200]!r} is given inline while others of the package are "
                "blobs: give every file of a package the same way",
            )  # fmt: skip
        if isinstance(ref, str):
            result[path] = ref
            continue
        result[path] = ref.digest
        if ref.size is not None:
            stored = store.stat(ref.digest).size
            if stored != ref.size:
                raise Problem(
                    400, f"file {path[:200]!r}: blob {ref.digest} has {stored} bytes, "
                    f"not {ref.size}", code="SIZE_INVALID", expected=ref.size, actual=stored,
                )  # fmt: skip
    return result


def _provenance(caller: Caller, body: Registration) -> dict[str, Any] | None:
    """The registration's provenance, bound to the token's run: a token minted for a run
    registers for that run only (its ``run_id`` is filled in when absent)."""
    principal = caller.principal
    if principal is None or principal.run_id is None:
        return body.provenance
    provenance = dict(body.provenance or {})
    if provenance.get("run_id") is None:
        provenance["run_id"] = principal.run_id
    principal.require_run(provenance["run_id"])
    return provenance


def _retrieval_run(caller: Caller, run_id: str | None) -> str | None:
    """The run a read is recorded for: a token bound to a run records its reads for that
    run only (filled in when absent)."""
    principal = caller.principal
    if principal is None or principal.run_id is None:
        return run_id
    principal.require_run(run_id or principal.run_id, "read")
    return principal.run_id


def _inline(files: dict[str, str | FileRef | InlineFile]) -> dict[str, bytes] | None:
    """The package's files given inline, decoded; ``None`` if none is."""
    if not files or not all(isinstance(ref, InlineFile) for ref in files.values()):
        return None
    decoded = {}
    for path, ref in files.items():
        assert isinstance(ref, InlineFile)
        try:
            decoded[path] = base64.b64decode(ref.content_base64, validate=True)
        except binascii.Error as exc:
            raise Problem(400, f"file {path[:200]!r}: content_base64 is not base64: {exc}") from exc
    return decoded


def _request(
    store: ArtifactStore, caller: Caller, body: Registration, key: str | None
) -> PutRequest | RegisterRequest:
    validate_name(body.name)
    caller.require("write", body.name)
    # Inputs the caller may not read do not exist for it (naming one must not probe).
    inputs = tuple(str(load_package(store, caller, ref, "read").id) for ref in body.inputs)
    inline = _inline(body.files)
    if inline is not None:
        return PutRequest(
            body.name, inline, kind=body.kind, metadata=body.metadata,
            retention_class=body.retention_class, inputs=inputs,
            provenance=_provenance(caller, body), idempotency_key=key,
        )  # fmt: skip
    return RegisterRequest(
        body.name, _files(store, body.files), kind=body.kind, metadata=body.metadata,
        retention_class=body.retention_class, inputs=inputs,
        provenance=_provenance(caller, body), idempotency_key=key,
    )  # fmt: skip


def _register(
    store: ArtifactStore, requests: list[PutRequest | RegisterRequest], actor: str
) -> list[Package]:
    try:
        return store.put_many(requests, actor=actor)
    except BlobUnknownError as exc:
        raise Problem(
            400, str(exc), code="BLOB_UNKNOWN",
            errors=[{"code": "BLOB_UNKNOWN", "digest": a} for a in exc.addresses],
        ) from exc  # fmt: skip


@router.post("/v1/packages", status_code=201)
def register(
    body: Registration, store: StoreDep, caller: CallerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    """Register a package from stored blobs: 201, ``Location`` and ``ETag``. A retry with
    the same ``Idempotency-Key`` answers the package registered first."""
    package = _register(store, [_request(store, caller, body, idempotency_key)], caller.actor)[0]
    response = package_response(package, status=201)
    response.headers["Location"] = package_url(package)
    return response


@router.post("/v1/packages:batch", status_code=201)
def register_batch(
    body: Batch, store: StoreDep, caller: CallerDep, idempotency_key: IdempotencyKey = None
) -> dict[str, Any]:
    """Register many packages: all or none (``idempotency_key`` applies to each)."""
    requests = [_request(store, caller, item, idempotency_key) for item in body.packages]
    if not requests:
        raise Problem(400, "a batch needs at least one package")
    return {"items": [p.to_dict() for p in _register(store, requests, caller.actor)]}


@router.put(
    "/v1/packages/{name}/files/{path:path}",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_file(
    name: str,
    path: str,
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    bridge: BridgeDep,
    limits: LimitsDep,
    kind: Annotated[str, Query(max_length=64)] = "output",
    retention_class: Annotated[str | None, Query(max_length=128)] = None,
    idempotency_key: IdempotencyKey = None,
    content_digest: Annotated[str | None, Header(alias="Content-Digest", max_length=200)] = None,
) -> Response:
    """Store the raw body as file ``path`` of a new version of ``name`` (at most
    ``max_single_put_bytes``); ``Content-Digest: sha-256=:<base64>:`` is checked."""
    name, path = validate_name(segment(name)), validate_file_path(segment(path))
    caller.require("write", name)
    expected = _content_digest(content_digest)
    provenance = _provenance(caller, Registration(name=name, files={}))

    def consume(body: BinaryIO) -> Package:
        source = body if expected is None else cast(BinaryIO, Sha256Checked(body, expected))
        return store.put(
            name, {path: source}, kind=kind, retention_class=retention_class,
            provenance=provenance, idempotency_key=idempotency_key, actor=caller.actor,
        )  # fmt: skip

    package = await bridge.consume(request, consume, limit=limits.max_single_put_bytes)
    response = package_response(package, status=201)
    response.headers["Location"] = package_url(package)
    return response


def _content_digest(header: str | None) -> str | None:
    """``sha256:<hex>`` from an RFC 9530 ``Content-Digest: sha-256=:<base64>:``."""
    if header is None:
        return None
    for item in header.split(","):
        algorithm, _, value = item.strip().partition("=")
        if algorithm.strip().lower() == "sha-256" and value.startswith(":") and value.endswith(":"):
            try:
                raw = base64.b64decode(value[1:-1], validate=True)
            except (binascii.Error, ValueError):
                break
            if len(raw) == 32:
                return f"sha256:{raw.hex()}"
    raise Problem(400, f"Content-Digest {header[:100]!r} is not sha-256=:<base64>:",
                  code="DIGEST_INVALID")  # fmt: skip


# ---------------------------------------------------------------------------- reading
@router.get("/v1/packages/{ref}")
def show(ref: str, request: Request, store: StoreDep, caller: CallerDep) -> Response:
    """The package's manifest and state; strong ``ETag``, 304 on ``If-None-Match``."""
    package = load_package(store, caller, segment(ref), "read")
    response = package_response(package)
    if matches_any(request.headers.get("if-none-match"), response.headers["ETag"]):
        return Response(status_code=304, headers={"ETag": response.headers["ETag"]})
    return response


@router.get(
    "/v1/packages/{ref}/files/{path:path}",
    response_class=Response,
    responses={
        200: {"content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}}},
        206: {"description": "The requested range"},
        416: {"description": "Range not satisfiable"},
    },
)
def download(
    ref: str,
    path: str,
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    purpose: Annotated[str | None, Query(max_length=1000)] = None,
    run_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """One file's bytes: whole (verified as streamed; a mismatch aborts the connection)
    or one ``Range``; records a retrieval (``purpose``, ``run_id``)."""
    package = load_package(store, caller, segment(ref), "read")
    entry = package.file(segment(path))
    recorded_run = _retrieval_run(caller, run_id)

    def open_stream(start: int | None, end: int | None) -> BinaryIO:
        return store.open_file(
            package, entry.path, actor=caller.actor, purpose=purpose, run_id=recorded_run,
            start=start, end=end,
        )  # fmt: skip

    return bytes_response(request, entry.blob, open_stream)


@router.get("/v1/packages/{ref}/lineage")
def lineage(
    ref: str,
    store: StoreDep,
    caller: CallerDep,
    direction: Annotated[str, Query(pattern="^(up|down)$")] = "up",
    depth: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> dict[str, Any]:
    """Inputs (``up``) or consumers (``down``) of a package; packages the caller may not
    read are left out."""
    package = load_package(store, caller, segment(ref), "read")
    edges = store.lineage(package, downstream=direction == "down", depth=depth)
    return {
        "package": package.reference,
        "direction": direction,
        "items": [
            {"depth": edge.depth, "package_id": str(edge.package_id),
             "input_id": str(edge.input_id), "related": related.to_dict()}
            for edge, related in edges
            if caller.allows("read", related.name)
        ],
    }  # fmt: skip


@router.post("/v1/packages/{ref}:verify")
def verify(
    ref: str,
    store: StoreDep,
    caller: CallerDep,
    rehash: Annotated[bool, Body(embed=True)] = True,
) -> dict[str, Any]:
    """Check the package's stored bytes (re-hashed unless ``rehash`` is false): a report,
    200 whether or not problems were found (``ok`` says)."""
    package = load_package(store, caller, segment(ref), "read")
    result = store.verify(package, rehash=rehash)
    return {
        "ok": result.ok,
        "packages": result.packages,
        "blobs": result.blobs,
        "bytes_verified": result.bytes_verified,
        "problems": [
            {"content_address": p.content_address, "backend": p.backend, "problem": p.problem,
             "detail": p.detail, "packages": list(p.packages)}
            for p in result.problems
        ],
    }  # fmt: skip


# ---------------------------------------------------------------------------- tags
@router.put("/v1/packages/{name}/tags/{tag}")
def put_tag(
    name: str,
    tag: str,
    body: TagTarget,
    store: StoreDep,
    caller: CallerDep,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=200)] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=200)] = None,
) -> Response:
    """Point ``tag`` at version ``version`` of ``name`` (needs ``tag``). ``If-Match`` names
    the current target's digest; ``If-None-Match: *`` creates only (412 otherwise)."""
    name, tag = validate_name(segment(name)), segment(tag)
    target = load_package(store, caller, f"{name}@{body.version}", "tag")
    current: str | Literal[False] | None = False
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise Problem(400, "a tag takes If-None-Match: * (create only)")
        current = None
    elif if_match is not None:
        current = if_match.strip().removeprefix("W/").strip('"')
    moved = store.tag(str(target.id), tag, current=current, actor=caller.actor)
    return package_response(moved)


@router.delete("/v1/packages/{name}/tags/{tag}")
def delete_tag(
    name: str,
    tag: str,
    store: StoreDep,
    caller: CallerDep,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=200)] = None,
) -> Response:
    """Remove ``tag`` of ``name`` (needs ``tag``): the package it pointed at. ``If-Match``
    names that package's digest (412 otherwise)."""
    name, tag = validate_name(segment(name)), segment(tag)
    load_package(store, caller, f"{name}:{tag}", "tag")
    current = if_match.strip().removeprefix("W/").strip('"') if if_match is not None else None
    return package_response(store.untag(name, tag, current=current, actor=caller.actor))
