"""Upload sessions, blobs and registration over both store flavours."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import httpx
import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.testing.clock import FrozenClock
from artifactstore_http import Limits
from tests.http.conftest import LiveServer, assert_problem, issue_token, live_server

pytestmark = [
    pytest.mark.integration,
    # An abandoned chunk must be disposed of cleanly (no error from a finaliser later).
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

CHUNK = 1024 * 1024


def digests(data: bytes) -> list[tuple[str, str]]:
    return [
        ("digest", f"blake3:{blake3.blake3(data).hexdigest()}"),
        ("digest", f"sha256:{hashlib.sha256(data).hexdigest()}"),
    ]


def upload(client: httpx.Client, data: bytes, chunk: int = CHUNK) -> str:
    """Upload ``data`` through a session in chunks; the blob's address."""
    opened = client.post("/v1/blobs/uploads")
    assert opened.status_code == 202, opened.text
    location = opened.headers["location"]
    for start in range(0, len(data), chunk):
        part = data[start : start + chunk]
        response = client.patch(
            location, content=part,
            headers={"Content-Range": f"{start}-{start + len(part) - 1}"},
        )  # fmt: skip
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{start + len(part) - 1}"
    done = client.put(location, params=digests(data))
    assert done.status_code == 201, done.text
    address: str = done.json()["content_address"]
    return address


def test_chunked_upload_blob_reads_and_registration(gateway: LiveServer, admin_secret: str) -> None:
    data = bytes(range(256)) * (3 * 4096 + 17)  # a little over 3 MiB
    with gateway.client(admin_secret) as client:
        opened = client.post("/v1/blobs/uploads")
        assert opened.status_code == 202
        assert opened.headers["range"] == "0-0"
        location = opened.headers["location"]
        assert location.startswith("/v1/blobs/uploads/")
        first = client.patch(
            location, content=data[:CHUNK], headers={"Content-Range": f"0-{CHUNK - 1}"}
        )
        assert first.status_code == 202, first.text
        status = client.get(location)
        assert status.status_code == 204
        assert status.headers["range"] == f"0-{CHUNK - 1}"
        # Out of order: a gap, then an overlap.
        gap = client.patch(
            location, content=b"x", headers={"Content-Range": f"{CHUNK + 5}-{CHUNK + 5}"}
        )
        body = assert_problem(gap, 416, "BLOB_UPLOAD_INVALID")
        assert body["received"] == CHUNK
        assert gap.headers["range"] == f"0-{CHUNK - 1}"
        overlap = client.patch(location, content=b"xy", headers={"Content-Range": "10-11"})
        assert_problem(overlap, 416, "BLOB_UPLOAD_INVALID")
        # No Content-Range: appended where the session stands.
        rest = client.patch(location, content=data[CHUNK:-100])
        assert rest.status_code == 202, rest.text
        # The last bytes come with the commit.
        done = client.put(location, params=digests(data), content=data[-100:])
        assert done.status_code == 201, done.text
        address = done.json()["content_address"]
        assert done.headers["location"] == f"/v1/blobs/{address}"
        assert done.json()["size"] == len(data)
        again = client.put(location, params=digests(data))
        assert again.status_code == 201
        assert again.headers["location"] == done.headers["location"]

        head = client.head(f"/v1/blobs/{address}")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(data))
        assert head.headers["etag"] == f'"{address}"'
        sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert head.headers["repr-digest"] == f"sha-256=:{sha}:"
        sha_address = f"sha256:{hashlib.sha256(data).hexdigest()}"
        assert client.head(f"/v1/blobs/{sha_address}").status_code == 200
        assert client.head("/v1/blobs/blake3:" + "0" * 64).status_code == 404
        whole = client.get(f"/v1/blobs/{address}")
        assert whole.content == data
        assert "immutable" in whole.headers["cache-control"]
        part = client.get(f"/v1/blobs/{address}", headers={"Range": "bytes=5-9"})
        assert part.status_code == 206
        assert part.content == data[5:10]
        assert (
            client.get(
                f"/v1/blobs/{address}", headers={"If-None-Match": f'"{address}"'}
            ).status_code
            == 304
        )

        registration = {
            "name": "models/churn", "kind": "report",
            "files": {"model.bin": {"digest": address, "size": len(data)}, "copy.bin": sha_address},
            "metadata": {"auc": 0.9}, "provenance": {"run_id": "r1"},
        }  # fmt: skip
        key = {"Idempotency-Key": "run-r1-model"}
        created = client.post("/v1/packages", json=registration, headers=key)
        assert created.status_code == 201, created.text
        package = created.json()
        assert created.headers["location"] == "/v1/packages/models%2Fchurn@1"
        assert created.headers["etag"].startswith(f'"{package["content_address"]}.')
        retried = client.post("/v1/packages", json=registration, headers=key)
        assert retried.json()["id"] == package["id"]
        changed = client.post(
            "/v1/packages", json={**registration, "metadata": {"auc": 0.1}}, headers=key
        )
        assert_problem(changed, 409, "IDEMPOTENCY_CONFLICT")
        fetched = client.get("/v1/packages/models%2Fchurn@1/files/model.bin")
        assert fetched.content == data
    assert [p.version for p in gateway.store.list_packages(name="models/churn")] == [1]


