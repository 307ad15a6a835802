"""OT flavours derandomised from the pool's random COTs (spec/10-ot.md §10.5).

Every flavour takes COTs from the direction's pool (``secmoe.ot.pool``): the extension sender
holds rows q_p and Delta, the receiver rows t_p = q_p XOR r_p Delta with random bits r_p. A
receiver with chosen bits c sends ``d = c XOR r`` (1 bit per OT); the sender then treats
``q_p XOR d_p Delta`` as the row of choice 0. Hash tweaks are ``(p, w)`` with p the COT's pool
number, so none repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import BitVec, RingVec, packed_decode, packed_encode
from secmoe.errors import SpecError
from secmoe.ot.iknp import Rows, check_fresh
from secmoe.ot.pool import RecvCots, SendCots, take_recv, take_send
from secmoe.ot.tccr import tccr_hash, tweaks
from secmoe.session import PartyContext

Bytes2D = NDArray[np.uint8]
Widths = NDArray[np.int64] | int


def _bits(choices: BitVec) -> BitVec:
    c = np.asarray(choices, dtype=np.uint8).reshape(-1)
    if c.size == 0 or np.any(c > 1):
        raise SpecError("choices must be a non-empty vector of bits")
    return c


def _widths(widths: Widths, n: int) -> NDArray[np.int64]:
    w = np.broadcast_to(np.asarray(widths, dtype=np.int64), (n,)).copy()
    if n and (w.min() < 1 or w.max() > 64):
        raise SpecError("correlation widths must lie in [1, 64]")
    return w


def _mask(w: NDArray[np.int64]) -> NDArray[np.uint64]:
    """2^w - 1 element-wise, for w in [1, 64]."""
    return np.where(
        w >= 64, np.uint64(0xFFFFFFFFFFFFFFFF), (np.uint64(1) << w.astype(np.uint64)) - np.uint64(1)
    ).astype(np.uint64)


def low_bits(h: Rows, widths: NDArray[np.int64]) -> RingVec:
    """``low_w(h)``: the first 8 bytes of each hash row, little-endian, mod 2^w (spec §10.5)."""
    words = np.ascontiguousarray(h[:, :8]).view("<u8").reshape(-1).astype(np.uint64)
    out: RingVec = words & _mask(widths)
    return out


def choice_rows(cots: SendCots, d: BitVec) -> Rows:
    """The sender's row of receiver choice 0: ``q_p XOR d_p Delta``."""
    rows: Rows = cots.q ^ (d[:, None] * cots.delta[None, :])
    return rows


def send_derand(ctx: PartyContext, label: str, cots: RecvCots, choices: BitVec) -> None:
    """The receiver's derandomisation ``d = c XOR r`` as a bit vector."""
    ctx.channel.send_bits(label, choices ^ cots.r)


# --- random OT ------------------------------------------------------------------------------------


def rot_send(ctx: PartyContext, n: int) -> tuple[Rows, Rows]:
    """n random-message OTs with the receiver's chosen bits: (m0, m1), each (n, 16) bytes.

    Implements spec §10.5.1 `rot_send` (spec/10-ot.md#rot_send).
    """
    if n < 1:
        raise SpecError("need at least one OT")
    cots = take_send(ctx, n)
    d = ctx.channel.recv_bits("ot/rot/d", n)
    q0, tw = choice_rows(cots, d), tweaks(cots.index)
    return tccr_hash(tw, q0), tccr_hash(tw, q0 ^ cots.delta)


def rot_recv(ctx: PartyContext, choices: BitVec) -> Rows:
    """Random-message OTs as receiver: m_{c_i}, (n, 16) bytes.

    Implements spec §10.5.2 `rot_recv` (spec/10-ot.md#rot_recv).
    """
    c = _bits(choices)
    cots = take_recv(ctx, c.size)
    send_derand(ctx, "ot/rot/d", cots, c)
    return tccr_hash(tweaks(cots.index), cots.t)


# --- correlated OT over Z_2^w ---------------------------------------------------------------------


@dataclass
class CotReceiverState:
    """A receiver's correlated OTs between sending d and receiving the corrections."""

    choices: BitVec
    keys: RingVec
    widths: NDArray[np.int64]
    used: bool = False


