"""The primal LPN encoding with a local linear code (spec/11-silent-ot.md#lpn_code).

The code is public: column i of the k x n generator matrix has (up to) d non-zero entries at
row indices drawn from a PRG with a fixed public seed, so both parties (and every session) use
the same matrix, which is built once per process and cached. The encoding XORs, for each output
i, the d rows of a table selected by column i: a gather-and-XOR, in plain numpy
(:func:`lpn_encode_numpy`, the reference) or in a compiled kernel (:func:`lpn_encode`, tested
equal to it).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import numba
import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.randomness import Prg, dst

Indices = NDArray[np.uint32]  # (n, d)


@dataclass(frozen=True)
class LpnCode:
    """The public code of one (n, k, d): ``idx[i]`` are column i's d row indices in [0, k)."""

    n: int
    k: int
    d: int
    idx: Indices


CODE_SEED = bytes(32)  # public: the code is a fixed public matrix (spec §11.5)
_CHUNK = 1 << 22  # keystream words per step (memory bound only; the output does not depend on it)


def code_prg(n: int, k: int, d: int) -> Prg:
    """``Prg(0^32, dst("ot.ferret", "code"), u64(n) || u64(k) || u64(d))``."""
    return Prg(CODE_SEED, dst("ot.ferret", "code"), struct.pack("<QQQ", n, k, d))


def _accept_py(
    words: NDArray[np.uint64],
    limit: np.uint64,
    bound: np.uint64,
    out: NDArray[np.uint32],
    filled: int,
) -> tuple[int, int]:
    """next_below's rule over a run of words (spec §2.3.4): accept w <= limit, output w mod
    bound, until ``out`` is full. Returns the new fill and the number of words examined.

    ``limit`` and ``bound`` are numpy uint64 so that the compiled loop does the arithmetic in
    uint64 (a Python int bound would make numba compute ``w % bound`` in float64)."""
    total = out.shape[0]
    for used in range(words.shape[0]):
        if filled == total:
            return filled, used
        w = words[used]
        if w <= limit:
            out[filled] = w % bound
            filled += 1
    return filled, words.shape[0]


_Accept = Callable[
    [NDArray[np.uint64], np.uint64, np.uint64, NDArray[np.uint32], int], tuple[int, int]
]
_accept_jit = cast(_Accept, numba.njit(nogil=True, cache=True)(_accept_py))


_CODE_LOCK = threading.Lock()


def lpn_code(n: int, k: int, d: int) -> LpnCode:
    """The public local code: (n, d) row indices in [0, k), column i in row i.

    Implements spec §11.5.1 `lpn_code` (spec/11-silent-ot.md#lpn_code).

    ``code_prg(n, k, d).next_below(n d, k)`` (spec §2.3.4, rejection sampling), read column by
    column; computed by a compiled loop over the keystream that applies next_below's rule
    word by word (tested equal to ``next_below``). Cached: the matrix is public and the same
    for both parties and every session. The result is read-only.
    """
    if not (1 <= d <= k < 1 << 32) or n < 1:
        raise SpecError("the local code needs n >= 1 and 1 <= d <= k < 2^32")
    # Both parties of a local run ask for it at once: build it once, the other waits.
    with _CODE_LOCK:
        return _build_code(n, k, d)


