"""Liveness, readiness, capabilities, problem types, events, schemas and sweeps."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse

from artifactstore_core.config import check_connection
from artifactstore_core.errors import ArtifactStoreError
from artifactstore_core.hashing import Digest
from artifactstore_http import problems
from artifactstore_http.deps import CallerDep, LimitsDep, StoreDep
from artifactstore_http.middleware import segment
from artifactstore_http.pagination import DEFAULT_LIMIT, MAX_LIMIT, next_link

router = APIRouter()

_PROBE = Digest("blake3", "0" * 64)


@router.get("/health", tags=["operations"])
def health() -> dict[str, str]:
    """Liveness: the process answers (no database, no storage, no auth)."""
    return {"status": "ok"}


@router.get("/ready", tags=["operations"], responses={503: {"description": "Not ready"}})
def ready(request: Request) -> Response:
    """Readiness: the database answers and the hot blob storage can be asked."""
    store = request.app.state.store
    if store is None:
        return _not_ready(request, "the registry is not open yet")
    try:
        check_connection(store.engine)
        store.blobs.exists(_PROBE)
    except ArtifactStoreError as exc:
        return _not_ready(request, str(exc))
    except OSError as exc:
        return _not_ready(request, f"blob storage: {exc}")
    return JSONResponse({"status": "ready"})


def _not_ready(request: Request, detail: str) -> Response:
    seconds = problems.RETRY_AFTER_SECONDS
    return problems.problem_response(
        request, 503, "UNAVAILABLE", detail, headers={"Retry-After": str(seconds)},
        retry_after=seconds,
    )  # fmt: skip


@router.get("/v1/", tags=["operations"])
def capabilities(request: Request, limits: LimitsDep) -> dict[str, Any]:
    """The API version and what this server supports (the OCI ``/v2/`` analog)."""
    settings = request.app.state.settings
    return {
        "api_version": request.app.version,
        "digest_algorithms": ["blake3", "sha256"],
        "min_chunk_bytes": 0,
        "max_single_put_bytes": limits.max_single_put_bytes,
        "max_json_bytes": limits.max_json_bytes,
        "upload_concurrency": limits.upload_concurrency,
        "presigned_uploads": False,
        "anonymous_read": bool(settings.http_anonymous_read),
    }


@router.get("/v1/problems/{code}", tags=["operations"])
def problem_type(code: str) -> dict[str, Any]:
    """What a problem ``type`` means: its code, status and title."""
    wanted = segment(code).upper()
    for _cls, mapping in problems.ERROR_TABLE:
        if mapping.code == wanted:
            return {"code": mapping.code, "status": mapping.status, "title": mapping.title}
    for status, (known, title) in problems.STATUS_CODES.items():
        if known == wanted:
            return {"code": known, "status": status, "title": title}
    raise problems.Problem(404, f"no problem type {wanted[:60]!r}", code="NOT_FOUND")


@router.get("/v1/events", tags=["log"])
def events(
    store: StoreDep,
    caller: CallerDep,
    response: Response,
    since: Annotated[int, Query(ge=0)] = 0,
    subject: Annotated[str | None, Query(max_length=600)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Recorded events after sequence ``since``, oldest first (keyset on the sequence).

    ``subject`` is ``KIND:ID``, e.g. ``package:<id>``. Needs ``read`` on every name.
    """
    caller.require("read")
    kind, _, subject_id = (subject or "").partition(":")
    if subject and not subject_id:
        raise problems.Problem(400, f"subject {subject[:80]!r} is not KIND:ID")
    found = store.events(
        since=since, subject_kind=kind or None, subject_id=subject_id or None, limit=limit + 1
    )
    page, more = found[:limit], len(found) > limit
    items = [
        {"sequence": e.sequence, "created_at": e.created_at.isoformat(), "actor": e.actor,
         "event_type": e.event.event_type, "subject_kind": e.event.subject_kind,
         "subject_id": e.event.subject_id, "payload": _shown(e.event.to_payload()),
         "payload_digest": e.payload_digest, "chain_digest": e.chain_digest}
        for e in page
    ]  # fmt: skip
    cursor = str(page[-1].sequence) if more else None
    if cursor is not None:
        response.headers["Link"] = next_link(
            "/v1/events", {"since": cursor, "subject": subject, "limit": limit}
        )
    return {"items": items, "next": cursor}


def _shown(payload: dict[str, Any]) -> dict[str, Any]:
    """An event's payload as the API shows it: never a token secret's hash."""
    return {k: v for k, v in payload.items() if k != "secret_sha256"}


@router.get("/v1/schemas", tags=["schemas"])
def schemas(store: StoreDep, caller: CallerDep) -> dict[str, Any]:
    """The registered metadata JSON Schemas by kind."""
    del caller  # any authenticated caller (or anonymous reads) may see them
    return {"schemas": store.schemas()}


@router.put("/v1/schemas/{kind}", tags=["schemas"])
def put_schema(
    kind: str,
    schema: Annotated[dict[str, Any], Body()],
    store: StoreDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """Require metadata of ``kind`` to satisfy ``schema`` from now on (needs ``admin``)."""
    caller.require("admin")
    kind = segment(kind)
    store.register_schema(kind, schema, actor=caller.actor)
    return {"kind": kind, "schema": store.schemas()[kind]}


@router.post("/v1/retention/sweeps", tags=["retention"])
def sweep(
    store: StoreDep,
    caller: CallerDep,
    dry_run: Annotated[bool, Body(embed=True)] = True,
    now: Annotated[dt.datetime | None, Body(embed=True)] = None,
    limit: Annotated[int | None, Body(embed=True, ge=1)] = None,
) -> dict[str, Any]:
    """A retention sweep: ``dry_run`` (the default) returns the plan; otherwise the sweep
    runs within the request and its result is returned (needs ``retention-admin`` on
    every name). Two sweeps never run at once (409)."""
    caller.require("retention-admin")
    result = store.sweep(now, dry_run=dry_run, limit=limit, actor=caller.actor)
    return result.to_dict()
