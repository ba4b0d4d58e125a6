"""A live gateway (tests/http/conftest.py) and a ``RemoteArtifactStore`` on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from artifactstore_core.client import RemoteArtifactStore, RetryPolicy
from tests.http import conftest as http
from tests.http.conftest import LiveServer, issue_token, live_server

__all__ = ["FAST", "LiveServer", "issue_token", "live_server"]

# The gateway fixtures, shared with the HTTP tests.
gateway_store = http.gateway_store
gateway = http.gateway
sqlite_store = http.sqlite_store
sqlite_gateway = http.sqlite_gateway

#: Quick retries: tests cut connections on purpose.
FAST = RetryPolicy(attempts=8, backoff=0.05, max_wait=0.5)


@pytest.fixture
def remote(gateway: LiveServer) -> Iterator[RemoteArtifactStore]:
    """A client with an ``admin`` token on each gateway flavour."""
    with RemoteArtifactStore(gateway.url, issue_token(gateway.store), retry=FAST) as client:
        yield client
