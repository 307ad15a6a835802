"""Benchmark ``channel``: framed-channel throughput, in-process and over loopback TCP."""

from __future__ import annotations

import threading
import time

from secmoe.bench.registry import BenchOptions, register_bench
from secmoe.net.channel import Channel
from secmoe.net.transport import local_pair, tcp_accept, tcp_connect, tcp_listen


def _pump(sender: Channel, receiver: Channel, chunk: int, count: int) -> float:
    payload = bytes(chunk)

    def send() -> None:
        for _ in range(count):
            sender.send("bench/chunk", payload)

    t0 = time.perf_counter()
    th = threading.Thread(target=send)
    th.start()
    for _ in range(count):
        receiver.recv("bench/chunk", chunk)
    th.join()
    return time.perf_counter() - t0


@register_bench(
    "channel",
    "framed channel throughput (MB/s) in-process and over loopback TCP",
    ("local_mb_per_s", "tcp_mb_per_s", "chunk_bytes", "total_bytes"),
)
def bench_channel(opts: BenchOptions) -> dict[str, object]:
    chunk = 1 << 20 if opts.quick else 4 << 20
    count = 4 if opts.quick else 64
    c, s = local_pair()
    local_s = _pump(Channel(c, "client"), Channel(s, "server"), chunk, count)
    srv = tcp_listen("127.0.0.1", 0)
    port = srv.getsockname()[1]
    box: dict[str, Channel] = {}
    th = threading.Thread(
        target=lambda: box.setdefault("s", Channel(tcp_accept(srv, 10), "server"))
    )
    th.start()
    cc = Channel(tcp_connect("127.0.0.1", port, 10), "client")
    th.join()
    srv.close()
    tcp_s = _pump(cc, box["s"], chunk, count)
    cc.close()
    box["s"].close()
    total = chunk * count
    return {
        "local_mb_per_s": round(total / local_s / 1e6, 1),
        "tcp_mb_per_s": round(total / tcp_s / 1e6, 1),
        "chunk_bytes": chunk,
        "total_bytes": total,
    }
