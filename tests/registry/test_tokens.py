"""Access tokens on SQLite and PostgreSQL: issue, authenticate, expire, revoke, audit."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from artifactstore_core import ArtifactStore
from artifactstore_core.access import MAX_LIFETIME, IssuedToken
from artifactstore_core.domain.access import secret_digest
from artifactstore_core.errors import (
    AccessDeniedError,
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    UploadUnknownError,
)
from artifactstore_core.schema import PROJECTION_TABLES, access_tokens, events
from artifactstore_core.testing.clock import FrozenClock

from .conftest import event_count

pytestmark = pytest.mark.integration

DAY = dt.timedelta(days=1)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def store(database_url: str, tmp_path: Path, clock: FrozenClock) -> Iterator[ArtifactStore]:
    opened = ArtifactStore.open(database_url, str(tmp_path / "blobs"), clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def issue(store: ArtifactStore, *scopes: str, days: int = 30, **kwargs: object) -> IssuedToken:
    return store.tokens.issue(
        actor=str(kwargs.pop("actor", "ci-bot")),
        scopes=scopes or ("package:team/**:read,write",),
        expires_at=store.clock() + days * DAY,
        issued_by=str(kwargs.pop("issued_by", "alice")),
        **kwargs,  # type: ignore[arg-type]
    )


def test_issue_then_authenticate(store: ArtifactStore, clock: FrozenClock) -> None:
    issued = issue(store, "package:team/**:read,write", "package:**:read", run_id="run-7")
    assert issued.secret.startswith("asr_") and len(issued.secret) == 56
    token = issued.token
    assert token.actor == "ci-bot"
    assert token.issued_by == "alice"
    assert token.scopes == ("package:team/**:read,write", "package:**:read")
    assert (token.run_id, token.parent_id, token.status) == ("run-7", None, "active")
    assert token.issued_at == clock.now
    assert token.expires_at == clock.now + 30 * DAY
    principal = store.tokens.authenticate(issued.secret)
    assert (principal.token_id, principal.actor, principal.run_id) == (token.id, "ci-bot", "run-7")
    assert principal.expires_at == token.expires_at
    assert principal.allows("write", "team/a") and principal.allows("read", "other")
    assert not principal.allows("write", "other")
    assert store.tokens.get(token.id) == token
    assert store.tokens.list() == [token]
    shown = token.to_dict()
    assert shown["scopes"] == list(token.scopes)
    assert issued.secret not in repr(shown) + repr(issued)
    assert secret_digest(issued.secret) not in repr(shown) + repr(issued)


def test_tokens_expire_on_the_store_clock(store: ArtifactStore, clock: FrozenClock) -> None:
    issued = issue(store, days=1)
    clock.advance(DAY - dt.timedelta(seconds=1))
    assert store.tokens.authenticate(issued.secret).token_id == issued.token.id
    clock.advance(dt.timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match=r"^token expired$") as raised:
        store.tokens.authenticate(issued.secret)
    assert raised.value.reason == "token expired"
    assert store.tokens.get(issued.token.id).status == "expired"


def test_unknown_and_malformed_secrets(store: ArtifactStore) -> None:
    issued = issue(store)
    unknown = "asr_" + ("b" if issued.secret[4] != "b" else "c") + issued.secret[5:]
    with pytest.raises(AuthenticationError, match=r"^invalid token$"):
        store.tokens.authenticate(unknown)
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for malformed in ("", "Bearer " + issued.secret, issued.secret.upper(), issued.secret + "a"):
        with pytest.raises(AuthenticationError, match=r"^invalid token$"):
            store.tokens.authenticate(malformed)
    assert statements == []


def test_revoke_is_immediate_idempotent_and_reaches_children(store: ArtifactStore) -> None:
    root = issue(store, "package:**:admin")
    parent = store.tokens.authenticate(root.secret)
    child = issue(store, "package:team/**:read", parent=parent, days=10)
    grandchild = issue(
        store, "package:team/a:read", parent=store.tokens.authenticate(child.secret), days=5
    )
    sibling = issue(store, "package:**:read")
    before = event_count(store)
    revoked = store.tokens.revoke(root.token.id, actor="security")
    assert revoked.status == "revoked"
    assert revoked.revoked_at == store.clock()
    assert event_count(store) == before + 3
    for ended in (root, child, grandchild):
        with pytest.raises(AuthenticationError, match=r"^token revoked$"):
            store.tokens.authenticate(ended.secret)
        assert store.tokens.get(ended.token.id).status == "revoked"
    assert store.tokens.authenticate(sibling.secret).token_id == sibling.token.id
    assert store.tokens.revoke(root.token.id, actor="security") == revoked
    assert store.tokens.revoke(child.token.id) == store.tokens.get(child.token.id)
    assert event_count(store) == before + 3
    log = store.events(subject_kind="token", subject_id=root.token.id)
    assert [(e.event.event_type, e.actor) for e in log] == [
        ("TokenIssued", "alice"),
        ("TokenRevoked", "security"),
    ]
    with pytest.raises(NotFoundError, match="no access token has id 'nope'"):
        store.tokens.revoke("nope")


def test_child_tokens_stay_within_their_parent(store: ArtifactStore) -> None:
    parent = store.tokens.authenticate(
        issue(store, "package:team/**:read,write", days=30, run_id="run-1").secret
    )
    before = event_count(store)
    refused = {
        "package:team/**:tag": "lacks the 'tag' scope for every name matching 'team/**'",
        "package:**:read": "lacks the 'read' scope for every name matching '**'",
        "package:team/x:admin": "lacks the 'admin' scope",
    }
    for scope, message in refused.items():
        with pytest.raises(AccessDeniedError, match=re.escape(message)):
            issue(store, scope, parent=parent, run_id="run-1", days=1)
    with pytest.raises(AccessDeniedError, match="cannot outlive its parent"):
        issue(store, "package:team/x:read", parent=parent, run_id="run-1", days=31)
    with pytest.raises(AccessDeniedError, match="bound to run 'run-1'"):
        issue(store, "package:team/x:read", parent=parent, days=1)
    assert event_count(store) == before
    child = issue(store, "package:team/x:read", parent=parent, run_id="run-1", days=1)
    assert child.token.parent_id == parent.token_id
    store.tokens.revoke(parent.token_id)
    with pytest.raises(AuthenticationError, match="token revoked"):
        issue(store, "package:team/y:read", parent=parent, run_id="run-1", days=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expires_at": dt.timedelta(0)}, "is not in the future"),
        ({"expires_at": -DAY}, "is not in the future"),
        ({"expires_at": MAX_LIFETIME + dt.timedelta(seconds=1)}, "more than 400 days away"),
        ({"scopes": []}, "at least one scope"),
        ({"scopes": ["package:team/../x:read"]}, "glob segment '..'"),
        ({"scopes": ["package:team:delete"]}, "unknown action 'delete'"),
        ({"actor": ""}, "token actor must not be empty"),
        ({"actor": "a" * 256}, "token actor is longer than 255"),
        ({"issued_by": " "}, "issuer must not be empty"),
        ({"run_id": "r" * 256}, "run id is longer than 255"),
        ({"description": "x\x00"}, "token description contains a NUL"),
    ],
)
def test_bad_terms_record_nothing(
    store: ArtifactStore, change: dict[str, object], message: str
) -> None:
    terms: dict[str, object] = {
        "actor": "ci",
        "scopes": ["package:**:read"],
        "expires_at": DAY,
        "issued_by": "alice",
    }
    terms.update(change)
    terms["expires_at"] = store.clock() + terms["expires_at"]  # type: ignore[operator]
    before = event_count(store)
    with pytest.raises(InvalidInputError, match=message):
        store.tokens.issue(**terms)  # type: ignore[arg-type]
    assert event_count(store) == before
    assert store.tokens.list() == []


def test_naive_expiry_is_refused(store: ArtifactStore) -> None:
    with pytest.raises(InvalidInputError, match="has no time zone"):
        store.tokens.issue(
            actor="ci",
            scopes=["package:**:read"],
            expires_at=dt.datetime(2026, 2, 1),
            issued_by="alice",
        )


def test_the_secret_is_in_no_event_nor_view(store: ArtifactStore) -> None:
    issued = [issue(store), issue(store, "package:**:admin", description="ops")]
    store.tokens.revoke(issued[0].token.id)
    with store.engine.connect() as conn:
        query = sa.select(events.c.payload).where(events.c.subject_kind == "token")
        payloads = [row.payload for row in conn.execute(query)]
        rows = [repr(tuple(row)) for row in conn.execute(sa.select(access_tokens))]
    assert len(payloads) == 3
    for token in issued:
        raw = base64.b32decode(token.secret[4:].upper() + "====")
        for payload in payloads:
            assert token.secret.encode() not in payload
            assert token.secret[4:].encode() not in payload
            assert raw not in payload
        assert not any(token.secret[4:] in row for row in rows)
        assert sum(secret_digest(token.secret) in row for row in rows) == 1
    recorded = store.events(subject_kind="token", subject_id=issued[1].token.id)[0].event
    assert recorded.to_payload() == {
        "token_id": issued[1].token.id,
        "secret_sha256": secret_digest(issued[1].secret),
        "actor": "ci-bot",
        "scopes": ["package:**:admin"],
        "expires_at": issued[1].token.expires_at.isoformat(),
        "run_id": None,
        "parent_id": None,
        "description": "ops",
    }


def _views(store: ArtifactStore) -> dict[str, list[tuple[object, ...]]]:
    with store.engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr)
            for t in PROJECTION_TABLES
        }


def test_rebuild_reproduces_the_token_rows(store: ArtifactStore, clock: FrozenClock) -> None:
    root = issue(store, "package:**:admin", run_id="r", description="déjà vu")
    clock.advance(dt.timedelta(microseconds=1234))
    issue(
        store, "package:a/*:read", parent=store.tokens.authenticate(root.secret), run_id="r", days=9
    )
    clock.advance(dt.timedelta(minutes=3))
    store.tokens.revoke(issue(store).token.id)
    before = _views(store)
    assert len(before["access_tokens"]) == 3
    assert store.check_views() == []
    store.rebuild_views()
    assert _views(store) == before
    assert store.tokens.authenticate(root.secret).token_id == root.token.id


def test_a_lifetime_counts_from_the_recorded_time(store: ArtifactStore, clock: FrozenClock) -> None:
    terms = {"actor": "ci", "scopes": ["package:**:read"], "issued_by": "alice"}
    issued = store.tokens.issue(expires_at=DAY, **terms)  # type: ignore[arg-type]
    assert issued.token.expires_at == clock.now + DAY == issued.token.issued_at + DAY
    parent = store.tokens.authenticate(issued.secret)
    with pytest.raises(AccessDeniedError, match="cannot outlive its parent"):
        store.tokens.issue(expires_at=2 * DAY, parent=parent, **terms)  # type: ignore[arg-type]
    for lifetime, message in [
        (MAX_LIFETIME + dt.timedelta(seconds=1), "more than 400 days"),
        (dt.timedelta(0), "is not in the future"),
        (-DAY, "is not in the future"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            store.tokens.issue(expires_at=lifetime, **terms)  # type: ignore[arg-type]
    assert len(store.tokens.list()) == 1


def test_revoking_a_token_ends_its_upload_sessions(store: ArtifactStore) -> None:
    parent = issue(store, "package:**:write")
    child = issue(store, "package:team/**:write", parent=store.tokens.authenticate(parent.secret))
    other = issue(store, "package:**:write")
    sessions = {
        name: store.uploads.open(actor="ci-bot", token_id=token.token.id)
        for name, token in (("parent", parent), ("child", child), ("other", other))
    }
    for session in sessions.values():
        store.uploads.append(session.id, 0, io.BytesIO(b"partial bytes"))
    store.tokens.revoke(parent.token.id)
    for name in ("parent", "child"):
        with pytest.raises(UploadUnknownError):
            store.uploads.status(sessions[name].id)
        with pytest.raises(UploadUnknownError):
            store.uploads.append(sessions[name].id, 13, io.BytesIO(b"more"))
    assert store.uploads.status(sessions["other"].id).received == len(b"partial bytes")
