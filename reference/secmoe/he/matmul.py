"""The client's HE keys in a session, and the shared matrix product (spec/20-he.md §20.8).

The server holds a plaintext matrix W (signed fixed-point integers); x is additively shared.
The client encrypts its share, the server adds its own, multiplies, masks and floods; the client
decrypts its new share of W x (not truncated: the caller truncates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.he import bfv, noise, packing
from secmoe.he.bfv import SecretKey
from secmoe.he.modswitch import mod_switch, response_keep, switch_key, switched_params
from secmoe.he.params import HeParams
from secmoe.he.privacy import ClientKeys, decrypt_share, mask_and_flood
from secmoe.he.serialize import ct_bytes, ct_decode, ct_encode, pk_decode, pk_encode, poly_bytes
from secmoe.session import PartyContext

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class HeSession:
    """The client's secret key (client side) or its public keys (server side)."""

    params: HeParams
    sk: SecretKey | None
    keys: ClientKeys


def he_setup(ctx: PartyContext, params: HeParams, with_pk2: bool = False) -> HeSession:
    """Create (client) or receive (server) the session's keys, once per session, phase ``offline``.

    Implements spec §20.8.1 `he_setup` (spec/20-he.md#he_setup). Messages: ``he/keys/pk``
    (client to server, seed || b, 32 + 4 L N bytes) and, with ``with_pk2``, ``he/keys/pk2``.
    """
    key = f"he.session/{params.name}"
    got = ctx.store.get(key)
    if isinstance(got, HeSession) and (got.keys.pk2 is not None or not with_pk2):
        return got
    size = 32 + poly_bytes(params)
    with ctx.channel.phase("offline"):
        if ctx.party == "client":
            prg = ctx.prg("he.keys", "sk")
            sk = (
                got.sk
                if isinstance(got, HeSession) and got.sk is not None
                else bfv.keygen(params, prg)
            )
            pk = (
                got.keys.pk
                if isinstance(got, HeSession)
                else bfv.public_key(sk, ctx.prg("he.keys", "pk"), 1)
            )
            if not isinstance(got, HeSession):
                ctx.channel.send("he/keys/pk", pk_encode(pk))
            pk2 = bfv.public_key(sk, ctx.prg("he.keys", "pk2"), 2) if with_pk2 else None
            if pk2 is not None:
                ctx.channel.send("he/keys/pk2", pk_encode(pk2))
            session = HeSession(params, sk, ClientKeys(pk, pk2))
        else:
            if isinstance(got, HeSession):
                pk = got.keys.pk
            else:
                pk = pk_decode(
                    params,
                    ctx.channel.recv("he/keys/pk", size),
                    1,
                    label="he/keys/pk",
                    party="server",
                )
            pk2 = (
                pk_decode(
                    params,
                    ctx.channel.recv("he/keys/pk2", size),
                    2,
                    label="he/keys/pk2",
                    party="server",
                )
                if with_pk2
                else None
            )
            session = HeSession(params, None, ClientKeys(pk, pk2))
    ctx.store[key] = session
    return session


