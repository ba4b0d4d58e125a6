"""Hostile input: encoded ``..`` and absolute paths, header injection, huge and deep JSON,
invalid UTF-8. Each gets a clean problem and writes nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.http.conftest import LiveServer, assert_problem, issue_token

pytestmark = pytest.mark.integration


@pytest.fixture
def secret(sqlite_gateway: LiveServer) -> str:
    return issue_token(sqlite_gateway.store)


def _events(server: LiveServer) -> int:
    return len(server.store.events())


@pytest.mark.parametrize(
    "url",
    [
        "/v1/packages/..%2F..%2Fetc/files/x",
        "/v1/packages/%2E%2E/files/x",
        "/v1/packages/%2Fabs/files/x",
        "/v1/packages/ok/files/%2E%2E/evil",
        "/v1/packages/ok/files/a/%2E%2E/%2E%2E/evil",
        "/v1/packages/ok/files/%2Fetc%2Fpasswd",
        "/v1/packages/ok/files/a%5Cb",
        "/v1/packages/ok/files/a%00b",
        "/v1/packages/bad%0D%0ASet-Cookie:%20x=1/files/a",
    ],
)
def test_hostile_names_and_paths_are_refused(
    sqlite_gateway: LiveServer, secret: str, url: str
) -> None:
    before = _events(sqlite_gateway)
    with sqlite_gateway.client(secret) as client:
        response = client.put(url, content=b"data")
    assert_problem(response, 400, "INVALID_INPUT")
    assert "set-cookie" not in response.headers
    assert _events(sqlite_gateway) == before
    assert list(sqlite_gateway.store.blobs.iter_addresses()) == []


def _raw(server: LiveServer, request: bytes) -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_header_injection_through_the_request_id_is_dropped(sqlite_gateway: LiveServer) -> None:
    answer = _raw(
        sqlite_gateway,
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rSet-Cookie: y\r\n"
        b"Connection: close\r\n\r\n",
    )
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert b"set-cookie" not in head
    assert head.startswith(b"http/1.1 400") or b"x-request-id: a\r" not in head


def test_raw_dot_segments_in_the_request_line(sqlite_gateway: LiveServer, secret: str) -> None:
    before = _events(sqlite_gateway)
    answer = _raw(
        sqlite_gateway,
        b"PUT /v1/packages/x/files/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + secret.encode() + b"\r\nContent-Length: 1\r\n"
        b"Connection: close\r\n\r\nx",
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"code":"INVALID_INPUT"' in answer
    assert _events(sqlite_gateway) == before


def test_huge_json_is_413_with_and_without_a_length(
    sqlite_gateway: LiveServer, secret: str
) -> None:
    before = _events(sqlite_gateway)
    big = b'{"type": "object", "description": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    with sqlite_gateway.client(secret) as client:
        sized = client.put(
            "/v1/schemas/huge", content=big, headers={"Content-Type": "application/json"}
        )
        assert_problem(sized, 413, "TOO_LARGE")

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(big), 1024 * 1024):
                yield big[i : i + 1024 * 1024]

        streamed = client.put(
            "/v1/schemas/huge", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert_problem(streamed, 413, "TOO_LARGE")
    assert _events(sqlite_gateway) == before


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
        b'{"type": "object", "title": "\xff\xfe"}',
        b'{"type": ',
        b"\x00\x01\x02",
    ],
    ids=["deep-array", "deep-object", "invalid-utf8", "truncated", "binary"],
)
def test_malformed_json_is_a_clean_400(
    sqlite_gateway: LiveServer, secret: str, body: bytes
) -> None:
    before = _events(sqlite_gateway)
    with sqlite_gateway.client(secret) as client:
        response = client.put(
            "/v1/schemas/kind", content=body, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 400, "INVALID_INPUT")
        registration = client.post(
            "/v1/packages", content=body, headers={"Content-Type": "application/json"}
        )
        assert_problem(registration, 400, "INVALID_INPUT")
    assert _events(sqlite_gateway) == before


def test_deep_metadata_inside_valid_json_is_refused_by_the_core(
    sqlite_gateway: LiveServer, secret: str
) -> None:
    deep: object = 1
    for _ in range(200):
        deep = {"k": deep}
    before = _events(sqlite_gateway)
    with sqlite_gateway.client(secret) as client:
        response = client.put("/v1/schemas/deep", json={"type": "object", "properties": deep})
    assert_problem(response, 400, "INVALID_INPUT")
    assert _events(sqlite_gateway) == before
