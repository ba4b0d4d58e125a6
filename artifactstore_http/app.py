"""The gateway built from ``ARTIFACTSTORE_*`` settings: ``uvicorn artifactstore_http.app:app``.

The store opens when the server starts (not at import) and closes when it stops.
"""

from artifactstore_http.factory import create_app

app = create_app()
