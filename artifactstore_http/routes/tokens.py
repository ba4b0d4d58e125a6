"""Access tokens over HTTP: mint a child token, list, revoke, and who am I."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from artifactstore_core.errors import AuthenticationError, NotFoundError
from artifactstore_http.deps import Caller, CallerDep, StoreDep
from artifactstore_http.middleware import segment

router = APIRouter(tags=["tokens"])


class TokenRequest(BaseModel):
    """A child token: within the caller's scopes, run binding and expiry."""

    model_config = ConfigDict(extra="forbid")
    scopes: list[str] = Field(min_length=1, max_length=64)
    expires_at: dt.datetime | None = None
    ttl_seconds: int | None = Field(None, ge=1, le=400 * 86400)
    run_id: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=1000)


def _principal(caller: Caller) -> Any:
    if caller.principal is None:
        raise AuthenticationError("an access token is needed for token operations")
    return caller.principal


def _is_admin(caller: Caller) -> bool:
    return caller.principal is not None and caller.allows_everywhere("admin")


@router.post("/v1/tokens", status_code=201)
def issue(body: TokenRequest, store: StoreDep, caller: CallerDep) -> Response:
    """Mint a token for the caller's actor whose scopes, run binding and expiry stay
    within the caller's (403 names what exceeds): 201, the secret shown this once."""
    parent = _principal(caller)
    expires: dt.datetime | dt.timedelta = parent.expires_at
    if body.expires_at is not None:
        expires = body.expires_at
    elif body.ttl_seconds is not None:
        expires = dt.timedelta(seconds=body.ttl_seconds)
    run_id = body.run_id if body.run_id is not None else parent.run_id
    issued = store.tokens.issue(
        actor=parent.actor, scopes=body.scopes, expires_at=expires, run_id=run_id,
        description=body.description, parent=parent, issued_by=parent.actor,
    )  # fmt: skip
    return JSONResponse(
        {"secret": issued.secret, "token": issued.token.to_dict()}, status_code=201,
        headers={"Location": f"/v1/tokens/{issued.token.id}", "Cache-Control": "no-store"},
    )  # fmt: skip


@router.get("/v1/tokens")
def list_tokens(store: StoreDep, caller: CallerDep) -> dict[str, Any]:
    """Tokens of the caller's actor (every token for ``admin`` on every name)."""
    principal = _principal(caller)
    admin = _is_admin(caller)
    items = [t.to_dict() for t in store.tokens.list() if admin or t.actor == principal.actor]
    return {"items": items, "next": None}


@router.delete("/v1/tokens/{token_id}")
def revoke(token_id: str, store: StoreDep, caller: CallerDep) -> dict[str, Any]:
    """Revoke a token of the caller's actor (any, for ``admin``) and every token minted
    under it; their upload sessions end too."""
    principal = _principal(caller)
    token_id = segment(token_id)
    info = store.tokens.get(token_id)
    if not _is_admin(caller) and info.actor != principal.actor:
        raise NotFoundError(f"no access token has id {token_id!r}")
    return dict(store.tokens.revoke(token_id, actor=principal.actor).to_dict())


@router.get("/v1/whoami")
def whoami(caller: CallerDep) -> dict[str, Any]:
    """The caller's token: id, actor, scopes, run binding and expiry."""
    principal = caller.principal
    if principal is None:
        return {"token_id": None, "actor": caller.actor, "scopes": [], "run_id": None,
                "expires_at": None, "anonymous": True}  # fmt: skip
    return {
        "token_id": principal.token_id,
        "actor": principal.actor,
        "scopes": [str(s) for s in principal.scopes],
        "run_id": principal.run_id,
        "expires_at": principal.expires_at.isoformat(),
        "anonymous": False,
    }
