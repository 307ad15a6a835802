"""Byte encodings of polynomials, ciphertexts and public keys (spec/20-he.md §20.7)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import Party, ProtocolError, SpecError
from secmoe.he.bfv import SEED_BYTES, Ciphertext, PublicKey, expand_a
from secmoe.he.galois import GaloisKey
from secmoe.he.params import HeParams

U64 = NDArray[np.uint64]


def poly_bytes(params: HeParams) -> int:
    """One polynomial mod q: L N coefficients of 4 bytes."""
    return 4 * len(params.q_primes) * params.n


def ct_bytes(params: HeParams, degree: int = 1, seeded: bool = False) -> int:
    """A ciphertext: (degree + 1) polynomials, or seed || c_0 when seeded."""
    return SEED_BYTES + poly_bytes(params) if seeded else (degree + 1) * poly_bytes(params)


def poly_encode(params: HeParams, poly: U64) -> bytes:
    """Limb-major, each residue as u32 little-endian.

    Implements spec §20.7.1 `poly_encode` (spec/20-he.md#poly_encode).
    """
    if poly.shape != (len(params.q_primes), params.n):
        raise SpecError("polynomial has the wrong shape for these parameters")
    return poly.astype("<u4").tobytes()


def poly_decode(params: HeParams, data: bytes, *, label: str, party: Party) -> U64:
    """Inverse of poly_encode; every residue must be below its prime.

    Implements spec §20.7.2 `poly_decode` (spec/20-he.md#poly_decode).
    """
    if len(data) != poly_bytes(params):
        raise ProtocolError(
            "wrong_length", party, label, f"expected {poly_bytes(params)} bytes, got {len(data)}"
        )
    poly = (
        np.frombuffer(data, dtype="<u4").reshape(len(params.q_primes), params.n).astype(np.uint64)
    )
    if np.any(poly >= np.array(params.q_primes, dtype=np.uint64).reshape(-1, 1)):
        raise ProtocolError("out_of_range", party, label, "a residue is not below its prime")
    return poly


def ct_encode(ct: Ciphertext, seeded: bool = False) -> bytes:
    """c_0 || c_1 || ... or, for a seeded degree-1 ciphertext, seed || c_0."""
    if seeded:
        if ct.seed is None or ct.degree != 1:
            raise SpecError("only a fresh secret-key ciphertext is seeded")
        return ct.seed + poly_encode(ct.params, ct.parts[0])
    return b"".join(poly_encode(ct.params, p) for p in ct.parts)


def ct_decode(
    params: HeParams,
    data: bytes,
    *,
    degree: int = 1,
    seeded: bool = False,
    label: str,
    party: Party,
) -> Ciphertext:
    """Inverse of ct_encode for a known degree and form."""
    size = ct_bytes(params, degree, seeded)
    if len(data) != size:
        raise ProtocolError("wrong_length", party, label, f"expected {size} bytes, got {len(data)}")
    pb = poly_bytes(params)
    if seeded:
        seed = data[:SEED_BYTES]
        c0 = poly_decode(params, data[SEED_BYTES:], label=label, party=party)
        return Ciphertext(params, [c0, expand_a(params, seed)], seed)
    parts = [
        poly_decode(params, data[k * pb : (k + 1) * pb], label=label, party=party)
        for k in range(degree + 1)
    ]
    return Ciphertext(params, parts)


def pk_encode(pk: PublicKey) -> bytes:
    """seed || b."""
    return pk.seed + poly_encode(pk.params, pk.b)


def pk_decode(params: HeParams, data: bytes, power: int, *, label: str, party: Party) -> PublicKey:
    if len(data) != SEED_BYTES + poly_bytes(params):
        raise ProtocolError("wrong_length", party, label, "public key has the wrong length")
    return PublicKey(
        params,
        poly_decode(params, data[SEED_BYTES:], label=label, party=party),
        data[:SEED_BYTES],
        power,
    )


def gk_bytes(params: HeParams) -> int:
    """One Galois key: ceil(L / 2) pairs (seed_G, b_G), one per digit group."""
    return (len(params.q_primes) + 1) // 2 * (SEED_BYTES + poly_bytes(params))


def gk_encode(key: GaloisKey) -> bytes:
    """seed_0 || b_0 || seed_1 || b_1 || ... (the Galois element is fixed by the protocol)."""
    return b"".join(sd + poly_encode(key.params, b) for sd, b in zip(key.seeds, key.b, strict=True))


def gk_decode(params: HeParams, data: bytes, k: int, *, label: str, party: Party) -> GaloisKey:
    """Inverse of gk_encode for the Galois element k the protocol expects."""
    if len(data) != gk_bytes(params):
        raise ProtocolError(
            "wrong_length", party, label, f"expected {gk_bytes(params)} bytes, got {len(data)}"
        )
    step = SEED_BYTES + poly_bytes(params)
    seeds, polys = [], []
    for i in range((len(params.q_primes) + 1) // 2):
        chunk = data[i * step : (i + 1) * step]
        seeds.append(chunk[:SEED_BYTES])
        polys.append(poly_decode(params, chunk[SEED_BYTES:], label=label, party=party))
    return GaloisKey(params, k, tuple(polys), tuple(seeds))
