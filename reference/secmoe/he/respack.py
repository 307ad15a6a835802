"""Packed responses: many product ciphertexts folded into one before the client decrypts
(spec/20-he.md §20.13).

A coefficient-encoded product (spec §20.6) leaves its outputs at the multiples of n_i = 2^a and
garbage everywhere else. Merging ciphertexts pairwise with the Galois automorphisms
X -> X^(N/2^j + 1) (the "PackLWEs" recursion of Chen, Dai, Kim and Song, "Efficient homomorphic
conversion between (ring) LWE ciphertexts", ACNS 2021) and finishing with the field trace kills
the garbage exactly and interleaves up to 2^a products' outputs in one ciphertext, every output
multiplied by 2^a. That factor has no inverse mod t = 2^64, so the inputs are encoded at the
scale q / 2^(64 + a) instead of q / 2^64: after the factor 2^a the packed ciphertext is an
ordinary encryption at scale q / 2^64 of the products mod 2^64.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import Party, ProtocolError, SpecError
from secmoe.he import bfv, galois, noise, rns
from secmoe.he.bfv import Ciphertext
from secmoe.he.galois import GaloisKey
from secmoe.he.modswitch import switch_noise_bits, switched_params
from secmoe.he.params import T_BITS, HeParams
from secmoe.randomness import Prg

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]

DIGIT_BITS = 20  # every plaintext multiplier of a packed product has |w| <= 2^DIGIT_BITS


def pack_elements(params: HeParams) -> tuple[int, ...]:
    """The Galois elements N / 2^j + 1 for j < log2 N: the keys a session's packing uses."""
    return galois.expansion_elements(params, params.n.bit_length() - 1)


def digit_count(w_max_bits: int) -> int:
    """D: the signed digits of DIGIT_BITS bits that a multiplier below 2^w_max_bits needs."""
    return 1 if w_max_bits <= DIGIT_BITS else math.ceil(w_max_bits / DIGIT_BITS)


def weight_digits(w: I64, count: int) -> list[I64]:
    """Balanced digits W_0 .. W_(D-1) with sum_d 2^(20 d) W_d = W (mod 2^64), |W_d| <= 2^20:
    W_d = ((R + 2^19) mod 2^20) - 2^19 with R the remainder, then R = (R - W_d) / 2^20
    (arithmetic shift in wrapping 64-bit arithmetic); the last digit is what remains."""
    rest = np.asarray(w, dtype=np.int64)
    if count == 1:
        return [rest]
    half, full = np.int64(1 << (DIGIT_BITS - 1)), np.int64((1 << DIGIT_BITS) - 1)
    out = []
    with np.errstate(over="ignore"):
        for _ in range(count - 1):
            digit = ((rest + half) & full) - half
            out.append(digit)
            rest = (rest - digit) >> np.int64(DIGIT_BITS)
    if np.any(np.abs(rest) > (1 << DIGIT_BITS)):
        raise SpecError("a multiplier needs more digits than its bound promised")
    out.append(rest)
    return out


def encode_scaled(params: HeParams, m: U64, a: int) -> U64:
    """round(q m / 2^(64 + a)) mod q for m in [0, 2^64): the input encoding of a packed
    product (a = 0 is bfv_encode).

    Implements spec §20.13.4 `encode_scaled` (spec/20-he.md#encode_scaled).
    """
    m = bfv.check_plain(params, m)
    if a == 0:
        return bfv.bfv_encode(params, m)
    shift = T_BITS + a
    q, half = params.q, 1 << (shift - 1)
    vals = [(q * int(v) + half) >> shift for v in m.tolist()]
    return rns.from_int(vals, params.q_primes)


def add_plain_scaled(ct: Ciphertext, m: U64, a: int) -> Ciphertext:
    """c_0 + round(q m / 2^(64 + a)): the server's share added at the packed scale."""
    p = ct.params
    parts = list(ct.parts)
    parts[0] = rns.add(parts[0], encode_scaled(p, m, a), p.q_primes)
    return Ciphertext(p, parts)


def shift_outputs(ct: Ciphertext, n_i: int) -> Ciphertext:
    """ct X^-(n_i - 1): output i of token tau moves from tau n_i n_o + i n_i + n_i - 1 to the
    multiple of n_i tau n_i n_o + i n_i (exact, noise unchanged)."""
    if n_i == 1:
        return ct
    ps = ct.params.q_primes
    return Ciphertext(ct.params, [galois.shift_down(x, n_i - 1, ps) for x in ct.parts])


