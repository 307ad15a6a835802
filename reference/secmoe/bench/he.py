"""Benchmark ``he``: NTT, encryption, ct x pt, ct x ct, and the 768 x 3072 shared matvec.

If TenSEAL (a C++ SEAL binding, an optional benchmark-only dependency) imports, the same
operations run with it under ``peer`` (BFV with SEAL's 60-bit-max plaintext modulus: SEAL cannot
use t = 2^64, so the comparison is of the same operations at the same N, not the same scheme
instance), and ``ratio`` is ours / peer.
"""

from __future__ import annotations

import importlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from secmoe.bench.registry import BenchOptions, register_bench
from secmoe.encoding import Ring
from secmoe.errors import SpecError
from secmoe.he import bfv, packing, rns
from secmoe.he.matmul import he_matmul
from secmoe.he.params import preset
from secmoe.randomness import Prg, dst
from secmoe.session import run_local


def _ms(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``repeat`` runs after a warm-up (NTT tables, key caches): on a shared
    machine the median is far steadier than the mean."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 3)


def _peer(repeat: int) -> dict[str, float] | None:
    try:
        ts: Any = importlib.import_module("tenseal")
    except ImportError:
        return None
    ctx = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=8192, plain_modulus=1032193)
    ctx.generate_relin_keys()
    vals = list(range(8192))
    a = ts.bfv_vector(ctx, vals)
    b = ts.bfv_vector(ctx, vals)
    return {
        "encrypt_ms": _ms(lambda: ts.bfv_vector(ctx, vals), repeat),
        "decrypt_ms": _ms(lambda: a.decrypt(), repeat),
        "ct_pt_mul_ms": _ms(lambda: a * vals, repeat),
        "ct_ct_mul_ms": _ms(lambda: a * b, repeat),
    }


@register_bench(
    "he",
    "BFV (t = 2^64) at N = 8192: NTT, encrypt/decrypt, ct x pt, ct x ct, 768 x 3072 matvec",
    (
        "ntt_ms",
        "ct_pt_mul_ms",
        "ct_ct_mul_ms",
        "matvec_768x3072_s",
        "matvec_768x3072_bytes",
        "params",
    ),
)
def bench_he(opts: BenchOptions) -> dict[str, object]:
    repeat = 2 if opts.quick else 5
    p = preset("toy" if opts.quick else "he8192")
    big = preset("toy" if opts.quick else "he16384")
    src = Prg(bytes(32), dst("bench", "he"))
    sk = bfv.keygen(p, src)
    m = src.next_u64(p.n)
    ct = bfv.encrypt_sk(sk, m, src)
    w = src.next_below(p.n, 1 << 18).astype(np.int64) - (1 << 17)
    t = rns.tables(p.n, p.q_primes)
    small = np.zeros(p.n, dtype=np.int64)
    small[:4] = [3, -2, 5, 7]
    ca = bfv.encrypt_sk(sk, small.view(np.uint64), src)
    sk_big = bfv.keygen(big, src)
    cb = bfv.encrypt_sk(sk_big, np.zeros(big.n, np.uint64), src)
    opts.say(f"bench he: single operations at N = {p.n}")
    out: dict[str, object] = {
        "params": {**p.as_dict(), "ct_ct_params": big.as_dict()},
        "ntt_ms": _ms(lambda: rns.ntt_forward(ct.parts[0], t), repeat),
        "encrypt_ms": _ms(lambda: bfv.encrypt_sk(sk, m, src), repeat),
        "decrypt_ms": _ms(lambda: bfv.decrypt(sk, ct), repeat),
        "ct_pt_mul_ms": _ms(lambda: bfv.ct_mul_plain(ct, w), repeat),
        "ct_ct_mul_ms": _ms(lambda: bfv.ct_mul(ca, ca), max(1, repeat // 2)),
        "ct_ct_mul_he16384_ms": _ms(lambda: bfv.ct_mul(cb, cb), 1),
    }
    d_in, d_out = (24, 40) if opts.quick else (768, 3072)
    shape = packing.matmul_shape(p, 1, d_in, d_out)
    weights = (src.next_below(d_in * d_out, 1 << 19).astype(np.int64) - (1 << 18)).reshape(
        d_out, d_in
    )
    xc, xs = src.next_ring(d_in), src.next_ring(d_in)
    opts.say(
        f"bench he: {d_out} x {d_in} matvec, {shape.in_blocks} input ciphertext(s), "
        f"{shape.out_blocks} products packed"
    )
    t0 = time.perf_counter()
    res = run_local(
        lambda ctx: he_matmul(ctx, p, shape, xc),
        lambda ctx: he_matmul(ctx, p, shape, xs, weights),
        client_seed=bytes([3]) * 32,
        server_seed=bytes([4]) * 32,
        timeout=600,
    )
    elapsed = time.perf_counter() - t0
    ring = Ring(64)
    x = ring.add(xc, xs).view(np.int64).astype(object)
    want = np.array([int(v) % 2**64 for v in weights.astype(object) @ x], dtype=np.uint64)
    if not np.array_equal(ring.add(res.client, res.server).reshape(-1), want):
        raise SpecError("matvec result is wrong")
    main = res.cost.phases["main"]
    out.update(
        {
            "matvec_768x3072_s": round(elapsed, 3),
            "matvec_768x3072_bytes": main.bytes,
            "matvec_bytes_c2s": main.bytes_c2s,
            "matvec_bytes_s2c": main.bytes_s2c,
            "matvec_key_bytes": res.cost.phases["offline"].bytes,
            "matvec_rounds": main.rounds,
            "matvec_shape": {"d_in": d_in, "d_out": d_out, "n_i": shape.n_i, "n_o": shape.n_o},
            "cores": os.cpu_count() or 1,
        }
    )
    peer = None if opts.quick else _peer(repeat)
    if peer is not None:
        out["peer"] = {"library": "tenseal (SEAL BFV, N = 8192, t = 1032193)", **peer}
        out["ratio"] = {k: round(float(out[k]) / v, 2) for k, v in peer.items() if k in out}  # type: ignore[arg-type]
    else:
        out["peer"] = None
    return out
