"""The client's HE keys in a session, and the shared matrix product (spec/20-he.md §20.8).

The server holds a plaintext matrix W (signed fixed-point integers); x is additively shared.
The client encrypts its share, the server adds its own, multiplies, masks and floods; the client
decrypts its new share of W x (not truncated: the caller truncates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import Ring
from secmoe.errors import SpecError
from secmoe.he import bfv, galois, packing, respack
from secmoe.he.bfv import SecretKey
from secmoe.he.galois import GaloisKey
from secmoe.he.modswitch import mod_switch, switch_key, switched_params
from secmoe.he.params import HeParams
from secmoe.he.privacy import ClientKeys, decrypt_share
from secmoe.he.serialize import (
    ct_bytes,
    ct_decode,
    ct_encode,
    gk_bytes,
    gk_decode,
    gk_encode,
    pk_decode,
    pk_encode,
    poly_bytes,
)
from secmoe.session import PartyContext

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class HeSession:
    """The client's secret key (client side) or its public keys (server side), and the Galois
    keys of response packing (spec §20.13) when the session has sent them."""

    params: HeParams
    sk: SecretKey | None
    keys: ClientKeys
    galois: dict[int, GaloisKey] | None = None


def he_setup_messages(
    params: HeParams, with_pk2: bool = False, pack_keys: bool = True
) -> list[int]:
    """The byte sizes of ``he_setup``'s messages in a fresh session, in order."""
    key = 32 + poly_bytes(params)
    sizes = [key, *([key] if with_pk2 else [])]
    if pack_keys:
        sizes.append(len(respack.pack_elements(params)) * gk_bytes(params))
    return sizes


def he_setup(
    ctx: PartyContext, params: HeParams, with_pk2: bool = False, pack_keys: bool = True
) -> HeSession:
    """Create (client) or receive (server) the session's keys, once per session, phase ``offline``.

    Implements spec §20.8.1 `he_setup` (spec/20-he.md#he_setup). Messages, each only if not
    sent before in the session: ``he/keys/pk`` (client to server, seed || b, 32 + 4 L N bytes),
    with ``with_pk2`` ``he/keys/pk2``, with ``pack_keys`` ``he/keys/galois`` (the Galois keys
    of ``pack_elements``, increasing element order).
    """
    key = f"he.session/{params.name}"
    got = ctx.store.get(key)
    old = got if isinstance(got, HeSession) else None
    need_pk2 = with_pk2 and (old is None or old.keys.pk2 is None)
    need_gk = pack_keys and (old is None or old.galois is None)
    if old is not None and not need_pk2 and not need_gk:
        return old
    size = 32 + poly_bytes(params)
    elements = respack.pack_elements(params)
    gsize = gk_bytes(params)
    with ctx.channel.phase("offline"):
        if ctx.party == "client":
            sk = old.sk if old is not None and old.sk is not None else None
            if sk is None:
                sk = bfv.keygen(params, ctx.prg("he.keys", "sk"))
            if old is None:
                pk = bfv.public_key(sk, ctx.prg("he.keys", "pk"), 1)
                ctx.channel.send("he/keys/pk", pk_encode(pk))
            else:
                pk = old.keys.pk
            pk2 = old.keys.pk2 if old is not None else None
            if need_pk2:
                pk2 = bfv.public_key(sk, ctx.prg("he.keys", "pk2"), 2)
                ctx.channel.send("he/keys/pk2", pk_encode(pk2))
            gks = old.galois if old is not None else None
            if need_gk:
                prg = ctx.prg("he.keys", "galois")
                gks = {k: galois.galois_keygen(sk, k, prg) for k in elements}
                ctx.channel.send("he/keys/galois", b"".join(gk_encode(gks[k]) for k in elements))
            session = HeSession(params, sk, ClientKeys(pk, pk2), gks)
        else:
            if old is None:
                pk = pk_decode(
                    params,
                    ctx.channel.recv("he/keys/pk", size),
                    1,
                    label="he/keys/pk",
                    party="server",
                )
            else:
                pk = old.keys.pk
            pk2 = old.keys.pk2 if old is not None else None
            if need_pk2:
                pk2 = pk_decode(
                    params,
                    ctx.channel.recv("he/keys/pk2", size),
                    2,
                    label="he/keys/pk2",
                    party="server",
                )
            gks = old.galois if old is not None else None
            if need_gk:
                data = ctx.channel.recv("he/keys/galois", gsize * len(elements))
                gks = {
                    k: gk_decode(
                        params,
                        data[i * gsize : (i + 1) * gsize],
                        k,
                        label="he/keys/galois",
                        party="server",
                    )
                    for i, k in enumerate(elements)
                }
            session = HeSession(params, None, ClientKeys(pk, pk2), gks)
    ctx.store[key] = session
    return session


