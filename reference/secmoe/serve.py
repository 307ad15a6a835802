"""``secmoe serve``: TCP sessions until stopped, each in its own process (spec §4.4.3 `serve`).

The parent process only listens, forks and reaps: it never reads a byte from a client. Each
accepted connection runs in a forked child (the encoded weights are shared copy-on-write), so a
session that crashes, hangs or is fed garbage cannot touch another one. A child reports one
JSON line to the parent over a pipe and exits; the parent adds the child's peak memory (from
``wait4``) and hands the report to ``on_report``.

In the child, two watchers interrupt the protocol at once (a signal to the main thread that
raises a :class:`~secmoe.errors.ProtocolError`): the session deadline, and the end of the
client's stream while the protocol runs (a vanished peer), unless all the client left unread is
its ``session/done``. The parent
kills a child that outlives its deadline by ``KILL_GRACE`` seconds (e.g. stuck in native code).
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from secmoe.encoding import FixedPoint
from secmoe.errors import ErrorKind, ProtocolError, SecmoeError, SpecError
from secmoe.net.frame import decode_frame
from secmoe.net.transport import TcpTransport, tcp_listen
from secmoe.session import DONE_LABEL, PartyContext, SessionLimits, run_tcp_party

KILL_GRACE = 5.0  # seconds the parent waits past a session's deadline before SIGKILL
POLL_SECONDS = 0.2  # the parent's loop period (how soon a stop signal is noticed)
EXIT_OK, EXIT_ERROR = 0, 3

SessionFn = Callable[[PartyContext], object]
Describe = Callable[[object], dict[str, object]]  # a session's output as JSON-able fields


@dataclass(frozen=True)
class ServeOptions:
    """How many sessions, how long, and how much (spec §4.4.3 `serve`).

    ``max_sessions``: sessions running at once; ``sessions``: stop after accepting this many
    (None: serve until SIGINT or SIGTERM); ``session_timeout``: each session's overall deadline
    in seconds, from the accept; ``limits``: per-frame timeouts and the byte budget;
    ``idle_timeout``: stop when no session has run for this many seconds (None: never).
    """

    max_sessions: int = 4
    sessions: int | None = None
    session_timeout: float = 3600.0
    limits: SessionLimits = field(default_factory=SessionLimits)
    idle_timeout: float | None = None  # stop after this many seconds without a session

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise SpecError(f"max_sessions must be >= 1, got {self.max_sessions}")
        if self.sessions is not None and self.sessions < 1:
            raise SpecError(f"sessions must be >= 1, got {self.sessions}")
        if not 0 < self.session_timeout < float("inf"):
            raise SpecError(f"session_timeout must be positive and finite: {self.session_timeout}")


@dataclass
class _Child:
    number: int
    pid: int
    peer: str
    started: float
    deadline: float
    fd: int
    data: bytearray = field(default_factory=bytearray)
    killed: str = ""


class _Interrupt:
    """Raise a ProtocolError in the main thread from a watcher thread (once per session)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed = True
        self.stopped = False  # the session has ended: a late signal raises nothing
        self.error: ProtocolError | None = None
        signal.signal(signal.SIGUSR1, self._handler)

    def fire(self, kind: ErrorKind, detail: str) -> None:
        with self.lock:
            if not self.armed:
                return
            self.armed = False
            self.error = ProtocolError(kind, "server", "", detail)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def disarm(self) -> None:
        with self.lock:
            self.armed = False
            self.stopped = True

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.error is not None and not self.stopped:
            err, self.error = self.error, None
            raise err


DONE_FRAME_MAX = 64  # bytes: a session/done frame is 29


def _only_done(data: bytes) -> bool:
    """True if ``data`` is exactly one well-formed ``session/done`` frame."""
    try:
        return decode_frame(data).label == DONE_LABEL if data else False
    except ProtocolError:
        return False


