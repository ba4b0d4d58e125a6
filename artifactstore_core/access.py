"""Access tokens: issue, authenticate, revoke, list (``ArtifactStore.tokens``).

Issuing and revoking are events in the log (``TokenIssued``, ``TokenRevoked``) projected
into ``access_tokens``; the log and the view hold only the SHA-256 of a secret, which is
shown once, to the caller of ``issue``. Scopes, principals and secrets are defined in
``domain/access.py``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.access import (
    Principal,
    Scope,
    is_secret,
    new_secret,
    parse_scopes,
    secret_digest,
)
from artifactstore_core.domain.limits import check_optional_text, check_text, check_time
from artifactstore_core.domain.package import iso, parse_iso
from artifactstore_core.errors import AuthenticationError, InvalidInputError, NotFoundError
from artifactstore_core.ledger import Ledger
from artifactstore_core.schema import access_tokens

MAX_LIFETIME = dt.timedelta(days=400)
"""The longest a token may live: every token expires, and not in years."""
MAX_ACTOR = 255
"""Characters in a token's actor, its issuer and its run id (the columns' width)."""

_INFO_COLUMNS = [c for c in access_tokens.c if c.name != "secret_sha256"]
_BY_SECRET = sa.select(*access_tokens.c).where(
    access_tokens.c.secret_sha256 == sa.bindparam("digest")
)
_BY_ID = sa.select(*_INFO_COLUMNS).where(access_tokens.c.token_id == sa.bindparam("token_id"))
_ALL = sa.select(*_INFO_COLUMNS).order_by(access_tokens.c.issued_at, access_tokens.c.token_id)
_CHILDREN = sa.select(access_tokens.c.token_id, access_tokens.c.revoked_at).where(
    access_tokens.c.parent_id.in_(sa.bindparam("parents", expanding=True))
)


@dataclass(frozen=True)
class TokenInfo:
    """What the registry knows about a token, never its secret nor the secret's hash.

    ``status`` is ``active``, ``expired`` or ``revoked`` as of when it was read.
    """

    id: str
    actor: str
    scopes: tuple[str, ...]
    run_id: str | None
    parent_id: str | None
    description: str | None
    issued_by: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``token list --json`` and answered by the server."""
        return {
            "id": self.id,
            "actor": self.actor,
            "scopes": list(self.scopes),
            "run_id": self.run_id,
            "parent_id": self.parent_id,
            "description": self.description,
            "issued_by": self.issued_by,
            "issued_at": iso(self.issued_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenInfo:
        """The token ``to_dict`` describes (as the server answers it)."""
        return cls(
            id=data["id"],
            actor=data["actor"],
            scopes=tuple(data["scopes"]),
            run_id=data["run_id"],
            parent_id=data["parent_id"],
            description=data["description"],
            issued_by=data["issued_by"],
            issued_at=dt.datetime.fromisoformat(data["issued_at"]),
            expires_at=dt.datetime.fromisoformat(data["expires_at"]),
            revoked_at=parse_iso(data["revoked_at"]),
            status=data["status"],
        )


@dataclass(frozen=True)
class IssuedToken:
    """A new token: its ``secret`` (shown this once, stored nowhere) and its ``token``."""

    secret: str
    token: TokenInfo

    def __repr__(self) -> str:
        return f"IssuedToken(secret='asr_…', token={self.token!r})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``token create --json``: the secret and the token."""
        return {"secret": self.secret, "token": self.token.to_dict()}


def _info(row: Any, now: dt.datetime) -> TokenInfo:
    status = (
        "revoked"
        if row.revoked_at is not None
        else "expired"
        if row.expires_at <= now
        else "active"
    )
    return TokenInfo(
        id=row.token_id,
        actor=row.actor,
        scopes=tuple(row.scopes),
        run_id=row.run_id,
        parent_id=row.parent_id,
        description=row.description,
        issued_by=row.issued_by,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        status=status,
    )


def _load(conn: sa.Connection, token_id: str, now: dt.datetime) -> TokenInfo:
    row = conn.execute(_BY_ID, {"token_id": token_id}).first()
    if row is None:
        raise NotFoundError(f"no access token has id {token_id!r}")
    return _info(row, now)


class Tokens:
    """Access tokens of one registry, recorded through ``ledger``.

    ``on_revoke`` is called with the id of each token a ``revoke`` ended, after the
    commit (the store ends the upload sessions the token opened).
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        on_revoke: Callable[[str], object] | None = None,
    ) -> None:
        self.ledger = ledger
        self.new_id = new_id
        self.on_revoke = on_revoke

    def issue(
        self,
        *,
        actor: str,
        scopes: Iterable[str | Scope],
        expires_at: dt.datetime | dt.timedelta,
        run_id: str | None = None,
        description: str | None = None,
        parent: Principal | None = None,
        issued_by: str,
    ) -> IssuedToken:
        """A new token acting as ``actor`` with ``scopes`` until ``expires_at`` (in the
        future, at most ``MAX_LIFETIME`` away; a ``timedelta`` counts from the moment the
        token is recorded), optionally bound to ``run_id``.

        With ``parent`` (the principal asking, over the server) the token must stay within
        it (``Principal.excess``: ``AccessDeniedError`` names what exceeds), and the parent
        must not be revoked; without it the caller has the registry's own authority.
        """
        _check_name(actor, "token actor")
        _check_name(issued_by, "issuer")
        check_optional_text(run_id, "run id", max_length=MAX_ACTOR)
        check_optional_text(description, "token description")
        parsed = parse_scopes(str(s) for s in ([scopes] if isinstance(scopes, str) else scopes))
        if not isinstance(expires_at, dt.timedelta):
            expires_at = check_time(expires_at, "token expiry")
        secret = new_secret()
        token_id = str(self.new_id())

        def decide(conn: sa.Connection, now: dt.datetime) -> Sequence[ev.Event]:
            expires = _expiry(expires_at, now)
            if parent is not None:
                excess = parent.excess(parsed, expires, run_id)
                if excess is not None:
                    raise excess
            if expires <= now:
                raise InvalidInputError(
                    f"token expiry {expires.isoformat()} is not in the future "
                    f"(it is {now.isoformat()})"
                )
            if expires - now > MAX_LIFETIME:
                raise InvalidInputError(
                    f"token expiry {expires.isoformat()} is more than {MAX_LIFETIME.days} days "
                    "away; issue a new token before this one expires instead"
                )
            if parent is not None:
                # Under the chain lock: a parent revoked a moment ago issues nothing.
                state = _load(conn, parent.token_id, now).status
                if state != "active":
                    raise AuthenticationError(f"token {state}")
            return [
                ev.TokenIssued(
                    token_id=token_id,
                    secret_sha256=secret_digest(secret),
                    actor=actor,
                    scopes=[str(scope) for scope in parsed],
                    expires_at=expires.isoformat(),
                    run_id=run_id,
                    parent_id=parent.token_id if parent is not None else None,
                    description=description,
                )
            ]

        info = self.ledger.record_then(
            decide, lambda conn, _: _load(conn, token_id, self.ledger.clock()), actor=issued_by
        )
        return IssuedToken(secret, info)

    def authenticate(self, secret: str, *, allow_expired: bool = False) -> Principal:
        """The principal a secret stands for; ``AuthenticationError`` with the reason
        ``invalid token`` (malformed or unknown: refused without a query for the former),
        ``token revoked`` or ``token expired``. With ``allow_expired`` an expired (never a
        revoked) token still answers: upload sessions it opened outlive it."""
        if not is_secret(secret):
            raise AuthenticationError("invalid token")
        with self.ledger.reading() as conn:
            row = conn.execute(_BY_SECRET, {"digest": secret_digest(secret)}).first()
        if row is None:
            raise AuthenticationError("invalid token")
        if row.revoked_at is not None:
            raise AuthenticationError("token revoked")
        if row.expires_at <= self.ledger.clock() and not allow_expired:
            raise AuthenticationError("token expired")
        return Principal(
            token_id=row.token_id,
            actor=row.actor,
            scopes=parse_scopes(row.scopes),
            run_id=row.run_id,
            expires_at=row.expires_at,
        )

    def revoke(self, token_id: str, *, actor: str | None = None) -> TokenInfo:
        """Revoke a token, and every token issued under it (children, theirs, ...), at once.

        ``NotFoundError`` for an unknown id. Revoking a revoked token records nothing and
        answers the same ``TokenInfo``.
        """
        check_text(token_id, "token id", max_length=64)
        ended: list[str] = []

        def decide(conn: sa.Connection, now: dt.datetime) -> Sequence[ev.Event]:
            if _load(conn, token_id, now).revoked_at is not None:
                return []
            ended.append(token_id)
            parents = [token_id]
            while parents:
                rows = conn.execute(_CHILDREN, {"parents": parents}).all()
                parents = [row.token_id for row in rows if row.revoked_at is None]
                ended.extend(parents)
            return [ev.TokenRevoked(token_id=ended_id) for ended_id in ended]

        info = self.ledger.record_then(
            decide, lambda conn, _: _load(conn, token_id, self.ledger.clock()), actor=actor
        )
        if self.on_revoke is not None:
            for ended_id in ended:
                self.on_revoke(ended_id)
        return info

    def list(self) -> list[TokenInfo]:
        """Every token ever issued, revoked and expired ones included, oldest first."""
        with self.ledger.reading() as conn:
            rows = conn.execute(_ALL).all()
        now = self.ledger.clock()
        return [_info(row, now) for row in rows]

    def get(self, token_id: str) -> TokenInfo:
        """The token with this id; ``NotFoundError`` if there is none."""
        check_text(token_id, "token id", max_length=64)
        with self.ledger.reading() as conn:
            return _load(conn, token_id, self.ledger.clock())


def _expiry(expires_at: dt.datetime | dt.timedelta, now: dt.datetime) -> dt.datetime:
    if not isinstance(expires_at, dt.timedelta):
        return expires_at
    if expires_at > MAX_LIFETIME:
        raise InvalidInputError(
            f"token lifetime {expires_at} is more than {MAX_LIFETIME.days} days; issue a new "
            "token before this one expires instead"
        )
    return now + expires_at


def _check_name(value: str, what: str) -> str:
    if not check_text(value, what, max_length=MAX_ACTOR).strip():
        raise InvalidInputError(f"{what} must not be empty")
    return value
