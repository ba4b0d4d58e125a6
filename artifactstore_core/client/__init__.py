"""The Python client of the HTTP API: ``RemoteArtifactStore``, the verbs of ``ArtifactStore``
over ``artifactstore serve``.

Needs the ``client`` extra (httpx), imported when a client is built
(``MissingExtraError`` names the extra otherwise). ``from_environment`` builds one from
``ARTIFACTSTORE_SERVER_URL`` and ``ARTIFACTSTORE_TOKEN``.
"""

from __future__ import annotations

import os

from artifactstore_core.client._problems import CODES
from artifactstore_core.client._transport import RetryPolicy
from artifactstore_core.client.remote import RemoteArtifactStore
from artifactstore_core.errors import ConfigurationError

SERVER_URL_VARIABLE = "ARTIFACTSTORE_SERVER_URL"
TOKEN_VARIABLE = "ARTIFACTSTORE_TOKEN"


def from_environment() -> RemoteArtifactStore:
    """The client of the server ``ARTIFACTSTORE_SERVER_URL`` names, with ``ARTIFACTSTORE_TOKEN``."""
    url = os.environ.get(SERVER_URL_VARIABLE)
    if not url:
        raise ConfigurationError(f"{SERVER_URL_VARIABLE} is not set")
    return RemoteArtifactStore(url, os.environ.get(TOKEN_VARIABLE) or None)


__all__ = [
    "CODES",
    "SERVER_URL_VARIABLE",
    "TOKEN_VARIABLE",
    "RemoteArtifactStore",
    "RetryPolicy",
    "from_environment",
]