def _monomial(ct: Ciphertext, e: int) -> Ciphertext:
    """ct X^e for 0 <= e < N."""
    ps, n = ct.params.q_primes, ct.params.n
    if e == 0:
        return ct
    # X^e = -X^(e - N): shift_down by N - e multiplies by X^(e - N).
    return Ciphertext(ct.params, [rns.neg(galois.shift_down(x, n - e, ps), ps) for x in ct.parts])


def _neg(ct: Ciphertext) -> Ciphertext:
    return Ciphertext(ct.params, [rns.neg(x, ct.params.q_primes) for x in ct.parts])


def _plus_sigma(ct: Ciphertext, key: GaloisKey) -> Ciphertext:
    """ct + sigma(ct): keeps (doubled) the exponents that sigma fixes."""
    return bfv.ct_add(ct, galois.apply_galois(ct, key))


def merge(
    first: Ciphertext | None, second: Ciphertext | None, j: int, keys: dict[int, GaloisKey]
) -> Ciphertext | None:
    """(A + X^(2^j) B) + sigma_j(A - X^(2^j) B), sigma_j: X -> X^(N/2^j + 1); an absent
    ciphertext counts as zero (one key switch whenever one is present)."""
    if first is None and second is None:
        return None
    p = (first or second).params  # type: ignore[union-attr]
    key = keys[p.n // (1 << j) + 1]
    shifted = None if second is None else _monomial(second, 1 << j)
    if shifted is None:
        assert first is not None
        return _plus_sigma(first, key)
    if first is None:
        neg = _neg(shifted)
        return bfv.ct_add(shifted, _neg(galois.apply_galois(neg, key)))
    plus = bfv.ct_add(first, shifted)
    minus = bfv.ct_add(first, _neg(shifted))
    return bfv.ct_add(plus, galois.apply_galois(minus, key))


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="pack")


