"""Write endpoints over both store flavours: the small-file shortcut, tags, holds,
retention, tiers, verify, sweeps, schemas."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_http import Limits
from tests.http.conftest import LiveServer, assert_problem, issue_token, live_server

pytestmark = pytest.mark.integration


def content_digest(data: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def test_put_file_registers_a_new_version(gateway: LiveServer, admin_secret: str) -> None:
    data = b"col\n" + b"1\n" * 100_000
    with gateway.client(admin_secret) as client:
        response = client.put(
            "/v1/packages/reports%2Fdaily/files/out/table.csv?kind=report",
            content=data, headers={"Content-Digest": content_digest(data)},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["reference"] == "reports/daily@1"
        assert body["kind"] == "report"
        assert body["actor"] == "alice"
        assert response.headers["location"] == "/v1/packages/reports%2Fdaily@1"
        assert gateway.store.read_bytes("reports/daily@1", "out/table.csv") == data
        again = client.put("/v1/packages/reports%2Fdaily/files/out/table.csv", content=b"v2")
        assert again.json()["version"] == 2
        wrong = client.put(
            "/v1/packages/reports%2Fdaily/files/t.csv", content=b"abc",
            headers={"Content-Digest": content_digest(b"abd")},
        )  # fmt: skip
        body = assert_problem(wrong, 400, "DIGEST_INVALID")
        assert body["expected"] == "sha256:" + hashlib.sha256(b"abd").hexdigest()
        assert body["actual"] == "sha256:" + hashlib.sha256(b"abc").hexdigest()
        md5 = {"Content-Digest": "md5=:x:"}
        assert_problem(
            client.put("/v1/packages/x/files/a", content=b"a", headers=md5), 400, "DIGEST_INVALID"
        )
    assert [p.version for p in gateway.store.list_packages(name="reports/daily")] == [1, 2]
    assert len(list(gateway.store.blobs.iter_addresses())) == 2  # nothing of the refused put


def test_a_batch_of_inline_files_is_one_transaction_all_or_none(
    gateway: LiveServer, admin_secret: str
) -> None:
    """Small files carried in the batch itself (base64) are stored and registered with
    one commit; a package naming blobs and one giving bytes can share a batch."""
    store = gateway.store
    stored = store.put("seed", {"s": b"already stored"}).files[0].blob.content_address

    def inline(data: bytes) -> dict[str, str]:
        return {"content_base64": base64.b64encode(data).decode()}

    packages = [{"name": f"inl/p{i}", "files": {"f.bin": inline(b"%d" % i)}} for i in range(20)]
    packages.append({"name": "inl/ref", "files": {"s": stored}})
    events = len(store.events())
    with gateway.client(admin_secret) as client:
        done = client.post("/v1/packages:batch", json={"packages": packages})
        assert done.status_code == 201, done.text
        assert [p["name"] for p in done.json()["items"]] == [p["name"] for p in packages]
        # One transaction: 21 registrations and 20 blob locations, no event per blob upload.
        assert len(store.events()) - events == 21 + 20
        assert store.read_bytes("inl/p7", record=False) == b"7"
        unknown = [*packages[:3], {"name": "inl/bad", "files": {"x": "blake3:" + "0" * 64}}]
        assert_problem(client.post("/v1/packages:batch", json={"packages": unknown}), 400,
                       "BLOB_UNKNOWN")  # fmt: skip
        mixed = {"name": "inl/mixed", "files": {"a": stored, "b": inline(b"b")}}
        assert_problem(client.post("/v1/packages:batch", json={"packages": [mixed]}), 400,
                       "INVALID_INPUT")  # fmt: skip
        bad = {"name": "inl/b64", "files": {"a": {"content_base64": "not base64!"}}}
        assert_problem(client.post("/v1/packages:batch", json={"packages": [bad]}), 400,
                       "INVALID_INPUT")  # fmt: skip
    assert [p.version for p in store.list_packages(name="inl/p0")] == [1]


def test_tags_with_preconditions(gateway: LiveServer, admin_secret: str) -> None:
    store = gateway.store
    first = store.put("tg/p", {"a": b"1"})
    second = store.put("tg/p", {"a": b"2"})
    with gateway.client(admin_secret) as client:
        created = client.put(
            "/v1/packages/tg%2Fp/tags/prod", json={"version": 1}, headers={"If-None-Match": "*"}
        )
        assert created.status_code == 200, created.text
        assert "prod" in created.json()["tags"]
        exists = client.put(
            "/v1/packages/tg%2Fp/tags/prod", json={"version": 2}, headers={"If-None-Match": "*"}
        )
        assert_problem(exists, 412, "PRECONDITION_FAILED")
        stale = client.put(
            "/v1/packages/tg%2Fp/tags/prod", json={"version": 2},
            headers={"If-Match": f'"{second.content_address}"'},
        )  # fmt: skip
        assert_problem(stale, 412, "PRECONDITION_FAILED")
        moved = client.put(
            "/v1/packages/tg%2Fp/tags/prod", json={"version": 2},
            headers={"If-Match": f'"{first.content_address}"'},
        )  # fmt: skip
        assert moved.status_code == 200
        assert store.describe("tg/p:prod").version == 2
        assert_problem(
            client.put("/v1/packages/tg%2Fp/tags/latest", json={"version": 1}), 400, "INVALID_INPUT"
        )
        assert_problem(
            client.put("/v1/packages/tg%2Fp/tags/x", json={"version": 9}), 404, "PACKAGE_UNKNOWN"
        )
        stale_delete = client.delete(
            "/v1/packages/tg%2Fp/tags/prod", headers={"If-Match": f'"{first.content_address}"'}
        )
        assert_problem(stale_delete, 412, "PRECONDITION_FAILED")
        removed = client.delete(
            "/v1/packages/tg%2Fp/tags/prod", headers={"If-Match": f'"{second.content_address}"'}
        )
        assert removed.status_code == 200 and removed.json()["version"] == 2
        assert "prod" not in removed.json()["tags"]
        assert_problem(client.delete("/v1/packages/tg%2Fp/tags/prod"), 404, "PACKAGE_UNKNOWN")
    assert store.check_views() == []
    store.rebuild_views()  # the removal replays from the log
    assert "prod" not in store.describe("tg/p@2").tags


def test_holds_retention_tier_verify(gateway: LiveServer, admin_secret: str) -> None:
    store = gateway.store
    store.put("rt/p", {"a": b"data"}, retention_class="raw-evidence")
    with gateway.client(admin_secret) as client:
        placed = client.post("/v1/packages/rt%2Fp@1/holds", json={"reason": "audit 7"})
        assert placed.status_code == 201, placed.text
        hold_id = placed.json()["hold_id"]
        assert placed.headers["location"] == f"/v1/packages/rt%2Fp@1/holds/{hold_id}"
        assert store.describe("rt/p@1").on_hold
        released = client.delete(f"/v1/packages/rt%2Fp@1/holds/{hold_id}?reason=done")
        assert released.status_code == 200
        assert released.json()["on_hold"] is False
        assert_problem(
            client.delete(f"/v1/packages/rt%2Fp@1/holds/{hold_id}"), 404, "PACKAGE_UNKNOWN"
        )
        changed = client.put("/v1/packages/rt%2Fp@1/retention", json={"class": "release-evidence"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["retention_class"] == "release-evidence"
        refused = client.put("/v1/packages/rt%2Fp@1/retention", json={"class": "raw-evidence"})
        assert refused.status_code in (400, 409), refused.text
        assert_problem(
            client.post("/v1/packages/rt%2Fp@1/tier", json={"to": "archive"}), 501, "UNSUPPORTED"
        )
        report = client.post("/v1/packages/rt%2Fp@1:verify", json={})
        assert report.status_code == 200
        assert report.json()["ok"] is True
        assert report.json()["bytes_verified"] == 4
        assert_problem(client.post("/v1/packages/rt%2Fp@1:restore"), 400, "INVALID_INPUT")


def test_sweep_dry_run_then_run(gateway: LiveServer, admin_secret: str) -> None:
    gateway.store.put("sw/p", {"a": b"x"}, retention_class="transient")
    later = "2099-01-01T00:00:00Z"
    with gateway.client(admin_secret) as client:
        plan = client.post("/v1/retention/sweeps", json={"dry_run": True, "now": later})
        assert plan.status_code == 200, plan.text
        assert plan.json()["dry_run"] is True
        assert [p["reference"] for p in plan.json()["plan"]["expire"]] == ["sw/p@1"]
        assert gateway.store.describe("sw/p@1").status == "active"
        done = client.post("/v1/retention/sweeps", json={"dry_run": False, "now": later})
        assert done.status_code == 200, done.text
        assert done.json()["expired"] == [str(gateway.store.describe("sw/p@1").id)]
        assert gateway.store.describe("sw/p@1").status == "expired"
        gone = client.get("/v1/packages/sw%2Fp@1/files/a")
        assert_problem(gone, 410, "PACKAGE_EXPIRED")


def test_put_schema_then_metadata_is_checked(gateway: LiveServer, admin_secret: str) -> None:
    schema = {"type": "object", "required": ["rows"], "properties": {"rows": {"type": "integer"}}}
    with gateway.client(admin_secret) as client:
        response = client.put("/v1/schemas/metrics", json=schema)
        assert response.status_code == 200, response.text
        assert response.json()["kind"] == "metrics"
        assert_problem(client.put("/v1/schemas/Bad%20Kind", json=schema), 400, "INVALID_INPUT")
        assert_problem(client.put("/v1/schemas/x", json=[1]), 400, "INVALID_INPUT")
    assert "metrics" in gateway.store.schemas()


def test_put_file_is_bounded_by_max_single_put_bytes(sqlite_store: ArtifactStore) -> None:
    secret = issue_token(sqlite_store)
    before = len(sqlite_store.events())
    with (
        live_server(sqlite_store, limits=Limits(max_single_put_bytes=1000)) as server,
        server.client(secret) as client,
    ):
        sized = client.put("/v1/packages/big/files/a", content=b"x" * 1001)
        assert_problem(sized, 413, "TOO_LARGE")

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"y" * 500

        streamed = client.put("/v1/packages/big/files/a", content=chunks())
        assert_problem(streamed, 413, "TOO_LARGE")
        assert client.put("/v1/packages/big/files/a", content=b"z" * 1000).status_code == 201
    assert len(sqlite_store.events()) == before + 2  # the one put: its blob and package
