"""Access tokens' scopes and principals, and the secrets' text form. Pure: no I/O.

A scope is ``package:<name-glob>:<actions>``, for example ``package:team/**:read,write``.
The glob is matched segment by segment (segments are separated by ``/``): ``*`` stands for
any characters within one segment, a whole segment ``**`` for any number of segments
(none included); every other character stands for itself. The actions are a comma list
of ``ACTIONS``; ``admin`` implies all of them.

A secret is ``asr_`` and the lowercase base32 (no padding) of 32 random bytes; only its
SHA-256 (``secret_digest``) is ever recorded.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from artifactstore_core.domain.names import MAX_NAME
from artifactstore_core.errors import AccessDeniedError, InvalidInputError

ACTIONS = ("read", "write", "tag", "hold", "retention-admin", "attest", "admin")
"""What a scope may allow; ``admin`` implies every other action."""
ADMIN = "admin"
EVERY_NAME = "**"
"""The glob a scope needs to allow an action on the whole registry (``require(action)``)."""
MAX_SCOPES = 64
"""Scopes one token may carry."""
MAX_SCOPE = 16 + MAX_NAME + sum(len(action) + 1 for action in ACTIONS)
"""Characters in one scope's text."""
SECRET_PREFIX = "asr_"
SECRET_BYTES = 32
_SECRET = re.compile(r"asr_[a-z2-7]{52}")
_GLOB_SEGMENT = re.compile(r"[A-Za-z0-9_*][A-Za-z0-9_.\-*]*")


