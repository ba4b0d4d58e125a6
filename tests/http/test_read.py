"""Read endpoints over both store flavours: list, show, download, lineage, retention,
schemas, events."""

from __future__ import annotations

import base64
import hashlib
import os
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from artifactstore_core import ArtifactStore
from tests.http.conftest import LiveServer, assert_problem, issue_token

pytestmark = pytest.mark.integration


def quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def test_list_pages_with_an_opaque_cursor_and_link(gateway: LiveServer, admin_secret: str) -> None:
    store = gateway.store
    for i in range(5):
        store.put(f"team/p{i}", {"a.txt": f"{i}".encode()}, kind="report")
    store.put("team/p1", {"a.txt": b"v2"}, kind="report")
    store.put("other/x", {"a.txt": b"x"})
    seen = []
    with gateway.client(admin_secret) as client:
        url: str | None = "/v1/packages?prefix=team/&limit=2"
        pages = 0
        while url:
            response = client.get(url)
            assert response.status_code == 200, response.text
            body = response.json()
            seen += [item["reference"] for item in body["items"]]
            pages += 1
            if body["next"] is None:
                assert "link" not in response.headers
                url = None
            else:
                link = response.headers["link"]
                assert link.endswith('>; rel="next"')
                url = link[1 : link.index(">")]
                assert f"after={body['next']}" in url
        assert pages == 3
        assert seen == ["team/p0@1", "team/p1@1", "team/p1@2", "team/p2@1", "team/p3@1",
                        "team/p4@1"]  # fmt: skip
        kinds = client.get("/v1/packages", params={"kind": "output"}).json()["items"]
        assert [p["reference"] for p in kinds] == ["other/x@1"]
        assert_problem(client.get("/v1/packages?after=bm9wZQ"), 400, "INVALID_INPUT")
        assert_problem(client.get("/v1/packages?limit=0"), 400, "INVALID_INPUT")


