"""A statement read through a registry server's client is the one the registry itself
gives, byte for byte (``artifactstore --server ... evidence statement``)."""

from __future__ import annotations

import pytest

from artifactstore_core import ArtifactStore
from artifactstore_core.client import RemoteArtifactStore
from artifactstore_core.evidence.statements import statement_for
from tests.http.conftest import issue_token, live_server, sqlite_store

__all__ = ["sqlite_store"]

pytestmark = pytest.mark.integration


def test_a_remote_statement_is_byte_identical(sqlite_store: ArtifactStore) -> None:
    raw = sqlite_store.put("evidence/raw", {"raw.log": b"x"})
    package = sqlite_store.put(
        "evidence/summary",
        {"s.json": b"{}"},
        inputs=[raw.reference],
        provenance={"code_version": "ab" * 20, "run_id": "r-1"},
    )
    local = statement_for(sqlite_store, package.reference, builder_id="urn:b", origin="o")
    with (
        live_server(sqlite_store) as server,
        RemoteArtifactStore(server.url, issue_token(sqlite_store)) as remote,
    ):
        assert statement_for(remote, package.reference, builder_id="urn:b", origin="o") == local