@dataclass(frozen=True, slots=True)
class Scope:
    """Permission to do ``actions`` on packages whose name matches ``glob``."""

    glob: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``package:<name-glob>:<action>[,<action>...]``; ``InvalidInputError`` names the
        scope and what is wrong with it."""
        if not isinstance(text, str):
            raise InvalidInputError(f"scope must be text, got {type(text).__name__} {text!r:.60}")
        if len(text) > MAX_SCOPE:
            raise InvalidInputError(f"scope is longer than {MAX_SCOPE} characters: {text[:40]!r}…")
        shown = repr(text) if len(text) <= 100 else f"{text[:100]!r}…"
        parts = text.split(":")
        if len(parts) != 3 or parts[0] != "package":
            raise InvalidInputError(
                f"invalid scope {shown}: write package:<name-glob>:<actions>, "
                "e.g. package:team/**:read,write"
            )
        _, glob, listed = parts
        _check_glob(glob, shown)
        actions = listed.split(",")
        for action in actions:
            if action not in ACTIONS:
                raise InvalidInputError(
                    f"invalid scope {shown}: unknown action {action!r}; "
                    f"actions are {', '.join(ACTIONS)}"
                )
        return cls(glob, frozenset([ADMIN] if ADMIN in actions else actions))

    def __str__(self) -> str:
        """The canonical text: the actions in ``ACTIONS`` order."""
        return f"package:{self.glob}:{','.join(a for a in ACTIONS if a in self.actions)}"

    def grants(self, action: str) -> bool:
        """Whether the scope allows ``action`` (on the names its glob matches)."""
        return action in self.actions or ADMIN in self.actions

    def matches(self, name: str) -> bool:
        """Whether package name ``name`` matches the glob."""
        return _glob_covers(self.glob, name)

    def allows(self, action: str, name: str) -> bool:
        """Whether the scope allows ``action`` on package ``name``."""
        return self.grants(action) and self.matches(name)

    def covers_glob(self, glob: str) -> bool:
        """Whether every name ``glob`` matches is matched by this scope's glob (a sound
        test: a ``True`` is always right; a few exotic pairs answer ``False``)."""
        return _glob_covers(self.glob, glob)


def parse_scopes(texts: Iterable[str]) -> tuple[Scope, ...]:
    """At least one and at most ``MAX_SCOPES`` scopes, each parsed; repeats dropped."""
    if isinstance(texts, str):
        texts = [texts]
    parsed: list[Scope] = []
    for count, text in enumerate(texts, start=1):
        if count > MAX_SCOPES:
            raise InvalidInputError(f"a token may carry at most {MAX_SCOPES} scopes")
        scope = Scope.parse(text)
        if scope not in parsed:
            parsed.append(scope)
    if not parsed:
        raise InvalidInputError("a token needs at least one scope, e.g. package:**:read")
    return tuple(parsed)


def _check_glob(glob: str, scope: str) -> None:
    """A name glob: relative ``/``-separated segments of name characters and ``*``,
    ``**`` only as a whole segment, no ``.`` or ``..`` segments (``scope``: the scope as
    errors show it)."""
    if not glob:
        raise InvalidInputError(f"invalid scope {scope}: the name glob is empty")
    if len(glob) > MAX_NAME:
        raise InvalidInputError(
            f"invalid scope {scope}: the name glob is longer than {MAX_NAME} characters"
        )
    for segment in glob.split("/"):
        if segment == EVERY_NAME:
            continue
        if not _GLOB_SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise InvalidInputError(
                f"invalid scope {scope}: glob segment {segment!r} must be '**' or start with "
                "a letter, digit, '_' or '*' and contain only letters, digits, '_', '.', '-' "
                "and '*' (the glob is relative: no leading, trailing or double '/')"
            )
        if "**" in segment:
            raise InvalidInputError(
                f"invalid scope {scope}: '**' must be a whole segment, not part of {segment!r}"
            )


def _wildcard(
    pattern: Sequence[str], text: Sequence[str], star: str, same: Callable[[str, str], bool]
) -> bool:
    """Whether ``pattern`` matches all of ``text``, element by element: ``star`` matches
    any run of elements (none included), every other element one element ``same`` accepts.

    Greedy with one backtracking point (the last star): O(len(pattern) * len(text)), so a
    hostile glob cannot make it slow, and no regular expression interprets the text.
    """
    p = t = 0
    resume: tuple[int, int] | None = None
    while t < len(text):
        if p < len(pattern) and pattern[p] == star:
            resume = (p, t)
            p += 1
        elif p < len(pattern) and same(pattern[p], text[t]):
            p += 1
            t += 1
        elif resume is not None:
            p, t = resume[0] + 1, resume[1] + 1
            resume = (resume[0], t)
        else:
            return False
    return all(element == star for element in pattern[p:])


def _segment_covers(pattern: str, segment: str) -> bool:
    """Within one segment: the pattern's ``*`` matches any characters, the segment's own
    ``*`` included (only a ``*`` can cover a ``*``); other characters match themselves."""
    return segment != EVERY_NAME and _wildcard(pattern, segment, "*", str.__eq__)


def _glob_covers(pattern: str, glob: str) -> bool:
    """Whether glob ``pattern`` matches every name glob ``glob`` does (a plain name is a
    glob matching itself): ``**`` covers any segments, ``**`` included."""
    return _wildcard(pattern.split("/"), glob.split("/"), EVERY_NAME, _segment_covers)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the token's id, actor name, scopes, run binding and expiry."""

    token_id: str
    actor: str
    scopes: tuple[Scope, ...]
    run_id: str | None
    expires_at: dt.datetime

    def allows(self, action: str, name: str) -> bool:
        """Whether some scope allows ``action`` on package ``name``."""
        return any(scope.allows(action, name) for scope in self.scopes)

    def require(self, action: str, name: str | None = None) -> None:
        """``AccessDeniedError(action, name)`` unless a scope allows ``action`` on ``name``;
        with ``name=None``, on every name (a scope whose glob is ``**``)."""
        glob = EVERY_NAME if name is None else name
        if not any(scope.grants(action) and scope.covers_glob(glob) for scope in self.scopes):
            raise AccessDeniedError(action, name)

    def require_run(self, run_id: str | None, action: str = "write") -> None:
        """``AccessDeniedError`` if the token is bound to a run and ``run_id`` (a
        registration's ``provenance.run_id``) is another one, or none."""
        if self.run_id is not None and run_id != self.run_id:
            raise AccessDeniedError(
                action,
                None,
                detail=f"the token is bound to run {self.run_id!r}; it cannot act for "
                + ("no run" if run_id is None else f"run {run_id!r}"),
            )

    def excess(
        self, scopes: Iterable[Scope], expires_at: dt.datetime, run_id: str | None
    ) -> AccessDeniedError | None:
        """The error naming what a child token with these terms would have beyond this
        principal, or ``None`` if it stays within: each scope's actions on its whole glob,
        an expiry no later, and this principal's run binding (if it has one)."""
        for scope in scopes:
            for action in sorted(scope.actions, key=ACTIONS.index):
                if not any(
                    action in mine.actions or ADMIN in mine.actions
                    for mine in self.scopes
                    if mine.covers_glob(scope.glob)
                ):
                    return AccessDeniedError(
                        action,
                        scope.glob,
                        detail=f"the token lacks the {action!r} scope for every name matching "
                        f"{scope.glob!r}, so it cannot grant {str(scope)!r}",
                    )
        if expires_at > self.expires_at:
            return AccessDeniedError(
                "issue",
                None,
                detail=f"a child token cannot outlive its parent: it would expire at "
                f"{expires_at.isoformat()}, after the parent's {self.expires_at.isoformat()}",
            )
        if self.run_id is not None and run_id != self.run_id:
            return AccessDeniedError(
                "issue",
                None,
                detail=f"the token is bound to run {self.run_id!r}, so its child tokens must "
                f"be too, not to {run_id!r}",
            )
        return None

    def covers(self, scopes: Iterable[Scope], expires_at: dt.datetime, run_id: str | None) -> bool:
        """Whether a child token with these terms stays within this principal (``excess``)."""
        return self.excess(scopes, expires_at, run_id) is None


def new_secret(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A fresh secret: ``asr_`` + lowercase unpadded base32 of 32 random bytes (52 chars)."""
    body = base64.b32encode(random_bytes(SECRET_BYTES)).decode("ascii").rstrip("=").lower()
    return SECRET_PREFIX + body


def is_secret(text: object) -> bool:
    """Whether ``text`` has the form of a secret (so it is worth looking up)."""
    return isinstance(text, str) and _SECRET.fullmatch(text) is not None


def secret_digest(secret: str) -> str:
    """The SHA-256 of the secret's text, hex: what the registry records instead of it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
