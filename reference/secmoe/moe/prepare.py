"""Prepared expert weights: every expert's weight blocks in NTT form, built once per model and
reused for every token (spec/40-moe.md §40.7).

A stack (W1, V or W2 of every expert) is ``out_blocks x in_blocks x E x L x N`` residues below
2^31, stored as uint32: in memory while the model's memory budget allows, otherwise in a cache
file read block by block (``(b_o, b_i)`` in the order ``expert_matmul`` uses them, so the file is
read front to back once per token). A file is named and checked by a key that hashes the HE
parameters, the block shape, the block layout (the output of the block builder on a fixed probe)
and the weights; a file whose header does not match, or whose size is wrong, is rebuilt.
"""

from __future__ import annotations

import hashlib
import itertools
import mmap
import os
import queue
import shutil
import struct
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.he import packing
from secmoe.he.params import HeParams
from secmoe.model.config import MoEConfig
from secmoe.model.fixed import FixedWeights, append_column
from secmoe.moe.mac import MAC_BATCH

U32 = NDArray[np.uint32]
U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
BlockFn = Callable[[HeParams, packing.MatmulShape, I64, int, int], U64]

MAGIC = b"SECMOE.PREPARED1"  # 16 bytes
VERSION = 1
HEADER_BYTES = 4096  # the data starts page-aligned
WORD_BYTES = 4
KEY_DOMAIN = b"secmoe/v1/moe.prepare"
DISK_MARGIN = 1 << 30  # free space kept beyond the file itself
ENV_DIR = "SECMOE_CACHE_DIR"
ENV_MEMORY = "SECMOE_PREPARED_MEMORY_GIB"
DEFAULT_MEMORY_GIB = 8.0
STACK_NAMES = ("w1", "v", "w2")
W_BITS = 20  # = secmoe.moe.select.W_BITS (the public bound on encoded expert weights)


