"""``create_app``: the FastAPI application over one ``ArtifactStore``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp

from artifactstore_core.config import Settings, load_settings
from artifactstore_core.store import ArtifactStore
from artifactstore_http import problems
from artifactstore_http.middleware import GatewayMiddleware
from artifactstore_http.routes import (
    blobs,
    evidence,
    operations,
    packages,
    retention,
    tokens,
    uploads,
)
from artifactstore_http.streaming import Bridge, Limits

API_VERSION = "1"


class GatewayApp(FastAPI):
    """FastAPI with ``GatewayMiddleware`` outside everything, so that even an unexpected
    error's 500 carries the request id."""

    limits: Limits

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return GatewayMiddleware(inner, self._body_limit)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document without its default 422 answers: request validation
        errors are 400 problems here (documented by the ``4XX`` response)."""
        if self.openapi_schema is None:
            document = super().openapi()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            self.openapi_schema = document
        return self.openapi_schema

    def _body_limit(self, method: str, path: str) -> int | None:
        if path.startswith("/v1/blobs/uploads"):
            return None  # streamed, bounded by the upload protocol
        if method == "PUT" and path.startswith("/v1/packages/") and "/files/" in path:
            return self.limits.max_single_put_bytes
        return self.limits.max_json_bytes


def create_app(
    store: ArtifactStore | None = None,
    *,
    settings: Settings | None = None,
    limits: Limits | None = None,
) -> FastAPI:
    """The gateway over ``store``; without one, the store is opened from ``settings``
    (``ARTIFACTSTORE_*``) when the server starts and closed when it stops.

    The schema is not migrated here: ``artifactstore serve`` migrates once before it
    starts the workers (``artifactstore migrate`` otherwise).
    """
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if store is not None:
            app.state.store = store
            yield
            return
        opened = await anyio.to_thread.run_sync(
            lambda: ArtifactStore.from_settings(settings, migrate=False)
        )
        app.state.store = opened
        try:
            yield
        finally:
            app.state.store = None
            await anyio.to_thread.run_sync(opened.close)

    app = GatewayApp(
        title="artifact-store",
        version=API_VERSION,
        summary="Content-addressed artifact packages: upload, register, read, retain.",
        lifespan=lifespan,
        responses=problems.OPENAPI_RESPONSES,
    )
    app.limits = limits or Limits()
    app.state.settings = settings
    app.state.store = store
    app.state.bridge = Bridge(app.limits.upload_concurrency, app.limits.upload_queue_seconds)
    problems.install(app)
    for module in (operations, tokens, packages, evidence, blobs, uploads, retention):
        app.include_router(module.router)
    return app
