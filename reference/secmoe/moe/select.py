"""Select-Then-Compute under HE: the encrypted one-hot selects an expert's weights, which then
multiply the encrypted input (spec/40-moe.md §40.1-40.2).

The client sends one ciphertext per (token, slot) holding its share of the arithmetic one-hot;
the server adds its share, expands it into one encrypted constant 2^L t_e per expert (spec
§20.10), forms sum_e W_e [[2^L t_e]] = [[2^L W_r]] block by block, multiplies by the encrypted
input (ct x ct), masks, floods, switches down and returns; the client decrypts degree-2 results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.he import bfv, galois, noise, packing, rns
from secmoe.he.galois import GaloisKey
from secmoe.he.matmul import HeSession, he_setup
from secmoe.he.modswitch import mod_switch, response_keep, switch_key, switched_params
from secmoe.he.params import HeParams, preset
from secmoe.he.privacy import decrypt_share, mask_and_flood
from secmoe.he.serialize import ct_bytes, ct_decode, ct_encode, gk_bytes, gk_decode, gk_encode
from secmoe.moe.mac import select_mac
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


@dataclass(frozen=True)
class SelectKeys:
    """The session's keys for selection: the HE session (with pk2) and the Galois keys."""

    session: HeSession
    levels: int
    galois: dict[int, GaloisKey]


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
    # Step 1: pk and pk2 at he16384 (pk2 re-randomises the degree-2 results, spec §20.5.1).
    session = he_setup(ctx, p, with_pk2=True)
    elements = galois.keys_needed(p, levels)
    keys: dict[int, GaloisKey] = {}
    # Step 2: the Galois keys that reach every level (one while 2^(2L-1) <= N), increasing k.
    with ctx.channel.phase("offline"):
        if ctx.party == "client":
            assert session.sk is not None
            prg = ctx.prg("moe.keys", "galois")
            keys = {k: galois.galois_keygen(session.sk, k, prg) for k in elements}
            if elements:
                ctx.channel.send("moe/keys/galois", b"".join(gk_encode(keys[k]) for k in elements))
        elif elements:
            size = gk_bytes(p)
            data = ctx.channel.recv("moe/keys/galois", size * len(elements))
            keys = {
                k: gk_decode(
                    p, data[i * size : (i + 1) * size], k, label="moe/keys/galois", party="server"
                )
                for i, k in enumerate(elements)
            }
    out = SelectKeys(session, levels, keys)
    ctx.store[key] = out
    return out


@dataclass(frozen=True)
class Selection:
    """The expanded selectors (server: per row, the E constants [[2^L t_e]] in NTT form)."""

    rows: int
    experts: int
    levels: int
    cts: U64 | None  # (rows, E, 2, L, N) on the server, None on the client


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
        out = np.empty((rows, experts, 2, len(p.q_primes), p.n), dtype=np.uint64)
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


def expert_shape(p: HeParams, d_in: int, d_out: int) -> packing.MatmulShape:
    """The block shape of an expert product: one token per product (spec §40.2.1)."""
    return packing.matmul_shape(p, 1, d_in, d_out)


def _block_ntt(p: HeParams, shape: packing.MatmulShape, w: I64, bo: int, bi: int) -> U64:
    """One expert's weight block (b_o, b_i) in NTT form: the one builder of weight blocks (the
    preparation of spec §40.7 builds through it)."""
    t = rns.tables(p.n, p.q_primes)
    poly = rns.from_signed(packing.encode_weights(p, shape, w, bo, bi), p.q_primes)
    return rns.ntt_forward(poly, t)


