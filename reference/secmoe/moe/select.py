"""Select-Then-Compute under HE: the encrypted one-hot selects an expert's weights, which then
multiply the encrypted input (spec/40-moe.md §40.1-40.2).

The client sends one ciphertext per (token, slot) holding its share of the arithmetic one-hot;
the server adds its share, expands it into one encrypted constant 2^L t_e per expert (spec
§20.10), forms sum_e W_e [[2^L t_e]] = [[2^L W_r]] block by block, multiplies by the encrypted
input (ct x ct), masks, floods, switches down and returns; the client decrypts degree-2 results.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import Ring, RingVec
from secmoe.errors import SpecError
from secmoe.he import bfv, galois, noise, packing, relin, respack, rns
from secmoe.he.galois import GaloisKey
from secmoe.he.matmul import HeSession, he_setup
from secmoe.he.modswitch import mod_switch, switch_key, switched_params
from secmoe.he.params import T_BITS, HeParams, preset
from secmoe.he.privacy import decrypt_share
from secmoe.he.serialize import ct_bytes, ct_decode, ct_encode, gk_bytes, gk_decode, gk_encode
from secmoe.moe.mac import MAC_BATCH, select_mac
from secmoe.moe.prepare import PreparedStack
from secmoe.session import PartyContext

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
SELECT_HE = "he16384"  # ct x ct after the expansion needs the larger set (spec §20.5)
W_BITS = 20  # public bound |W_ij| < 2^20 on encoded expert weights (|w| < 4 at f = 18)
X_BITS = 30  # public bound |x_j| < 2^30 on the encoded inputs of an expert product
# Benchmark instrumentation: a layer adds its selection time (seconds; for moe the server's
# expansion of the selectors and sum_e W_e [[2^L t_e]]) to ctx.store under this key.
SELECTION_TIMER = "moe/selection_seconds"
# Its parts in expert_matmul: the multiply-accumulate, waiting for prepared blocks from the cache
# file, and building blocks in the call (weights not prepared); the rest is the expansion.
MAC_TIMER = "moe/selection_mac_seconds"
READ_TIMER = "moe/selection_read_seconds"
BUILD_TIMER = "moe/selection_build_seconds"


def clock_selection(ctx: PartyContext, since: float, part: str | None = None) -> None:
    """Add the seconds since ``since`` (``time.perf_counter``) to the selection timer (and to
    the timer ``part`` of it)."""
    took = time.perf_counter() - since
    for key in (SELECTION_TIMER,) if part is None else (SELECTION_TIMER, part):
        got = ctx.store.get(key)
        prev = got if isinstance(got, float) else 0.0
        ctx.store[key] = prev + took


def select_params() -> HeParams:
    return preset(SELECT_HE)


def levels_for(experts: int) -> int:
    """L = ceil(log2 E): the expansion levels, and the factor 2^L the selection carries."""
    if experts < 1:
        raise SpecError("need at least one expert")
    return (experts - 1).bit_length()


PACK_PRIMES = 6  # the expert products are switched to the first 6 primes, then packed there


def pack_params() -> HeParams:
    """The set the expert products are packed at (spec §40.2): he16384's first PACK_PRIMES."""
    return switched_params(select_params(), PACK_PRIMES)


@dataclass(frozen=True)
class SelectKeys:
    """The session's keys for selection: the HE session, the Galois keys of the selector's
    expansion, the relinearisation key, and the packing's Galois keys (at ``pack_params``)."""

    session: HeSession
    levels: int
    galois: dict[int, GaloisKey]
    relin: GaloisKey | None = None
    pack: dict[int, GaloisKey] | None = None