@dataclass(frozen=True)
class _Layout:
    """The products of a packed he_matmul and where their outputs travel."""

    shape: packing.MatmulShape
    plan: respack.PackPlan
    groups: list[range]
    positions: list[NDArray[np.intp]]  # per group: kept coefficients, increasing
    outputs: list[NDArray[np.intp]]  # per group: flat index token * d_out + output, same order


def _layout(params: HeParams, shape: packing.MatmulShape) -> _Layout:
    plan = packing.pack_plan_for(params, shape)
    count = shape.token_blocks * shape.out_blocks
    groups = plan.groups(count)
    positions, outputs = [], []
    for group in groups:
        ell = (len(group) - 1).bit_length()
        g = shape.n_i >> ell
        pos, idx = [], []
        for k, kappa in enumerate(group):
            bt, bo = divmod(kappa, shape.out_blocks)
            count_t = min(shape.n_t, shape.tokens - bt * shape.n_t)
            count_o = min(shape.n_o, shape.d_out - bo * shape.n_o)
            tau = np.arange(count_t)[:, None]
            i = np.arange(count_o)[None, :]
            pos.append((tau * shape.stride + i * shape.n_i + k * g).reshape(-1))
            idx.append(((bt * shape.n_t + tau) * shape.d_out + bo * shape.n_o + i).reshape(-1))
        p_all, i_all = np.concatenate(pos), np.concatenate(idx)
        order = np.argsort(p_all, kind="stable")
        positions.append(p_all[order].astype(np.intp))
        outputs.append(i_all[order].astype(np.intp))
    return _Layout(shape, plan, groups, positions, outputs)


def _inner_shape(params: HeParams, shape: packing.MatmulShape, digits: int) -> packing.MatmulShape:
    if digits == 1:
        return shape
    return packing.matmul_shape(params, shape.tokens, shape.d_in, digits * shape.d_out)


