"""OT flavours on top of IKNP: random, correlated, chosen-message and 1-of-N OT (spec/10-ot.md §10.4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import BitVec, Ring, RingVec, bit_vec_decode, bit_vec_encode
from secmoe.errors import SpecError
from secmoe.ot.iknp import Rows, check_fresh, iknp_extend_recv, iknp_extend_send
from secmoe.ot.tccr import hash_to_bytes, tccr_hash, tweaks
from secmoe.session import PartyContext

Bytes2D = NDArray[np.uint8]


def _bits(choices: BitVec) -> BitVec:
    c = np.asarray(choices, dtype=np.uint8).reshape(-1)
    if c.size == 0 or np.any(c > 1):
        raise SpecError("choices must be a non-empty vector of bits")
    return c


# --- random OT ------------------------------------------------------------------------------------


def rot_send(ctx: PartyContext, n: int) -> tuple[Rows, Rows]:
    """n random OTs as sender: (m0, m1), each (n, 16) bytes.

    Implements spec §10.4.1 `rot_send` (spec/10-ot.md#rot_send).
    """
    q, s, index = iknp_extend_send(ctx, n)
    tw = tweaks(index)
    return tccr_hash(tw, q), tccr_hash(tw, q ^ s)


def rot_recv(ctx: PartyContext, choices: BitVec) -> Rows:
    """Random OTs as receiver: m_{c_i} for each choice bit, (n, 16) bytes.

    Implements spec §10.4.2 `rot_recv` (spec/10-ot.md#rot_recv).
    """
    t, index = iknp_extend_recv(ctx, _bits(choices))
    return tccr_hash(tweaks(index), t)


# --- correlated OT over Z_2^l ---------------------------------------------------------------------


def _low_bits(h: Rows, bits: int) -> RingVec:
    """The first 8 bytes of each hash row, little-endian, masked to ``bits`` bits."""
    words = np.ascontiguousarray(h[:, :8]).view("<u8").reshape(-1).astype(np.uint64)
    return Ring(bits).reduce(words)


def _encode_y(ring: Ring, y: RingVec) -> bytes:
    return bit_vec_encode(y.astype(np.uint8)) if ring.bits == 1 else ring.encode_vec(y)


def _decode_y(ctx: PartyContext, ring: Ring, data: bytes, n: int) -> RingVec:
    if ring.bits == 1:
        return bit_vec_decode(data, n, label="ot/cot/y", party=ctx.party).astype(np.uint64)
    return ring.decode_vec(data, n, label="ot/cot/y", party=ctx.party)


def cot_payload_len(n: int, bits: int) -> int:
    """Bytes of the correction message: ceil(n/8) for l = 1, else n ceil(l/8) (spec §10.4.3)."""
    return (n + 7) // 8 if bits == 1 else n * ((bits + 7) // 8)


@dataclass
class CotReceiverState:
    """A receiver's correlated OTs between sending U and receiving the corrections."""

    choices: BitVec
    keys: RingVec
    bits: int
    used: bool = False


def cot_recv_start(ctx: PartyContext, choices: BitVec, bits: int) -> CotReceiverState:
    """First half of ``cot_recv``: send U (so a protocol can run both directions in parallel)."""
    c = _bits(choices)
    Ring(bits)  # validates l
    t, index = iknp_extend_recv(ctx, c)
    return CotReceiverState(c, _low_bits(tccr_hash(tweaks(index), t), bits), bits)


def cot_recv_finish(ctx: PartyContext, state: CotReceiverState) -> RingVec:
    """Second half of ``cot_recv``: receive y, output k + c y."""
    check_fresh(state.used, ctx, "ot/cot/y")
    state.used = True
    ring = Ring(state.bits)
    n = state.choices.size
    y = _decode_y(ctx, ring, ctx.channel.recv("ot/cot/y", cot_payload_len(n, state.bits)), n)
    return ring.add(state.keys, ring.mul(state.choices.astype(np.uint64), y))


def cot_send(ctx: PartyContext, delta: RingVec, bits: int) -> RingVec:
    """Correlated OT as sender with correlations delta (n elements of Z_2^l): returns x0.

    Implements spec §10.4.3 `cot_send` (spec/10-ot.md#cot_send). The receiver obtains
    x0 + c * delta.
    """
    ring = Ring(bits)
    d = ring.check(np.asarray(delta), "delta").reshape(-1)
    if d.size == 0:
        raise SpecError("cot_send needs at least one correlation")
    q, s, index = iknp_extend_send(ctx, d.size)
    tw = tweaks(index)
    # Step 1: x0 = H(i, q_i), k1 = H(i, q_i XOR s) (low l bits).
    x0 = _low_bits(tccr_hash(tw, q), bits)
    k1 = _low_bits(tccr_hash(tw, q ^ s), bits)
    # Step 2: y = x0 + delta - k1, so that k1 + y = x0 + delta.
    ctx.channel.send("ot/cot/y", _encode_y(ring, ring.sub(ring.add(x0, d), k1)))
    return x0


def cot_recv(ctx: PartyContext, choices: BitVec, bits: int) -> RingVec:
    """Correlated OT as receiver: x0 + c * delta for each choice bit c.

    Implements spec §10.4.4 `cot_recv` (spec/10-ot.md#cot_recv).
    """
    return cot_recv_finish(ctx, cot_recv_start(ctx, choices, bits))


# --- chosen-message OT ----------------------------------------------------------------------------


def ot_send(ctx: PartyContext, m0: Bytes2D, m1: Bytes2D) -> None:
    """Chosen-message 1-of-2 OT: n pairs of L-byte messages, (n, L) uint8 arrays.

    Implements spec §10.4.5 `ot_send` (spec/10-ot.md#ot_send).
    """
    a, b = np.asarray(m0, dtype=np.uint8), np.asarray(m1, dtype=np.uint8)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise SpecError("ot_send needs two (n, L) byte arrays of the same shape")
    n, length = a.shape
    q, s, index = iknp_extend_send(ctx, n)
    # Step 1: e_i^b = m_i^b XOR H*(i, q_i XOR b s), sent as e_i^0 || e_i^1 per OT.
    e0 = a ^ hash_to_bytes(index, q, length)
    e1 = b ^ hash_to_bytes(index, q ^ s, length)
    ctx.channel.send("ot/ot/e", np.concatenate([e0, e1], axis=1).tobytes())


def ot_recv(ctx: PartyContext, choices: BitVec, length: int) -> Bytes2D:
    """Chosen-message OT as receiver: m_i^{c_i}, (n, L) bytes.

    Implements spec §10.4.6 `ot_recv` (spec/10-ot.md#ot_recv).
    """
    c = _bits(choices)
    if length < 1:
        raise SpecError("message length must be positive")
    t, index = iknp_extend_recv(ctx, c)
    data = ctx.channel.recv("ot/ot/e", 2 * length * c.size)
    e = np.frombuffer(data, dtype=np.uint8).reshape(c.size, 2, length)
    chosen = e[np.arange(c.size), c]
    out: Bytes2D = chosen ^ hash_to_bytes(index, t, length)
    return out


# --- 1-of-N OT from log2(N) random OTs (Naor-Pinkas style) ------------------------------------------


def _np_masks(
    keys: Rows, index_base: NDArray[np.uint64], k: int, values: NDArray[np.int64], length: int
) -> Bytes2D:
    """mask(i, v) = XOR_j H*((i, v, j), K_{i,j}^{v_j}) for the given (i, v) and per-bit keys.

    ``keys`` holds, for each (i, v) row, the k keys K_{i,j}^{bit j of v} stacked (rows*k, 16).
    """
    out = np.zeros((values.size, length), dtype=np.uint8)
    for j in range(k):
        # Tweak word: v * 2^16 + j, so that (i, v, j) never repeats within a session.
        word = (values.astype(np.uint64) << np.uint64(16)) | np.uint64(j)
        blocks = (length + 15) // 16
        parts = [
            tccr_hash(tweaks(index_base, word * np.uint64(blocks) + np.uint64(w)), keys[j::k])
            for w in range(blocks)
        ]
        out ^= np.concatenate(parts, axis=1)[:, :length]
    return out


def _log2_ceil(n_msgs: int) -> int:
    if n_msgs < 2:
        raise SpecError("1-of-N OT needs N >= 2")
    return (n_msgs - 1).bit_length()


def one_of_n_send(ctx: PartyContext, messages: NDArray[np.uint8]) -> None:
    """1-of-N OT as sender: messages (n, N, L) bytes; the receiver learns one per row.

    Implements spec §10.4.7 `one_of_n_send` (spec/10-ot.md#one_of_n_send).
    """
    msgs = np.asarray(messages, dtype=np.uint8)
    if msgs.ndim != 3 or msgs.shape[0] == 0:
        raise SpecError("one_of_n_send needs an (n, N, L) byte array")
    n, n_msgs, length = msgs.shape
    k = _log2_ceil(n_msgs)
    # Step 1: n k random OTs; OT (i, j) is at position i k + j.
    r0, r1 = rot_send(ctx, n * k)
    index = np.repeat(np.arange(n, dtype=np.uint64), n_msgs)
    values = np.tile(np.arange(n_msgs, dtype=np.int64), n)
    # Step 2: for each (i, v), the keys K_{i,j}^{v_j}.
    bit = ((values[:, None] >> np.arange(k)) & 1).astype(bool)  # (n N, k)
    base0 = r0.reshape(n, 1, k, 16).repeat(n_msgs, axis=1).reshape(n * n_msgs, k, 16)
    base1 = r1.reshape(n, 1, k, 16).repeat(n_msgs, axis=1).reshape(n * n_msgs, k, 16)
    keys = np.where(bit[:, :, None], base1, base0).reshape(n * n_msgs * k, 16)
    masks = _np_masks(keys, index, k, values, length)
    # Step 3: send every message masked: e_{i,v} = x_{i,v} XOR mask(i, v).
    ctx.channel.send("ot/1ofn/e", (msgs.reshape(n * n_msgs, length) ^ masks).tobytes())


def one_of_n_recv(
    ctx: PartyContext, choices: NDArray[np.int64], n_msgs: int, length: int
) -> Bytes2D:
    """1-of-N OT as receiver: x_{i, c_i} for choices c_i in [0, N), (n, L) bytes.

    Implements spec §10.4.8 `one_of_n_recv` (spec/10-ot.md#one_of_n_recv).
    """
    c = np.asarray(choices, dtype=np.int64).reshape(-1)
    k = _log2_ceil(n_msgs)
    if c.size == 0 or np.any(c < 0) or np.any(c >= n_msgs) or length < 1:
        raise SpecError(f"choices must lie in [0, {n_msgs}) and length be positive")
    n = c.size
    bits = ((c[:, None] >> np.arange(k)) & 1).astype(np.uint8).reshape(-1)
    keys = rot_recv(ctx, bits)
    data = ctx.channel.recv("ot/1ofn/e", n * n_msgs * length)
    e = np.frombuffer(data, dtype=np.uint8).reshape(n, n_msgs, length)
    masks = _np_masks(keys, np.arange(n, dtype=np.uint64), k, c, length)
    out: Bytes2D = e[np.arange(n), c] ^ masks
    return out
