"""BFV with t = 2^64 over RNS primes (spec/20-he.md §20.3).

A ciphertext of degree d is d + 1 polynomials (c_0, ..., c_d) mod q with
c_0 + c_1 s + ... + c_d s^d = round(q m / t) + v (mod q), v the noise. Plaintexts are
polynomials with coefficients in Z_{2^64} (numpy uint64 vectors of length N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.he import baseconv, modp, rns
from secmoe.he.params import CBD_ETA, T_BITS, HeParams
from secmoe.randomness import Prg, binder_u64, dst

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
SEED_BYTES = 32


@dataclass(frozen=True)
class SecretKey:
    params: HeParams
    s: I64  # ternary coefficients

    def power(self, k: int) -> U64:
        """s^k mod q in RNS form."""
        t = rns.tables(self.params.n, self.params.q_primes)
        return rns.ntt_inverse(self.power_eval(k), t)

    @cached_property
    def _powers_eval(self) -> dict[int, U64]:
        t = rns.tables(self.params.n, self.params.q_primes)
        return {1: rns.ntt_forward(rns.from_signed(self.s, self.params.q_primes), t)}

    def power_eval(self, k: int) -> U64:
        """s^k in evaluation (NTT) form, computed once per key and power."""
        cache = self._powers_eval
        if k not in cache:
            cache[k] = rns.mul_eval(self.power_eval(k - 1), cache[1], self.params.q_primes)
        return cache[k]


@dataclass(frozen=True)
class PublicKey:
    """An encryption of zero under s^power: (b, a) with b + a s^power = e; a from ``seed``."""

    params: HeParams
    b: U64
    seed: bytes
    power: int = 1

    @property
    def a(self) -> U64:
        return expand_a(self.params, self.seed)

    @cached_property
    def evaluation_form(self) -> U64:
        """(2, L, N): b and a in evaluation form, computed once per key."""
        t = rns.tables(self.params.n, self.params.q_primes)
        return rns.ntt_forward(np.stack([self.b, self.a]), t)


@dataclass
class Ciphertext:
    """Parts c_0..c_d in coefficient form; ``seed`` is set when c_1 is expand_a(seed)."""

    params: HeParams
    parts: list[U64]
    seed: bytes | None = None
    meta: dict[str, float] = field(default_factory=dict)

    @property
    def degree(self) -> int:
        return len(self.parts) - 1


def expand_a(params: HeParams, seed: bytes) -> U64:
    """The uniform polynomial of a seed: row i = Prg(seed, dst("he.bfv", "a"), u64(i)).next_below(N, p_i).

    Implements spec §20.3.1 `expand_a` (spec/20-he.md#expand_a).
    """
    if len(seed) != SEED_BYTES:
        raise SpecError("a seed is 32 bytes")
    prgs = [Prg(seed, dst("he.bfv", "a"), binder_u64(i)) for i in range(len(params.q_primes))]
    return rns.uniform(prgs, params.n, params.q_primes)


def keygen(params: HeParams, prg: Prg) -> SecretKey:
    """The client's secret key: s ternary, next_below(N, 3) - 1.

    Implements spec §20.3.2 `keygen` (spec/20-he.md#keygen).
    """
    return SecretKey(params, rns.ternary(prg, params.n))


def public_key(sk: SecretKey, prg: Prg, power: int = 1) -> PublicKey:
    """pk = (b, a) with b = -a s^power + e: seed = next_bytes(32), then e = cbd.

    Implements spec §20.3.3 `public_key` (spec/20-he.md#public_key).
    """
    p = sk.params
    seed = prg.next_bytes(SEED_BYTES)
    a = expand_a(p, seed)
    e = rns.from_signed(rns.cbd(prg, p.n, CBD_ETA), p.q_primes)
    b = rns.add(rns.neg(rns.mul(a, sk.power(power), p.q_primes), p.q_primes), e, p.q_primes)
    return PublicKey(p, b, seed, power)


def check_plain(params: HeParams, m: U64) -> U64:
    arr = np.asarray(m)
    if arr.dtype != np.uint64 or arr.shape != (params.n,):
        raise SpecError(f"a plaintext is a uint64 vector of length N = {params.n}")
    return arr


def bfv_encode(params: HeParams, m: U64) -> U64:
    """round(q m / t) mod q for m in [0, t): (q m + 2^63) >> 64, exactly.

    Implements spec §20.3.4 `bfv_encode` (spec/20-he.md#bfv_encode).
    """
    m = check_plain(params, m)
    shape = (len(params.q_primes), params.n)
    if not m.any():  # zero encodes as zero (every flood and re-randomisation encrypts it)
        return np.zeros(shape, dtype=np.uint64)
    # q m = q_hi m 2^64 + q_lo m, so round(q m / 2^64) = q_hi m + high64(q_lo m + 2^63).
    q_hi, q_lo = divmod(params.q, 1 << T_BITS)
    carry = rns.mulhi_round(np.uint64(q_lo), m)
    mod = modp.moduli(params.q_primes)
    hi_res = np.array([q_hi % int(p) for p in params.q_primes], dtype=np.uint64).reshape(-1, 1)
    m_res = modp.reduce(np.broadcast_to(m, shape), mod)
    return modp.add(
        modp.mul(m_res, hi_res, mod), modp.reduce(np.broadcast_to(carry, shape), mod), mod
    )


def encrypt_sk(sk: SecretKey, m: U64, prg: Prg) -> Ciphertext:
    """Seeded secret-key encryption: seed = next_bytes(32), a = expand_a(seed), e = cbd;
    c_0 = -a s + e + encode(m), c_1 = a.

    Implements spec §20.3.5 `encrypt_sk` (spec/20-he.md#encrypt_sk).
    """
    p = sk.params
    seed = prg.next_bytes(SEED_BYTES)
    a = expand_a(p, seed)
    e = rns.from_signed(rns.cbd(prg, p.n, CBD_ETA), p.q_primes)
    t = rns.tables(p.n, p.q_primes)
    a_s = rns.ntt_inverse(rns.mul_eval(rns.ntt_forward(a, t), sk.power_eval(1), p.q_primes), t)
    c0 = rns.add(rns.sub(e, a_s, p.q_primes), bfv_encode(p, m), p.q_primes)
    return Ciphertext(p, [c0, a], seed)


def encrypt_pk(pk: PublicKey, m: U64, prg: Prg) -> Ciphertext:
    """Public-key encryption under s^power: u ternary, e_0, e_1 cbd;
    c_0 = b u + e_0 + encode(m), and c_power = a u + e_1 (the other parts zero).

    Implements spec §20.3.6 `encrypt_pk` (spec/20-he.md#encrypt_pk).
    """
    p = pk.params
    ps = p.q_primes
    u = rns.from_signed(rns.ternary(prg, p.n), ps)
    e0 = rns.from_signed(rns.cbd(prg, p.n, CBD_ETA), ps)
    e1 = rns.from_signed(rns.cbd(prg, p.n, CBD_ETA), ps)
    t = rns.tables(p.n, ps)
    bu, au = rns.ntt_inverse(rns.mul_eval(pk.evaluation_form, rns.ntt_forward(u, t), ps), t)
    parts = [np.zeros((len(ps), p.n), dtype=np.uint64) for _ in range(pk.power + 1)]
    parts[0] = rns.add(rns.add(bu, e0, ps), bfv_encode(p, m), ps)
    parts[pk.power] = rns.add(au, e1, ps)
    return Ciphertext(p, parts)


def _phase(sk: SecretKey, ct: Ciphertext) -> U64:
    """c_0 + c_1 s + ... + c_d s^d mod q."""
    p = sk.params
    if len(ct.parts) == 1:
        return ct.parts[0]
    ps = p.q_primes
    t = rns.tables(p.n, ps)
    rest = rns.ntt_forward(np.stack(ct.parts[1:]), t)
    acc = rns.mul_eval(rest[0], sk.power_eval(1), ps)
    for k in range(2, len(ct.parts)):
        acc = rns.add(acc, rns.mul_eval(rest[k - 1], sk.power_eval(k), ps), ps)
    return rns.add(ct.parts[0], rns.ntt_inverse(acc, t), ps)


def decrypt(sk: SecretKey, ct: Ciphertext) -> U64:
    """m = round(t v / q) mod t with v = c_0 + c_1 s + ... (any degree; degree 2 needs no
    relinearisation key since the client holds s).

    Implements spec §20.3.7 `decrypt` (spec/20-he.md#decrypt).
    """
    return baseconv.scale_round_t(_phase(sk, ct), sk.params.q_primes)


def noise_bits(sk: SecretKey, ct: Ciphertext, m: U64) -> float:
    """log2 of the largest |v - encode(m)| (centered mod q): the ciphertext's absolute noise.

    Decryption is correct while the noise is below q / (2t); the margin in bits is
    ``log2(q / 2t) - noise_bits``.
    """
    p = sk.params
    diff = rns.to_int(rns.sub(_phase(sk, ct), bfv_encode(p, m), p.q_primes), p.q_primes)
    worst = max(abs(int(x)) for x in diff)
    return math.log2(worst) if worst else 0.0


def margin_bits(sk: SecretKey, ct: Ciphertext, m: U64) -> float:
    p = sk.params
    return math.log2(p.q / (2 * p.t)) - noise_bits(sk, ct, m)


# --- homomorphic operations -----------------------------------------------------------------------


def _same(a: Ciphertext, b: Ciphertext) -> HeParams:
    if a.params != b.params:
        raise SpecError("ciphertexts under different parameters")
    return a.params


def ct_add(a: Ciphertext, b: Ciphertext) -> Ciphertext:
    """Part-wise sum (the shorter ciphertext padded with zero parts).

    Implements spec §20.4.1 `ct_add` (spec/20-he.md#ct_add).
    """
    p = _same(a, b)
    k = max(len(a.parts), len(b.parts))
    zero = np.zeros((len(p.q_primes), p.n), dtype=np.uint64)
    pa = a.parts + [zero] * (k - len(a.parts))
    pb = b.parts + [zero] * (k - len(b.parts))
    return Ciphertext(p, [rns.add(x, y, p.q_primes) for x, y in zip(pa, pb, strict=True)])


def ct_add_plain(ct: Ciphertext, m: U64) -> Ciphertext:
    """c_0 + encode(m): a wrap mod 2^64 of the sum costs no noise with the rounding encoding.

    Implements spec §20.4.2 `ct_add_plain` (spec/20-he.md#ct_add_plain).
    """
    p = ct.params
    return Ciphertext(
        p, [rns.add(ct.parts[0], bfv_encode(p, m), p.q_primes), *ct.parts[1:]], ct.seed
    )


def plain_poly(params: HeParams, w: I64) -> U64:
    """A plaintext multiplier: signed coefficients |w_j| < 2^62, taken as integers mod q."""
    arr = np.asarray(w, dtype=np.int64)
    if arr.shape != (params.n,):
        raise SpecError(f"a plaintext multiplier has N = {params.n} coefficients")
    return rns.from_signed(arr, params.q_primes)


def ct_mul_plain(ct: Ciphertext, w: I64) -> Ciphertext:
    """Each part times the plaintext polynomial w (signed coefficients, centered mod t).

    Implements spec §20.4.3 `ct_mul_plain` (spec/20-he.md#ct_mul_plain).
    """
    p = ct.params
    t = rns.tables(p.n, p.q_primes)
    w_eval = rns.ntt_forward(plain_poly(p, w), t)  # transformed once for every part
    parts = rns.ntt_forward(np.stack(ct.parts), t)
    return Ciphertext(p, list(rns.ntt_inverse(rns.mul_eval(parts, w_eval, p.q_primes), t)))


@dataclass(frozen=True)
class Lifted:
    """Step 1 of ``ct_mul`` for one degree-1 ciphertext: its parts' centered representatives as
    residues over q and the auxiliary primes, in NTT form, (2, L + A, N). A ciphertext that
    multiplies several others is lifted once (``expert_matmul``'s input block)."""

    params: HeParams
    parts: U64


def lift(ct: Ciphertext, ntt_q: U64 | None = None) -> Lifted:
    """``ct_mul`` step 1 (spec §20.4.4) for one operand. ``ntt_q``, if given, is the parts' NTT
    form mod q (2, L, N), which the caller already has (the selection's sum): only the residues
    mod the auxiliary primes are then computed and transformed."""
    p = ct.params
    if ct.degree != 1:
        raise SpecError("mul takes two degree-1 ciphertexts")
    qs, aux = p.q_primes, p.aux_primes
    out = np.empty((2, len(qs) + len(aux), p.n), dtype=np.uint64)
    for k in range(2):
        out[k, len(qs) :] = baseconv.base_extend(ct.parts[k], qs, aux, centered=True)
    out[:, len(qs) :] = rns.ntt_forward(out[:, len(qs) :], rns.tables(p.n, aux))
    if ntt_q is None:
        out[:, : len(qs)] = rns.ntt_forward(np.stack(ct.parts), rns.tables(p.n, qs))
    else:
        if ntt_q.shape != (2, len(qs), p.n):
            raise SpecError("the NTT form of a degree-1 ciphertext is (2, L, N)")
        out[:, : len(qs)] = ntt_q
    return Lifted(p, out)


def ct_mul(a: Ciphertext | Lifted, b: Ciphertext | Lifted) -> Ciphertext:
    """Degree-1 x degree-1 product: round(t/q * (a tensor b)) mod q, computed exactly.

    Implements spec §20.4.4 `ct_mul` (spec/20-he.md#ct_mul). The centered parts are lifted to the
    basis q * P, where P (the aux primes) exceeds 8 N q; the tensor product is exact there; it is
    scaled by t / q with rounding and reduced mod q (both in RNS, spec §20.12). Either operand
    may come lifted already (``lift``); the result is the same bit for bit.
    """
    # Step 1: the centered representative of every part, extended to the auxiliary primes.
    la = a if isinstance(a, Lifted) else lift(a)
    lb = b if isinstance(b, Lifted) else lift(b)
    if la.params != lb.params:
        raise SpecError("ciphertexts under different parameters")
    p = la.params
    qs, aux = p.q_primes, p.aux_primes
    big = qs + aux
    t = rns.tables(p.n, big)
    (a0, a1), (b0, b1) = la.parts, lb.parts
    # Step 2: the tensor product in evaluation form, exact over q * P.
    d = np.stack(
        [
            rns.mul_eval(a0, b0, big),
            rns.add(rns.mul_eval(a0, b1, big), rns.mul_eval(a1, b0, big), big),
            rns.mul_eval(a1, b1, big),
        ]
    )
    exact = rns.ntt_inverse(d, t)
    # Step 3: round(t d_k / q) mod q.
    return Ciphertext(p, [baseconv.tensor_scale(x, qs, aux) for x in exact])
