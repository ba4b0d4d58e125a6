"""Access tokens over HTTP (``/v1/tokens``): what ``store.tokens`` offers, for the token's
own actor (a server mints child tokens within the calling token; admins see all tokens)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from artifactstore_core.access import IssuedToken, TokenInfo
from artifactstore_core.client._transport import Transport
from artifactstore_core.domain.access import Scope
from artifactstore_core.errors import InvalidInputError, NotFoundError


class RemoteTokens:
    """``Tokens`` of a server: issue (a child of the calling token), list, get, revoke."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def issue(
        self,
        *,
        actor: str,
        scopes: Iterable[str | Scope],
        expires_at: dt.datetime | dt.timedelta,
        run_id: str | None = None,
        description: str | None = None,
        parent: Any = None,
        issued_by: str | None = None,
    ) -> IssuedToken:
        """A child token of the calling one, acting as its actor, within its scopes."""
        whoami = self.transport.request("GET", "/v1/whoami").json()
        if actor != whoami["actor"]:
            raise InvalidInputError(
                f"a server mints tokens for the calling token's actor {whoami['actor']!r} "
                f"only, not for {actor!r}"
            )
        body: dict[str, Any] = {
            "scopes": [str(scope) for scope in ([scopes] if isinstance(scopes, str) else scopes)],
            "run_id": run_id,
            "description": description,
        }
        if isinstance(expires_at, dt.timedelta):
            body["ttl_seconds"] = int(expires_at.total_seconds())
        else:
            body["expires_at"] = expires_at.isoformat()
        answer = self.transport.request("POST", "/v1/tokens", json=body, idempotent=False).json()
        return IssuedToken(answer["secret"], TokenInfo.from_dict(answer["token"]))

    def list(self) -> list[TokenInfo]:
        """The tokens of the calling token's actor (every token, for an admin)."""
        answer = self.transport.request("GET", "/v1/tokens").json()
        return [TokenInfo.from_dict(item) for item in answer["items"]]

    def get(self, token_id: str) -> TokenInfo:
        """One token (``NotFoundError`` if the caller may not see it)."""
        for info in self.list():
            if info.id == token_id:
                return info
        raise NotFoundError(f"no access token has id {token_id!r}")

    def revoke(self, token_id: str, *, actor: str | None = None) -> TokenInfo:
        """Revoke a token and the tokens issued under it (their upload sessions end)."""
        path = f"/v1/tokens/{token_id}"
        return TokenInfo.from_dict(self.transport.request("DELETE", path).json())
