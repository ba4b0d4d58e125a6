"""The outermost ASGI layer: request ids, path segments as the client encoded them, and
bounded request bodies for JSON routes.

Package names contain ``/``, so a name travels as one URL-encoded path segment
(``reports%2Fdaily``). Servers decode ``%2F`` before routing; this layer rebuilds the
path from ``raw_path`` with each segment decoded and ``%``/``/`` inside it re-escaped, so
routing sees the client's segments and ``segment()`` gives a route its decoded value.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from artifactstore_http.problems import PROBLEM_JSON

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def segment(value: str) -> str:
    """The decoded value of a path parameter routed by ``GatewayMiddleware``."""
    return urllib.parse.unquote(value)


def new_request_id(incoming: str | None) -> str:
    """The client's ``X-Request-Id`` if it is short and plain, else a fresh one."""
    if incoming is not None and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def _routing_path(raw: bytes) -> str:
    """``raw`` with each segment decoded (UTF-8, strictly) and ``%`` and ``/`` re-escaped."""
    parts = []
    for part in raw.split(b"/"):
        text = urllib.parse.unquote_to_bytes(part).decode("utf-8")
        parts.append(text.replace("%", "%25").replace("/", "%2F"))
    return "/".join(parts)


class GatewayMiddleware:
    """Request id, routing path and JSON body bound; ``body_limit(method, path)`` says how
    many body bytes a request may carry (``None``: the route streams and bounds itself)."""

    def __init__(self, app: ASGIApp, body_limit: Callable[[str, str], int | None]) -> None:
        self.app = app
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", ())}
        incoming = headers.get("x-request-id")
        rid = new_request_id(incoming.decode("latin-1") if incoming is not None else None)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *(h for h in message["headers"] if h[0].lower() != b"x-request-id"),
                    (b"x-request-id", rid.encode()),
                ]
            await send(message)

        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        try:
            scope["path"] = _routing_path(raw.partition(b"?")[0])
        except UnicodeDecodeError:
            await _problem(send_with_id, rid, 400, "INVALID_INPUT", "the URL path is not UTF-8")
            return
        limit = self.body_limit(scope["method"], scope["path"])
        if limit is not None:
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _problem(
                    send_with_id, rid, 413, "TOO_LARGE",
                    f"request body over the limit of {limit} bytes for this route",
                )  # fmt: skip
                return
            receive = _bounded(receive, limit)
        await self.app(scope, receive, send_with_id)


def _bounded(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(
                    413, f"request body over the limit of {limit} bytes for this route"
                )
        return message

    return bounded


async def _problem(send: Send, rid: str, status: int, code: str, detail: str) -> None:
    body = json.dumps(
        {"type": f"/v1/problems/{code.lower()}", "title": code.replace("_", " ").capitalize(),
         "status": status, "detail": detail, "code": code, "instance": rid}
    ).encode()  # fmt: skip
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
