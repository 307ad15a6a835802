"""IKNP OT extension: sessions, the bit-matrix transpose, and the extension step (spec/10-ot.md#iknp).

Roles: the extension *sender* S (who will hold both messages / the correlation) runs the base
OTs as *receiver* with a secret 128-bit string s; the extension *receiver* R (who has the choice
bits) runs them as base-OT sender. One session exists per direction and lives in ``ctx.store``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secmoe.encoding import BitVec
from secmoe.errors import Party, ProtocolError, SpecError
from secmoe.ot.base import base_ot_recv, base_ot_send
from secmoe.session import PartyContext

KAPPA = 128
ROW_BYTES = KAPPA // 8
Rows = NDArray[np.uint8]  # (m, 16): one 128-bit row per OT, bit j at byte j // 8, bit j % 8

_M1 = np.uint64(0x00AA00AA00AA00AA)
_M2 = np.uint64(0x0000CCCC0000CCCC)
_M3 = np.uint64(0x00000000F0F0F0F0)


class ColumnStream:
    """G(k): the AES-128-CTR keystream under a base-OT key k, counter block 0 first (spec §10.3)."""

    def __init__(self, key: bytes) -> None:
        self._aes = algorithms.AES(key)
        self.position = 0

    def take(self, n: int) -> NDArray[np.uint8]:
        block, skip = divmod(self.position, 16)
        enc = Cipher(self._aes, modes.CTR(block.to_bytes(16, "big"))).encryptor()
        out = enc.update(bytes(skip + n))[skip:]
        self.position += n
        return np.frombuffer(out, dtype=np.uint8)


def transpose_bits(cols: NDArray[np.uint8]) -> Rows:
    """Transpose a 128 x m bit matrix given as (128, m/8) column bytes into (m, 16) row bytes.

    Bit i of column j (byte i // 8, bit i % 8) becomes bit j of row i. 8 x 8 bit blocks are
    transposed inside 64-bit words with three delta swaps, vectorised over all blocks.
    """
    k, mb = cols.shape
    if k != KAPPA:
        raise SpecError("transpose_bits expects 128 columns")
    # words[r, c]: byte q of the word = column 8r + q, byte c: an 8x8 block (byte = matrix row).
    # np.array copies: the swaps below write into x, and the input may be a read-only buffer.
    x = np.array(cols.reshape(16, 8, mb).transpose(0, 2, 1), dtype=np.uint8, order="C").view("<u8")
    x = x.reshape(16, mb)
    # Delta swaps in place (one scratch buffer): temporaries of 16 MB each dominated otherwise.
    t = np.empty_like(x)
    for shift, mask in ((np.uint64(7), _M1), (np.uint64(14), _M2), (np.uint64(28), _M3)):
        np.right_shift(x, shift, out=t)
        np.bitwise_xor(t, x, out=t)
        np.bitwise_and(t, mask, out=t)
        np.bitwise_xor(x, t, out=x)
        np.left_shift(t, shift, out=t)
        np.bitwise_xor(x, t, out=x)
    # Now byte b of word (r, c) holds bits of OT 8c + b for columns 8r..8r+7.
    blocks = x.view(np.uint8).reshape(16, mb, 8)
    return np.ascontiguousarray(blocks.transpose(1, 2, 0)).reshape(mb * 8, 16)


def pack_choices(choices: BitVec, m8: int) -> NDArray[np.uint8]:
    padded = np.zeros(m8, dtype=np.uint8)
    padded[: choices.size] = choices
    return np.packbits(padded, bitorder="little")


@dataclass
class IknpSender:
    """The extension sender's session: s and the streams G(k_j^{s_j})."""

    s: BitVec
    streams: list[ColumnStream]
    count: int = 0
    s_row: NDArray[np.uint8] = field(init=False)

    def __post_init__(self) -> None:
        self.s_row = np.packbits(self.s, bitorder="little")


@dataclass
class IknpReceiver:
    """The extension receiver's session: the stream pairs (G(k_j^0), G(k_j^1))."""

    streams: list[tuple[ColumnStream, ColumnStream]]
    count: int = 0


def _key(sender: Party) -> str:
    return f"ot.iknp/sender={sender}"


def iknp_setup(ctx: PartyContext, sender: Party) -> IknpSender | IknpReceiver:
    """The session of the direction whose extension sender is ``sender``, run on first use.

    Implements spec §10.3.1 `iknp_setup` (spec/10-ot.md#iknp_setup).
    """
    existing = ctx.store.get(_key(sender))
    if existing is not None:
        assert isinstance(existing, IknpSender | IknpReceiver)
        return existing
    with ctx.channel.phase("offline"):
        session: IknpSender | IknpReceiver
        if ctx.party == sender:
            # Step 1 (S): s from the PRG; base OTs as receiver with choices s.
            s = ctx.prg("ot.iknp", "s").next_bits(KAPPA)
            keys = base_ot_recv(ctx, s)
            session = IknpSender(s, [ColumnStream(k) for k in keys])
        else:
            # Step 1 (R): base OTs as sender.
            pairs = base_ot_send(ctx, KAPPA)
            session = IknpReceiver([(ColumnStream(k0), ColumnStream(k1)) for k0, k1 in pairs])
    ctx.store[_key(sender)] = session
    return session


def ot_setup(ctx: PartyContext) -> None:
    """Set up both directions, the client's-sender session first (spec §10.3.1).

    A protocol that uses both directions at once calls this first, so that the two parties
    never run their base OTs in different orders.
    """
    iknp_setup(ctx, "client")
    iknp_setup(ctx, "server")


def padded(m: int) -> int:
    """m rounded up to a multiple of 8: the number of OTs an extension of m consumes."""
    return (m + 7) // 8 * 8


def iknp_extend_recv(ctx: PartyContext, choices: BitVec) -> tuple[Rows, NDArray[np.uint64]]:
    """Receiver side of one extension: send U, return the rows t_i and the OT indices.

    Implements spec §10.3.2 `iknp_extend_recv` (spec/10-ot.md#iknp_extend_recv).
    """
    r = np.asarray(choices, dtype=np.uint8).reshape(-1)
    if r.size == 0 or np.any(r > 1):
        raise SpecError("choices must be a non-empty vector of bits")
    session = iknp_setup(ctx, ctx.channel.peer)
    assert isinstance(session, IknpReceiver)
    m8 = padded(r.size)
    rb = pack_choices(r, m8)
    t_cols = np.empty((KAPPA, m8 // 8), dtype=np.uint8)
    u_cols = np.empty((KAPPA, m8 // 8), dtype=np.uint8)
    # Step 2: t_j = G(k_j^0), u_j = t_j XOR G(k_j^1) XOR r.
    for j, (g0, g1) in enumerate(session.streams):
        t_cols[j] = g0.take(m8 // 8)
        u_cols[j] = t_cols[j] ^ g1.take(m8 // 8) ^ rb
    ctx.channel.send("ot/iknp/u", u_cols.tobytes())
    index = np.arange(session.count, session.count + r.size, dtype=np.uint64)
    session.count += m8
    return transpose_bits(t_cols)[: r.size], index


def iknp_extend_send(
    ctx: PartyContext, m: int
) -> tuple[Rows, NDArray[np.uint8], NDArray[np.uint64]]:
    """Sender side of one extension of m OTs: receive U, return the rows q_i, s and the indices.

    Implements spec §10.3.3 `iknp_extend_send` (spec/10-ot.md#iknp_extend_send).
    """
    if m < 1:
        raise SpecError("an extension needs at least one OT")
    session = iknp_setup(ctx, ctx.party)
    assert isinstance(session, IknpSender)
    m8 = padded(m)
    data = ctx.channel.recv("ot/iknp/u", KAPPA * m8 // 8)
    u_cols = np.frombuffer(data, dtype=np.uint8).reshape(KAPPA, m8 // 8)
    q_cols = np.empty((KAPPA, m8 // 8), dtype=np.uint8)
    # Step 3: q_j = G(k_j^{s_j}) XOR s_j u_j, so that q_i = t_i XOR r_i s.
    for j, g in enumerate(session.streams):
        q_cols[j] = g.take(m8 // 8) ^ (u_cols[j] if session.s[j] else 0)
    index = np.arange(session.count, session.count + m, dtype=np.uint64)
    session.count += m8
    return transpose_bits(q_cols)[:m], session.s_row, index


def check_fresh(state_used: bool, ctx: PartyContext, label: str) -> None:
    if state_used:
        raise ProtocolError(
            "reused_session", ctx.party, label, "this OT state was already finished"
        )