def test_show_has_a_strong_etag_and_answers_304(gateway: LiveServer, admin_secret: str) -> None:
    package = gateway.store.put("show/me", {"a.txt": b"hello"})
    with gateway.client(admin_secret) as client:
        response = client.get("/v1/packages/show%2Fme@1")
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == str(package.id)
        assert body["files"][0]["path"] == "a.txt"
        etag = response.headers["etag"]
        assert etag.startswith(f'"{package.content_address}.') and not etag.startswith("W/")
        again = client.get("/v1/packages/show%2Fme", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        gateway.store.tag("show/me@1", "prod")
        changed = client.get("/v1/packages/show%2Fme", headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert changed.json()["tags"] == ["latest", "prod"]
        assert_problem(client.get("/v1/packages/show%2Fnot"), 404, "PACKAGE_UNKNOWN")
        assert_problem(client.get("/v1/packages/show%2Fme@x"), 400, "INVALID_INPUT")


def test_download_streams_verified_bytes_and_records_the_purpose(
    gateway: LiveServer, admin_secret: str
) -> None:
    data = bytes(range(256)) * 20_000  # ~5 MB, several chunks
    gateway.store.put("dl/data", {"dir/big.bin": data, "small.txt": b"s"})
    with gateway.client(admin_secret) as client:
        response = client.get("/v1/packages/dl%2Fdata/files/dir/big.bin?purpose=audit")
        assert response.status_code == 200, response.text
        assert response.content == data
        assert response.headers["content-length"] == str(len(data))
        assert response.headers["repr-digest"] == (
            "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"
        )
        assert response.headers["etag"].startswith('"blake3:')
        same = client.get("/v1/packages/dl%2Fdata/files/dir%2Fbig.bin")
        assert same.content == data
        assert_problem(client.get("/v1/packages/dl%2Fdata/files/nope.txt"), 404, "PACKAGE_UNKNOWN")
    retrievals = [e for e in gateway.store.events() if e.event.event_type == "PackageRetrieved"]
    assert retrievals[0].event.to_payload()["purpose"] == "audit"
    assert retrievals[0].event.to_payload()["path"] == "dir/big.bin"
    assert retrievals[0].actor == "alice"


def test_download_ranges(gateway: LiveServer, admin_secret: str) -> None:
    data = bytes(range(256)) * 100
    gateway.store.put("rg/data", {"f.bin": data})
    with gateway.client(admin_secret) as client:
        url = "/v1/packages/rg%2Fdata/files/f.bin"
        part = client.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        tail = client.get(url, headers={"Range": "bytes=-10"})
        assert tail.content == data[-10:]
        open_end = client.get(url, headers={"Range": f"bytes={len(data) - 5}-"})
        assert open_end.content == data[-5:]
        beyond = client.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert_problem(beyond, 416, "RANGE_NOT_SATISFIABLE")
        assert beyond.headers["content-range"] == f"bytes */{len(data)}"


def test_lineage_retention_schemas(gateway: LiveServer, admin_secret: str) -> None:
    store = gateway.store
    source = store.put("ln/source", {"a": b"1"})
    store.put("ln/derived", {"b": b"2"}, inputs=[source.reference])
    store.register_schema("metrics", {"type": "object", "required": ["n"]})
    with gateway.client(admin_secret) as client:
        up = client.get("/v1/packages/ln%2Fderived/lineage").json()
        assert [item["related"]["reference"] for item in up["items"]] == ["ln/source@1"]
        down = client.get("/v1/packages/ln%2Fsource/lineage?direction=down").json()
        assert [item["related"]["reference"] for item in down["items"]] == ["ln/derived@1"]
        assert_problem(
            client.get("/v1/packages/ln%2Fsource/lineage?direction=sideways"), 400, "INVALID_INPUT"
        )
        explained = client.get("/v1/packages/ln%2Fsource/retention").json()
        assert explained["reference"] == "ln/source@1"
        assert explained["verdict"]
        schemas = client.get("/v1/schemas").json()["schemas"]
        assert schemas["metrics"]["required"] == ["n"]


def test_events_page_by_sequence(gateway: LiveServer, admin_secret: str) -> None:
    store: ArtifactStore = gateway.store
    for i in range(3):
        store.put(f"ev/p{i}", {"a": b"%d" % i})
    total = len(store.events())
    with gateway.client(admin_secret) as client:
        first = client.get("/v1/events?limit=2")
        body = first.json()
        assert [e["sequence"] for e in body["items"]] == [1, 2]
        assert body["next"] == "2"
        assert first.headers["link"] == '</v1/events?since=2&limit=2>; rel="next"'
        everything = client.get(f"/v1/events?limit={total}").json()
        assert len(everything["items"]) == total
        assert everything["next"] is None
        registered = everything["items"][-1]
        subject = f"{registered['subject_kind']}:{registered['subject_id']}"
        only = client.get("/v1/events", params={"subject": subject}).json()["items"]
        assert {e["subject_id"] for e in only} == {registered["subject_id"]}
        assert_problem(client.get("/v1/events?subject=nocolon"), 400, "INVALID_INPUT")
        issued = [e for e in everything["items"] if e["event_type"] == "TokenIssued"]
        assert issued and all("secret_sha256" not in e["payload"] for e in issued)


def test_a_corrupt_blob_aborts_the_download(sqlite_gateway: LiveServer) -> None:
    store = sqlite_gateway.store
    data = bytes(range(256)) * 8192  # 2 MiB: more than one piece
    package = store.put("bad/blob", {"f.bin": data})
    blob = package.files[0].blob
    path = Path(store.blobs.uri(blob.blake3).removeprefix("file://"))
    corrupt = bytearray(path.read_bytes())
    corrupt[-1] ^= 0xFF  # same size: only the digest at the end can tell
    path.chmod(0o644)
    path.write_bytes(bytes(corrupt))
    secret = issue_token(store)
    with sqlite_gateway.client(secret) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/v1/packages/bad%2Fblob/files/f.bin")
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"/v1/blobs/{blob.content_address}")
        # A range is not verified (a part has no digest) and is served.
        part = client.get(f"/v1/blobs/{blob.content_address}", headers={"Range": "bytes=0-9"})
        assert part.content == data[:10]


def _open_descriptors(path: Path) -> int:
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if Path(os.readlink(fd)) == path:
                count += 1
        except OSError:
            continue
    return count


def test_a_download_the_client_abandons_closes_its_blob(sqlite_gateway: LiveServer) -> None:
    store = sqlite_gateway.store
    # Larger than every buffer between the server and the client (32 MiB socket buffers).
    package = store.put("gone/client", {"f.bin": b"x" * (256 * 1024 * 1024)})
    path = Path(store.blobs.uri(package.files[0].blob.blake3).removeprefix("file://"))
    secret = issue_token(store)
    with (
        sqlite_gateway.client(secret) as client,
        client.stream("GET", "/v1/packages/gone%2Fclient/files/f.bin") as response,
    ):
        assert response.status_code == 200
        # Keep the iterator: dropping it closes httpcore's stream, and so the connection.
        chunks = response.iter_raw(65536)
        next(chunks)
        deadline = time.monotonic() + 10  # the server's worker thread holds it open
        while (held := _open_descriptors(path)) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held == 1
    # The connection is closed with most of the body unsent.
    deadline = time.monotonic() + 10
    while _open_descriptors(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_descriptors(path) == 0