def test_upload_errors(gateway: LiveServer, admin_secret: str) -> None:
    data = b"some bytes" * 1000
    with gateway.client(admin_secret) as client:
        unknown = "/v1/blobs/uploads/00000000-0000-0000-0000-000000000000"
        assert_problem(client.patch(unknown, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
        assert_problem(client.get("/v1/blobs/uploads/not-a-uuid"), 404, "BLOB_UPLOAD_UNKNOWN")
        location = client.post("/v1/blobs/uploads").headers["location"]
        client.patch(location, content=data)
        wrong = [("digest", "sha256:" + "1" * 64)]
        assert_problem(client.put(location, params=wrong), 400, "DIGEST_INVALID")
        assert_problem(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")  # cancelled
        location = client.post("/v1/blobs/uploads").headers["location"]
        client.patch(location, content=data)
        sized = client.put(location, params=[*digests(data), ("size", str(len(data) + 1))])
        body = assert_problem(sized, 400, "SIZE_INVALID")
        assert body["expected"] == len(data) + 1
        assert_problem(client.put(location), 404, "BLOB_UPLOAD_UNKNOWN")
        location = client.post("/v1/blobs/uploads").headers["location"]
        assert_problem(client.put(location), 400, "DIGEST_INVALID")  # no digest given
        assert client.delete(location).status_code == 204
        assert_problem(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
        mono = client.post("/v1/blobs/uploads", params=digests(data), content=data)
        assert mono.status_code == 201, mono.text
        assert mono.headers["location"] == f"/v1/blobs/blake3:{blake3.blake3(data).hexdigest()}"
        bad_mono = client.post("/v1/blobs/uploads", params=digests(b"other"), content=data)
        assert_problem(bad_mono, 400, "DIGEST_INVALID")
        short = client.post("/v1/blobs/uploads").headers["location"]

        def fewer() -> Iterator[bytes]:
            yield b"abc"

        cut = client.patch(short, content=fewer(), headers={"Content-Range": "0-9"})
        assert_problem(cut, 400, "SIZE_INVALID")
        assert client.get(short).headers["range"] == "0-0"


def test_registration_errors_and_batches(gateway: LiveServer, admin_secret: str) -> None:
    missing = "blake3:" + "2" * 64
    with gateway.client(admin_secret) as client:
        address = upload(client, b"payload")
        unknown = client.post("/v1/packages", json={"name": "r/x", "files": {"a": missing}})
        body = assert_problem(unknown, 400, "BLOB_UNKNOWN")
        assert body["errors"] == [{"code": "BLOB_UNKNOWN", "digest": missing}]
        sized = client.post(
            "/v1/packages", json={"name": "r/x", "files": {"a": {"digest": address, "size": 3}}}
        )
        assert_problem(sized, 400, "SIZE_INVALID")
        assert_problem(
            client.post("/v1/packages", json={"name": "r/x", "files": {"../a": address}}),
            400, "INVALID_INPUT",
        )  # fmt: skip
        assert_problem(
            client.post("/v1/packages", json={"name": "r/x", "files": {}, "extra": 1}),
            400, "INVALID_INPUT",
        )  # fmt: skip
        client.put("/v1/schemas/metrics", json={"type": "object", "required": ["rows"]})
        violation = client.post(
            "/v1/packages", json={"name": "r/m", "kind": "metrics", "files": {"a": address}}
        )
        assert_problem(violation, 422, "SCHEMA_VIOLATION")
        batch = {"packages": [{"name": "b/one", "files": {"a": address}},
                              {"name": "b/two", "files": {"a": missing}}]}  # fmt: skip
        assert_problem(client.post("/v1/packages:batch", json=batch), 400, "BLOB_UNKNOWN")
        assert client.get("/v1/packages?prefix=b/").json()["items"] == []
        batch["packages"][1]["files"] = {"a": address}
        done = client.post("/v1/packages:batch", json=batch)
        assert done.status_code == 201, done.text
        assert [p["reference"] for p in done.json()["items"]] == ["b/one@1", "b/two@1"]


def test_run_bound_registration(gateway: LiveServer) -> None:
    gateway.store.put("secret/x", {"f": b"not yours"})
    secret = issue_token(gateway.store, "package:runs/**:read,write", run_id="run-7")
    with gateway.client(secret) as client:
        address = upload(client, b"bound")
        other = client.post(
            "/v1/packages",
            json={"name": "runs/a", "files": {"f": address}, "provenance": {"run_id": "run-8"}},
        )
        denied = assert_problem(other, 403, "DENIED")
        assert "run-7" in denied["detail"]
        own = client.post("/v1/packages", json={"name": "runs/a", "files": {"f": address}})
        assert own.status_code == 201
        assert own.json()["provenance"]["run_id"] == "run-7"
        outside = client.post("/v1/packages", json={"name": "elsewhere", "files": {"f": address}})
        assert_problem(outside, 404, "PACKAGE_UNKNOWN")
        hidden = client.post(
            "/v1/packages", json={"name": "runs/b", "files": {"f": address}, "inputs": ["secret/x"]}
        )
        missing = client.post(
            "/v1/packages", json={"name": "runs/b", "files": {"f": address}, "inputs": ["secret/y"]}
        )
        assert_problem(hidden, 404, "PACKAGE_UNKNOWN")
        assert assert_problem(missing, 404, "PACKAGE_UNKNOWN")["detail"] == hidden.json()[
            "detail"
        ].replace("secret/x", "secret/y")
    assert gateway.store.list_packages(name="elsewhere") == []


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def timed(tmp_path: Path, clock: FrozenClock) -> Iterator[LiveServer]:
    store = ArtifactStore.open(
        f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "blobs"), clock=clock
    )
    try:
        with live_server(store) as server:
            yield server
    finally:
        store.close()


def test_sessions_outlive_their_token_but_not_its_revocation(
    timed: LiveServer, clock: FrozenClock
) -> None:
    store = timed.store
    short = issue_token(store, "package:**:write", actor="pod", expires_in=dt.timedelta(minutes=5))
    sibling = issue_token(
        store, "package:**:write", actor="pod", expires_in=dt.timedelta(minutes=5)
    )
    stranger = issue_token(store, "package:**:admin", actor="mallory")
    data = b"z" * 1000
    with timed.client(short) as client:
        location = client.post("/v1/blobs/uploads").headers["location"]
        assert client.patch(location, content=data[:500]).status_code == 202
        clock.advance(dt.timedelta(minutes=10))
        # The opener's token expired mid-upload: its session still takes it.
        assert client.patch(location, content=data[500:]).status_code == 202
        assert_problem(client.post("/v1/blobs/uploads"), 401, "UNAUTHORIZED")
        assert_problem(client.get("/v1/whoami"), 401, "UNAUTHORIZED")
    with timed.client(sibling) as client:  # expired, and not the opener
        assert_problem(client.get(location), 401, "UNAUTHORIZED")
    with timed.client(stranger) as client:  # another actor: the session does not exist
        assert_problem(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    with timed.client(short) as client:
        assert client.put(location, params=digests(data)).status_code == 201
        second = issue_token(store, "package:**:write", actor="pod")
        with timed.client(second) as other:
            location = other.post("/v1/blobs/uploads").headers["location"]
            store.tokens.revoke(store.tokens.authenticate(second).token_id)
            assert_problem(other.patch(location, content=b"x"), 401, "UNAUTHORIZED")
        fresh = issue_token(store, "package:**:write", actor="pod")
        with timed.client(fresh) as same_actor:  # revocation ended the session
            assert_problem(same_actor.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("queue_seconds", [0.0, 0.2, 30.0])
def test_upload_slots_are_bounded_an_upload_waits_for_one_then_gets_429(
    sqlite_store: ArtifactStore, queue_seconds: float
) -> None:
    """A request finding every slot taken waits for one (a short upload behind a long one
    succeeds), and only past ``upload_queue_seconds`` gets 429."""
    secret = issue_token(sqlite_store)
    release = threading.Event()
    started = threading.Event()

    def slow() -> Iterator[bytes]:
        yield b"a" * 1000
        started.set()
        release.wait(30)
        yield b"b" * 1000

    limits = Limits(upload_concurrency=1, upload_queue_seconds=queue_seconds)
    with (
        live_server(sqlite_store, limits=limits) as server,
        server.client(secret) as first,
        server.client(secret) as second,
    ):
        location = first.post("/v1/blobs/uploads").headers["location"]
        result: dict[str, httpx.Response] = {}
        worker = threading.Thread(
            target=lambda: result.setdefault("r", first.patch(location, content=slow()))
        )
        worker.start()
        assert started.wait(30)
        admission = server.app.state.bridge.admission
        deadline = time.monotonic() + 30
        while admission.borrowed_tokens < 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # the first upload is past authentication, inside the bridge
        if queue_seconds < 1:
            busy = second.post("/v1/blobs/uploads", params=digests(b"x"), content=b"x")
            body = assert_problem(busy, 429, "TOOMANYREQUESTS")
            assert busy.headers["retry-after"] == "1"
            assert body["retry_after"] == 1
        else:  # the slot frees within the wait: the queued upload goes through
            threading.Timer(0.5, release.set).start()
            queued = second.post("/v1/blobs/uploads", params=digests(b"y"), content=b"y")
            assert queued.status_code == 201, queued.text
        release.set()
        worker.join(30)
        assert result["r"].status_code == 202
        assert result["r"].headers["range"] == "0-1999"
        ok = second.post("/v1/blobs/uploads", params=digests(b"x"), content=b"x")
        assert ok.status_code == 201
