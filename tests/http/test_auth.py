"""The auth matrix: no token, bad, unknown, expired, revoked, wrong scope, name outside the
glob, run binding; token endpoints. Nothing tells a token which names exist outside it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.domain.events import PackageRetrieved
from artifactstore_core.testing.clock import FrozenClock
from tests.http.conftest import LiveServer, assert_problem, issue_token, live_server

pytestmark = pytest.mark.integration

WWW = 'Bearer realm="artifactstore", error="invalid_token"'


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def server(tmp_path: Path, clock: FrozenClock) -> Iterator[LiveServer]:
    store = ArtifactStore.open(
        f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "blobs"), clock=clock
    )
    store.put("team/a", {"f.txt": b"team data"})
    store.put("other/secret", {"f.txt": b"other data"})
    try:
        with live_server(store) as live:
            yield live
    finally:
        store.close()


def _unauthorized(response: object, reason: str) -> None:
    body = assert_problem(response, 401, "UNAUTHORIZED")  # type: ignore[arg-type]
    assert response.headers["www-authenticate"] == WWW  # type: ignore[attr-defined]
    assert reason in body["detail"]


def test_missing_bad_unknown_expired_and_revoked_tokens(
    server: LiveServer, clock: FrozenClock
) -> None:
    store = server.store
    with server.client() as client:
        _unauthorized(client.get("/v1/packages/team%2Fa"), "no access token")
        _unauthorized(
            client.get("/v1/packages/team%2Fa", headers={"Authorization": "Basic eDp5"}),
            "Bearer",
        )  # fmt: skip
    with server.client("asr_short") as client:
        _unauthorized(client.get("/v1/packages/team%2Fa"), "invalid token")
    with server.client("asr_" + "a" * 52) as client:
        _unauthorized(client.get("/v1/packages/team%2Fa"), "invalid token")
    expiring = issue_token(store, "package:**:read", expires_in=dt.timedelta(minutes=5))
    with server.client(expiring) as client:
        assert client.get("/v1/packages/team%2Fa").status_code == 200
        clock.advance(dt.timedelta(minutes=6))
        _unauthorized(client.get("/v1/packages/team%2Fa"), "token expired")
    revoked = issue_token(store, "package:**:read")
    with server.client(revoked) as client:
        assert client.get("/v1/whoami").status_code == 200
        store.tokens.revoke(store.tokens.authenticate(revoked).token_id, actor="admin")
        _unauthorized(client.get("/v1/packages/team%2Fa"), "token revoked")


def test_scopes_deny_and_hide(server: LiveServer) -> None:
    store = server.store
    before = len(store.events())
    reader = issue_token(store, "package:team/**:read")
    with server.client(reader) as client:
        assert client.get("/v1/packages/team%2Fa").status_code == 200
        # Outside the glob: exactly as if the name did not exist.
        hidden = assert_problem(client.get("/v1/packages/other%2Fsecret"), 404, "PACKAGE_UNKNOWN")
        missing = assert_problem(client.get("/v1/packages/other%2Fnone"), 404, "PACKAGE_UNKNOWN")
        assert hidden["detail"].replace("secret", "none") == missing["detail"]
        assert_problem(
            client.get("/v1/packages/other%2Fsecret/files/f.txt"), 404, "PACKAGE_UNKNOWN"
        )
        by_id = str(store.describe("other/secret").id)
        assert_problem(client.get(f"/v1/packages/{by_id}"), 404, "PACKAGE_UNKNOWN")
        # Blobs by digest: readable through a package the token may read, else unknown.
        mine = store.describe("team/a").files[0].blob.content_address
        theirs = store.describe("other/secret").files[0].blob.content_address
        assert client.get(f"/v1/blobs/{mine}").status_code == 200
        assert_problem(client.get(f"/v1/blobs/{theirs}"), 404, "BLOB_UNKNOWN")
        listed = client.get("/v1/packages").json()["items"]
        assert [p["name"] for p in listed] == ["team/a"]
        # Inside the glob without the action: 403 naming the scope.
        denied = assert_problem(
            client.put("/v1/packages/team%2Fb/files/x", content=b"x"), 403, "DENIED"
        )
        assert "'write'" in denied["detail"]
        assert denied["action"] == "write"
        assert_problem(
            client.post("/v1/packages/team%2Fa/holds", json={"reason": "r"}), 403, "DENIED"
        )
        assert_problem(client.post("/v1/retention/sweeps", json={}), 403, "DENIED")
        assert client.head("/v1/blobs/blake3:" + "0" * 64).status_code == 403
        assert_problem(client.get("/v1/events"), 403, "DENIED")
        assert_problem(client.put("/v1/schemas/k", json={}), 403, "DENIED")
    writer = issue_token(store, "package:team/**:write")
    with server.client(writer) as client:
        # Write without read outside the glob: still not found, nothing written.
        assert_problem(
            client.put("/v1/packages/other%2Fsecret/files/x", content=b"x"), 404, "PACKAGE_UNKNOWN"
        )
    assert len(store.events()) == before + 2  # the two tokens issued, nothing else


def test_run_bound_token_registers_for_its_run_only(server: LiveServer) -> None:
    store = server.store
    secret = issue_token(store, "package:team/**:read,write", run_id="run-1")
    with server.client(secret) as client:
        response = client.put("/v1/packages/team%2Fr/files/a.txt", content=b"a")
        assert response.status_code == 201, response.text
        assert response.json()["provenance"]["run_id"] == "run-1"
        assert response.json()["actor"] == "alice"
        # Its reads are recorded for its run too: never for another one.
        path = "/v1/packages/team%2Fr/files/a.txt"
        other = client.get(path, params={"run_id": "run-2"})
        assert "bound to run 'run-1'" in assert_problem(other, 403, "DENIED")["detail"]
        assert client.get(path).content == b"a"
        assert client.get(path, params={"run_id": "run-1"}).content == b"a"
    retrievals = [e.event for e in store.events() if isinstance(e.event, PackageRetrieved)]
    assert [e.run_id for e in retrievals] == ["run-1", "run-1"]


def test_token_endpoints(server: LiveServer) -> None:
    store = server.store
    parent = issue_token(store, "package:team/**:read,write", actor="ci")
    with server.client(parent) as client:
        me = client.get("/v1/whoami").json()
        assert me["actor"] == "ci"
        assert me["scopes"] == ["package:team/**:read,write"]
        child = client.post(
            "/v1/tokens", json={"scopes": ["package:team/a:read"], "ttl_seconds": 600}
        )
        assert child.status_code == 201, child.text
        assert child.headers["cache-control"] == "no-store"
        secret, info = child.json()["secret"], child.json()["token"]
        assert secret.startswith("asr_")
        assert info["parent_id"] == me["token_id"]
        assert "secret" not in info
        wider = client.post("/v1/tokens", json={"scopes": ["package:**:read"]})
        assert_problem(wider, 403, "DENIED")
        listed = client.get("/v1/tokens").json()["items"]
        assert {t["id"] for t in listed} == {me["token_id"], info["id"]}
        with server.client(secret) as child_client:
            assert child_client.get("/v1/packages/team%2Fa").status_code == 200
            revoked = client.delete(f"/v1/tokens/{info['id']}")
            assert revoked.status_code == 200
            assert revoked.json()["status"] == "revoked"
            _unauthorized(child_client.get("/v1/packages/team%2Fa"), "token revoked")
    other = issue_token(store, "package:**:read", actor="bob")
    with server.client(other) as client:
        assert_problem(client.delete(f"/v1/tokens/{me['token_id']}"), 404, "PACKAGE_UNKNOWN")
        assert [t["actor"] for t in client.get("/v1/tokens").json()["items"]] == ["bob"]
