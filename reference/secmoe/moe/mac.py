"""The selection's multiply-accumulate sum_e W_e [[t_e]] in NTT form, on every core
(spec/40-moe.md §40.7.3).

For each prime the products of canonical residues are below p^2 < 2^62, so four of them sum below
2^64 between reductions (one reduction per four terms), in the compiled loop
``secmoe.he.kernels.mac_rows``; up to MAC_BATCH blocks share one pass over the selectors, which
are most of the memory traffic. The primes are split between threads: the loop releases the GIL,
so the threads run on separate cores.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.he.kernels import mac_rows

U64 = NDArray[np.uint64]
Residues = NDArray[np.uint32] | NDArray[np.uint64]


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="select-mac")


MAC_BATCH = 4  # consecutive weight blocks multiplied in one pass over the selectors (§40.7.3)


def select_mac(blocks: Sequence[Residues], s: Residues, primes: tuple[int, ...]) -> U64:
    """sum_e w[e] * s[e] (pointwise, mod each prime) over the experts, canonical, for each block
    ``w`` of ``blocks``.

    Implements spec §40.7.3 `select_mac` (spec/40-moe.md#select_mac). Each block is (E, L, N)
    canonical residues and ``s`` (E, parts, L, N) canonical residues (each uint32 or uint64); the
    result is (len(blocks), parts, L, N), each equal to ``dot_ntt``'s sum before its inverse
    transforms. The blocks share one pass over ``s``.
    """
    if not 1 <= len(blocks) <= MAC_BATCH:
        raise SpecError(f"select_mac: 1 to {MAC_BATCH} blocks at once, got {len(blocks)}")
    ws = tuple(np.ascontiguousarray(w) for w in blocks)
    first = ws[0]
    if s.ndim != 4 or any(w.shape != first.shape or w.dtype != first.dtype for w in ws):
        raise SpecError("select_mac: the blocks must share one shape and width")
    if first.ndim != 3 or first.shape[0] != s.shape[0] or first.shape[1:] != s.shape[2:]:
        raise SpecError(f"select_mac: weights {first.shape} and selectors {s.shape} do not match")
    if first.shape[1] != len(primes) or first.shape[0] < 1:
        raise SpecError("select_mac: one row per prime and at least one expert")
    lq = len(primes)
    col = np.array(primes, dtype=np.uint64)
    sc = np.ascontiguousarray(s)
    acc = np.empty((len(ws), s.shape[1], lq, s.shape[3]), dtype=np.uint64)
    workers = min(os.cpu_count() or 1, lq)
    cuts = [lq * k // workers for k in range(workers + 1)]
    if workers == 1:
        mac_rows(ws, sc, col, acc, 0, lq)
        return acc
    jobs = [_pool().submit(mac_rows, ws, sc, col, acc, a, b) for a, b in itertools.pairwise(cuts)]
    for job in jobs:
        job.result()
    return acc


def plain_multiply_add(w: Residues, s: Residues) -> U64:
    """The roofline: sum_e w[e] * s[e] with one plain numpy multiply and add per expert (uint64
    wrap-around, no reduction, one thread). Only the benchmark uses it."""
    w64 = w.astype(np.uint64)
    acc = np.zeros(s.shape[1:], dtype=np.uint64)
    tmp = np.empty_like(acc)
    for e in range(s.shape[0]):
        np.multiply(w64[e], s[e], out=tmp)
        np.add(acc, tmp, out=acc)
    return acc
