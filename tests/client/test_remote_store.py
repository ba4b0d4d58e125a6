"""``RemoteArtifactStore`` through a live gateway gives what the store itself gives.

Each flavour (SQLite + local blobs, PostgreSQL + S3) runs a real uvicorn on loopback over
a store; the client's answers are compared with the same store's own answers.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from artifactstore_core import errors as e
from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.domain.events import Event, TokenIssued
from artifactstore_core.hashing import hash_bytes
from artifactstore_core.ingest import PutRequest
from artifactstore_core.storage.local import LocalBlobStore
from tests.client.conftest import FAST, LiveServer, issue_token

pytestmark = pytest.mark.integration


def _withheld(event: Event) -> Event:
    return replace(event, secret_sha256="") if isinstance(event, TokenIssued) else event


def _tree(root: Path) -> Path:
    (root / "bundle" / "sub").mkdir(parents=True)
    (root / "bundle" / "report.csv").write_text("a,b\n1,2\n")
    (root / "bundle" / "sub" / "log.txt").write_text("log line\n")
    (root / "bundle" / "empty").write_bytes(b"")
    return root / "bundle"


def test_put_get_list_tag_lineage_and_holds_match_the_store(
    gateway: LiveServer, remote: RemoteArtifactStore, tmp_path: Path
) -> None:
    local = gateway.store
    raw = remote.put("in/raw", b"raw bytes", kind="snapshot", metadata={"rows": 1})
    assert raw == local.describe("in/raw@1")
    report = remote.put(
        "reports/daily",
        _tree(tmp_path),
        inputs=[raw.reference],
        provenance={"run_id": "r-1", "producer": "tests"},
        retention_class="transient",
    )
    assert report == local.describe(report.id)
    assert {f.path for f in report.files} == {"report.csv", "sub/log.txt", "empty"}
    assert report.provenance.inputs == (str(raw.id),)
    assert remote.read_bytes(report, "sub/log.txt") == b"log line\n"
    assert remote.read_bytes("reports/daily", "empty") == b""
    assert remote.get("reports/daily@1") == local.describe("reports/daily@1")

    second = remote.put("reports/daily", {"report.csv": b"a,b\n3,4\n"})
    assert second.version == 2
    assert remote.tag(report.id, "stable") == local.describe("reports/daily@1")
    assert remote.describe("reports/daily:stable").id == report.id
    with pytest.raises(e.PreconditionFailedError):
        remote.tag(second.id, "stable", current=None)  # exists already
    with pytest.raises(e.PreconditionFailedError):
        remote.tag(second.id, "stable", current=second.content_address)
    moved = remote.tag(second.id, "stable", current=report.content_address)
    assert moved == local.describe("reports/daily:stable") and moved.id == second.id
    remote.tag(report.id, "stable")
    remote.tag(report.id, "old")
    with pytest.raises(e.PreconditionFailedError):
        remote.untag("reports/daily", "old", current=second.content_address)
    assert remote.untag("reports/daily", "old", current=report.content_address) == local.describe(
        report.id
    )
    assert "old" not in local.describe(report.id).tags

    assert remote.list_packages() == local.list_packages()
    for filters in ({"name_prefix": "reports/"}, {"tag": "stable"}, {"kind": "snapshot"},
                    {"name": "reports/daily", "limit": 1}, {"run_id": "r-1"}):  # fmt: skip
        assert remote.list_packages(**filters) == local.list_packages(**filters), filters

    assert remote.lineage(report.id) == local.lineage(report.id)
    assert remote.lineage(raw.id, downstream=True) == local.lineage(raw.id, downstream=True)

    hold = remote.place_hold(report.id, reason="audit", kind="operational")
    assert local.describe(report.id).holds == (hold,)
    assert remote.explain(report.id).verdict == local.explain(report.id).verdict
    released = remote.release_hold(report.id, hold.hold_id, reason="done")
    assert released == local.describe(report.id) and not released.holds
    assert remote.schemas() == local.schemas()
    assert [r.sequence for r in remote.events(limit=5)] == [
        r.sequence for r in local.events(limit=5)
    ]
    # The server withholds the secret's hash of a token (the client shows it empty).
    shown = [replace(r, event=_withheld(r.event)) for r in local.events()]
    assert remote.events() == shown and remote.events(since=3) == shown[3:]

    export = tmp_path / "export"
    remote.export("reports/daily@1", export)
    assert (export / "sub" / "log.txt").read_text() == "log line\n"
    assert remote.verify(report.id).ok and remote.verify(report.id).bytes_verified > 0


def test_remote_errors_are_the_core_errors(remote: RemoteArtifactStore) -> None:
    remote.put("known", b"x")
    with pytest.raises(e.NotFoundError, match="nope"):
        remote.describe("nope")
    with pytest.raises(e.InvalidInputError, match="no-such-class"):
        remote.put("p", b"x", retention_class="no-such-class")
    with pytest.raises(e.InvalidInputError):
        remote.put("Bad Name!", b"x")
    with pytest.raises(e.BlobUnknownError) as missing:
        remote.register("p", {"f": hash_bytes(b"never uploaded")})
    assert missing.value.addresses == (hash_bytes(b"never uploaded").content_address,)
    with pytest.raises(e.IntegrityError, match="expected"):
        remote.put("p", {"f": b"abc"}, expected={"f": str(hash_bytes(b"abd").blake3)})
    assert [p.name for p in remote.list_packages()] == ["known"]


def test_without_a_token_or_scope_the_server_says_who_may_not(gateway: LiveServer) -> None:
    anonymous = RemoteArtifactStore(gateway.url, None, retry=FAST)
    with anonymous, pytest.raises(e.AuthenticationError):
        anonymous.list_packages()
    reader = issue_token(gateway.store, "package:**:read")
    with RemoteArtifactStore(gateway.url, reader, retry=FAST) as client:
        with pytest.raises(e.AccessDeniedError) as denied:
            client.put("reports/x", b"x")
        assert denied.value.action == "write"


def test_a_retried_registration_never_makes_a_second_version(remote: RemoteArtifactStore) -> None:
    blob = remote.upload(io.BytesIO(b"payload"))
    first = remote.register("once", {"f": blob}, idempotency_key="k-1")
    again = remote.register("once", {"f": blob.content_address}, idempotency_key="k-1")
    assert again == first and [p.version for p in remote.list_packages(name="once")] == [1]
    with pytest.raises(e.IdempotencyConflictError):
        remote.register("once", {"g": blob}, idempotency_key="k-1")


def test_put_many_is_all_or_none(remote: RemoteArtifactStore) -> None:
    packages = remote.put_many(
        [PutRequest("a", b"1"), PutRequest("a", b"2"), PutRequest("b", b"3")]
    )
    assert [p.reference for p in packages] == ["a@1", "a@2", "b@1"]
    with pytest.raises(e.InvalidInputError, match="nope"):
        remote.put_many([PutRequest("c", b"4"), PutRequest("d", b"5", retention_class="nope")])
    assert [p.name for p in remote.list_packages()] == ["a", "a", "b"]


def test_a_corrupt_blob_on_the_server_fails_the_remote_read_and_verify(
    sqlite_gateway: LiveServer,
) -> None:
    store = sqlite_gateway.store
    with RemoteArtifactStore(sqlite_gateway.url, issue_token(store), retry=FAST) as remote:
        package = remote.put("c", b"original bytes")
        assert isinstance(store.blobs, LocalBlobStore)
        path = store.blobs.path(package.files[0].blob.blake3)
        path.chmod(0o644)
        path.write_bytes(b"tampered bytes")  # same length, other bytes
        with pytest.raises((e.IntegrityError, e.BackendUnavailableError)):
            remote.read_bytes(package)
        result = remote.verify(package.id)
        assert not result.ok and [p.problem for p in result.problems] == ["corrupt"]


def test_many_files_upload_together_and_a_failing_one_registers_nothing(
    remote: RemoteArtifactStore, tmp_path: Path
) -> None:
    files = {f"part/{i:02}.bin": bytes([i]) * (i * 1000) for i in range(40)}
    seen: list[int] = []
    package = remote.put("many", files, progress=seen.append)
    assert sum(seen) == sum(len(v) for v in files.values())
    assert {e.path: e.blob for e in package.files} == {
        path: hash_bytes(data) for path, data in files.items()
    }

    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            raise OSError("the source went away")

    with pytest.raises(OSError, match="went away"):
        remote.put("broken", {**files, "z": Failing()})  # type: ignore[dict-item]
    assert [p.name for p in remote.list_packages()] == ["many"]


def test_small_packages_travel_inside_their_registration(gateway: LiveServer) -> None:
    sent: list[tuple[str, str]] = []
    http = httpx.Client(
        base_url=gateway.url,
        headers={"Authorization": f"Bearer {issue_token(gateway.store)}"},
        event_hooks={"request": [lambda r: sent.append((r.method, r.url.path))]},
    )
    files = {f"f{i}.txt": f"line {i}\n".encode() for i in range(50)}
    with RemoteArtifactStore(gateway.url, client=http, retry=FAST) as client:
        one = client.put("small/one", files)
        assert sent == [("POST", "/v1/packages")]  # one request for 50 files
        big = bytes(range(256)) * (20 * 1024)  # 5 MiB: over the inline budget
        sent.clear()
        both = client.put_many([PutRequest("small/two", b"tiny"), PutRequest("small/big", big)])
    assert sent.count(("POST", "/v1/packages:batch")) == 1 and ("POST", "/v1/packages") not in sent
    assert {p for _, p in sent} == {"/v1/packages:batch", "/v1/blobs/uploads"}
    assert one == gateway.store.describe("small/one")
    assert [gateway.store.read_bytes(p, record=False) for p in both] == [b"tiny", big]