def cot_recv_start(ctx: PartyContext, choices: BitVec, bits: Widths) -> CotReceiverState:
    """First half of ``cot_recv``: take the COTs and send d (so a protocol can run both
    directions in the same rounds)."""
    c = _bits(choices)
    w = _widths(bits, c.size)
    cots = take_recv(ctx, c.size)
    send_derand(ctx, "ot/cot/d", cots, c)
    return CotReceiverState(c, low_bits(tccr_hash(tweaks(cots.index), cots.t), w), w)


def cot_recv_finish(ctx: PartyContext, state: CotReceiverState) -> RingVec:
    """Second half of ``cot_recv``: receive y, output k + c y mod 2^w."""
    check_fresh(state.used, ctx, "ot/cot/y")
    state.used = True
    n = state.choices.size
    data = ctx.channel.recv("ot/cot/y", (int(state.widths.sum()) + 7) // 8)
    y = packed_decode(data, state.widths, n, label="ot/cot/y", party=ctx.party)
    out: RingVec = (state.keys + state.choices.astype(np.uint64) * y) & _mask(state.widths)
    return out


def cot_send_with(
    ctx: PartyContext, cots: SendCots, d: BitVec, delta: RingVec, widths: NDArray[np.int64]
) -> RingVec:
    """The sender's step on COTs already taken and d already received: send y, return x0."""
    q0 = choice_rows(cots, d)
    tw = tweaks(cots.index)
    # x0 = low_w(H((p, 0), q0)), k1 = low_w(H((p, 0), q0 XOR Delta)); y = x0 + delta - k1.
    x0 = low_bits(tccr_hash(tw, q0), widths)
    k1 = low_bits(tccr_hash(tw, q0 ^ cots.delta), widths)
    mask = _mask(widths)
    ctx.channel.send("ot/cot/y", packed_encode((x0 + (delta & mask) - k1) & mask, widths))
    return x0


def cot_send(ctx: PartyContext, delta: RingVec, bits: Widths) -> RingVec:
    """Correlated OT as sender with correlations delta (element i mod 2^w_i): returns x0.

    Implements spec §10.5.3 `cot_send` (spec/10-ot.md#cot_send). The receiver obtains
    x0 + c * delta mod 2^w.
    """
    d_in = np.asarray(delta, dtype=np.uint64).reshape(-1)
    if d_in.size == 0:
        raise SpecError("cot_send needs at least one correlation")
    w = _widths(bits, d_in.size)
    if np.any(d_in & ~_mask(w)):
        raise SpecError("a correlation has bits at or above its width")
    cots = take_send(ctx, d_in.size)
    d = ctx.channel.recv_bits("ot/cot/d", d_in.size)
    return cot_send_with(ctx, cots, d, d_in, w)


def cot_recv(ctx: PartyContext, choices: BitVec, bits: Widths) -> RingVec:
    """Correlated OT as receiver: x0 + c * delta mod 2^w for each choice bit c.

    Implements spec §10.5.4 `cot_recv` (spec/10-ot.md#cot_recv).
    """
    return cot_recv_finish(ctx, cot_recv_start(ctx, choices, bits))


# --- chosen-message OT ----------------------------------------------------------------------------


def _hash_bytes(index: NDArray[np.uint64], x: Rows, length: int, base: int = 0) -> Bytes2D:
    """``length`` bytes per row: H((p, base), x) || H((p, base + 1), x) || ..., truncated."""
    blocks = (length + 15) // 16
    parts = [tccr_hash(tweaks(index, base + w), x) for w in range(blocks)]
    out: Bytes2D = np.concatenate(parts, axis=1)[:, :length]
    return out


def ot_send(ctx: PartyContext, m0: Bytes2D, m1: Bytes2D) -> None:
    """Chosen-message 1-of-2 OT: n pairs of L-byte messages, (n, L) uint8 arrays.

    Implements spec §10.5.5 `ot_send` (spec/10-ot.md#ot_send).
    """
    a, b = np.asarray(m0, dtype=np.uint8), np.asarray(m1, dtype=np.uint8)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0 or a.shape[1] == 0:
        raise SpecError("ot_send needs two (n, L) byte arrays of the same shape")
    n, length = a.shape
    cots = take_send(ctx, n)
    d = ctx.channel.recv_bits("ot/ot/d", n)
    q0 = choice_rows(cots, d)
    e0 = a ^ _hash_bytes(cots.index, q0, length)
    e1 = b ^ _hash_bytes(cots.index, q0 ^ cots.delta, length)
    ctx.channel.send("ot/ot/e", np.concatenate([e0, e1], axis=1).tobytes())


def ot_recv(ctx: PartyContext, choices: BitVec, length: int) -> Bytes2D:
    """Chosen-message OT as receiver: m_i^{c_i}, (n, L) bytes.

    Implements spec §10.5.6 `ot_recv` (spec/10-ot.md#ot_recv).
    """
    c = _bits(choices)
    if length < 1:
        raise SpecError("message length must be positive")
    cots = take_recv(ctx, c.size)
    send_derand(ctx, "ot/ot/d", cots, c)
    data = ctx.channel.recv("ot/ot/e", 2 * length * c.size)
    e = np.frombuffer(data, dtype=np.uint8).reshape(c.size, 2, length)
    out: Bytes2D = e[np.arange(c.size), c] ^ _hash_bytes(cots.index, cots.t, length)
    return out


# --- 1-of-N OT of b-bit messages from ceil(log2 N) COTs per instance ----------------------------


def _log2_ceil(n_msgs: int) -> int:
    if n_msgs < 2:
        raise SpecError("1-of-N OT needs N >= 2")
    return (n_msgs - 1).bit_length()


def _mask_bits(rows: Rows, index: NDArray[np.uint64], v: int, width: int) -> BitVec:
    """``width`` bits per row: H((p, v B + w), row) for w < B = ceil(width / 128), LSB first."""
    blocks = (width + 127) // 128
    parts = [tccr_hash(tweaks(index, v * blocks + w), rows) for w in range(blocks)]
    out: BitVec = np.unpackbits(np.concatenate(parts, axis=1), axis=1, bitorder="little")[:, :width]
    return out


def one_of_n_send(ctx: PartyContext, messages: BitVec) -> None:
    """1-of-N OT of b-bit messages: ``messages`` is (n, N, b) bits.

    Implements spec §10.5.7 `one_of_n_send` (spec/10-ot.md#one_of_n_send).
    """
    msgs = np.asarray(messages, dtype=np.uint8)
    if msgs.ndim != 3 or msgs.shape[0] == 0 or msgs.shape[2] == 0 or np.any(msgs > 1):
        raise SpecError("one_of_n_send needs an (n, N, b) array of bits")
    n, n_msgs, width = msgs.shape
    k = _log2_ceil(n_msgs)
    cots = take_send(ctx, n * k)
    d = ctx.channel.recv_bits("ot/1ofn/d", n * k)
    q0 = choice_rows(cots, d).reshape(n, k, 16)
    q1 = q0 ^ cots.delta
    index = cots.index.reshape(n, k)
    out = np.empty((n, n_msgs, width), dtype=np.uint8)
    for v in range(n_msgs):
        # mask(i, v) = XOR_j H((p_ij, v B + w), q0_ij XOR bit_j(v) Delta).
        acc = msgs[:, v, :].copy()
        for j in range(k):
            rows = q1[:, j] if (v >> j) & 1 else q0[:, j]
            acc ^= _mask_bits(rows, index[:, j], v, width)
        out[:, v, :] = acc
    ctx.channel.send_bits("ot/1ofn/e", out.reshape(-1))


def one_of_n_recv(ctx: PartyContext, choices: NDArray[np.int64], n_msgs: int, width: int) -> BitVec:
    """1-of-N OT as receiver: the b-bit message x_{i, c_i} for choices c_i in [0, N), (n, b).

    Implements spec §10.5.8 `one_of_n_recv` (spec/10-ot.md#one_of_n_recv).
    """
    c = np.asarray(choices, dtype=np.int64).reshape(-1)
    k = _log2_ceil(n_msgs)
    if c.size == 0 or np.any(c < 0) or np.any(c >= n_msgs) or width < 1:
        raise SpecError(f"choices must lie in [0, {n_msgs}) and the width be positive")
    n = c.size
    bits = ((c[:, None] >> np.arange(k)) & 1).astype(np.uint8).reshape(-1)
    cots = take_recv(ctx, n * k)
    send_derand(ctx, "ot/1ofn/d", cots, bits)
    e = ctx.channel.recv_bits("ot/1ofn/e", n * n_msgs * width).reshape(n, n_msgs, width)
    t = cots.t.reshape(n, k, 16)
    index = cots.index.reshape(n, k)
    got = e[np.arange(n), c].copy()
    for v in range(n_msgs):
        sel = c == v
        if not np.any(sel):
            continue
        for j in range(k):
            got[sel] ^= _mask_bits(t[sel, j], index[sel, j], v, width)
    out: BitVec = got
    return out
