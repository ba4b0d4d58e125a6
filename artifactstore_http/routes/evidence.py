"""Evidence (#15): the log's signed checkpoints, inclusion and consistency proofs,
provenance statements, attestations and offline evidence bundles.

The log is registry-wide: its checkpoint and consistency proofs need a token (any
``read`` scope), signing a checkpoint and proving an arbitrary event ``admin`` on every
name. A package's proof, statement, attestations and bundle need ``read`` on its name
(attesting ``attest``), as its other routes do.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from securesystemslib.signer import Signer

from artifactstore_core.config import Settings
from artifactstore_core.domain.checkpoint import NoteVerifier, SignedCheckpoint
from artifactstore_core.domain.package import Package
from artifactstore_core.errors import (
    AccessDeniedError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
)
from artifactstore_core.evidence.attest import DsseAttestor
from artifactstore_core.evidence.dsse import PAYLOAD_TYPE
from artifactstore_core.evidence.keys import load_signer
from artifactstore_core.evidence.statements import statement_for
from artifactstore_core.store import ArtifactStore
from artifactstore_core.transparency import Consistency
from artifactstore_http.deps import Caller, CallerDep, StoreDep, get_settings
from artifactstore_http.middleware import segment
from artifactstore_http.routes.common import load_package, package_response, package_url
from artifactstore_http.streaming import iterate

router = APIRouter(tags=["evidence"])
SettingsDep = Annotated[Settings, Depends(get_settings)]

TEXT = "text/plain; charset=utf-8"
TAR = "application/x-tar"
BUNDLE = "application/vnd.in-toto.bundle"
MAX_NOTE = 64 * 1024
#: tlog-tiles serves a log's checkpoint cacheable for a few seconds only.
CHECKPOINT_CACHE = "max-age=5"

_TEXT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {TEXT: {"schema": {"type": "string"}}}}
}


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/plain" not in accept


def _checkpoint_response(request: Request, signed: SignedCheckpoint) -> Response:
    """The checkpoint's signed note as text, or ``to_dict()`` when JSON is asked for; a
    read is cacheable for a few seconds."""
    headers = (
        {"Cache-Control": CHECKPOINT_CACHE, "Vary": "Accept"} if request.method == "GET" else {}
    )
    if _wants_json(request):
        return JSONResponse(signed.to_dict(), headers=headers)
    return Response(signed.note, media_type=TEXT, headers=headers)


def _consistency(result: Consistency) -> dict[str, Any]:
    return {
        "old_size": result.old.size,
        "new": result.new.to_dict(),
        "proof": [base64.b64encode(node).decode() for node in result.proof],
    }


# ---------------------------------------------------------------------------- the log
@router.get("/v1/log/checkpoint", response_class=Response, responses=_TEXT_RESPONSE)
def latest_checkpoint(request: Request, store: StoreDep, caller: CallerDep) -> Response:
    """The latest signed checkpoint of the log (a C2SP signed note, ``text/plain``; its
    JSON form with ``Accept: application/json``); 404 when none has been issued."""
    caller.require_some("read")
    return _checkpoint_response(request, store.latest_checkpoint())


@router.post("/v1/log/checkpoint", response_class=Response, responses=_TEXT_RESPONSE)
def sign_checkpoint(request: Request, store: StoreDep, caller: CallerDep) -> Response:
    """Sign a checkpoint of the whole log with the server's log key (``admin``); the
    latest one if the log has not grown. Refused when the log does not extend it."""
    caller.require("admin")
    return _checkpoint_response(request, store.checkpoint())


@router.get("/v1/log/consistency")
def consistency_from(
    store: StoreDep,
    caller: CallerDep,
    old_size: Annotated[int, Query(alias="from", ge=0)],
) -> dict[str, Any]:
    """The proof that the log's first ``from`` events are a prefix of its latest
    checkpoint: check it against the root of your own checkpoint of that size."""
    caller.require_some("read")
    return _consistency(store.prove_consistency_from(old_size))


@router.post(
    "/v1/log/consistency",
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
async def consistency_of_note(
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    vkey: Annotated[str | None, Query(max_length=1000)] = None,
) -> dict[str, Any]:
    """Check that the signed checkpoint in the body (verified with ``vkey``, by default
    the server's log key) is a prefix of the log's latest checkpoint, and prove it."""
    caller.require_some("read")
    body = await request.body()
    if len(body) > MAX_NOTE:
        raise InvalidInputError(f"a checkpoint note is at most {MAX_NOTE} bytes, got {len(body)}")
    try:
        note = body.decode()
    except UnicodeDecodeError:
        raise InvalidInputError("the checkpoint note is not UTF-8 text") from None
    if vkey is not None:
        verifier = NoteVerifier.parse(vkey)
    elif store.log_signer is not None:
        verifier = NoteVerifier.parse(store.log_signer.verifier_key)
    else:
        raise ConfigurationError(
            "this server has no log key (ARTIFACTSTORE_LOG_KEY): pass the log's ?vkey="
        )
    result = await anyio.to_thread.run_sync(store.prove_consistency, note, verifier)
    return _consistency(result)


@router.get("/v1/log/events/{sequence}/proof", response_class=Response, responses=_TEXT_RESPONSE)
def event_proof(sequence: int, store: StoreDep, caller: CallerDep) -> Response:
    """The offline proof (C2SP tlog-proof) that event ``sequence`` is in the log
    (``admin``: an event may be about any name)."""
    caller.require("admin")
    return Response(store.prove(sequence).to_text(), media_type=TEXT)


# ---------------------------------------------------------------------------- packages
@router.get("/v1/packages/{ref}/proof", response_class=Response, responses=_TEXT_RESPONSE)
def package_proof(ref: str, store: StoreDep, caller: CallerDep) -> Response:
    """The offline proof (C2SP tlog-proof) that the package's registration is in the log."""
    package = load_package(store, caller, segment(ref), "read")
    return Response(store.prove_package(package).to_text(), media_type=TEXT)


@router.get(
    "/v1/packages/{ref}/statement",
    response_class=Response,
    responses={200: {"content": {PAYLOAD_TYPE: {"schema": {"type": "object"}}}}},
)
def statement(ref: str, store: StoreDep, caller: CallerDep, settings: SettingsDep) -> Response:
    """The package's in-toto provenance statement, canonical JSON (the bytes a DSSE
    envelope signs)."""
    package = _with_readable_inputs(store, caller, ref)
    data = statement_for(store, package, settings=settings)
    return Response(data, media_type=PAYLOAD_TYPE)


@router.get("/v1/packages/{ref}/attestations")
def attestations(ref: str, store: StoreDep, caller: CallerDep) -> dict[str, Any]:
    """The package's attestations (packages of kind ``attestation``), oldest first."""
    package = load_package(store, caller, segment(ref), "read")
    return {"items": [p.to_dict() for p in store.attestations(package)], "next": None}


@router.get(
    "/v1/packages/{ref}/envelopes",
    response_class=Response,
    responses={200: {"content": {BUNDLE: {"schema": {"type": "string"}}}}},
)
def envelopes(ref: str, store: StoreDep, caller: CallerDep) -> Response:
    """The DSSE envelopes of the package's attestations, one JSON per line (an in-toto
    bundle): readable with ``read`` on the package, whatever the attestations' names."""
    package = _with_readable_inputs(store, caller, ref)
    lines = b"".join(e.rstrip(b"\n") + b"\n" for e in store.attestation_envelopes(package))
    return Response(lines, media_type=BUNDLE)


@router.post("/v1/packages/{ref}/attestations", status_code=201)
def attest(ref: str, store: StoreDep, caller: CallerDep, settings: SettingsDep) -> Response:
    """Sign the package's provenance statement with the server's signing key
    (``ARTIFACTSTORE_SIGNING_KEY``) and store it as a new attestation (``attest``)."""
    package = load_package(store, caller, segment(ref), "attest")
    signer = _signer(settings)
    if signer is None:
        raise ConfigurationError(
            "this server has no signing key (ARTIFACTSTORE_SIGNING_KEY): it cannot attest "
            f"package {package.reference}"
        )
    attestor = DsseAttestor.from_settings(signer, settings)
    attestation = store.attest(package, attestor, actor=caller.actor)
    response = package_response(attestation, status=201)
    response.headers["Location"] = package_url(attestation)
    return response


@router.get(
    "/v1/packages/{ref}/evidence",
    response_class=Response,
    responses={200: {"content": {TAR: {"schema": {"type": "string", "format": "binary"}}}}},
)
def evidence(ref: str, store: StoreDep, caller: CallerDep, settings: SettingsDep) -> Response:
    """The package's offline evidence bundle as a tar archive: files, manifest, signed
    statements, the proof of its registration and a checkpoint. A package with no
    attestation is signed now with the server's signing key (409 without one)."""
    package = _with_readable_inputs(store, caller, ref)
    signer = None
    if not store.attestations(package):
        signer = _signer(settings)
        if signer is None:
            raise ConflictError(
                f"package {package.reference} has no attestation and this server has no "
                "signing key (ARTIFACTSTORE_SIGNING_KEY): attest it first"
            )
    stream, size = _exported(store, package, signer, caller.actor)
    filename = f"{package.name.replace('/', '_')}@{package.version}.evidence.tar"
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{filename}"',
    }
    return StreamingResponse(iterate(stream), media_type=TAR, headers=headers)