def he_matmul_bytes(
    params: HeParams, tokens: int, d_in: int, d_out: int, w_max_bits: int
) -> tuple[int, int]:
    """(client to server, server to client) bytes of ``he_matmul`` after ``he_setup``."""
    shape = packing.matmul_shape(params, tokens, d_in, d_out)
    inner = _inner_shape(params, shape, respack.digit_count(w_max_bits))
    lay = _layout(params, inner)
    small = switched_params(params, lay.plan.keep)
    up = inner.token_blocks * inner.in_blocks * ct_bytes(params, 1, seeded=True)
    down = sum(respack.packed_bytes(small, pos.size) for pos in lay.positions)
    return up, down


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
    assert session.galois is not None
    x_share = np.asarray(x_share, dtype=np.uint64)
    if x_share.size != shape.tokens * shape.d_in:
        raise SpecError(
            f"X has {x_share.size} elements, the shape says {shape.tokens} x {shape.d_in}"
        )
    if not 1 <= w_max_bits <= 64:
        raise SpecError(f"w_max_bits must be in [1, 64], got {w_max_bits}")
    x_share = x_share.reshape(shape.tokens, shape.d_in)
    digits = respack.digit_count(w_max_bits)
    inner = _inner_shape(params, shape, digits)
    lay = _layout(params, inner)
    a = inner.n_i.bit_length() - 1
    small = switched_params(params, lay.plan.keep)
    blocks_in = [(bt, bi) for bt in range(inner.token_blocks) for bi in range(inner.in_blocks)]
    up_step = ct_bytes(params, 1, seeded=True)
    flat = np.zeros(shape.tokens * inner.d_out, dtype=np.uint64)
    if ctx.party == "client":
        assert session.sk is not None
        # Step 1: encrypt each input block of the client's share at the scale q / 2^(64 + a).
        prg = ctx.prg("he.matmul", "encrypt")
        zero = np.zeros(params.n, dtype=np.uint64)
        cts = []
        for bt, bi in blocks_in:
            ct = bfv.encrypt_sk(session.sk, zero, prg)
            plain = packing.encode_input(params, inner, x_share, bt, bi)
            cts.append(
                bfv.Ciphertext(params, respack.add_plain_scaled(ct, plain, a).parts, ct.seed)
            )
        ctx.channel.send("he/matmul/x", b"".join(ct_encode(c, seeded=True) for c in cts))
        # Step 5: decrypt each packed ciphertext at its kept positions.
        sk_small = switch_key(session.sk, small)
        sizes = [respack.packed_bytes(small, pos.size) for pos in lay.positions]
        data = ctx.channel.recv("he/matmul/y", sum(sizes))
        offset = 0
        for pos, idx, size in zip(lay.positions, lay.outputs, sizes, strict=True):
            ct = respack.packed_ct_decode(
                small, data[offset : offset + size], pos, label="he/matmul/y", party="client"
            )
            offset += size
            flat[idx] = decrypt_share(sk_small, ct)[pos]
        return _combine(flat, shape, digits)
    if w is None or np.asarray(w).shape != (shape.d_out, shape.d_in):
        raise SpecError(f"the server needs W of shape ({shape.d_out}, {shape.d_in})")
    w = np.asarray(w, dtype=np.int64)
    # Every int64 is below 2^64 in magnitude; below that the bound is a real promise to check.
    if w_max_bits < 64 and np.any(np.abs(w) >= 1 << w_max_bits):
        raise SpecError(f"|W_ij| must be below 2^{w_max_bits}")
    # Step 2: receive the blocks and add the server's share at the same scale.
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
        plain = packing.encode_input(params, inner, x_share, bt, bi)
        evals.append(packing.ntt_parts(respack.add_plain_scaled(ct, plain, a)))
    stacked: U64 = np.stack(evals).reshape(inner.token_blocks, inner.in_blocks, *evals[0].shape)
    # Step 3: the digits of W stacked as rows (|digit| <= 2^20), every block in NTT form.
    wn = packing.weights_ntt(params, inner, np.concatenate(respack.weight_digits(w, digits)))
    prg = ctx.prg("he.matmul", "mask")
    payload = []
    for group, pos, idx in zip(lay.groups, lay.positions, lay.outputs, strict=True):
        # Step 4: each product of the group: sum_b W_(bo, b) [[X_(bt, b)]], outputs moved to
        # the multiples of n_i, re-randomised and flooded; then packed, masked and switched.
        members = []
        for kappa in group:
            bt, bo = divmod(kappa, inner.out_blocks)
            prod = respack.shift_outputs(packing.dot_ntt(params, wn[bo], stacked[bt]), inner.n_i)
            members.append(respack.flood(prod, session.keys.pk, prg, lay.plan.flood_bits))
        packed = respack.pack_group(members, a, session.galois)
        r = prg.next_ring(params.n, 64)
        packed = bfv.ct_add_plain(packed, r)
        payload.append(respack.packed_ct_encode(mod_switch(packed, lay.plan.keep), pos))
        flat[idx] = Ring(64).neg(r)[pos]
    ctx.channel.send("he/matmul/y", b"".join(payload))
    return _combine(flat, shape, digits)


def _combine(flat: U64, shape: packing.MatmulShape, digits: int) -> U64:
    """sum_d 2^(20 d) Y_d (mod 2^64) from the digit-stacked outputs (tokens, D d_out)."""
    stacked = flat.reshape(shape.tokens, digits * shape.d_out)
    out = np.zeros((shape.tokens, shape.d_out), dtype=np.uint64)
    for d in range(digits):
        part = stacked[:, d * shape.d_out : (d + 1) * shape.d_out]
        out += part << np.uint64(respack.DIGIT_BITS * d) if d else part
    return out