def he_matmul(
    ctx: PartyContext,
    params: HeParams,
    shape: packing.MatmulShape,
    x_share: U64,
    w: I64 | None = None,
    w_max_bits: int = 20,
) -> U64:
    """This party's share of X W^T (mod 2^64), X (tokens x d_in) shared, W (d_out x d_in) the server's.

    Implements spec §20.8.2 `he_matmul` (spec/20-he.md#he_matmul).

    Args:
        x_share: this party's share of X, (tokens, d_in) ring elements (or a vector if tokens = 1).
        w: the server's signed matrix (None on the client).
        w_max_bits: public bound: every |W_ij| < 2^w_max_bits (the server checks it).

    Returns:
        This party's share of X W^T, (tokens, d_out); not truncated.
    """
    session = he_setup(ctx, params)
    x_share = np.asarray(x_share, dtype=np.uint64)
    if x_share.size != shape.tokens * shape.d_in:
        raise SpecError(
            f"X has {x_share.size} elements, the shape says {shape.tokens} x {shape.d_in}"
        )
    x_share = x_share.reshape(shape.tokens, shape.d_in)
    blocks_in = [(bt, bi) for bt in range(shape.token_blocks) for bi in range(shape.in_blocks)]
    blocks_out = [(bt, bo) for bt in range(shape.token_blocks) for bo in range(shape.out_blocks)]
    # Responses travel modulo the first `keep` primes only (spec §20.11).
    keep = response_keep(params, 1)
    small = switched_params(params, keep)
    up_step, down_step = ct_bytes(params, 1, seeded=True), ct_bytes(small, 1)
    out = np.zeros((shape.tokens, shape.d_out), dtype=np.uint64)

    def place(bt: int, bo: int, values: U64) -> None:
        out[
            bt * shape.n_t : bt * shape.n_t + values.shape[0],
            bo * shape.n_o : bo * shape.n_o + values.shape[1],
        ] = values

    if ctx.party == "client":
        assert session.sk is not None
        # Step 1: encrypt each input block of the client's share (seeded: half size).
        prg = ctx.prg("he.matmul", "encrypt")
        cts = [
            bfv.encrypt_sk(session.sk, packing.encode_input(params, shape, x_share, bt, bi), prg)
            for bt, bi in blocks_in
        ]
        ctx.channel.send("he/matmul/x", b"".join(ct_encode(c, seeded=True) for c in cts))
        # Step 4: decrypt each output block; its outputs are the client's share.
        sk_small = switch_key(session.sk, small)
        data = ctx.channel.recv("he/matmul/y", len(blocks_out) * down_step)
        for k, (bt, bo) in enumerate(blocks_out):
            ct = ct_decode(
                small,
                data[k * down_step : (k + 1) * down_step],
                label="he/matmul/y",
                party="client",
            )
            place(bt, bo, packing.decode_output(shape, decrypt_share(sk_small, ct), bt, bo))
        return out
    if w is None or np.asarray(w).shape != (shape.d_out, shape.d_in):
        raise SpecError(f"the server needs W of shape ({shape.d_out}, {shape.d_in})")
    w = np.asarray(w, dtype=np.int64)
    if not 1 <= w_max_bits <= 64:
        raise SpecError(f"w_max_bits must be in [1, 64], got {w_max_bits}")
    # Every int64 is below 2^64 in magnitude; below that the bound is a real promise to check.
    if w_max_bits < 64 and np.any(np.abs(w) >= 1 << w_max_bits):
        raise SpecError(f"|W_ij| must be below 2^{w_max_bits}")
    # Step 2: receive the blocks and add the server's share (plaintext addition).
    data = ctx.channel.recv("he/matmul/x", len(blocks_in) * up_step)
    evals: list[U64] = []
    for k, (bt, bi) in enumerate(blocks_in):
        ct = ct_decode(
            params,
            data[k * up_step : (k + 1) * up_step],
            seeded=True,
            label="he/matmul/x",
            party="server",
        )
        evals.append(
            packing.ntt_parts(
                bfv.ct_add_plain(ct, packing.encode_input(params, shape, x_share, bt, bi))
            )
        )
    stacked: U64 = np.stack(evals).reshape(shape.token_blocks, shape.in_blocks, *evals[0].shape)
    wn = packing.weights_ntt(params, shape, w)
    # Step 3: per output block, sum_b W_(bo, b) [[X_(bt, b)]]; mask, re-randomise, flood.
    w_l1 = float(shape.n_i * shape.n_o) * 2.0**w_max_bits
    bound = noise.mul_plain_bits(noise.add_bits(noise.fresh_sk_bits(), 0), w_l1) + math.log2(
        shape.in_blocks
    )
    prg = ctx.prg("he.matmul", "mask")
    payload = []
    for bt, bo in blocks_out:
        ct_out, share = mask_and_flood(
            packing.dot_ntt(params, wn[bo], stacked[bt]), session.keys, prg, bound
        )
        payload.append(ct_encode(mod_switch(ct_out, keep)))
        place(bt, bo, packing.decode_output(shape, share, bt, bo))
    ctx.channel.send("he/matmul/y", b"".join(payload))
    return out