@lru_cache(maxsize=4)
def _build_code(n: int, k: int, d: int) -> LpnCode:
    prg = code_prg(n, k, d)
    total = n * d
    limit = np.uint64(k * ((1 << 64) // k) - 1)  # the largest accepted word
    out = np.empty(total, dtype=np.uint32)
    filled, position = 0, 0
    while filled < total:
        need = total - filled
        batch = min(need + (need >> 9) + 8, _CHUNK)
        words = np.frombuffer(prg.keystream(position, 8 * batch), dtype="<u8")
        filled, used = _accept_jit(words, limit, np.uint64(k), out, filled)
        position += 8 * used
    idx = out.reshape(n, d)
    idx.setflags(write=False)
    return LpnCode(n, k, d, idx)


def lpn_encode_numpy(
    acc: NDArray[np.uint8], table: NDArray[np.uint8], code: LpnCode
) -> NDArray[np.uint8]:
    """The reference: ``out_i = acc_i XOR table[idx[i, 0]] XOR ... XOR table[idx[i, d-1]]``.

    ``acc`` is (n, w) and ``table`` (k, w) uint8 for any row width w (16 for rows, 1 for bits).
    """
    _check(acc, table, code)
    idx = code.idx
    out = np.array(acc, dtype=np.uint8, copy=True)
    step = 1 << 20
    for start in range(0, idx.shape[0], step):
        block = idx[start : start + step]
        view = out[start : start + step]
        for j in range(idx.shape[1]):
            view ^= table[block[:, j]]
    return out


def _encode_rows_py(
    acc: NDArray[np.uint64], table: NDArray[np.uint64], idx: Indices, out: NDArray[np.uint64]
) -> None:
    """Rows as (n, 2) words: the loop the compiled kernel runs (one pass, no copy of acc)."""
    n, d = idx.shape
    for i in range(n):
        lo = acc[i, 0]
        hi = acc[i, 1]
        for j in range(d):
            r = idx[i, j]
            lo ^= table[r, 0]
            hi ^= table[r, 1]
        out[i, 0] = lo
        out[i, 1] = hi


def _encode_bits_py(
    acc: NDArray[np.uint8], table: NDArray[np.uint8], idx: Indices, out: NDArray[np.uint8]
) -> None:
    n, d = idx.shape
    for i in range(n):
        b = acc[i]
        for j in range(d):
            b ^= table[idx[i, j]]
        out[i] = b


def _encode_both_py(
    acc: NDArray[np.uint64],
    table: NDArray[np.uint64],
    acc_bits: NDArray[np.uint8],
    table_bits: NDArray[np.uint8],
    idx: Indices,
    out: NDArray[np.uint64],
    out_bits: NDArray[np.uint8],
) -> None:
    """Rows and bits with the same code in one pass over the indices (the receiver's case)."""
    n, d = idx.shape
    for i in range(n):
        lo = acc[i, 0]
        hi = acc[i, 1]
        b = acc_bits[i]
        for j in range(d):
            r = idx[i, j]
            lo ^= table[r, 0]
            hi ^= table[r, 1]
            b ^= table_bits[r]
        out[i, 0] = lo
        out[i, 1] = hi
        out_bits[i] = b


_U64 = NDArray[np.uint64]
_U8 = NDArray[np.uint8]
_Rows = Callable[[_U64, _U64, Indices, _U64], None]
_Bits = Callable[[_U8, _U8, Indices, _U8], None]
_Both = Callable[[_U64, _U64, _U8, _U8, Indices, _U64, _U8], None]
# nogil: both parties run in threads of one process in local runs; the kernels must not
# serialise them. cache: compiled once per machine, not per process.
_encode_rows_jit = cast(_Rows, numba.njit(nogil=True, cache=True)(_encode_rows_py))
_encode_bits_jit = cast(_Bits, numba.njit(nogil=True, cache=True)(_encode_bits_py))
_encode_both_jit = cast(_Both, numba.njit(nogil=True, cache=True)(_encode_both_py))


def _writable(a: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``a`` itself if C-contiguous and writable, else a copy: numba compiles one specialisation
    per array signature (read-only or not), so the kernels always see writable arrays."""
    if a.flags.c_contiguous and a.flags.writeable and a.dtype == np.uint8:
        return a
    return np.array(a, dtype=np.uint8, copy=True, order="C")


# The outputs are independent, so large encodings run as two halves on a small thread pool
# (the kernels release the GIL): on this 2-core machine a party then uses both cores while
# its peer waits. The result does not depend on the split.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="secmoe-lpn")
_SPLIT_MIN = 1 << 16


def _in_parts(n: int, fn: Callable[[int, int], None]) -> None:
    if n < _SPLIT_MIN:
        fn(0, n)
        return
    half = n // 2
    for f in [_POOL.submit(fn, 0, half), _POOL.submit(fn, half, n)]:
        f.result()


def _check(acc: NDArray[np.uint8], table: NDArray[np.uint8], code: LpnCode) -> None:
    # The compiled kernel does not bounds-check: the table must have exactly k rows.
    if acc.shape[0] != code.n or table.shape[0] != code.k or acc.shape[1:] != table.shape[1:]:
        raise SpecError("lpn_encode needs n inputs and a table of k rows of the same width")


def lpn_encode(
    acc: NDArray[np.uint8], table: NDArray[np.uint8], code: LpnCode
) -> NDArray[np.uint8]:
    """The LPN encoding by the compiled kernel; equal to :func:`lpn_encode_numpy` (tested).

    Implements spec §11.5.2 `lpn_encode` (spec/11-silent-ot.md#lpn_encode).

    ``acc`` (n, 16) rows with ``table`` (k, 16) rows, or (n,) bits with (k,) bits.
    """
    _check(acc, table, code)
    idx = code.idx
    if acc.ndim == 2 and acc.shape[1] == 16:
        out = np.empty((code.n, 16), dtype=np.uint8)
        rows, tab = _writable(acc), _writable(table)
        r64, t64, o64 = rows.view(np.uint64), tab.view(np.uint64), out.view(np.uint64)
        _in_parts(code.n, lambda a, b: _encode_rows_jit(r64[a:b], t64, idx[a:b], o64[a:b]))
        return out
    if acc.ndim == 1:
        bits = np.empty(code.n, dtype=np.uint8)
        src, tb = _writable(acc), _writable(table)
        _in_parts(code.n, lambda a, b: _encode_bits_jit(src[a:b], tb, idx[a:b], bits[a:b]))
        return bits
    raise SpecError("lpn_encode takes (n, 16) rows with (k, 16) rows, or (n,) with (k,) bits")


def lpn_encode_pair(
    rows: NDArray[np.uint8],
    table: NDArray[np.uint8],
    bits: NDArray[np.uint8],
    table_bits: NDArray[np.uint8],
    code: LpnCode,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """``(lpn_encode(rows, table), lpn_encode(bits, table_bits))`` in one pass (spec §11.5.2)."""
    _check(rows, table, code)
    _check(bits, table_bits, code)
    if rows.ndim != 2 or rows.shape[1] != 16 or bits.ndim != 1:
        raise SpecError("lpn_encode_pair takes (n, 16) rows and (n,) bits")
    out = np.empty((code.n, 16), dtype=np.uint8)
    out_bits = np.empty(code.n, dtype=np.uint8)
    acc, tab = _writable(rows), _writable(table)
    a64, t64, o64 = acc.view(np.uint64), tab.view(np.uint64), out.view(np.uint64)
    src, tb, idx = _writable(bits), _writable(table_bits), code.idx

    def part(a: int, b: int) -> None:
        _encode_both_jit(a64[a:b], t64, src[a:b], tb, idx[a:b], o64[a:b], out_bits[a:b])

    _in_parts(code.n, part)
    return out, out_bits
