"""artifact-store's HTTP gateway: a thin FastAPI consumer of ``artifactstore_core``.

Install the ``server`` extra and start it with ``artifactstore serve``; build an app over
your own store with ``create_app(store)``. docs/http.md describes the protocol.
"""

from artifactstore_http.factory import create_app
from artifactstore_http.streaming import Limits

__all__ = ["Limits", "create_app"]
