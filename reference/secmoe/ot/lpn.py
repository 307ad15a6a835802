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
class CodeBlocks:
    """The code's entries for outputs [start, stop), grouped by table block for cache locality.

    Block c covers table rows ``[c 2^BLOCK_SHIFT, (c + 1) 2^BLOCK_SHIFT)``; its entries are
    ``ei[e]`` (output, relative to ``start``) and ``er[e]`` (row within the block) for
    ``starts[c] <= e < starts[c + 1]``, in increasing output order.
    """

    start: int
    stop: int
    starts: NDArray[np.int64]
    ei: NDArray[np.uint32]
    er: NDArray[np.uint16]


@dataclass(frozen=True)
class LpnCode:
    """The public code of one (n, k, d): ``idx[i]`` are column i's d row indices in [0, k).

    ``blocks`` is the same code regrouped for the compiled kernel (one entry per part of the
    outputs that the thread pool handles).
    """

    n: int
    k: int
    d: int
    idx: Indices
    blocks: tuple[CodeBlocks, ...]


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
    nblocks = (k - 1 >> BLOCK_SHIFT) + 1
    blocks = []
    for a, b in _parts(n):
        starts, ei, er = _blocks_jit(idx[a:b], nblocks, BLOCK_SHIFT)
        blocks.append(CodeBlocks(a, b, starts, ei, er))
    return LpnCode(n, k, d, idx, tuple(blocks))


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


# The compiled kernels. A direct loop (for each output, XOR its d table rows) is bound by
# random accesses to a table of k rows (7.2 MB at the 128-bit set). The kernels instead walk
# the code block by block of 2^16 table rows (1 MB, which stays in the core's cache), each block's
# entries in increasing output order: the same XORs in another order, about twice as fast.
BLOCK_SHIFT = 16


def _blocks_py(
    idx: Indices, nblocks: int, shift: int
) -> tuple[NDArray[np.int64], NDArray[np.uint32], NDArray[np.uint16]]:
    """Group a part's entries by table block (a counting sort that keeps output order)."""
    n, d = idx.shape
    starts = np.zeros(nblocks + 1, np.int64)
    for i in range(n):
        for j in range(d):
            starts[(idx[i, j] >> shift) + 1] += 1
    for c in range(nblocks):
        starts[c + 1] += starts[c]
    pos = starts[:-1].copy()
    ei = np.empty(n * d, np.uint32)
    er = np.empty(n * d, np.uint16)
    mask = (1 << shift) - 1
    for i in range(n):
        for j in range(d):
            r = idx[i, j]
            c = r >> shift
            p = pos[c]
            ei[p] = i
            er[p] = r & mask
            pos[c] = p + 1
    return starts, ei, er


def _rows_py(
    acc: NDArray[np.uint64],
    table: NDArray[np.uint64],
    starts: NDArray[np.int64],
    ei: NDArray[np.uint32],
    er: NDArray[np.uint16],
    shift: int,
    out: NDArray[np.uint64],
) -> None:
    """Rows as (m, 2) words: out = acc, then every entry's table row XORed in, block by block."""
    for i in range(acc.shape[0]):
        out[i, 0] = acc[i, 0]
        out[i, 1] = acc[i, 1]
    for c in range(starts.shape[0] - 1):
        base = c << shift
        for e in range(starts[c], starts[c + 1]):
            i = ei[e]
            r = base + er[e]
            out[i, 0] ^= table[r, 0]
            out[i, 1] ^= table[r, 1]


def _bits_py(
    acc: NDArray[np.uint8],
    table: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ei: NDArray[np.uint32],
    er: NDArray[np.uint16],
    shift: int,
    out: NDArray[np.uint8],
) -> None:
    for i in range(acc.shape[0]):
        out[i] = acc[i]
    for c in range(starts.shape[0] - 1):
        base = c << shift
        for e in range(starts[c], starts[c + 1]):
            out[ei[e]] ^= table[base + er[e]]


_U64 = NDArray[np.uint64]
_U8 = NDArray[np.uint8]
_I64 = NDArray[np.int64]
_U32 = NDArray[np.uint32]
_U16 = NDArray[np.uint16]
_Blocks = Callable[[Indices, int, int], tuple[_I64, _U32, _U16]]
_Rows = Callable[[_U64, _U64, _I64, _U32, _U16, int, _U64], None]
_Bits = Callable[[_U8, _U8, _I64, _U32, _U16, int, _U8], None]
# nogil: both parties run in threads of one process in local runs; the kernels must not
# serialise them. cache: compiled once per machine, not per process.
_blocks_jit = cast(_Blocks, numba.njit(nogil=True, cache=True)(_blocks_py))
_rows_jit = cast(_Rows, numba.njit(nogil=True, cache=True)(_rows_py))
_bits_jit = cast(_Bits, numba.njit(nogil=True, cache=True)(_bits_py))


def _writable(a: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``a`` itself if C-contiguous and writable, else a copy: numba compiles one specialisation
    per array signature (read-only or not), so the kernels always see writable arrays."""
    if a.flags.c_contiguous and a.flags.writeable and a.dtype == np.uint8:
        return a
    return np.array(a, dtype=np.uint8, copy=True, order="C")


# The outputs are independent, so large encodings run as two parts on a small thread pool
# (the kernels release the GIL): on this 2-core machine a party then uses both cores while
# its peer waits. The result does not depend on the split.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="secmoe-lpn")
_SPLIT_MIN = 1 << 16


def _parts(n: int) -> list[tuple[int, int]]:
    return [(0, n)] if n < _SPLIT_MIN else [(0, n // 2), (n // 2, n)]


def _run(code: LpnCode, fn: Callable[[CodeBlocks], None]) -> None:
    if len(code.blocks) == 1:
        fn(code.blocks[0])
        return
    for f in [_POOL.submit(fn, part) for part in code.blocks]:
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
    if acc.ndim == 2 and acc.shape[1] == 16:
        out = np.empty((code.n, 16), dtype=np.uint8)
        rows, tab = _writable(acc), _writable(table)
        r64, t64, o64 = rows.view(np.uint64), tab.view(np.uint64), out.view(np.uint64)

        def rows_part(p: CodeBlocks) -> None:
            a, b = p.start, p.stop
            _rows_jit(r64[a:b], t64, p.starts, p.ei, p.er, BLOCK_SHIFT, o64[a:b])

        _run(code, rows_part)
        return out
    if acc.ndim == 1:
        bits = np.empty(code.n, dtype=np.uint8)
        src, tb = _writable(acc), _writable(table)

        def bits_part(p: CodeBlocks) -> None:
            a, b = p.start, p.stop
            _bits_jit(src[a:b], tb, p.starts, p.ei, p.er, BLOCK_SHIFT, bits[a:b])

        _run(code, bits_part)
        return bits
    raise SpecError("lpn_encode takes (n, 16) rows with (k, 16) rows, or (n,) with (k,) bits")


def lpn_encode_pair(
    rows: NDArray[np.uint8],
    table: NDArray[np.uint8],
    bits: NDArray[np.uint8],
    table_bits: NDArray[np.uint8],
    code: LpnCode,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """``(lpn_encode(rows, table), lpn_encode(bits, table_bits))``: the receiver's two uses."""
    return lpn_encode(rows, table, code), lpn_encode(bits, table_bits, code)
