"""The fault-injecting proxy itself, in front of a loopback echo server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from artifactstore_core.testing.faultproxy import FaultProxy, fault_proxy

pytestmark = pytest.mark.integration


@pytest.fixture
def echo_port() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the proxy resets some connections
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[FaultProxy]:
    with fault_proxy(echo_port) as running:
        yield running


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=2)


def receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return data


def test_pass_through(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert receive(sock, 5) == b"hello"
    assert proxy.stats.accepted == 1
    assert (proxy.stats.bytes_up, proxy.stats.bytes_down) == (5, 5)


def test_freeze_holds_bytes_until_pass_through(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"one")
        assert receive(sock, 3) == b"one"
        proxy.freeze()
        sock.sendall(b"two")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(3)
        with connect(proxy) as frozen:  # new connections are accepted, then held
            frozen.sendall(b"new")
            frozen.settimeout(0.3)
            with pytest.raises(TimeoutError):
                frozen.recv(3)
            proxy.pass_through()
            frozen.settimeout(2)
            assert receive(frozen, 3) == b"new"
        sock.settimeout(2)
        assert receive(sock, 3) == b"two"


def test_reset_open_and_new_connections(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert receive(sock, 1) == b"x"
        proxy.reset()
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    # A loaded machine may see the reset while still connecting: that is a reset too.
    with pytest.raises((ConnectionResetError, BrokenPipeError)), connect(proxy) as sock:
        sock.sendall(b"y")
        sock.recv(1)
    assert proxy.stats.resets == 2


def test_reset_after_bytes_cuts_a_response(proxy: FaultProxy) -> None:
    proxy.reset(after_bytes=5, direction="down")
    with connect(proxy) as sock:
        sock.sendall(b"0123456789")
        got = b""
        with pytest.raises(ConnectionResetError):
            while chunk := sock.recv(10):
                got += chunk
    # (Linux drops received bytes not yet read when the RST arrives)
    assert b"01234".startswith(got)
    assert proxy.stats.bytes_down == 5
    assert proxy.stats.resets == 1


def test_after_runs_the_action_at_the_mark(proxy: FaultProxy) -> None:
    proxy.after(4, proxy.freeze, direction="up")
    with connect(proxy) as sock:
        sock.sendall(b"abcdefgh")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # frozen both ways: not even the echo of "abcd"
            sock.recv(8)
        assert proxy.mode == "freeze"
        assert proxy.stats.bytes_up == 4
        proxy.pass_through()
        sock.settimeout(2)
        assert receive(sock, 8) == b"abcdefgh"


def test_bad_arguments_are_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="after_bytes"):
        proxy.reset(after_bytes=-1)
    with pytest.raises(ValueError, match="n_bytes"):
        proxy.after(-1, proxy.freeze)
