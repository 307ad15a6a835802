"""Start a `secmoe serve` process on a free local port (the TCP tests' helper)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from secmoe.net.transport import tcp_listen

SECMOE = [sys.executable, "-m", "secmoe.cli"]


def free_port() -> int:
    s = tcp_listen("127.0.0.1", 0)
    port = int(s.getsockname()[1])
    s.close()
    return port


def start_server(port: int, *extra: str, protocol: str = "") -> subprocess.Popen[str]:
    """`secmoe serve --port PORT --json --quiet EXTRA...`, returned once it listens (its first
    stderr line), so that the client does not race the bind; ``protocol`` must be named there."""
    proc = subprocess.Popen(
        [*SECMOE, "serve", "--port", str(port), "--json", "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the server and its session processes
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "listening" in line and protocol in line, line
    return proc


def signal_server(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    """Send ``sig`` to the server and every session process it forked (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
