"""Benchmark ``serve``: sessions per minute of a running ``secmoe serve`` and its peak memory.

A ``secmoe serve`` process (the demo layer, moe-demo) on a loopback port; for 1, 4 and 8 clients
started at once (``secmoe client`` processes, 4 tokens each), the batch's wall time gives the
sessions per minute, and the listener's process tree is sampled every 0.1 s for its memory: the
sum of the proportional set sizes (PSS, ``/proc/PID/smaps_rollup``) of the listener and its
session processes, so pages the forked sessions share with the listener count once. Every
client's output is checked bit for bit against ``moe_fixed`` (``bit_exact_fixed``). With
``--quick`` the same runs use share_add_reveal with the clients as threads of this process
(seconds instead of minutes; a smoke test, not a measurement of the demo layer).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from secmoe.bench.registry import BenchOptions, register_bench
from secmoe.encoding import FixedPoint
from secmoe.errors import SpecError
from secmoe.randomness import system_seed
from secmoe.session import connect_tcp
from secmoe.sharing import share_add_reveal

CONCURRENCY = (1, 4, 8)
SAMPLE_SECONDS = 0.1
BENCH_TIMEOUT = 3600  # seconds per frame for both parties in the benchmark
CLI = [sys.executable, "-m", "secmoe.cli"]


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return pids


class _Sampler:
    """The peak of the summed PSS of a process tree, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, sum(_pss_kib(p) for p in _tree(self.pid)))
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _demo_clients(port: int, count: int) -> bool:
    """``count`` ``secmoe client`` processes at once; True if every output is bit-exact."""
    args = [*CLI, "client", "--port", str(port), "--tokens", "4", "--json", "--quiet"]
    args += ["--timeout", str(BENCH_TIMEOUT)]
    clients = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    ok = True
    for p in clients:
        out, err = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise SpecError(f"bench serve: a client failed: {err.strip()[-500:]}")
        ok = ok and bool(json.loads(out)["bit_exact_fixed"])
    return ok


def _add_clients(port: int, count: int) -> bool:
    """``count`` share_add_reveal clients at once, as threads of this process (quick mode)."""
    fxp = FixedPoint()
    outs: list[object] = []

    def one() -> None:
        out, _ = connect_tcp(
            "127.0.0.1",
            port,
            "share_add_reveal",
            lambda ctx: share_add_reveal(ctx, fxp.encode([1.0, 2.0, 3.0])),
            seed=system_seed(),
            fxp=fxp,
            timeout=60,
        )
        outs.append(out)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = fxp.encode([11.0, 22.0, 33.0])
    return len(outs) == count and all(np.array_equal(o, expected) for o in outs)  # type: ignore[arg-type]


@register_bench(
    "serve",
    "secmoe serve: sessions per minute of the demo layer with 1, 4 and 8 concurrent clients, "
    "and the server's peak memory (PSS of the listener and its session processes)",
    (
        "protocol",
        "sessions_per_minute_at_1",
        "sessions_per_minute_at_4",
        "sessions_per_minute_at_8",
        "peak_server_pss_mib_at_1",
        "peak_server_pss_mib_at_4",
        "peak_server_pss_mib_at_8",
        "all_bit_exact",
    ),
)
def bench_serve(opts: BenchOptions) -> dict[str, object]:
    quick = opts.quick
    protocol = "share_add_reveal" if quick else "moe-demo"
    args = [*CLI, "serve", "--port", "0", "--json", "--quiet", "--max-sessions", "8"]
    # Throughput, not deadlines: 8 sessions on a loaded machine can be silent for minutes.
    args += ["--timeout", str(BENCH_TIMEOUT), "--session-timeout", str(4 * BENCH_TIMEOUT)]
    if quick:
        args += ["--values", "10,20,30"]
    server = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    result: dict[str, object] = {"protocol": protocol, "tokens": None if quick else 4}
    all_ok = True
    try:
        assert server.stderr is not None and server.stdout is not None
        line = server.stderr.readline()
        if "listening on" not in line:
            raise SpecError(f"bench serve: the server did not start: {line!r}")
        port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        idle_kib = sum(_pss_kib(p) for p in _tree(server.pid))
        result["idle_server_pss_mib"] = round(idle_kib / 1024, 1)
        for c in CONCURRENCY:
            opts.say(f"bench serve: {c} concurrent client(s) ({protocol})")
            with _Sampler(server.pid) as sampler:
                t0 = time.perf_counter()
                ok = _add_clients(port, c) if quick else _demo_clients(port, c)
                wall = time.perf_counter() - t0
            all_ok = all_ok and ok
            for _ in range(c):  # the server's per-session report lines
                report = json.loads(server.stdout.readline())
                all_ok = all_ok and report.get("status") == "ok"
            result[f"sessions_per_minute_at_{c}"] = round(60.0 * c / wall, 3)
            result[f"batch_seconds_at_{c}"] = round(wall, 3)
            result[f"peak_server_pss_mib_at_{c}"] = round(sampler.peak_kib / 1024, 1)
            opts.say(
                f"bench serve: {c} client(s): {result[f'sessions_per_minute_at_{c}']} sessions per "
                f"minute, {wall:.1f} s, peak server PSS {result[f'peak_server_pss_mib_at_{c}']} MiB"
            )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    result["all_bit_exact"] = all_ok
    return result
