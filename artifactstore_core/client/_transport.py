"""HTTP transport of the client: auth, retries with backoff, problem+json to typed errors.

One ``Transport`` wraps one ``httpx.Client``. ``request`` retries what is safe to repeat:
idempotent methods (GET, HEAD, PUT, DELETE) and POSTs that carry an ``Idempotency-Key``
(or that the caller marks ``idempotent``) on connection errors, 5xx and 429; any other
POST only when the request cannot have reached the server (a refused connection) or the
server refused it before doing anything (429, 503). Waits grow exponentially with jitter
and honour ``Retry-After``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from artifactstore_core.client._problems import error_from
from artifactstore_core.errors import BackendUnavailableError, MissingExtraError

if TYPE_CHECKING:
    import httpx

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Statuses a server answers before doing any work: always safe to repeat.
_REFUSED = frozenset({429, 503})
#: Server errors worth repeating for idempotent requests (500 is a bug or an integrity
#: failure, 501 never changes).
_TRANSIENT = frozenset({502, 503, 504, 429})


def import_httpx() -> Any:
    """The ``httpx`` module, or ``MissingExtraError`` naming the ``client`` extra."""
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise MissingExtraError("the remote client", "client", "httpx") from exc
    return httpx


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: ``attempts`` in all, waits from ``backoff``
    seconds doubling up to ``max_wait``; a ``Retry-After`` longer than ``max_wait`` is
    still honoured up to ``max_retry_after``."""

    attempts: int = 6
    backoff: float = 0.2
    max_wait: float = 10.0
    max_retry_after: float = 120.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.backoff * 2.0 ** (attempt - 1), self.max_wait)
        return base / 2 + random.uniform(0, base / 2)


def retry_after(value: str | None, now: Callable[[], dt.datetime]) -> float | None:
    """Seconds of a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now()).total_seconds())


class Transport:
    """Requests to one server with a bearer token; errors become the core's typed errors."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.httpx = import_httpx()
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": "artifactstore-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client: httpx.Client = client or self.httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=self.httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
        )
        self.retry = retry or RetryPolicy()
        self.sleep = sleep

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        ok: tuple[int, ...] = (),
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request (retrying per the policy); a non-2xx answer not in ``ok`` raises
        the core error its problem document names. ``read_timeout`` replaces the client's
        for a request the server may work on for long (verifications, sweeps)."""
        timeout: Any = self.httpx.USE_CLIENT_DEFAULT
        if read_timeout is not None:
            timeout = self.httpx.Timeout(read_timeout, connect=10.0)
        safe = (
            idempotent
            if idempotent is not None
            else method in IDEMPOTENT or bool(headers and "Idempotency-Key" in headers)
        )
        for attempt in self.attempts():
            try:
                response = self.client.request(
                    method, path, params=params, json=json, content=content, headers=headers,
                    timeout=timeout,
                )  # fmt: skip
            except self.httpx.TransportError as exc:
                if attempt.last or not (safe or isinstance(exc, self.httpx.ConnectError)):
                    raise self.unavailable(method, path, exc) from exc
                attempt.wait(None)
                continue
            if response.is_success or response.status_code in ok:
                return response
            if not attempt.last and response.status_code in (_TRANSIENT if safe else _REFUSED):
                response.close()
                attempt.wait(retry_after(response.headers.get("Retry-After"), utcnow))
                continue
            raise self.error(response, method, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A streamed GET (opened with the same retries as ``request``); the caller closes it."""
        for attempt in self.attempts():
            try:
                request = self.client.build_request(method, path, params=params, headers=headers)
                response = self.client.send(request, stream=True)
            except self.httpx.TransportError as exc:
                if attempt.last:
                    raise self.unavailable(method, path, exc) from exc
                attempt.wait(None)
                continue
            if response.is_success:
                return response
            response.read()
            if not attempt.last and response.status_code in _TRANSIENT:
                attempt.wait(retry_after(response.headers.get("Retry-After"), utcnow))
                continue
            raise self.error(response, method, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def attempts(self) -> Iterator[_Attempt]:
        """The attempts of one request: each can wait before the next; the last is marked."""
        for number in range(1, self.retry.attempts + 1):
            yield _Attempt(self, number, number == self.retry.attempts)

    def error(self, response: httpx.Response, method: str, path: str) -> Exception:
        """The typed error a non-success response stands for."""
        problem: Any = None
        if "json" in response.headers.get("Content-Type", ""):
            try:
                problem = response.json()
            except ValueError:
                problem = None
        return error_from(
            response.status_code,
            problem if isinstance(problem, dict) else None,
            f"{method} {self.base_url}{path}",
        )

    def unavailable(self, method: str, path: str, exc: Exception) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"artifact-store server {self.base_url} failed during {method} {path}: "
            f"{type(exc).__name__}: {exc}".rstrip(": ")
        )


@dataclass
class _Attempt:
    transport: Transport
    number: int
    last: bool

    def wait(self, retry_after: float | None) -> None:
        self.transport.sleep(self.transport.retry.wait(self.number, retry_after))


def utcnow() -> dt.datetime:
    """The current UTC time (for ``Retry-After`` dates)."""
    return dt.datetime.now(dt.UTC)