def _with_readable_inputs(store: ArtifactStore, caller: Caller, ref: str) -> Package:
    """The package, when the caller may read it and every input its statements name (a
    statement names its inputs and their digests: no token learns of a package through it)."""
    package = load_package(store, caller, segment(ref), "read")
    for _, item in store.lineage(package, depth=1):
        if not caller.allows("read", item.name):
            raise AccessDeniedError(
                "read", package.name,
                detail=f"the statements of package {package.reference} name input packages "
                "this token cannot read",
            )  # fmt: skip
    return package


def _signer(settings: Settings) -> Signer | None:
    """The server's attestation signer, or ``None`` when no key is configured."""
    if settings.signing_key is None:
        return None
    return load_signer(settings.signing_key.get_secret_value())


def _exported(
    store: ArtifactStore, package: Package, signer: Signer | None, actor: str
) -> tuple[BinaryIO, int]:
    """The bundle exported into a new directory under the server's temporary directory,
    opened and then deleted: its bytes live only as long as the open stream, which the
    response closes when it ends or the client goes away."""
    directory = Path(tempfile.mkdtemp(prefix="artifactstore-evidence-"))
    try:
        target = store.export_evidence(
            package, directory / "bundle.tar", signer=signer, actor=actor
        )
        stream = target.open("rb")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return stream, os.fstat(stream.fileno()).st_size
