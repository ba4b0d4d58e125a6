"""A loopback TCP proxy that injects network faults, switchable while connections are open.

Put it in front of a test server (``FaultProxy(upstream_port)``, then point the client at
``proxy.endpoint_url``) and change its mode at any time:

* ``pass_through()``: bytes flow both ways unchanged (the initial mode);
* ``freeze()``: connections are still accepted but no byte moves in either direction, as
  with a server that hangs (the kernel accepts, the process never answers); open
  connections stall too; ``pass_through()`` lets them go on;
* ``reset(after_bytes=0, direction="both")``: connections are closed abruptly with a TCP
  RST, open ones at once, new ones as soon as they are accepted (as a crashed server's
  host answers); with ``after_bytes`` each connection first forwards that many more bytes
  (counted in ``direction``: ``"up"`` client to server, ``"down"`` server to client), so a
  cut lands in the middle of a request or a response;
* ``delay(seconds)``: every chunk is forwarded after a pause (a slow network).

``after(n_bytes, action)`` runs ``action`` (say ``proxy.freeze``) once ``n_bytes`` more
bytes have crossed the proxy in all connections together, so a fault can be placed at a
chosen point of a transfer; the chunk that reaches the mark is cut there.

``stats`` counts accepted connections, resets and bytes, for assertions that a fault
actually happened. Threads are daemons; ``close()`` (or leaving ``fault_proxy()``) drops
every connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["up", "down", "both"]
_CHUNK = 64 * 1024


@dataclass
class ProxyStats:
    """What went through the proxy so far."""

    accepted: int = 0
    resets: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


class _Link:
    """One client connection and its upstream connection (once made)."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.budget: dict[str, int] | None = None  # bytes left before a reset, per direction
        self.closed = False