def _send_keys(
    ctx: PartyContext, label: str, params: HeParams, elements: tuple[int, ...], make: Any
) -> dict[int, GaloisKey]:
    """Client: make and send the keys of ``elements`` (in order); server: receive them."""
    if ctx.party == "client":
        keys: dict[int, GaloisKey] = {k: make(k) for k in elements}
        if elements:
            ctx.channel.send(label, b"".join(gk_encode(keys[k]) for k in elements))
        return keys
    if not elements:
        return {}
    size = gk_bytes(params)
    data = ctx.channel.recv(label, size * len(elements))
    return {
        k: gk_decode(params, data[i * size : (i + 1) * size], k, label=label, party="server")
        for i, k in enumerate(elements)
    }


def select_setup(ctx: PartyContext, experts: int) -> SelectKeys:
    """Keys for selecting among ``experts``, once per session, phase ``offline``.

    Implements spec §40.1.1 `select_setup` (spec/40-moe.md#select_setup).
    """
    p = select_params()
    levels = levels_for(experts)
    key = f"moe.select/{p.name}/{levels}"
    got = ctx.store.get(key)
    if isinstance(got, SelectKeys):
        return got
    # Step 1: pk at he16384 (every expert product is relinearised before it is re-randomised).
    session = he_setup(ctx, p, pack_keys=False)
    sk = session.sk
    small = pack_params()
    with ctx.channel.phase("offline"):
        # Step 2: the Galois keys that reach every level (one while 2^(2L-1) <= N), increasing k.
        prg = ctx.prg("moe.keys", "galois") if sk is not None else None
        keys = _send_keys(
            ctx,
            "moe/keys/galois",
            p,
            galois.keys_needed(p, levels),
            lambda k: galois.galois_keygen(sk, k, prg),  # type: ignore[arg-type]
        )
        # Steps 3-4, once per session: the relinearisation key and the packing's Galois keys.
        packed = ctx.store.get("moe.pack")
        if isinstance(packed, tuple):
            relin_key, pack_keys = packed
        else:
            rprg = ctx.prg("moe.keys", "relin") if sk is not None else None
            relin_key = _send_keys(
                ctx,
                "moe/keys/relin",
                p,
                (relin.RELIN_ELEMENT,),
                lambda _: relin.relin_keygen(sk, rprg),  # type: ignore[arg-type]
            )[relin.RELIN_ELEMENT]
            pprg = ctx.prg("moe.keys", "pack") if sk is not None else None
            small_sk = switch_key(sk, small) if sk is not None else None
            pack_keys = _send_keys(
                ctx,
                "moe/keys/pack",
                small,
                respack.pack_elements(small),
                lambda k: galois.galois_keygen(small_sk, k, pprg),  # type: ignore[arg-type]
            )
            ctx.store["moe.pack"] = (relin_key, pack_keys)
    out = SelectKeys(session, levels, keys, relin_key, pack_keys)
    ctx.store[key] = out
    return out


@dataclass(frozen=True)
class Selection:
    """The expanded selectors (server: per row, the E constants [[2^L t_e]] in NTT form)."""

    rows: int
    experts: int
    levels: int
    # (rows, E, 2, L, N) on the server, None on the client. uint32 (canonical residues below
    # 2^31): the multiply-accumulate reads them once per weight block, so their width is most
    # of its memory traffic.
    cts: NDArray[np.uint32] | None


