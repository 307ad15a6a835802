"""Byte transports under a :class:`~secmoe.net.channel.Channel`: in-process pair and TCP.

Both deliver an ordered byte stream. Receiving runs through an :class:`Inbox` fed by the
peer (in-process) or by a reader thread (TCP), so ``send`` never waits for the peer to read:
two parties may send large messages at the same time without deadlock.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from typing import Protocol

from secmoe.errors import Party, ProtocolError


class Transport(Protocol):
    """What a channel needs from a byte stream."""

    def send_bytes(self, data: bytes) -> None: ...

    def recv_exact(self, n: int, timeout: float, label: str) -> bytes: ...

    def close(self) -> None: ...


class Inbox:
    """A thread-safe byte queue with a blocking, deadline-bound ``take``."""

    def __init__(self, party: Party) -> None:
        self._party: Party = party
        self._chunks: deque[memoryview] = deque()
        self._size = 0
        self._closed = False
        self._error: str = ""
        self._cond = threading.Condition()

    def put(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self._chunks.append(memoryview(data))
            self._size += len(data)
            self._cond.notify_all()

    def close(self, error: str = "") -> None:
        with self._cond:
            self._closed = True
            self._error = error
            self._cond.notify_all()

    def take(self, n: int, timeout: float, label: str) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._size < n:
                if self._closed:
                    detail = "peer closed the connection"
                    if self._error:
                        detail += f" ({self._error})"
                    if self._size:
                        detail += f" with {self._size} of {n} awaited bytes delivered"
                    raise ProtocolError("peer_closed", self._party, label, detail)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProtocolError(
                        "timeout",
                        self._party,
                        label,
                        f"no data for {timeout:g} s ({self._size} of {n} bytes)",
                    )
                self._cond.wait(left)
            out = bytearray(n)
            filled = 0
            while filled < n:
                chunk = self._chunks[0]
                k = min(len(chunk), n - filled)
                out[filled : filled + k] = chunk[:k]
                filled += k
                if k == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[k:]
            self._size -= n
            return bytes(out)


class LocalTransport:
    """One end of an in-process pair; the other end's inbox is ours to fill."""

    def __init__(self, party: Party) -> None:
        self.party: Party = party
        self.inbox = Inbox(party)
        self.peer: LocalTransport | None = None
        self._closed = False

    def send_bytes(self, data: bytes) -> None:
        assert self.peer is not None
        if self._closed or self.peer._closed:
            raise ProtocolError("peer_closed", self.party, "", "send on a closed in-process pair")
        self.peer.inbox.put(data)

    def recv_exact(self, n: int, timeout: float, label: str) -> bytes:
        return self.inbox.take(n, timeout, label)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.inbox.close()
            if self.peer is not None:
                self.peer.inbox.close()


def local_pair() -> tuple[LocalTransport, LocalTransport]:
    """A connected (client, server) pair of in-process transports."""
    c, s = LocalTransport("client"), LocalTransport("server")
    c.peer, s.peer = s, c
    return c, s


class TcpTransport:
    """A TCP connection; a daemon thread drains the socket into the inbox."""

    def __init__(self, sock: socket.socket, party: Party) -> None:
        self.party: Party = party
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbox = Inbox(party)
        self._send_lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(
            target=self._read_loop, name=f"secmoe-tcp-{party}", daemon=True
        )
        self._reader.start()

    def _read_loop(self) -> None:
        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    self.inbox.close()
                    return
                self.inbox.put(data)
        except OSError as exc:
            self.inbox.close(str(exc))

    def send_bytes(self, data: bytes) -> None:
        try:
            with self._send_lock:
                self.sock.sendall(data)
        except OSError as exc:
            raise ProtocolError("peer_closed", self.party, "", f"send failed: {exc}") from exc

    def recv_exact(self, n: int, timeout: float, label: str) -> bytes:
        return self.inbox.take(n, timeout, label)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def tcp_listen(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free port; read it from ``getsockname()``)."""
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(1)
    return srv


def tcp_accept(srv: socket.socket, timeout: float) -> TcpTransport:
    """Wait up to ``timeout`` seconds for one client and wrap the connection as the server."""
    srv.settimeout(timeout)
    try:
        conn, _ = srv.accept()
    except TimeoutError as exc:
        raise ProtocolError(
            "timeout", "server", "", f"no client connected within {timeout:g} s"
        ) from exc
    conn.settimeout(None)
    return TcpTransport(conn, "server")


def tcp_connect(host: str, port: int, timeout: float) -> TcpTransport:
    """Connect to a server, retrying refused connections until ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(
                (host, port), timeout=max(0.1, deadline - time.monotonic())
            )
            sock.settimeout(None)
            return TcpTransport(sock, "client")
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ProtocolError(
                    "peer_closed", "client", "", f"cannot connect to {host}:{port}: {exc}"
                ) from exc
            time.sleep(0.05)
