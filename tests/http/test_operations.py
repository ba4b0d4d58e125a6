"""Liveness, readiness, capabilities, request ids and the problem format of routing errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from artifactstore_core import ArtifactStore, Settings
from tests.http.conftest import LiveServer, assert_problem, live_server

pytestmark = pytest.mark.integration


def test_health_needs_no_token_and_no_database(sqlite_gateway: LiveServer) -> None:
    with sqlite_gateway.client() as client:
        response = client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert len(response.headers["x-request-id"]) == 32


def test_ready_checks_database_and_storage(gateway: LiveServer) -> None:
    with gateway.client() as client:
        response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}


def test_ready_answers_503_with_retry_after_when_the_database_is_broken(
    sqlite_store: ArtifactStore,
) -> None:
    with live_server(sqlite_store) as server, server.client() as client:
        assert client.get("/ready").status_code == 200
        sqlite_store.engine.dispose()
        database = Path(str(sqlite_store.engine.url.database))
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        database.write_bytes(b"not a database" * 1000)
        response = client.get("/ready")
        assert client.get("/health").status_code == 200
    body = assert_problem(response, 503, "UNAVAILABLE")
    assert response.headers["retry-after"] == "5"
    assert body["retry_after"] == 5
    assert "database" in body["detail"]


def test_capabilities(sqlite_gateway: LiveServer) -> None:
    with sqlite_gateway.client() as client:
        response = client.get("/v1/")
    body = response.json()
    assert response.status_code == 200
    assert body["digest_algorithms"] == ["blake3", "sha256"]
    assert body["max_single_put_bytes"] > 0
    assert body["anonymous_read"] is False


def test_request_id_is_echoed_when_sane_and_replaced_otherwise(sqlite_gateway: LiveServer) -> None:
    with sqlite_gateway.client() as client:
        assert (
            client.get("/health", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"]
            == "abc-123"
        )
        long = client.get("/health", headers={"X-Request-Id": "a" * 500})
        assert long.headers["x-request-id"] != "a" * 500
        assert len(long.headers["x-request-id"]) == 32
        odd = client.get("/health", headers={"X-Request-Id": "a b;c"})
        assert odd.headers["x-request-id"] != "a b;c"


def test_unknown_route_and_method_are_problems(sqlite_gateway: LiveServer) -> None:
    with sqlite_gateway.client() as client:
        assert_problem(client.get("/v1/nothing-here"), 404, "NOT_FOUND")
        response = client.delete("/health")
        assert_problem(response, 405, "METHOD_NOT_ALLOWED")
        assert "GET" in response.headers["allow"]


def test_problem_types_are_described(sqlite_gateway: LiveServer) -> None:
    with sqlite_gateway.client() as client:
        assert client.get("/v1/problems/digest_invalid").json() == {
            "code": "DIGEST_INVALID", "status": 400, "title": "Digest mismatch",
        }  # fmt: skip
        assert_problem(client.get("/v1/problems/nope"), 404, "NOT_FOUND")


def test_invalid_utf8_in_the_path_is_a_clean_problem(sqlite_gateway: LiveServer) -> None:
    with httpx.Client(base_url=sqlite_gateway.url) as client:
        response = client.get("/v1/packages/%ff%fe")
    assert_problem(response, 400, "INVALID_INPUT")


def test_openapi_document_is_valid(sqlite_gateway: LiveServer) -> None:
    with sqlite_gateway.client() as client:
        document = client.get("/openapi.json").json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    put_file = document["paths"]["/v1/packages/{name}/files/{path}"]["put"]
    assert "application/octet-stream" in put_file["requestBody"]["content"]
    assert "/v1/blobs/uploads/{upload_id}" in document["paths"]
    listing = document["paths"]["/v1/packages"]["get"]["responses"]
    assert "application/problem+json" in listing["4XX"]["content"]
    assert "422" not in listing  # validation errors are 400 problems here


def test_anonymous_requests_need_the_setting(sqlite_store: ArtifactStore) -> None:
    sqlite_store.put("open/data", {"a.txt": b"x"})
    with live_server(sqlite_store) as server, server.client() as client:
        response = client.get("/v1/packages/open%2Fdata")
        assert_problem(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"] == (
            'Bearer realm="artifactstore", error="invalid_token"'
        )
    settings = Settings(http_anonymous_read=True)
    with live_server(sqlite_store, settings=settings) as server, server.client() as client:
        assert client.get("/v1/packages/open%2Fdata").json()["name"] == "open/data"
        assert_problem(
            client.post("/v1/packages/open%2Fdata/holds", json={"reason": "x"}),
            401, "UNAUTHORIZED",
        )  # fmt: skip