def select_experts(ctx: PartyContext, onehot: RingVec) -> Selection:
    """The server's encrypted selectors for each row of an arithmetic one-hot (rows, E).

    Implements spec §40.1.2 `select_experts` (spec/40-moe.md#select_experts).
    """
    sel = ctx.ring.check(np.asarray(onehot), "onehot")
    if sel.ndim != 2 or sel.shape[0] < 1:
        raise SpecError(f"the one-hot must be (rows, experts), got shape {sel.shape}")
    rows, experts = sel.shape
    keys = select_setup(ctx, experts)
    p = keys.session.params
    step = ct_bytes(p, 1, seeded=True)

    def packed(row: RingVec) -> U64:
        poly = np.zeros(p.n, dtype=np.uint64)
        poly[:experts] = row
        return poly

    with ctx.channel.phase("online"):
        if ctx.party == "client":
            assert keys.session.sk is not None
            # Step 1: one seeded ciphertext of sum_e t_e X^e per row (the client's shares).
            prg = ctx.prg("moe.select", "encrypt")
            cts = [bfv.encrypt_sk(keys.session.sk, packed(sel[r]), prg) for r in range(rows)]
            ctx.channel.send("moe/select", b"".join(ct_encode(c, seeded=True) for c in cts))
            return Selection(rows, experts, keys.levels, None)
        data = ctx.channel.recv("moe/select", rows * step)
        out = np.empty((rows, experts, 2, len(p.q_primes), p.n), dtype=np.uint32)
        for r in range(rows):
            ct = ct_decode(
                p, data[r * step : (r + 1) * step], seeded=True, label="moe/select", party="server"
            )
            # Step 2: add the server's shares (exact, spec §20.3.4); expand into 2^L constants.
            t0 = time.perf_counter()
            full = bfv.ct_add_plain(ct, packed(sel[r]))
            ctx.say(f"select: expanding row {r + 1}/{rows} ({keys.levels} levels)")
            expanded = galois.expand_selector(full, keys.galois, keys.levels)
            out[r] = np.stack([packing.ntt_parts(c) for c in expanded[:experts]])
            clock_selection(ctx, t0)
    return Selection(rows, experts, keys.levels, out)


def _block_ntt(p: HeParams, shape: packing.MatmulShape, w: I64, bo: int, bi: int) -> U64:
    """One expert's weight block (b_o, b_i) in NTT form: the one builder of weight blocks (the
    preparation of spec §40.7 builds through it)."""
    t = rns.tables(p.n, p.q_primes)
    poly = rns.from_signed(packing.encode_weights(p, shape, w, bo, bi), p.q_primes)
    return rns.ntt_forward(poly, t)