def pack_group(cts: Sequence[Ciphertext], a: int, keys: dict[int, GaloisKey]) -> Ciphertext:
    """One ciphertext of 2^a sum_k X^(k g) (ct_k at the multiples of 2^a), g = 2^(a - l),
    l = ceil(log2 len(cts)); every other coefficient of every ct_k is removed.

    Implements spec §20.13.2 `pack_group` (spec/20-he.md#pack_group).
    """
    count = len(cts)
    ell = (count - 1).bit_length()
    if count < 1 or ell > a:
        raise SpecError(f"a group packs 1 to 2^{a} ciphertexts, got {count}")
    slots: list[Ciphertext | None] = [*cts, *([None] * ((1 << ell) - count))]
    # Step 1: merge levels j = a-1 .. a-l, slot k with slot k + half. The merges of a level are
    # independent: one thread per core (the transforms release the GIL); order-free results.
    for j in range(a - 1, a - ell - 1, -1):
        half = len(slots) // 2
        pairs = [(slots[k], slots[k + half]) for k in range(half)]
        slots = list(_pool().map(lambda pair, j=j: merge(pair[0], pair[1], j, keys), pairs))
    out = slots[0]
    assert out is not None
    # Step 2: the trace over the remaining levels j = a-l-1 .. 0.
    for j in range(a - ell - 1, -1, -1):
        out = _plus_sigma(out, keys[out.params.n // (1 << j) + 1])
    return out


def pack_noise_bits(params: HeParams, a: int, ell: int, leaf_bits: float) -> float:
    """Bound after pack_group: 2^(a + l) (B_0 + 2 B_ks) (a merge maps bounds B_A, B_B to
    2 (B_A + B_B) + B_ks, a trace level B to 2 B + B_ks)."""
    ks = 2.0 ** noise.key_switch_bits(params)
    return math.log2(2.0 ** (a + ell) * (2.0**leaf_bits + 2 * ks))


@dataclass(frozen=True)
class PackPlan:
    """How a product's K ciphertexts travel: groups of up to 2^max_ell consecutive products,
    each flooded at flood_bits before packing; the packed ciphertext switched to keep primes."""

    a: int
    max_ell: int
    flood_bits: int
    final_bits: float
    keep: int

    def groups(self, count: int) -> list[range]:
        size = 1 << self.max_ell
        return [range(s, min(s + size, count)) for s in range(0, count, size)]


def keep_for(params: HeParams, bound_bits: float, degree: int) -> int:
    """The fewest primes that keep MARGIN bits of decryption margin after switching a
    ciphertext of noise below 2^bound_bits (scaled by q'/q, plus the rounding of §20.11)."""
    for keep in range(1, len(params.q_primes) + 1):
        small = switched_params(params, keep)
        scaled = 2.0 ** (bound_bits + small.log_q - params.log_q)
        total = scaled + 2.0 ** switch_noise_bits(params, degree)
        if small.log_q - (T_BITS + 1) - math.log2(total) >= noise.MARGIN:
            return keep
    raise SpecError(f"noise 2^{bound_bits:.1f} leaves no margin at {params.name}")


def pack_plan(
    params: HeParams, a: int, circuit_bits: float, pack_params: HeParams | None = None
) -> PackPlan:
    """The largest group exponent l <= a whose packed bound leaves MARGIN bits, with the flood
    F = ceil(a + l + B_pre) + 41 (B_pre the circuit's bound after re-randomisation) added at
    ``params``; the products are packed at ``pack_params`` (a switched set of ``params``, the
    flooded products switched down first) or at ``params`` itself.

    Implements spec §20.13.1 `pack_plan` (spec/20-he.md#pack_plan).
    """
    at = params if pack_params is None else pack_params
    pre = noise.add_bits(circuit_bits, noise.fresh_pk_bits(params))
    limit = noise.capacity_bits(at) - noise.MARGIN
    for ell in range(a, -1, -1):
        # 40 bits per ciphertext: the distance adds up over its N coefficients (§20.13.1).
        flood = math.ceil(a + ell + pre) + noise.STAT_SECURITY + 1 + (params.n.bit_length() - 1)
        leaf = math.log2(2.0**pre + 2.0 ** (flood - 1))
        if at is not params:
            # Switched down before packing: scaled by q'/q, plus the rounding of §20.11.
            scaled = 2.0 ** (leaf + at.log_q - params.log_q)
            leaf = math.log2(scaled + 2.0 ** switch_noise_bits(params, 1))
        final = pack_noise_bits(at, a, ell, leaf)
        if final <= limit and flood <= noise.flood_bits(params):
            return PackPlan(a, ell, flood, final, keep_for(at, final, 1))
    raise SpecError(f"a packed response of 2^{circuit_bits:.1f} noise does not fit {at.name}")


def flood(ct: Ciphertext, pk: bfv.PublicKey, prg: Prg, bits: int) -> Ciphertext:
    """Re-randomise (+ Enc_pk(0)) and add to c_0 noise uniform in [-2^(bits-1), 2^(bits-1))."""
    p = ct.params
    out = bfv.ct_add(ct, bfv.encrypt_pk(pk, np.zeros(p.n, dtype=np.uint64), prg))
    z = rns.wide_uniform_residues(prg, p.n, bits, p.q_primes)
    parts = list(out.parts)
    parts[0] = rns.add(parts[0], z, p.q_primes)
    return Ciphertext(p, parts)


def packed_ct_encode(ct: Ciphertext, positions: NDArray[np.intp]) -> bytes:
    """poly(c_1) || the residues of c_0 at ``positions`` (increasing), limb-major, u32 LE.

    Implements spec §20.13.3 `packed_ct_encode` (spec/20-he.md#packed_ct_encode).
    """
    c0, c1 = ct.parts
    return c1.astype("<u4").tobytes() + c0[:, positions].astype("<u4").tobytes()


def packed_bytes(params: HeParams, useful: int) -> int:
    return 4 * len(params.q_primes) * (params.n + useful)


def packed_ct_decode(
    params: HeParams, data: bytes, positions: NDArray[np.intp], *, label: str, party: Party
) -> Ciphertext:
    """Inverse of packed_ct_encode: c_0 is zero at every position not sent."""
    size = packed_bytes(params, positions.size)
    if len(data) != size:
        raise ProtocolError("wrong_length", party, label, f"expected {size} bytes, got {len(data)}")
    count, n = len(params.q_primes), params.n
    words = np.frombuffer(data, dtype="<u4").astype(np.uint64)
    c1 = words[: count * n].reshape(count, n)
    kept = words[count * n :].reshape(count, positions.size)
    col = rns.primes_col(params.q_primes)
    if np.any(c1 >= col) or np.any(kept >= col):
        raise ProtocolError("out_of_range", party, label, "a residue is not below its prime")
    c0 = np.zeros((count, n), dtype=np.uint64)
    c0[:, positions] = kept
    return Ciphertext(params, [c0, c1.copy()])
