"""``artifactstore serve``: the HTTP gateway under uvicorn (the ``server`` extra).

The core never imports the gateway: this command migrates the registry once, then
replaces itself with ``python -m uvicorn artifactstore_http.app:app``, whose workers
each open the store from the same ``ARTIFACTSTORE_*`` settings.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import click

from artifactstore_core import migrate as migrations
from artifactstore_core.cli._context import CliContext, pass_context
from artifactstore_core.errors import MissingExtraError

APP = "artifactstore_http.app:app"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes (uvicorn's process manager).")  # fmt: skip
@click.option("--limit-concurrency", type=click.IntRange(1), default=None,
              help="Connections per worker before it answers 503.")  # fmt: skip
@click.option("--proxy-headers", is_flag=True,
              help="Trust X-Forwarded-* from --forwarded-allow-ips (behind a proxy).")  # fmt: skip
@click.option("--forwarded-allow-ips", default=None, help="Proxies trusted for --proxy-headers.")
@pass_context
def serve(
    ctx: CliContext,
    host: str,
    port: int,
    workers: int,
    limit_concurrency: int | None,
    proxy_headers: bool,
    forwarded_allow_ips: str | None,
) -> None:
    """Serve the HTTP gateway (docs/http.md) until interrupted."""
    ctx.require_local()
    for module in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError("artifactstore serve", "server", module)
    settings = ctx.settings
    migrations.migrate(settings.database_url)
    # The workers read settings from the environment: pass on what options changed.
    os.environ.update(
        ARTIFACTSTORE_DATABASE_URL=settings.database_url,
        ARTIFACTSTORE_STORAGE_URL=settings.storage_url,
        ARTIFACTSTORE_ACTOR=settings.actor,
    )
    argv = [sys.executable, "-m", "uvicorn", APP, "--host", host, "--port", str(port),
            "--workers", str(workers), "--timeout-graceful-shutdown", "30", "--no-server-header",
            "--proxy-headers" if proxy_headers else "--no-proxy-headers"]  # fmt: skip
    if limit_concurrency is not None:
        argv += ["--limit-concurrency", str(limit_concurrency)]
    if forwarded_allow_ips is not None:
        argv += ["--forwarded-allow-ips", forwarded_allow_ips]
    click.echo(f"serving {settings.database_url} on http://{host}:{port} ({workers} worker(s))")
    sys.stdout.flush()
    os.execv(sys.executable, argv)


COMMANDS = (serve,)