def expert_shape(p: HeParams, d_in: int, d_out: int) -> packing.MatmulShape:
    """One token per product, n_i the smallest power of two >= d_in (at most N), so that an
    input travels in ceil(d_in / n_i) ciphertexts; n_o = min(d_out, N / n_i) (spec §40.2)."""
    n_i = min(1 << (d_in - 1).bit_length(), p.n)
    return packing.MatmulShape(1, d_in, d_out, 1, n_i, min(d_out, p.n // n_i))


def product_noise_bits(p: HeParams, shape: packing.MatmulShape, experts: int, levels: int) -> float:
    """The analytic noise of one output block of ``expert_matmul`` after relinearisation and
    before re-randomisation (spec §40.2, "Noise bound")."""
    fresh = noise.add_bits(noise.fresh_sk_bits(), 0)  # encrypted share plus the server's share
    plan = galois.automorphism_plan(p, levels, galois.keys_needed(p, levels))
    selector = noise.expand_bits(p, fresh, levels, [m for _, m in plan])
    selected = noise.mul_plain_bits(selector, float(shape.stride) * 2.0**W_BITS) + math.log2(
        max(experts, 1)
    )
    # The input is encoded at q / 2^(64 + a): its message is the integer sum of the shares.
    one = noise.mul_bits(p, selected, fresh, W_BITS + levels, T_BITS + 1)
    summed = one + math.log2(shape.in_blocks)
    return noise.add_bits(summed, noise.key_switch_bits(p))


@dataclass(frozen=True)
class ExpertLayout:
    """Where the products of ``expert_matmul`` travel: K = stacks out_blocks rows products in
    order (stack, output block, row), row fastest, cut into groups of 2^l_max."""

    shape: packing.MatmulShape
    plan: respack.PackPlan
    groups: list[range]
    positions: list[NDArray[np.intp]]  # per group: kept coefficients, increasing
    outputs: list[NDArray[np.intp]]  # per group: flat index (stack, row, output), same order


def expert_layout(
    rows: int, d_in: int, d_out: int, stacks: int, experts: int, levels: int
) -> ExpertLayout:
    p = select_params()
    shape = expert_shape(p, d_in, d_out)
    a = shape.n_i.bit_length() - 1
    plan = respack.pack_plan(p, a, product_noise_bits(p, shape, experts, levels), pack_params())
    count = stacks * shape.out_blocks * rows
    groups = plan.groups(count)
    positions, outputs = [], []
    for group in groups:
        g = shape.n_i >> (len(group) - 1).bit_length()
        pos, idx = [], []
        for k, kappa in enumerate(group):
            m, rest = divmod(kappa, shape.out_blocks * rows)
            bo, r = divmod(rest, rows)
            i = np.arange(min(shape.n_o, d_out - bo * shape.n_o))
            pos.append(i * shape.n_i + k * g)
            idx.append((m * rows + r) * d_out + bo * shape.n_o + i)
        p_all, i_all = np.concatenate(pos), np.concatenate(idx)
        order = np.argsort(p_all, kind="stable")
        positions.append(p_all[order].astype(np.intp))
        outputs.append(i_all[order].astype(np.intp))
    return ExpertLayout(shape, plan, groups, positions, outputs)


def expert_matmul_bytes(
    rows: int, inputs: int, d_in: int, d_out: int, stacks: int, experts: int
) -> tuple[int, int]:
    """(client to server, server to client) bytes of ``expert_matmul``."""
    lay = expert_layout(rows, d_in, d_out, stacks, experts, levels_for(experts))
    p = select_params()
    small = switched_params(pack_params(), lay.plan.keep)
    up = inputs * lay.shape.in_blocks * ct_bytes(p, 1, seeded=True)
    return up, sum(respack.packed_bytes(small, pos.size) for pos in lay.positions)


def expert_matmul(
    ctx: PartyContext,
    sel: Selection,
    x: RingVec,
    row_input: list[int],
    weights: list[I64 | PreparedStack] | None,
    d_out: int,
    stacks: int = 1,
) -> list[RingVec]:
    """Shares of 2^L W_{r} x for each row r (its selected expert) and each weight stack.

    Implements spec §40.2.1 `expert_matmul` (spec/40-moe.md#expert_matmul).

    Args:
        sel: the rows' selectors (``select_experts``).
        x: this party's shares of the inputs, (inputs, d_in); row r multiplies x[row_input[r]].
        weights: the server's stacks (E, d_out, d_in) of signed encoded weights, one per
            product sharing the input (W1 and V of a gated expert), each either the array or
            its preparation (spec §40.7); None on the client.
        d_out: the output width (public).
        stacks: the number of weight stacks (public).

    Returns:
        One (rows, d_out) share of 2^L W_r x per weight stack; not truncated (the caller divides
        by 2^(f + L)).
    """
    p = select_params()
    ring = ctx.ring
    xs = ring.check(np.asarray(x), "x")
    if (
        xs.ndim != 2
        or len(row_input) != sel.rows
        or not all(0 <= i < xs.shape[0] for i in row_input)
    ):
        raise SpecError("x must be (inputs, d_in) with one valid input index per selected row")
    d_in = xs.shape[1]
    keys = select_setup(ctx, sel.experts)
    lay = expert_layout(sel.rows, d_in, d_out, stacks, sel.experts, sel.levels)
    shape = lay.shape
    a = shape.n_i.bit_length() - 1
    mid = pack_params()
    small = switched_params(mid, lay.plan.keep)
    up = ct_bytes(p, 1, seeded=True)
    n_in, n_out = shape.in_blocks, shape.out_blocks
    inputs = xs.shape[0]
    flat = np.zeros(stacks * sel.rows * d_out, dtype=np.uint64)

    def split(values: U64) -> list[RingVec]:
        per = values.reshape(stacks, sel.rows, d_out)
        return [np.ascontiguousarray(per[m]) for m in range(stacks)]

    with ctx.channel.phase("online"):
        if ctx.party == "client":
            assert keys.session.sk is not None
            # Step 1: encrypt every input's blocks (seeded) at the scale q / 2^(64 + a).
            prg = ctx.prg("moe.matmul", "encrypt")
            zero = np.zeros(p.n, dtype=np.uint64)
            blocks = []
            for i in range(inputs):
                for bi in range(n_in):
                    ct = bfv.encrypt_sk(keys.session.sk, zero, prg)
                    plain = packing.encode_input(p, shape, xs[i], 0, bi)
                    scaled = respack.add_plain_scaled(ct, plain, a)
                    blocks.append(bfv.Ciphertext(p, scaled.parts, ct.seed))
            ctx.channel.send("moe/matmul/x", b"".join(ct_encode(c, seeded=True) for c in blocks))
            # Step 6: decrypt every packed response at its kept positions.
            sizes = [respack.packed_bytes(small, pos.size) for pos in lay.positions]
            data = ctx.channel.recv("moe/matmul/y", sum(sizes))
            sk_small = switch_key(keys.session.sk, small)
            offset = 0
            for pos, idx, size in zip(lay.positions, lay.outputs, sizes, strict=True):
                ct = respack.packed_ct_decode(
                    small, data[offset : offset + size], pos, label="moe/matmul/y", party="client"
                )
                offset += size
                flat[idx] = decrypt_share(sk_small, ct)[pos]
            return split(flat)
        if weights is None or len(weights) != stacks:
            raise SpecError(f"the server needs {stacks} weight stack(s)")
        sources = [_block_source(p, shape, sel.experts, w) for w in weights]
        assert sel.cts is not None and keys.relin is not None and keys.pack is not None
        # Step 2: the inputs under encryption, the server's shares added at the same scale.
        data = ctx.channel.recv("moe/matmul/x", inputs * n_in * up)
        x_cts = []
        for i in range(inputs):
            row = []
            for bi in range(n_in):
                k = i * n_in + bi
                ct = ct_decode(
                    p,
                    data[k * up : (k + 1) * up],
                    seeded=True,
                    label="moe/matmul/x",
                    party="server",
                )
                plain = packing.encode_input(p, shape, xs[i], 0, bi)
                # Lifted once (ct_mul's step 1): it multiplies every output block's selection.
                row.append(bfv.lift(respack.add_plain_scaled(ct, plain, a)))
            x_cts.append(row)
        prg = ctx.prg("moe.matmul", "mask")
        members: list[bfv.Ciphertext] = []
        # Steps 3-4 run as a pipeline: this thread selects (the multiply-accumulate) and, in
        # product order, floods and switches; the products, relinearisations and shifts, which
        # draw no randomness, run on worker threads meanwhile. The PRG is drawn from here only,
        # in product order, so the result is that of the sequential steps bit for bit.
        pending: deque[Future[bfv.Ciphertext]] = deque()

        def finish_oldest() -> None:
            one = pending.popleft().result()
            flooded = respack.flood(one, keys.session.keys.pk, prg, lay.plan.flood_bits)
            members.append(mod_switch(flooded, PACK_PRIMES))

        for m, source in enumerate(sources):
            selected: list[list[tuple[bfv.Ciphertext, U64]]] = [[] for _ in range(sel.rows)]
            # Step 3: per weight block (b_o, b_i), b_i fastest: every expert's block in NTT form
            # (prepared, or built once per call for all rows), the selection
            # sum_e W_e [[2^L t_e]], its product with the input block, summed over the b_i.
            # The multiply-accumulate takes MAC_BATCH consecutive blocks at once (one pass over
            # the selectors, §40.7.3); the products then follow block by block, in order.
            stream = iter(source)
            timer = READ_TIMER if isinstance(weights[m], PreparedStack) else BUILD_TIMER
            while True:
                t0 = time.perf_counter()
                batch = list(itertools.islice(stream, MAC_BATCH))
                clock_selection(ctx, t0, timer)
                if not batch:
                    break
                bo, bi, _ = batch[-1]
                ctx.say(
                    f"expert product {m + 1}/{len(sources)}: block {bo * n_in + bi + 1}/{n_out * n_in}"
                )
                chosen = [block for _, _, block in batch]
                summed: list[U64] = []
                for r in range(sel.rows):
                    t0 = time.perf_counter()
                    summed.append(select_mac(chosen, sel.cts[r], p.q_primes))
                    clock_selection(ctx, t0, MAC_TIMER)
                for k, (_, bi, _) in enumerate(batch):
                    t0 = time.perf_counter()
                    for r in range(sel.rows):
                        one = summed[r][k]
                        selected[r].append((packing.from_ntt_parts(p, one), one))
                    clock_selection(ctx, t0)
                    if bi == n_in - 1:
                        for r in range(sel.rows):
                            job = (selected[r], x_cts[row_input[r]], keys.relin, shape.n_i)
                            pending.append(_products_pool().submit(_block_product, *job))
                            while len(pending) > PIPELINE_DEPTH:
                                finish_oldest()
                        selected = [[] for _ in range(sel.rows)]
        while pending:
            finish_oldest()
        # Step 5: per group, pack, mask, switch down; the server keeps -r.
        payload: list[bytes] = []
        for group, pos, idx in zip(lay.groups, lay.positions, lay.outputs, strict=True):
            packed = respack.pack_group([members[k] for k in group], a, keys.pack)
            r_mask = prg.next_ring(p.n, 64)
            packed = bfv.ct_add_plain(packed, r_mask)
            payload.append(respack.packed_ct_encode(mod_switch(packed, lay.plan.keep), pos))
            flat[idx] = Ring(64).neg(r_mask)[pos]
        ctx.channel.send("moe/matmul/y", b"".join(payload))
        return split(flat)


PIPELINE_DEPTH = 2 * (os.cpu_count() or 1)  # products in flight on the worker threads


@cache
def _products_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="expert-product")


def _block_product(
    selected: list[tuple[bfv.Ciphertext, U64]],
    inputs: list[bfv.Lifted],
    relin_key: GaloisKey,
    n_i: int,
) -> bfv.Ciphertext:
    """Steps 3-4 of §40.2.1 for one product, without randomness: the selected blocks (each with
    its NTT form mod q) times the input blocks, summed over b_i, relinearised, the outputs
    moved to the multiples of n_i."""
    acc: bfv.Ciphertext | None = None
    for (block, ntt_q), x in zip(selected, inputs, strict=True):
        # Its residues mod q are in NTT form already: only those mod P are new.
        prod = bfv.ct_mul(bfv.lift(block, ntt_q=ntt_q), x)
        acc = prod if acc is None else bfv.ct_add(acc, prod)
    assert acc is not None
    return respack.shift_outputs(relin.relinearise(acc, relin_key), n_i)


def _block_source(
    p: HeParams, shape: packing.MatmulShape, experts: int, w: I64 | PreparedStack
) -> Iterator[tuple[int, int, NDArray[np.uint32] | U64]]:
    """The weight blocks (b_o, b_i, (E, L, N) NTT form) of one stack, b_i fastest: read from its
    preparation, or built here through ``_block_ntt`` (checked first: shape and W_BITS)."""
    if isinstance(w, PreparedStack):
        if w.params != p or w.shape != shape or w.experts != experts:
            raise SpecError("the prepared stack was built for another shape or parameter set")
        return w.blocks()
    arr = np.asarray(w, dtype=np.int64)
    if arr.shape != (experts, shape.d_out, shape.d_in):
        raise SpecError(f"a weight stack must be ({experts}, {shape.d_out}, {shape.d_in})")
    if np.any(np.abs(arr) >= 1 << W_BITS):
        raise SpecError(f"expert weights must be below 2^{W_BITS} in magnitude")

    def build() -> Iterator[tuple[int, int, U64]]:
        for bo in range(shape.out_blocks):
            for bi in range(shape.in_blocks):
                yield (
                    bo,
                    bi,
                    np.stack([_block_ntt(p, shape, arr[e], bo, bi) for e in range(experts)]),
                )

    return build()