def _session_child(
    conn: socket.socket,
    number: int,
    peer: str,
    protocol: str,
    fn: SessionFn,
    describe: Describe,
    seed: Callable[[], bytes],
    fxp: FixedPoint,
    options: ServeOptions,
    out_fd: int,
) -> int:
    """Run one session in this (forked) process; write its JSON report to ``out_fd``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when sessions stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    t0 = time.monotonic()
    report: dict[str, object] = {"session": number, "peer": peer, "party": "server"}
    report["protocol"] = protocol
    interrupt = _Interrupt()
    code = EXIT_ERROR
    try:
        conn.settimeout(None)
        transport = TcpTransport(conn, "server")

        def vanished() -> None:
            # The stream ended while the protocol runs: the client is gone, unless all it left
            # unread is its session/done (it finished; the protocol is about to return).
            if not _only_done(transport.inbox.peek(DONE_FRAME_MAX)):
                interrupt.fire("peer_closed", "the client closed the connection mid-session")

        transport.on_peer_gone.append(vanished)
        timer = threading.Timer(
            options.session_timeout,
            interrupt.fire,
            ("timeout", f"the session did not end within {options.session_timeout:g} s"),
        )
        timer.daemon = True
        timer.start()
        out, cost = run_tcp_party(
            transport, "server", protocol, fn, seed(), fxp, options.limits, None, interrupt.disarm
        )
        interrupt.disarm()
        timer.cancel()
        report.update(status="ok", **describe(out), cost=cost.as_dict())
        code = EXIT_OK
    except ProtocolError as exc:
        interrupt.disarm()
        report.update(status="error", kind=exc.kind, error=str(exc))
    except SecmoeError as exc:
        interrupt.disarm()
        report.update(status="error", kind="spec_error", error=str(exc))
    except BaseException as exc:  # a crash stays in this process; the parent logs it
        interrupt.disarm()
        report.update(status="crash", kind="crash", error=repr(exc))
        report["traceback"] = traceback.format_exc(limit=8)
    report["seconds"] = round(time.monotonic() - t0, 3)
    data = (json.dumps(report) + "\n").encode()
    view = memoryview(data)
    while view:
        view = view[os.write(out_fd, view) :]
    os.close(out_fd)
    return code


def serve(
    host: str,
    port: int,
    protocol: str,
    fn: SessionFn,
    *,
    describe: Describe,
    seed: Callable[[], bytes],
    fxp: FixedPoint,
    options: ServeOptions,
    on_listen: Callable[[int], None] | None = None,
    on_report: Callable[[dict[str, object]], None] | None = None,
) -> int:
    """Accept and serve sessions until stopped; return the exit code.

    Implements spec §4.4.3 `serve` (spec/04-messages.md#serve).

    Stops on SIGINT or SIGTERM (running sessions are terminated; exit code 0) or after
    ``options.sessions`` sessions (exit code 0 if every one succeeded, else 3).
    """
    if not protocol:
        raise SpecError("protocol name is empty")
    try:
        srv = tcp_listen(host, port)
    except OSError as exc:
        raise SpecError(f"cannot listen on {host}:{port}: {exc}") from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    active: dict[int, _Child] = {}
    accepted = 0
    failures = 0

    def reap(child: _Child) -> None:
        nonlocal failures
        _, status, usage = os.wait4(child.pid, 0)
        os.close(child.fd)
        del active[child.fd]
        text = child.data.decode(errors="replace").strip()
        try:
            report: dict[str, object] = json.loads(text) if text else {}
        except json.JSONDecodeError:
            report = {}
        if not report:
            report = {"session": child.number, "peer": child.peer, "party": "server"}
            report.update(status="crash", kind="crash", error=child.killed or "no report")
            report["seconds"] = round(time.monotonic() - child.started, 3)
        if child.killed and report.get("status") == "ok":
            report.update(status="error", kind="timeout", error=child.killed)
        report["exit_status"] = os.waitstatus_to_exitcode(status)
        report["max_rss_bytes"] = int(usage.ru_maxrss) * 1024  # Linux reports KiB
        if report.get("status") != "ok":
            failures += 1
        if on_report is not None:
            on_report(report)

    try:
        if on_listen is not None:
            on_listen(int(srv.getsockname()[1]))
        idle_since = time.monotonic()
        while True:
            more = options.sessions is None or accepted < options.sessions
            if stop.is_set() or (not more and not active):
                break
            if active:
                idle_since = time.monotonic()
            elif (
                options.idle_timeout is not None
                and time.monotonic() - idle_since > options.idle_timeout
            ):
                break
            accepting = more and len(active) < options.max_sessions
            waiting: list[int | socket.socket] = list(active)
            if accepting:
                waiting.append(srv)
            ready, _, _ = select.select(waiting, [], [], POLL_SECONDS)
            for r in ready:
                if r is srv:
                    accepted += 1
                    _fork(srv, accepted, protocol, fn, describe, seed, fxp, options, active)
                elif isinstance(r, int):
                    child = active[r]
                    chunk = os.read(r, 1 << 16)
                    if chunk:
                        child.data += chunk
                    else:
                        reap(child)
            now = time.monotonic()
            for child in list(active.values()):
                if now > child.deadline + KILL_GRACE and not child.killed:
                    child.killed = (
                        f"killed past the session deadline of {options.session_timeout:g} s"
                    )
                    os.kill(child.pid, signal.SIGKILL)
    finally:
        srv.close()
        for child in list(active.values()):
            child.killed = "stopped with the server"
            os.kill(child.pid, signal.SIGTERM)
        end = time.monotonic() + KILL_GRACE
        for child in list(active.values()):
            left = max(0.0, end - time.monotonic())
            if not select.select([child.fd], [], [], left)[0]:
                os.kill(child.pid, signal.SIGKILL)
            while True:
                chunk = os.read(child.fd, 1 << 16)
                if not chunk:
                    break
                child.data += chunk
            reap(child)
        for s, h in old.items():
            signal.signal(s, h)
    if stop.is_set():
        return EXIT_OK
    return EXIT_OK if failures == 0 else EXIT_ERROR


def _fork(
    srv: socket.socket,
    number: int,
    protocol: str,
    fn: SessionFn,
    describe: Describe,
    seed: Callable[[], bytes],
    fxp: FixedPoint,
    options: ServeOptions,
    active: dict[int, _Child],
) -> None:
    conn, addr = srv.accept()
    peer = f"{addr[0]}:{addr[1]}"
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the session's own process
        code = EXIT_ERROR
        try:
            os.close(rfd)
            srv.close()
            for child in active.values():
                os.close(child.fd)
            code = _session_child(
                conn, number, peer, protocol, fn, describe, seed, fxp, options, wfd
            )
        finally:
            os._exit(code)
    os.close(wfd)
    conn.close()
    now = time.monotonic()
    active[rfd] = _Child(number, pid, peer, now, now + options.session_timeout, rfd)


def peak_rss_bytes() -> int:
    """This process's peak resident memory in bytes (Linux ``ru_maxrss`` is in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
