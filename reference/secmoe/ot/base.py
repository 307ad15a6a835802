"""Base OT: Chou-Orlandi "simplest OT" over the Ed25519 prime-order subgroup (spec/10-ot.md#base_ot_send)."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from nacl import bindings as sodium
from nacl.exceptions import RuntimeError as SodiumRuntimeError
from numpy.typing import NDArray

from secmoe.encoding import BitVec
from secmoe.errors import ProtocolError, SpecError
from secmoe.randomness import Prg, lp
from secmoe.session import PartyContext

POINT_BYTES = 32
KEY_BYTES = 16
_KEY_TAG = b"secmoe/v1/ot.base/key"


def _scalar(prg: Prg) -> bytes:
    """A uniform non-zero scalar mod the group order: 64 PRG bytes reduced (spec §10.2)."""
    while True:
        s = sodium.crypto_core_ed25519_scalar_reduce(prg.next_bytes(64))
        if any(s):
            return bytes(s)


def _point(data: bytes, ctx: PartyContext, label: str) -> bytes:
    """Validate a received point: canonical, on the curve, in the prime-order subgroup."""
    if len(data) != POINT_BYTES or not sodium.crypto_core_ed25519_is_valid_point(data):
        raise ProtocolError(
            "bad_encoding", ctx.party, label, "not a valid point of the prime-order subgroup"
        )
    return data


def _mul(scalar: bytes, point: bytes, ctx: PartyContext, label: str) -> bytes:
    """scalar * point; the identity only arises from a peer's point (e.g. B_i = A), never from
    our own non-zero scalars on validated points, so it is the peer's error."""
    try:
        return bytes(sodium.crypto_scalarmult_ed25519_noclamp(scalar, point))
    except SodiumRuntimeError as exc:
        raise ProtocolError(
            "out_of_range", ctx.party, label, "the shared point is the identity"
        ) from exc


def derive_key(i: int, a_point: bytes, b_point: bytes, shared: bytes) -> bytes:
    """k = SHAKE-256(lp(tag) || u64(i) || A || B_i || P)[0:16] (spec §10.2)."""
    return hashlib.shake_256(
        lp(_KEY_TAG) + struct.pack("<Q", i) + a_point + b_point + shared
    ).digest(KEY_BYTES)


def base_ot_send(ctx: PartyContext, n: int) -> list[tuple[bytes, bytes]]:
    """Sender of n random base OTs: returns the key pairs (k_i^0, k_i^1).

    Implements spec §10.2.1 `base_ot_send` (spec/10-ot.md#base_ot_send).
    """
    prg = ctx.prg("ot.base", "sender")
    # Step 1: a random scalar a; send A = a G.
    a = _scalar(prg)
    a_point = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(a))
    ctx.channel.send("ot/base/a", a_point)
    # Step 3: receive and validate the B_i.
    data = ctx.channel.recv("ot/base/b", n * POINT_BYTES)
    keys = []
    for i in range(n):
        b_point = _point(data[i * POINT_BYTES : (i + 1) * POINT_BYTES], ctx, "ot/base/b")
        # Step 4: k_i^0 = H(i, A, B_i, a B_i), k_i^1 = H(i, A, B_i, a (B_i - A)).
        p0 = _mul(a, b_point, ctx, "ot/base/b")
        p1 = _mul(a, bytes(sodium.crypto_core_ed25519_sub(b_point, a_point)), ctx, "ot/base/b")
        keys.append((derive_key(i, a_point, b_point, p0), derive_key(i, a_point, b_point, p1)))
    return keys


def base_ot_recv(ctx: PartyContext, choices: BitVec) -> list[bytes]:
    """Receiver of random base OTs with the given choice bits: returns k_i^{c_i}.

    Implements spec §10.2.2 `base_ot_recv` (spec/10-ot.md#base_ot_recv).
    """
    c = np.asarray(choices, dtype=np.uint8).reshape(-1)
    if np.any(c > 1):
        raise SpecError("choice bits must be 0 or 1")
    prg = ctx.prg("ot.base", "receiver")
    # Step 2: receive A; B_i = b_i G + c_i A.
    a_point = _point(ctx.channel.recv("ot/base/a", POINT_BYTES), ctx, "ot/base/a")
    scalars = [_scalar(prg) for _ in range(c.size)]
    points = []
    for b, ci in zip(scalars, c, strict=True):
        bg = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(b))
        points.append(bytes(sodium.crypto_core_ed25519_add(bg, a_point)) if ci else bg)
    ctx.channel.send("ot/base/b", b"".join(points))
    # Step 5: k_i = H(i, A, B_i, b_i A).
    return [
        derive_key(i, a_point, points[i], _mul(b, a_point, ctx, "ot/base/a"))
        for i, b in enumerate(scalars)
    ]


def keys_array(keys: list[bytes]) -> NDArray[np.uint8]:
    return np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, KEY_BYTES)
