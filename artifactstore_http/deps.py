"""What routes are handed: the store, the caller (its principal and actor), limits.

Authentication: ``Authorization: Bearer asr_...`` is checked by ``store.tokens``; no
header is anonymous, which may only read, and only when ``http_anonymous_read`` is set.
A caller that may not read a name is told the name does not exist (404), so a token
never learns which names exist outside its scopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from artifactstore_core.config import Settings
from artifactstore_core.domain.access import Principal
from artifactstore_core.errors import AccessDeniedError, AuthenticationError, NotFoundError
from artifactstore_core.store import ArtifactStore
from artifactstore_http.problems import Problem
from artifactstore_http.streaming import Bridge, Limits

ANONYMOUS_ACTOR = "anonymous"


def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore | None = request.app.state.store
    if store is None:
        raise Problem(503, "the registry is not open yet", headers={"Retry-After": "1"})
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_limits(request: Request) -> Limits:
    limits: Limits = request.app.limits
    return limits


def get_bridge(request: Request) -> Bridge:
    bridge: Bridge = request.app.state.bridge
    return bridge


@dataclass(frozen=True)
class Caller:
    """Who calls: a token's principal, or anonymous (``principal`` is None: read only).

    ``expired``: the token has expired, which only the upload session it opened accepts.
    """

    principal: Principal | None
    expired: bool = False

    @property
    def actor(self) -> str:
        """The actor recorded on the caller's writes: the token's, never the client's word."""
        return self.principal.actor if self.principal is not None else ANONYMOUS_ACTOR

    @property
    def token_id(self) -> str | None:
        return self.principal.token_id if self.principal is not None else None

    def allows(self, action: str, name: str) -> bool:
        if self.principal is None:
            return action == "read"
        return self.principal.allows(action, name)

    def require(self, action: str, name: str | None = None) -> None:
        """``AccessDeniedError`` (403) unless the caller may ``action`` on ``name`` (on
        every name with ``None``); a name it may not even read is ``NotFoundError`` (404)."""
        if name is not None and not self.allows("read", name) and not self.allows(action, name):
            raise NotFoundError(f"no package is named {name!r}")
        if self.principal is None:
            if action != "read":
                raise AuthenticationError("an access token is needed to " + action)
            return
        self.principal.require(action, name)

    def allows_everywhere(self, action: str) -> bool:
        """Whether the caller may ``action`` on every name (a scope on ``**``)."""
        if self.principal is None:
            return False
        try:
            self.principal.require(action)
        except AccessDeniedError:
            return False
        return True

    def require_some(self, action: str) -> None:
        """The caller may ``action`` on at least one name (blobs are not named: uploading
        and probing them is a write-side capability, reading one a read-side one)."""
        if self.principal is None:
            if action != "read":
                raise AuthenticationError("an access token is needed to " + action)
            return
        if not any(scope.grants(action) for scope in self.principal.scopes):
            raise AccessDeniedError(action, None, detail=f"the token has no {action!r} scope")


def authenticate(
    request: Request, store: ArtifactStore, settings: Settings, *, allow_expired: bool = False
) -> Caller:
    """The caller a request's ``Authorization`` header names (see the module docstring)."""
    header = request.headers.get("authorization")
    if header is None:
        if settings.http_anonymous_read and request.method in ("GET", "HEAD"):
            return Caller(None)
        raise AuthenticationError("no access token; send Authorization: Bearer <token>")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError("the Authorization header is not 'Bearer <token>'")
    principal = store.tokens.authenticate(secret.strip(), allow_expired=allow_expired)
    return Caller(principal, expired=principal.expires_at <= store.clock())


def get_caller(
    request: Request,
    store: Annotated[ArtifactStore, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Caller:
    return authenticate(request, store, settings)


def get_session_caller(
    request: Request,
    store: Annotated[ArtifactStore, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> Caller:
    """The caller of a request on an open upload session: its token may have expired
    since it opened the session (never been revoked)."""
    return authenticate(request, store, settings, allow_expired=True)


StoreDep = Annotated[ArtifactStore, Depends(get_store)]
CallerDep = Annotated[Caller, Depends(get_caller)]
SessionCallerDep = Annotated[Caller, Depends(get_session_caller)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
BridgeDep = Annotated[Bridge, Depends(get_bridge)]
