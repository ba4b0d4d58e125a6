"""artifact-store's HTTP gateway: a thin FastAPI consumer of ``artifactstore_core``.

Install the ``server`` extra and start it with ``artifactstore serve``.
"""
