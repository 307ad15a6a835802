"""Byte transports under a :class:`~secmoe.net.channel.Channel`: in-process pair and TCP.

Both deliver an ordered byte stream. Receiving runs through an :class:`Inbox` fed by the
peer (in-process) or by a reader thread (TCP); sending over TCP runs through a writer thread,
so ``send`` never waits for the peer to read: two parties may send large messages at the same
time without deadlock.

Over TCP the reader thread reads ahead of the channel by at most ``READ_AHEAD`` bytes, or by
the byte count the channel is waiting for if that is larger (spec §4.2.2 `recv`): what a
peer sends beyond that stays in the kernel's buffers, so a peer cannot make us buffer a body
the channel has not accepted yet (memory is bounded whatever the peer announces).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from secmoe.errors import Party, ProtocolError

READ_AHEAD = 1 << 20  # bytes a TCP reader buffers beyond what the channel awaits
CLOSE_FLUSH_SECONDS = 10.0  # how long close() waits for queued sends to reach the kernel
ABORT_FLUSH_SECONDS = 1.0  # the same after an error (e.g. to deliver our hello on a mismatch)


class Transport(Protocol):
    """What a channel needs from a byte stream."""

    def send_bytes(self, data: bytes) -> None: ...

    def recv_exact(self, n: int, deadline: float, label: str) -> bytes:
        """The next n bytes, waiting until the monotonic-clock ``deadline`` at most."""
        ...

    def close(self, *, flush: bool = True) -> None: ...


class Inbox:
    """A thread-safe byte queue with a blocking, deadline-bound ``take``.

    ``room`` (for a reader thread) waits until fewer than ``max(window, awaited)`` bytes are
    buffered, ``awaited`` being the byte count a blocked ``take`` waits for.
    """

    def __init__(self, party: Party, window: int = 0) -> None:
        self._party: Party = party
        self._window = window
        self._chunks: deque[memoryview] = deque()
        self._size = 0
        self._awaited = 0
        self._closed = False
        self._error: str = ""
        self._cond = threading.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered(self) -> int:
        """Bytes received and not yet taken."""
        with self._cond:
            return self._size

    def peek(self, limit: int) -> bytes:
        """Up to ``limit`` of the bytes received and not yet taken, without taking them."""
        with self._cond:
            return b"".join(bytes(c) for c in self._chunks)[:limit] if self._size <= limit else b""

    def put(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self._chunks.append(memoryview(data))
            self._size += len(data)
            self._cond.notify_all()

    def room(self) -> int:
        """Block until the inbox may take more bytes; return how many (0 once closed)."""
        with self._cond:
            while True:
                if self._closed:
                    return 0
                limit = max(self._window, self._awaited)
                if self._size < limit:
                    return limit - self._size
                self._cond.wait()

    def close(self, error: str = "") -> None:
        with self._cond:
            self._closed = True
            if error and not self._error:
                self._error = error
            self._cond.notify_all()

    def take(self, n: int, deadline: float, label: str) -> bytes:
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
                    self._awaited = 0
                    raise ProtocolError(
                        "timeout",
                        self._party,
                        label,
                        f"the message did not arrive in time ({self._size} of {n} bytes)",
                    )
                self._awaited = n
                self._cond.notify_all()
                self._cond.wait(left)
            self._awaited = 0
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
            self._cond.notify_all()
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

    def recv_exact(self, n: int, deadline: float, label: str) -> bytes:
        return self.inbox.take(n, deadline, label)

    def close(self, *, flush: bool = True) -> None:
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
    """A TCP connection: a reader thread fills a bounded inbox, a writer thread drains an outbox.

    ``peer_gone`` is set (and ``on_peer_gone`` called once, from the reader thread) when the
    peer closes or resets the connection: the end of the stream is seen as soon as every byte
    before it has been buffered.
    """

    def __init__(self, sock: socket.socket, party: Party, *, read_ahead: int = READ_AHEAD) -> None:
        self.party: Party = party
        self.sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbox = Inbox(party, window=read_ahead)
        self.peer_gone = threading.Event()
        self.on_peer_gone: list[Callable[[], None]] = []
        self._outbox: deque[bytes] = deque()
        self._out_cond = threading.Condition()
        self._send_error = ""
        self._closed = False
        self._reader = threading.Thread(
            target=self._read_loop, name=f"secmoe-tcp-read-{party}", daemon=True
        )
        self._writer = threading.Thread(
            target=self._write_loop, name=f"secmoe-tcp-write-{party}", daemon=True
        )
        self._reader.start()
        self._writer.start()

    def _read_loop(self) -> None:
        error = ""
        try:
            while True:
                want = self.inbox.room()
                if want == 0:
                    return  # closed by us
                data = self.sock.recv(min(want, 1 << 20))
                if not data:
                    break
                self.inbox.put(data)
        except OSError as exc:
            error = str(exc)
        self.inbox.close(error)
        if not self._closed:
            self.peer_gone.set()
            for fn in self.on_peer_gone:
                fn()

    def _write_loop(self) -> None:
        while True:
            with self._out_cond:
                while not self._outbox and not self._closed:
                    self._out_cond.wait()
                if not self._outbox:
                    return
                data = self._outbox[0]
            try:
                self.sock.sendall(data)
            except OSError as exc:
                with self._out_cond:
                    self._send_error = str(exc)
                    self._outbox.clear()
                    self._out_cond.notify_all()
                return
            with self._out_cond:
                self._outbox.popleft()
                self._out_cond.notify_all()

    def send_bytes(self, data: bytes) -> None:
        with self._out_cond:
            if self._send_error or self.peer_gone.is_set():
                why = self._send_error or "the peer closed the connection"
                raise ProtocolError("peer_closed", self.party, "", f"send failed: {why}")
            if self._closed:
                raise ProtocolError("peer_closed", self.party, "", "send on a closed transport")
            self._outbox.append(data)
            self._out_cond.notify_all()

    def recv_exact(self, n: int, deadline: float, label: str) -> bytes:
        return self.inbox.take(n, deadline, label)

    def flush(self, timeout: float = CLOSE_FLUSH_SECONDS) -> bool:
        """Wait until every queued byte reached the kernel; False on a timeout or an error."""
        end = time.monotonic() + timeout
        with self._out_cond:
            while self._outbox and not self._send_error:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._out_cond.wait(left)
            return not self._send_error

    def close(self, *, flush: bool = True) -> None:
        """Send what is queued (for up to 10 s, or 1 s without ``flush``), then shut down."""
        if self._closed:
            return
        self.flush(CLOSE_FLUSH_SECONDS if flush else ABORT_FLUSH_SECONDS)
        with self._out_cond:
            self._closed = True
            self._outbox.clear()
            self._out_cond.notify_all()
        self.inbox.close()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def tcp_listen(host: str, port: int, backlog: int = 64) -> socket.socket:
    """A listening socket (port 0 picks a free port; read it from ``getsockname()``)."""
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(backlog)
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