def _abort(sock: socket.socket | None) -> None:
    """Close ``sock`` with a TCP RST (linger 0), waking a thread blocked in ``recv``."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)  # sends nothing; unblocks the pump reading it
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """Forwards TCP connections from a free loopback port to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.stats = ProxyStats()
        self._mode = "pass"
        self._after = 0
        self._direction: Direction = "both"
        self._delay = 0.0
        self._closed = False
        self._links: set[_Link] = set()
        self._trigger: list[Any] | None = None  # [bytes left, action, direction]
        self._state = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="faultproxy", daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> str:
        """``"pass"``, ``"freeze"``, ``"reset"`` or ``"delay"``."""
        return self._mode

    # --- switching modes ------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward everything again; stalled connections go on."""
        self._switch("pass")

    def freeze(self) -> None:
        """Accept connections but move no byte in either direction."""
        self._switch("freeze")

    def delay(self, seconds: float) -> None:
        """Forward every chunk after waiting ``seconds``."""
        self._switch("delay", delay=seconds)

    def reset(self, after_bytes: int = 0, direction: Direction = "both") -> None:
        """Reset every connection (with RST) once it has forwarded ``after_bytes`` more
        bytes in ``direction``; new connections likewise, counted from their start."""
        if after_bytes < 0:
            raise ValueError(f"after_bytes must be >= 0, got {after_bytes}")
        self._switch("reset", after=after_bytes, direction=direction)
        if after_bytes == 0:
            with self._state:
                links = list(self._links)
            for link in links:
                self._reset(link)

    def after(
        self, n_bytes: int, action: Callable[[], None], direction: Direction = "both"
    ) -> None:
        """Run ``action`` once ``n_bytes`` more bytes crossed the proxy in ``direction``
        (all connections together); bytes past the mark wait for ``action`` to finish."""
        if n_bytes < 0:
            raise ValueError(f"n_bytes must be >= 0, got {n_bytes}")
        with self._state:
            self._trigger = [n_bytes, action, direction]

    def _switch(
        self, mode: str, *, after: int = 0, direction: Direction = "both", delay: float = 0.0
    ) -> None:
        with self._state:
            self._mode, self._after, self._direction, self._delay = mode, after, direction, delay
            for link in self._links:
                link.budget = self._budget() if mode == "reset" else None
            self._state.notify_all()

    def _budget(self) -> dict[str, int]:
        unlimited = 2**62
        return {
            "up": self._after if self._direction in ("up", "both") else unlimited,
            "down": self._after if self._direction in ("down", "both") else unlimited,
            "both": self._after if self._direction == "both" else unlimited,
        }

    # --- connections ----------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            link = _Link(client)
            with self._state:
                if self._closed:
                    _abort(client)
                    return
                self.stats.accepted += 1
                link.budget = self._budget() if self._mode == "reset" else None
                self._links.add(link)
            threading.Thread(target=self._connect, args=(link,), daemon=True).start()

    def _connect(self, link: _Link) -> None:
        if not self._wait_while_frozen(link):
            return
        with self._state:
            reset_now = self._mode == "reset" and self._after == 0
        if reset_now:
            self._reset(link)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
        except OSError:
            self._reset(link)
            return
        with self._state:
            if link.closed:
                _abort(upstream)
                return
            link.upstream = upstream
        for source, target, way in ((link.client, upstream, "up"), (upstream, link.client, "down")):
            threading.Thread(
                target=self._pump, args=(link, source, target, way), daemon=True
            ).start()

    def _wait_while_frozen(self, link: _Link) -> bool:
        """Block while frozen; ``False`` once the link or the proxy is closed."""
        with self._state:
            while self._mode == "freeze" and not link.closed and not self._closed:
                self._state.wait()
            return not link.closed and not self._closed

    def _pump(self, link: _Link, source: socket.socket, target: socket.socket, way: str) -> None:
        try:
            while self._wait_while_frozen(link):
                data = source.recv(_CHUNK)
                if not data or not self._wait_while_frozen(link):
                    break
                if self._delay:
                    time.sleep(self._delay)
                rest = self._fire_trigger(link, way, data, target)
                if rest is None:
                    break
                with self._state:
                    allowed = self._take(link, way, len(rest))
                if allowed:
                    target.sendall(rest[:allowed])
                if allowed < len(rest):
                    self._reset(link)
                    return
        except OSError:
            pass
        self._close(link)

    def _fire_trigger(
        self, link: _Link, way: str, data: bytes, target: socket.socket
    ) -> bytes | None:
        """Forward the bytes up to the trigger's mark and run its action there; the rest
        of ``data`` (``None`` if the link is gone or frozen for good)."""
        with self._state:
            trigger = self._trigger
            if trigger is None or trigger[2] not in (way, "both") or trigger[0] >= len(data):
                if trigger is not None and trigger[2] in (way, "both"):
                    trigger[0] -= len(data)
                return data
            self._trigger = None
            head, data = data[: trigger[0]], data[trigger[0] :]
            allowed = self._take(link, way, len(head))
        if allowed:
            target.sendall(head[:allowed])
        trigger[1]()
        if not self._wait_while_frozen(link):
            return None
        return data

    def _take(self, link: _Link, way: str, size: int) -> int:
        """How many of ``size`` bytes may pass (under the lock); counts them."""
        allowed = size
        if link.budget is not None:
            allowed = min(size, link.budget[way], link.budget["both"])
            link.budget[way] -= allowed
            link.budget["both"] -= allowed
        if way == "up":
            self.stats.bytes_up += allowed
        else:
            self.stats.bytes_down += allowed
        return allowed

    def _reset(self, link: _Link) -> None:
        with self._state:
            if link.closed:
                return
            link.closed = True
            self.stats.resets += 1
            self._links.discard(link)
            self._state.notify_all()
        _abort(link.client)
        _abort(link.upstream)

    def _close(self, link: _Link) -> None:
        """End a link whose peer closed its side (an orderly close, passed on)."""
        with self._state:
            if link.closed:
                return
            link.closed = True
            self._links.discard(link)
            self._state.notify_all()
        for sock in (link.client, link.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        """Stop accepting and reset every open connection."""
        with self._state:
            self._closed = True
            links = list(self._links)
            self._state.notify_all()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        for link in links:
            self._reset(link)
        self._thread.join(timeout=5)


@contextlib.contextmanager
def fault_proxy(upstream_port: int, upstream_host: str = "127.0.0.1") -> Iterator[FaultProxy]:
    """A ``FaultProxy`` in pass-through mode for the duration of the block."""
    proxy = FaultProxy(upstream_port, upstream_host)
    try:
        yield proxy
    finally:
        proxy.close()
