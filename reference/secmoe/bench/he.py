"""Benchmark ``he``: NTT, encryption, ct x pt, ct x ct, and the 768 x 3072 shared matvec.

If seal-python (Microsoft SEAL's C++ BFV, the ``bench`` extra) imports, the same operations run
with it under ``peer``, interleaved with ours (median of 21 each), and ``ratio`` is ours / peer.
SEAL cannot use t = 2^64 and its default modulus for N = 8192 has five primes of 43-44 bits
(ours: seven of 31), so the comparison is of the same operations at the same N, not of one
scheme instance: the NTT of a ciphertext, secret-key encryption, decryption, ct x pt with both
in NTT form (pointwise), ct x ct without relinearisation. ``he_standard`` checks every secure
parameter set against the HE standard's 128-bit bound (spec §20.1.2).
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
from secmoe.he.params import HE_STANDARD_128, HeParams, preset
from secmoe.moe.select import pack_params
from secmoe.randomness import Prg, dst
from secmoe.session import run_local

REPEAT = 21  # timed runs per operation (medians), ours and the peer's interleaved
WARMUP = 5  # untimed interleaved runs first


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


def _interleaved(
    ours: Callable[[], Any], theirs: Callable[[], Any], repeat: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Medians (ms) of ours and the peer's, run alternately so that both see the same load:
    wall time, and the calling thread's CPU time (both operations run on one thread; on a loaded
    machine a longer operation is preempted more often, which the CPU time does not count)."""
    for _ in range(WARMUP):  # tables, caches, and the allocator's thresholds settle
        ours()
        theirs()
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for k, fn in enumerate((ours, theirs)):
            w0, c0 = time.perf_counter(), time.thread_time()
            fn()
            cpu[k].append(time.thread_time() - c0)
            wall[k].append(time.perf_counter() - w0)

    def med(xs: list[float]) -> float:
        return round(statistics.median(xs) * 1000, 3)

    return (med(wall[0]), med(wall[1])), (med(cpu[0]), med(cpu[1]))


def _seal_ops(n: int) -> tuple[str, dict[str, Callable[[], Any]]] | None:
    """SEAL's BFV (seal-python, the ``bench`` extra) at ring degree ``n``: the same operations,
    timed the same way (the plaintext pre-encoded and in NTT form, the ciphertext in NTT form for
    ct x pt, no relinearisation after ct x ct); None if it does not import."""
    try:
        seal: Any = importlib.import_module("seal")
    except ImportError:
        return None
    parms = seal.EncryptionParameters(seal.scheme_type.bfv)
    parms.set_poly_modulus_degree(n)
    moduli = seal.CoeffModulus.BFVDefault(n)
    parms.set_coeff_modulus(moduli)
    parms.set_plain_modulus(seal.PlainModulus.Batching(n, 20))
    ctx = seal.SEALContext(parms)
    keys = seal.KeyGenerator(ctx)
    enc = seal.Encryptor(ctx, keys.secret_key())
    dec = seal.Decryptor(ctx, keys.secret_key())
    ev = seal.Evaluator(ctx)
    pt = seal.BatchEncoder(ctx).encode(list(range(n)))
    ct = enc.encrypt_symmetric(pt)
    ct_ntt = ev.transform_to_ntt(ct)
    pt_ntt = ev.transform_to_ntt(pt, ctx.first_parms_id())
    bits = "+".join(str(m.bit_count()) for m in moduli)
    name = f"SEAL {getattr(seal, '__version__', '4.x')} via seal-python, BFV N = {n}, q {bits} bits"
    return name, {
        "ntt_ms": lambda: ev.transform_to_ntt(ct),
        "encrypt_ms": lambda: enc.encrypt_symmetric(pt),
        "decrypt_ms": lambda: dec.decrypt(ct),
        "ct_pt_mul_ntt_ms": lambda: ev.multiply_plain(ct_ntt, pt_ntt),
        "ct_ct_mul_ms": lambda: ev.multiply(ct, ct),
    }


def he_standard() -> dict[str, dict[str, object]]:
    """Every secure parameter set the protocols use (the presets of spec §20.1 and the MoE
    layer's packing set, §40.1.1) against the HE standard's 128-bit bound for its N (§20.1.2)."""
    sets: list[HeParams] = [preset(name) for name in ("he4096", "he8192", "he16384")]
    sets.append(pack_params())
    out: dict[str, dict[str, object]] = {}
    for p in sets:
        bound = HE_STANDARD_128[p.n]
        out[p.name] = {
            "N": p.n,
            "log_q": round(p.log_q, 2),
            "bound": bound,
            "holds": p.log_q <= bound,
        }
    return out


@register_bench(
    "he",
    "BFV (t = 2^64) at N = 8192: NTT, encrypt/decrypt, ct x pt, ct x ct, 768 x 3072 matvec",
    (
        "ntt_ms",
        "encrypt_ms",
        "decrypt_ms",
        "ct_pt_mul_ms",
        "ct_pt_mul_ntt_ms",
        "ct_ct_mul_ms",
        "matvec_768x3072_s",
        "matvec_768x3072_bytes",
        "params",
        "peer",
        "ratio",
        "he_standard",
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
    ct_ntt = rns.ntt_forward(np.stack(ct.parts), t)
    w_ntt = rns.ntt_forward(bfv.plain_poly(p, w), t)
    ours: dict[str, Callable[[], Any]] = {
        "ntt_ms": lambda: rns.ntt_forward(np.stack(ct.parts), t),
        "encrypt_ms": lambda: bfv.encrypt_sk(sk, m, src),
        "decrypt_ms": lambda: bfv.decrypt(sk, ct),
        "ct_pt_mul_ntt_ms": lambda: rns.mul_eval(ct_ntt, w_ntt, p.q_primes),
        "ct_ct_mul_ms": lambda: bfv.ct_mul(ca, ca),
    }
    opts.say(f"bench he: single operations at N = {p.n}")
    out: dict[str, object] = {
        "params": {**p.as_dict(), "ct_ct_params": big.as_dict()},
        "he_standard": he_standard(),
        "ct_pt_mul_ms": _ms(lambda: bfv.ct_mul_plain(ct, w), repeat),
        "ct_ct_mul_he16384_ms": _ms(lambda: bfv.ct_mul(cb, cb), max(1, repeat // 2)),
    }
    seal = None if opts.quick else _seal_ops(p.n)
    peer: dict[str, float] = {}
    cpu: dict[str, tuple[float, float]] = {}
    for key, fn in ours.items():
        if seal is None:
            out[key] = _ms(fn, repeat)
        else:
            (out[key], peer[key]), cpu[key] = _interleaved(fn, seal[1][key], REPEAT)
    if seal is not None:
        out["peer"] = {"library": seal[0], "repeat": REPEAT, **peer}
        out["ratio"] = {k: round(float(out[k]) / v, 2) for k, v in peer.items()}  # type: ignore[arg-type]
        out["cpu_ms"] = {k: {"ours": a, "peer": b} for k, (a, b) in cpu.items()}
        out["ratio_cpu"] = {k: round(a / b, 2) for k, (a, b) in cpu.items()}
        out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    else:
        out["peer"] = None
        out["ratio"] = None
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
    return out
