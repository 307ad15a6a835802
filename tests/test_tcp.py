"""Two processes over TCP: the CLI's serve/client, a killed peer, a hung peer, a handshake mismatch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from servers import SECMOE, free_port, signal_server, start_server

from secmoe.encoding import FixedPoint
from secmoe.errors import ProtocolError
from secmoe.session import PartyContext, connect_tcp
from secmoe.sharing import share_add_reveal


def test_two_processes_share_add_reveal() -> None:
    port = free_port()
    server = start_server(port, "--values", "10,20,-30", "--sessions", "1")
    client = subprocess.run(
        [*SECMOE, "client", "--port", str(port), "--values", "1,-2.5,3.25", "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out_s, _ = server.communicate(timeout=60)
    assert client.returncode == 0, client.stderr
    assert server.returncode == 0
    c = json.loads(client.stdout)
    s = json.loads(out_s)
    assert c["output"] == [11.0, 17.5, -26.75]
    assert "output" not in s
    assert s["status"] == "ok" and s["session"] == 1
    # Both parties count the same bytes: 24 up, 48 down, 2 rounds (spec §3.4.1) plus the
    # handshake and session/done (spec §4.4.2).
    for cost in (c["cost"], s["cost"]):
        main = cost["phases"]["main"]
        assert (main["bytes_c2s"], main["bytes_s2c"], main["rounds"]) == (24, 48, 2)
        assert cost["phases"]["close"]["messages"] == 1
        assert "handshake" in cost["phases"]


def _client(port: int, timeout: float, before: object = None) -> None:
    fxp = FixedPoint()

    def run(ctx: PartyContext) -> object:
        if callable(before):
            before()
        return share_add_reveal(ctx, fxp.encode([1.0]))

    connect_tcp("127.0.0.1", port, "share_add_reveal", run, seed=bytes(32), timeout=timeout)


def test_killed_peer_gives_a_clear_error_within_the_timeout() -> None:
    port = free_port()
    server = start_server(port, "--values", "1")

    def kill() -> None:
        signal_server(server, signal.SIGKILL)
        server.wait(timeout=10)

    t0 = time.monotonic()
    with pytest.raises(ProtocolError) as e:
        _client(port, timeout=20, before=kill)
    assert e.value.kind == "peer_closed"
    assert time.monotonic() - t0 < 20


def test_hung_peer_gives_timeout() -> None:
    port = free_port()
    server = start_server(port, "--values", "1")
    try:

        def stop() -> None:
            signal_server(server, signal.SIGSTOP)

        t0 = time.monotonic()
        with pytest.raises(ProtocolError) as e:
            _client(port, timeout=1.0, before=stop)
        assert e.value.kind == "timeout"
        assert time.monotonic() - t0 < 10
    finally:
        signal_server(server, signal.SIGKILL)
        server.wait(timeout=10)


def test_handshake_mismatch_and_cli_exit_codes(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(port, "--values", "1", "--sessions", "1")
    fxp = FixedPoint()
    with pytest.raises(ProtocolError) as e:
        connect_tcp(
            "127.0.0.1",
            port,
            "another_protocol",
            lambda ctx: share_add_reveal(ctx, fxp.encode([1.0])),
            seed=bytes(32),
            timeout=10,
        )
    assert e.value.kind == "handshake"
    out, _ = server.communicate(timeout=30)
    assert server.returncode == 3  # the server reports the protocol error
    assert json.loads(out)["kind"] == "handshake"
    # Nobody listening: the client says so and exits non-zero.
    r = subprocess.run(
        [*SECMOE, "client", "--port", str(free_port()), "--connect-timeout", "0.5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 3 and "cannot connect" in r.stderr
    assert np.isfinite(0.0)
    assert os.path.exists(tmp_path)