def default_cache_dir() -> Path:
    """``$SECMOE_CACHE_DIR``, else ``$XDG_CACHE_HOME/secmoe``, else ``~/.cache/secmoe``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "secmoe"


def default_memory_budget() -> int:
    """Bytes of prepared blocks kept in memory: ``$SECMOE_PREPARED_MEMORY_GIB`` (default 8)."""
    text = os.environ.get(ENV_MEMORY, "")
    try:
        gib = float(text) if text else DEFAULT_MEMORY_GIB
    except ValueError:
        raise SpecError(f"{ENV_MEMORY} must be a number of GiB, got {text!r}") from None
    if gib < 0:
        raise SpecError(f"{ENV_MEMORY} must not be negative")
    return int(gib * (1 << 30))


def probe_weights(shape: packing.MatmulShape) -> I64:
    """The fixed probe of the layout digest: W_ij = ((7919 i + 104729 j) mod 2^20) - 2^19."""
    i = np.arange(shape.d_out, dtype=np.int64)[:, None]
    j = np.arange(shape.d_in, dtype=np.int64)[None, :]
    out: I64 = ((7919 * i + 104729 * j) % (1 << 20)) - (1 << 19)
    return out


def layout_digest(p: HeParams, shape: packing.MatmulShape, block: BlockFn) -> bytes:
    """SHA-256 of the builder's blocks (0, 0) and (last, last) of the probe (uint64 LE): a change
    of the block layout changes every key."""
    w = probe_weights(shape)
    h = hashlib.sha256()
    for bo, bi in ((0, 0), (shape.out_blocks - 1, shape.in_blocks - 1)):
        h.update(np.ascontiguousarray(block(p, shape, w, bo, bi), dtype="<u8").tobytes())
    return h.digest()


def _u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def stack_key(p: HeParams, shape: packing.MatmulShape, w: I64, block: BlockFn) -> bytes:
    """The 32-byte key of a prepared stack (spec §40.7.1).

    Implements spec §40.7.1 `stack_key` (spec/40-moe.md#stack_key).
    """
    experts = w.shape[0]
    name = p.name.encode()
    h = hashlib.sha256()
    h.update(KEY_DOMAIN + _u32(VERSION, len(name)) + name)
    h.update(_u32(p.n, len(p.q_primes)) + struct.pack(f"<{len(p.q_primes)}Q", *p.q_primes))
    h.update(_u32(shape.tokens, shape.d_in, shape.d_out, shape.n_t, shape.n_i, shape.n_o))
    h.update(_u32(experts) + layout_digest(p, shape, block))
    digest = hashlib.sha256()
    for e in range(experts):  # expert by expert: no copy of the whole stack
        digest.update(np.ascontiguousarray(w[e], dtype="<i8").data)
    h.update(digest.digest())
    return h.digest()


def header(key: bytes, dims: tuple[int, int, int, int, int]) -> bytes:
    """MAGIC, key, u32 out_blocks, in_blocks, E, L, N, word bytes, 0; zeros to 4096 bytes."""
    head = MAGIC + key + _u32(*dims, WORD_BYTES, 0)
    return head + bytes(HEADER_BYTES - len(head))


@dataclass
class ReadStats:
    """Seconds spent waiting for cache-file reads (not hidden behind the compute)."""

    wait_s: float = 0.0
    bytes_read: int = 0


@dataclass(eq=False)
class PreparedStack:
    """One weight stack's NTT-form blocks, (out_blocks, in_blocks, E, L, N) uint32."""

    params: HeParams
    shape: packing.MatmulShape
    experts: int
    key: bytes
    data: U32 | None  # in memory, or None when the blocks are in ``path``
    path: Path | None
    built: bool  # False: an existing cache file was reused
    stats: ReadStats = field(default_factory=ReadStats)
    # With a file: the blocks of ``kept_indices`` also kept in memory, (k, E, L, N).
    kept: U32 | None = None

    @property
    def dims(self) -> tuple[int, int, int, int, int]:
        p, s = self.params, self.shape
        return (s.out_blocks, s.in_blocks, self.experts, len(p.q_primes), p.n)

    @property
    def block_words(self) -> int:
        _, _, e, lq, n = self.dims
        return e * lq * n

    @property
    def nbytes(self) -> int:
        o, i, *_ = self.dims
        return o * i * self.block_words * WORD_BYTES

    @property
    def in_memory(self) -> bool:
        return self.data is not None

    @property
    def memory_bytes(self) -> int:
        """Bytes of its blocks held in memory (all of them, or those a file's stack keeps)."""
        if self.data is not None:
            return self.nbytes
        return 0 if self.kept is None else self.kept.nbytes

    def blocks(self) -> Generator[tuple[int, int, U32], None, None]:
        """(b_o, b_i, the (E, L, N) block) in file order. A block from a file is valid until
        MAC_BATCH more have been requested (its buffer is then reused): copy it to keep it
        longer. The file's blocks not kept in memory are read ahead by a reader thread, which
        starts at once and keeps reading while the kept blocks are used; the time the caller
        waits for it is added to ``stats``."""
        o, i, e, lq, n = self.dims
        if self.data is not None:
            for bo in range(o):
                for bi in range(i):
                    yield bo, bi, self.data[bo, bi]
            return
        assert self.path is not None
        kept = kept_indices(o * i, 0 if self.kept is None else self.kept.shape[0])
        slot = {k: pos for pos, k in enumerate(kept)}
        streamed = [k for k in range(o * i) if k not in slot]
        size = self.block_words * WORD_BYTES
        # Page-aligned buffers, reused in turn: the reads go straight to them (O_DIRECT where the
        # file system allows it) without a copy through the page cache or fresh zeroed pages.
        buffers = [mmap.mmap(-1, size) for _ in range(MAC_BATCH + READ_AHEAD)] if streamed else []
        free: queue.Queue[mmap.mmap] = queue.Queue()
        for buf in buffers:
            free.put(buf)
        ready: queue.Queue[mmap.mmap | BaseException | None] = queue.Queue()
        stop = threading.Event()
        path = self.path

        def reader() -> None:
            try:
                fd = _open_direct(path, size % 4096 == 0 and HEADER_BYTES % 4096 == 0)
                try:
                    for k in streamed:
                        buf = free.get()
                        if stop.is_set():
                            break
                        _read_block(fd, buf, HEADER_BYTES + k * size, path)
                        ready.put(buf)
                finally:
                    os.close(fd)
                ready.put(None)
            except BaseException as exc:  # handed to the consumer
                ready.put(exc)

        thread = threading.Thread(target=reader, name="prepared-reader", daemon=True)
        if streamed:
            thread.start()
        held: deque[mmap.mmap] = deque()  # the caller's last MAC_BATCH blocks from the file
        try:
            for k in range(o * i):
                if k in slot:
                    assert self.kept is not None
                    yield k // i, k % i, self.kept[slot[k]]
                    continue
                if len(held) == MAC_BATCH:
                    free.put(held.popleft())  # MAC_BATCH more were asked for: reuse it
                t0 = time.perf_counter()
                item = ready.get()
                self.stats.wait_s += time.perf_counter() - t0
                if isinstance(item, BaseException):
                    raise item
                assert item is not None
                held.append(item)
                self.stats.bytes_read += size
                yield k // i, k % i, np.frombuffer(item, dtype=np.uint32).reshape(e, lq, n)
        finally:
            if streamed:
                stop.set()
                free.put(buffers[0])  # wake a reader waiting for a buffer
                thread.join()


def kept_indices(blocks: int, keep: int) -> list[int]:
    """The file-order indices of the ``keep`` of ``blocks`` blocks a file's stack also keeps in
    memory, spread evenly (spec §40.7): j is kept iff floor((j + 1) keep / blocks) > floor(j keep
    / blocks)."""
    keep = min(max(keep, 0), blocks)
    return [j for j in range(blocks) if (j + 1) * keep // blocks > j * keep // blocks]


# Blocks the reader may read ahead beyond the caller's MAC_BATCH: one more batch, and one to
# spare, so that the disk stays busy while a batch is multiplied.
READ_AHEAD = MAC_BATCH + 1
READ_PARTS = 4  # concurrent requests per block (measured here: 2.3 GB/s, one request 1.7)


def _open_direct(path: Path, aligned: bool) -> int:
    """The file opened for reading with O_DIRECT where available and the reads are aligned to
    4096 bytes (offsets, lengths and the page-aligned buffers), else plainly."""
    direct = getattr(os, "O_DIRECT", 0)
    if direct and aligned:
        try:
            return os.open(path, os.O_RDONLY | direct)
        except OSError:  # a file system without direct I/O (tmpfs, some network ones)
            pass
    return os.open(path, os.O_RDONLY)


def _read_block(fd: int, buf: mmap.mmap, offset: int, path: Path) -> None:
    """Fill ``buf`` from ``offset``, as READ_PARTS concurrent requests (the disk serves several
    requests in flight faster than one); a short read is a truncated file."""
    cuts = [(len(buf) * k // READ_PARTS) & ~(mmap.PAGESIZE - 1) for k in range(READ_PARTS)]
    parts = list(itertools.pairwise([*cuts, len(buf)]))
    views = [memoryview(buf)[a:b] for a, b in parts]
    pool = _read_pool()
    jobs = [
        pool.submit(_pread_all, fd, v, offset + a) for v, (a, _) in zip(views, parts, strict=True)
    ]
    got = [job.result() for job in jobs]
    for v in views:
        v.release()
    if got != [b - a for a, b in parts]:
        raise SpecError(f"prepared cache {path} is truncated")


def _pread_all(fd: int, view: memoryview, offset: int) -> int:
    """Read until ``view`` is full or the file ends; the bytes read."""
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            break
        done += got
    return done


@cache
def _read_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=READ_PARTS, thread_name_prefix="prepared-read")


def _check_file(path: Path, key: bytes, dims: tuple[int, int, int, int, int]) -> bool:
    words = int(np.prod(dims))
    try:
        if path.stat().st_size != HEADER_BYTES + words * WORD_BYTES:
            return False
        with open(path, "rb") as fh:
            return fh.read(HEADER_BYTES) == header(key, dims)
    except OSError:
        return False


def _build(
    p: HeParams,
    shape: packing.MatmulShape,
    w: I64,
    block: BlockFn,
    put: Callable[[int, int, U32], None],
) -> None:
    """Every (b_o, b_i) block of every expert through ``block``, two blocks at a time (one per
    core: numpy releases the GIL inside the transforms)."""
    experts = w.shape[0]
    lq, n = len(p.q_primes), p.n

    def one(k: int) -> None:
        bo, bi = divmod(k, shape.in_blocks)
        out = np.empty((experts, lq, n), dtype=np.uint32)
        for e in range(experts):
            out[e] = block(p, shape, w[e], bo, bi)
        put(bo, bi, out)

    total = shape.out_blocks * shape.in_blocks
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(one, range(total)):
            pass


def prepare_stack(
    p: HeParams,
    shape: packing.MatmulShape,
    w: I64,
    block: BlockFn,
    in_memory: bool,
    cache_dir: Path | None = None,
    keep_blocks: int = 0,
) -> PreparedStack:
    """The NTT-form blocks of one stack, in memory or in the cache file of its key (then its
    ``keep_blocks`` blocks spread over the file, ``kept_indices``, are also kept in memory).

    Implements spec §40.7.2 `prepare_stack` (spec/40-moe.md#prepare_stack).
    """
    if w.ndim != 3 or w.shape[1:] != (shape.d_out, shape.d_in):
        raise SpecError(f"a weight stack must be (E, {shape.d_out}, {shape.d_in})")
    experts = w.shape[0]
    for e in range(experts):  # expert by expert: no temporary of the whole stack
        if np.any(np.abs(w[e]) >= 1 << W_BITS):
            raise SpecError(f"expert weights must be below 2^{W_BITS} in magnitude")
    key = stack_key(p, shape, w, block)
    dims = (shape.out_blocks, shape.in_blocks, experts, len(p.q_primes), p.n)
    if in_memory:
        data = np.empty(dims, dtype=np.uint32)

        def keep(bo: int, bi: int, blk: U32) -> None:
            data[bo, bi] = blk

        _build(p, shape, w, block, keep)
        return PreparedStack(p, shape, experts, key, data, None, True)
    folder = (cache_dir or default_cache_dir()) / "prepared"
    path = folder / f"{key.hex()}.bin"
    if _check_file(path, key, dims):
        return _with_kept(PreparedStack(p, shape, experts, key, None, path, False), keep_blocks)
    folder.mkdir(parents=True, exist_ok=True)
    size = HEADER_BYTES + int(np.prod(dims)) * WORD_BYTES
    free = shutil.disk_usage(folder).free
    if free < size + DISK_MARGIN:
        raise SpecError(
            f"prepared weights need {size / 2**30:.2f} GiB (+1 GiB margin) in {folder}, "
            f"only {free / 2**30:.2f} GiB free; set {ENV_DIR} to a larger disk"
        )
    partial = path.with_suffix(".partial")
    block_bytes = int(np.prod(dims[2:])) * WORD_BYTES
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.pwrite(fd, bytes(HEADER_BYTES), 0)  # the header is written last

        def write(bo: int, bi: int, blk: U32) -> None:
            offset = HEADER_BYTES + (bo * shape.in_blocks + bi) * block_bytes
            view = np.ascontiguousarray(blk, dtype="<u4").data.cast("B")
            if os.pwrite(fd, view, offset) != block_bytes:
                raise SpecError(f"short write to {partial}")

        _build(p, shape, w, block, write)
        os.pwrite(fd, header(key, dims), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        partial.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(partial, path)
    return _with_kept(PreparedStack(p, shape, experts, key, None, path, True), keep_blocks)


def _with_kept(stack: PreparedStack, keep_blocks: int) -> PreparedStack:
    """``stack`` with the ``keep_blocks`` blocks of ``kept_indices`` read from its file into
    memory."""
    o, i, e, lq, n = stack.dims
    kept = kept_indices(o * i, keep_blocks)
    if kept:
        assert stack.path is not None
        words = e * lq * n
        data = np.empty((len(kept), e, lq, n), dtype=np.uint32)
        with open(stack.path, "rb") as fh:
            for pos, k in enumerate(kept):
                fh.seek(HEADER_BYTES + k * words * WORD_BYTES)
                if fh.readinto(data[pos].data.cast("B")) != words * WORD_BYTES:
                    raise SpecError(f"prepared cache {stack.path} is truncated")
        stack.kept = data
    return stack


@dataclass(eq=False)
class PreparedModel:
    """The prepared stacks of one model's experts, by name (``w1``, ``v`` for gated kinds,
    ``w2``), with the seconds the preparation took."""

    stacks: dict[str, PreparedStack]
    prepare_s: float

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.stacks.values())

    @property
    def memory_bytes(self) -> int:
        return sum(s.memory_bytes for s in self.stacks.values())

    @property
    def built(self) -> bool:
        return any(s.built for s in self.stacks.values())

    def read_stats(self) -> ReadStats:
        out = ReadStats()
        for s in self.stacks.values():
            out.wait_s += s.stats.wait_s
            out.bytes_read += s.stats.bytes_read
        return out

    def remove_built_files(self) -> int:
        """Delete the cache files this preparation built (not those it reused); their bytes."""
        freed = 0
        for s in self.stacks.values():
            if s.built and s.path is not None and s.path.exists():
                freed += s.path.stat().st_size
                s.path.unlink()
        return freed

    def reset_stats(self) -> None:
        for s in self.stacks.values():
            s.stats = ReadStats()


def expert_stacks(config: MoEConfig, weights: FixedWeights) -> dict[str, U64]:
    """The routed experts' weight stacks (E, d_out, d_in) as ``expert_matmul`` multiplies them,
    by name in the order ``w1``, ``v`` (gated kinds), ``w2``; with ``expert_bias`` each carries
    its bias as a last input column (spec §40.3.1 steps 5 and 7)."""
    plan: list[tuple[str, U64 | None, U64 | None]] = [("w1", weights.w1, weights.b1)]
    if config.gated:
        plan.append(("v", weights.v, weights.bv))
    plan.append(("w2", weights.w2, weights.b2))
    out: dict[str, U64] = {}
    for name, arr, bias in plan:
        if arr is None:
            raise SpecError(f"the weights have no {name}")
        if config.expert_bias:
            if bias is None:
                raise SpecError(f"the weights have no bias of {name} (expert_bias)")
            arr = append_column(arr, bias)
        out[name] = np.asarray(arr, dtype=np.uint64)
    return out


# The server's prepared models, by the identity of the weights object they were built from.
_REGISTRY: dict[int, tuple[weakref.ref[object], PreparedModel]] = {}


def register(weights: object, model: PreparedModel) -> None:
    """Make ``model`` the preparation of ``weights`` (looked up by :func:`lookup`)."""
    _REGISTRY[id(weights)] = (weakref.ref(weights), model)


def lookup(weights: object) -> PreparedModel | None:
    """The prepared model registered for this very weights object, if any."""
    got = _REGISTRY.get(id(weights))
    if got is None or got[0]() is not weights:
        return None
    return got[1]


def forget(weights: object) -> None:
    _REGISTRY.pop(id(weights), None)


def prepared_sizes(config: MoEConfig, memory_budget: int | None = None) -> tuple[int, int]:
    """(bytes kept in memory, bytes in cache files) of ``prepare_model(config, ...)`` under the
    memory rule of spec §40.7, from the configuration alone."""
    from secmoe.moe.select import expert_shape, select_params

    budget = default_memory_budget() if memory_budget is None else memory_budget
    p = select_params()
    extra = 1 if config.expert_bias else 0
    widths = [(config.d_ff, config.d_model + extra)] * (2 if config.gated else 1)
    widths.append((config.d_model, config.d_ff + extra))
    shapes = [expert_shape(p, d_in, d_out) for d_out, d_in in widths]
    block = config.n_experts * len(p.q_primes) * p.n * WORD_BYTES
    kept = files = 0
    for shape, (in_memory, keep) in zip(shapes, memory_plan(shapes, block, budget), strict=True):
        size = shape.out_blocks * shape.in_blocks * block
        kept += size if in_memory else keep * block
        files += 0 if in_memory else size
    return kept, files


def memory_plan(
    shapes: list[packing.MatmulShape], block_bytes: int, budget: int
) -> list[tuple[bool, int]]:
    """Per stack in order (W1, V, W2): (whole stack in memory, else the count of its blocks
    kept in memory besides its file, ``kept_indices``), within ``budget`` bytes (spec §40.7)."""
    left = budget
    plan = []
    for shape in shapes:
        blocks = shape.out_blocks * shape.in_blocks
        if blocks * block_bytes <= left:
            plan.append((True, blocks))
            left -= blocks * block_bytes
        else:
            keep = left // block_bytes
            plan.append((False, keep))
            left -= keep * block_bytes
    return plan


def prepare_model(
    config: MoEConfig,
    weights: FixedWeights,
    cache_dir: Path | None = None,
    memory_budget: int | None = None,
) -> PreparedModel:
    """The server's preparation of a model's expert stacks, registered for ``weights``.

    Implements spec §40.7.4 `prepare_model` (spec/40-moe.md#prepare_model): W1, then V (gated
    kinds), then W2, each at the block shape ``expert_matmul`` uses; a stack stays in memory
    while the stacks kept so far and it fit in ``memory_budget`` bytes (default
    ``$SECMOE_PREPARED_MEMORY_GIB``, 8 GiB), otherwise it goes to its cache file and as many of
    its blocks as still fit, spread over the file, are kept in memory too (``memory_plan``).
    """
    # select imports this module for PreparedStack: the block builder is imported here.
    from secmoe.moe.select import _block_ntt, expert_shape, select_params

    ring = config.fxp.ring
    budget = default_memory_budget() if memory_budget is None else memory_budget
    p = select_params()
    t0 = time.perf_counter()
    stacks: dict[str, PreparedStack] = {}
    arrays = expert_stacks(config, weights)
    shapes = [expert_shape(p, arr.shape[2], arr.shape[1]) for arr in arrays.values()]
    block = config.n_experts * len(p.q_primes) * p.n * WORD_BYTES
    plan = memory_plan(shapes, block, budget)
    for (name, arr), shape, (in_memory, keep) in zip(arrays.items(), shapes, plan, strict=True):
        w = ring.to_signed(arr)
        stacks[name] = prepare_stack(p, shape, w, _block_ntt, in_memory, cache_dir, keep)
        del w
    model = PreparedModel(stacks, time.perf_counter() - t0)
    register(weights, model)
    return model
