"""Core pieces the HTTP gateway needs: keyset listing, expired tokens for upload sessions,
revocation ending sessions."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore, PackageFilter
from artifactstore_core.errors import (
    AuthenticationError,
    InvalidInputError,
    PreconditionFailedError,
    UploadUnknownError,
)
from artifactstore_core.testing.clock import FrozenClock

pytestmark = pytest.mark.integration


def test_list_after_a_keyset_position(store: ArtifactStore) -> None:
    for name in ("b", "a", "c"):
        store.put(name, {"f": name.encode()})
    store.put("b", {"f": b"b2"})
    every = [p.reference for p in store.list_packages()]
    assert every == ["a@1", "b@1", "b@2", "c@1"]
    after = store.list_packages(PackageFilter(after=("b", 1), limit=2))
    assert [p.reference for p in after] == ["b@2", "c@1"]
    assert store.list_packages(PackageFilter(after=("c", 1))) == []
    with pytest.raises(InvalidInputError):
        PackageFilter(after=("a", -1))


def test_an_expired_token_still_names_its_principal_for_sessions(tmp_path: Path) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    with ArtifactStore.open(
        f"sqlite:///{tmp_path / 'r.db'}", str(tmp_path / "blobs"), clock=clock
    ) as store:
        issued = store.tokens.issue(
            actor="pod", scopes=["package:**:write"], expires_at=dt.timedelta(minutes=1),
            issued_by="test",
        )  # fmt: skip
        clock.advance(dt.timedelta(minutes=2))
        with pytest.raises(AuthenticationError, match="token expired"):
            store.tokens.authenticate(issued.secret)
        principal = store.tokens.authenticate(issued.secret, allow_expired=True)
        assert principal.token_id == issued.token.id
        store.tokens.revoke(issued.token.id)
        with pytest.raises(AuthenticationError, match="token revoked"):
            store.tokens.authenticate(issued.secret, allow_expired=True)


def test_revoking_a_token_ends_the_sessions_it_opened(store: ArtifactStore) -> None:
    issued = store.tokens.issue(
        actor="pod", scopes=["package:**:write"], expires_at=dt.timedelta(hours=1),
        issued_by="test",
    )  # fmt: skip
    session = store.uploads.open(actor="pod", token_id=issued.token.id)
    store.uploads.append(session.id, 0, io.BytesIO(b"abc"))
    other = store.uploads.open(actor="pod", token_id=None)
    store.tokens.revoke(issued.token.id)
    with pytest.raises(UploadUnknownError):
        store.uploads.status(session.id)
    assert store.uploads.status(other.id).state == "open"


def test_conditional_tag_moves(store: ArtifactStore) -> None:
    first = store.put("t", {"f": b"1"})
    second = store.put("t", {"f": b"2"})
    store.tag("t@1", "prod", current=None)
    with pytest.raises(PreconditionFailedError, match="points at blake3:"):
        store.tag("t@2", "prod", current=None)
    with pytest.raises(PreconditionFailedError):
        store.tag("t@2", "prod", current=second.content_address)
    assert store.tag("t@2", "prod", current=first.content_address).version == 2
    with pytest.raises(PreconditionFailedError, match="points at nothing"):
        store.tag("t@2", "beta", current=first.content_address)
    assert store.describe("t:prod").version == 2