def product_noise_bits(p: HeParams, shape: packing.MatmulShape, experts: int, levels: int) -> float:
    """The analytic noise of one output block of ``expert_matmul`` before flooding (spec §40.2)."""
    fresh = noise.add_bits(noise.fresh_sk_bits(), 0)  # encrypted share plus the server's share
    plan = galois.automorphism_plan(p, levels, galois.keys_needed(p, levels))
    selector = noise.expand_bits(p, fresh, levels, [m for _, m in plan])
    selected = noise.mul_plain_bits(selector, float(shape.stride) * 2.0**W_BITS) + math.log2(
        max(experts, 1)
    )
    one = noise.mul_bits(p, selected, fresh, W_BITS + levels, X_BITS)
    return one + math.log2(shape.in_blocks)


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
    shape = expert_shape(p, d_in, d_out)
    keys = select_setup(ctx, sel.experts)
    keep = response_keep(p, 2)
    small = switched_params(p, keep)
    up, down = ct_bytes(p, 1, seeded=True), ct_bytes(small, 2)
    n_in, n_out = shape.in_blocks, shape.out_blocks
    inputs = xs.shape[0]
    with ctx.channel.phase("online"):
        if ctx.party == "client":
            assert keys.session.sk is not None
            # Step 1: encrypt every input's blocks (seeded).
            prg = ctx.prg("moe.matmul", "encrypt")
            blocks = [
                bfv.encrypt_sk(keys.session.sk, packing.encode_input(p, shape, xs[i], 0, bi), prg)
                for i in range(inputs)
                for bi in range(n_in)
            ]
            ctx.channel.send("moe/matmul/x", b"".join(ct_encode(c, seeded=True) for c in blocks))
            # Step 5: decrypt every (stack, row, output block) response.
            data = ctx.channel.recv("moe/matmul/y", stacks * sel.rows * n_out * down)
            sk_small = switch_key(keys.session.sk, small)
            outs = []
            pos = 0
            for _ in range(stacks):
                res = np.zeros((sel.rows, d_out), dtype=np.uint64)
                for r in range(sel.rows):
                    for bo in range(n_out):
                        ct = ct_decode(
                            small,
                            data[pos : pos + down],
                            degree=2,
                            label="moe/matmul/y",
                            party="client",
                        )
                        pos += down
                        vals = packing.decode_output(shape, decrypt_share(sk_small, ct), 0, bo)
                        res[r, bo * shape.n_o : bo * shape.n_o + vals.shape[1]] = vals[0]
                outs.append(res)
            return outs
        if weights is None or len(weights) != stacks:
            raise SpecError(f"the server needs {stacks} weight stack(s)")
        sources = [_block_source(p, shape, sel.experts, w) for w in weights]
        assert sel.cts is not None
        # Step 2: the inputs under encryption, the server's shares added.
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
                row.append(bfv.ct_add_plain(ct, packing.encode_input(p, shape, xs[i], 0, bi)))
            x_cts.append(row)
        bound = product_noise_bits(p, shape, sel.experts, sel.levels)
        prg = ctx.prg("moe.matmul", "mask")
        payload: list[bytes] = []
        outs = []
        for m, source in enumerate(sources):
            acc: list[list[bfv.Ciphertext | None]] = [[None] * n_out for _ in range(sel.rows)]
            # Step 3: per weight block, every expert's block in NTT form (prepared, or built
            # once per call for all rows), the selection sum_e W_e [[2^L t_e]], and its product
            # with the input block.
            t0 = time.perf_counter()
            for bo, bi, wblock in source:
                clock_selection(
                    ctx, t0, READ_TIMER if isinstance(weights[m], PreparedStack) else BUILD_TIMER
                )
                ctx.say(
                    f"expert product {m + 1}/{len(sources)}: block {bo * n_in + bi + 1}/{n_out * n_in}"
                )
                for r in range(sel.rows):
                    t0 = time.perf_counter()
                    summed = select_mac(wblock, sel.cts[r], p.q_primes)
                    clock_selection(ctx, t0, MAC_TIMER)
                    t0 = time.perf_counter()
                    selected = packing.from_ntt_parts(p, summed)
                    clock_selection(ctx, t0)
                    prod = bfv.ct_mul(selected, x_cts[row_input[r]][bi])
                    prev = acc[r][bo]
                    acc[r][bo] = prod if prev is None else bfv.ct_add(prev, prod)
                t0 = time.perf_counter()
            # Step 4: mask, re-randomise, flood, switch down; the server keeps -r.
            res = np.zeros((sel.rows, d_out), dtype=np.uint64)
            for r in range(sel.rows):
                for bo in range(n_out):
                    ct_sum = acc[r][bo]
                    assert ct_sum is not None
                    masked, share = mask_and_flood(ct_sum, keys.session.keys, prg, bound)
                    payload.append(ct_encode(mod_switch(masked, keep)))
                    vals = packing.decode_output(shape, share, 0, bo)
                    res[r, bo * shape.n_o : bo * shape.n_o + vals.shape[1]] = vals[0]
            outs.append(res)
        ctx.channel.send("moe/matmul/y", b"".join(payload))
        return outs


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
